import DataPlane
import Foundation
import OpenStack

#if canImport(Glibc)
    import Glibc
#endif

extension ConversionHost {
    /// Attaches a volume to this host (Nova), waits until Cinder says in-use, then finds it on the
    /// host with the host's device discovery and returns its path there. A volume already
    /// attached to this host is found again (with lsblk discovery it is re-attached, since a diff
    /// is the only way to know its disk). A volume attached elsewhere is an error.
    public func attach(volumeID: String, session: CloudSession, timeout: Double = 1800) async throws -> String {
        try DeviceMatch.checkVolumeID(volumeID)
        let volume = try await session.get(Cinder.volumes, volumeID)
        if let other = volume.attachments.first(where: { $0.serverID != nil && $0.serverID != serverID }), volume.multiattach != true {
            throw ConversionHostError(.volume, "volume \(volumeID) is attached to server \(other.serverID!), not to \(label)")
        }
        let attachedHere = volume.attachments.contains { $0.serverID == serverID }
        switch deviceDiscovery {
        case .serial:
            if !attachedHere { try await novaAttach(volumeID, session: session, timeout: timeout) }
            return try await findByID(volumeID, timeout: min(timeout, 300))
        case .template(let template):
            if !attachedHere { try await novaAttach(volumeID, session: session, timeout: timeout) }
            let path = DeviceMatch.template(template, volumeID: volumeID)
            try await waitForPath(path, volumeID: volumeID, timeout: min(timeout, 120))
            return path
        case .lsblk:
            return try await withAttachLock(timeout: timeout) {
                if attachedHere {
                    try await novaDetach(volumeID, session: session, timeout: timeout)
                }
                let before = try await listDisks()
                try await novaAttach(volumeID, session: session, timeout: timeout)
                let deadline = ContinuousClock.now + .seconds(min(timeout, 300))
                while true {
                    let after = try await listDisks()
                    let new = DeviceMatch.newDisks(before: before, after: after)
                    if new.count == 1 { return new[0] }
                    if new.count > 1 {
                        throw ConversionHostError(.volume, "\(label): \(new.count) new disks appeared after attaching volume \(volumeID) "
                            + "(\(new.joined(separator: ", "))): cannot tell which one it is; use device discovery 'serial'")
                    }
                    if ContinuousClock.now >= deadline {
                        throw ConversionHostError(.volume, "\(label): no new disk appeared within \(Int(min(timeout, 300))) s "
                            + "after attaching volume \(volumeID) (Cinder says in-use)")
                    }
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Detaches a volume from this host (Nova) and waits until Cinder no longer lists the
    /// attachment. A volume that is not attached here (or is gone) is left alone.
    public func detach(volumeID: String, session: CloudSession, timeout: Double = 1800) async throws {
        try DeviceMatch.checkVolumeID(volumeID)
        guard let volume = try await session.find(Cinder.volumes, id: volumeID),
              volume.attachments.contains(where: { $0.serverID == serverID })
        else { return }
        if deviceDiscovery == .lsblk {
            // A disk name freed during another attach's before/after window would fool its diff.
            try await withAttachLock(timeout: timeout) { try await novaDetach(volumeID, session: session, timeout: timeout) }
        } else {
            try await novaDetach(volumeID, session: session, timeout: timeout)
        }
    }

    // MARK: internals

    func novaAttach(_ volumeID: String, session: CloudSession, timeout: Double) async throws {
        do {
            try await session.attachVolume(server: serverID, volume: volumeID)
        } catch let e as OpenStackError where e.isConflict {
            // Attached meanwhile (a retried request): fine if it is to us.
            let v = try await session.get(Cinder.volumes, volumeID)
            guard v.attachments.contains(where: { $0.serverID == serverID }) || v.status == "attaching" || v.status == "reserved" else { throw e }
        }
        let sid = serverID
        let deadline = ContinuousClock.now + .seconds(timeout)
        var seenAttaching = false
        var poll = Poll(PollCadence(interval: 1))
        while true {
            let v = try await session.get(Cinder.volumes, volumeID)
            if v.status == "in-use" && v.attachments.contains(where: { $0.serverID == sid }) { return }
            if Waiter.defaultFailures.contains(v.status.lowercased()) || v.status == "error_attaching" {
                throw ConversionHostError(.volume, "attaching volume \(volumeID) to \(label) failed: the volume went to status \(v.status)")
            }
            if v.status == "attaching" || v.status == "reserved" { seenAttaching = true }
            // Nova gave up and Cinder rolled back (or the request was dropped).
            if v.status == "available" {
                // Never seen attaching: given 30 s for Nova to pick the request up.
                if seenAttaching || poll.elapsed >= 30 {
                    throw ConversionHostError(.volume, "attaching volume \(volumeID) to \(label) failed: the volume is available again "
                        + "(see the server's instance actions for the reason)")
                }
            }
            if ContinuousClock.now >= deadline {
                throw ConversionHostError(.volume, "volume \(volumeID) still \(v.status) after \(Int(timeout)) s of attaching it to \(label)")
            }
            try await poll.sleep()
        }
    }

    func novaDetach(_ volumeID: String, session: CloudSession, timeout: Double) async throws {
        do {
            try await session.detachVolume(server: serverID, volume: volumeID)
        } catch let e as OpenStackError where e.status == 400 || e.isConflict {
            // "not attached" or already detaching: the wait below tells.
            guard let v = try await session.find(Cinder.volumes, id: volumeID) else { return }
            if !v.attachments.contains(where: { $0.serverID == serverID }) { return }
            if v.status != "detaching" { throw e }
        }
        let sid = serverID
        let deadline = ContinuousClock.now + .seconds(timeout)
        var poll = Poll(PollCadence(interval: 1))
        while true {
            guard let v = try await session.find(Cinder.volumes, id: volumeID) else { return }
            if !v.attachments.contains(where: { $0.serverID == sid }) && v.status != "detaching" { return }
            if Waiter.defaultFailures.contains(v.status.lowercased()) || v.status == "error_detaching" {
                throw ConversionHostError(.volume, "detaching volume \(volumeID) from \(label) failed: the volume went to status \(v.status)")
            }
            if ContinuousClock.now >= deadline {
                throw ConversionHostError(.volume, "volume \(volumeID) still \(v.status) after \(Int(timeout)) s of detaching it from \(label)")
            }
            try await poll.sleep()
        }
    }

    func findByID(_ volumeID: String, timeout: Double) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            let r = try await run("ls -1 /dev/disk/by-id/ 2>/dev/null || true", timeout: 60)
            let entries = r.stdout.split(separator: "\n").map(String.init)
            if let p = DeviceMatch.byID(entries: entries, volumeID: volumeID) { return p }
            if ContinuousClock.now >= deadline {
                throw ConversionHostError(.volume, "\(label): volume \(volumeID) is attached, but no /dev/disk/by-id entry carries its serial "
                    + "(\(DeviceMatch.serial(volumeID))) after \(Int(timeout)) s; the disk bus may not expose serials: "
                    + "set os_migrate_\(side.rawValue)_conversion_host_device_discovery to lsblk")
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    func waitForPath(_ path: String, volumeID: String, timeout: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            let r = try await run("test -e \(shellQuote(path))", timeout: 60)
            if r.status == 0 { return }
            if ContinuousClock.now >= deadline {
                throw ConversionHostError(.volume, "\(label): volume \(volumeID) is attached, but \(path) does not exist there "
                    + "(device discovery template \(deviceDiscovery))")
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    func listDisks() async throws -> String {
        let r = try await run("lsblk --noheadings --list --paths --nodeps --output NAME,TYPE", timeout: 60)
        guard r.status == 0 else {
            throw ConversionHostError(.volume, "\(label): lsblk failed: \(CommandOutput(status: r.status, stdout: r.stdout, stderr: r.stderr).lastErrorLine ?? "exit status \(r.status)")")
        }
        return r.stdout
    }

    /// Serializes attaches and detaches to this host: in this process (an actor) and across
    /// processes (`flock` on the host, held by an ssh session for the duration).
    func withAttachLock<T: Sendable>(timeout: Double, _ body: () async throws -> T) async throws -> T {
        let key = "\(side.rawValue)/\(serverID)"
        await AttachLocks.shared.acquire(key)
        let remote: RemoteLock
        do {
            remote = try await RemoteLock.acquire(self, timeout: timeout)
        } catch {
            await AttachLocks.shared.release(key)
            throw error
        }
        do {
            let result = try await body()
            await remote.release()
            await AttachLocks.shared.release(key)
            return result
        } catch {
            await remote.release()
            await AttachLocks.shared.release(key)
            throw error
        }
    }
}

/// Finding an attached volume on a host (pure).
public enum DeviceMatch {
    /// The serial virtio (and virtio-scsi) disks carry: the first 20 characters of the volume id.
    public static func serial(_ volumeID: String) -> String { String(volumeID.prefix(20)) }

    /// The `/dev/disk/by-id` entry of a volume: a whole disk (no `-partN`) whose name contains the
    /// serial; virtio names first, then SCSI ones.
    public static func byID(entries: [String], volumeID: String) -> String? {
        let s = serial(volumeID)
        guard s.count == 20 || s.count == volumeID.count, !s.isEmpty else { return nil }
        let matches = entries.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.contains(s) && $0.range(of: "-part[0-9]+$", options: .regularExpression) == nil }
        func rank(_ e: String) -> Int {
            if e.hasPrefix("virtio-") { return 0 }
            if e.hasPrefix("scsi-0QEMU") { return 1 }
            if e.hasPrefix("scsi-") { return 2 }
            return 3
        }
        return matches.sorted { (rank($0), $0) < (rank($1), $1) }.first.map { "/dev/disk/by-id/" + $0 }
    }

    /// Whole disks in `lsblk --noheadings --list --paths --nodeps --output NAME,TYPE` output.
    public static func disks(lsblk output: String) -> Set<String> {
        var out = Set<String>()
        for line in output.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let name = f.first, name.hasPrefix("/dev/") else { continue }
            if f.count >= 2, f[1] != "disk" { continue }
            out.insert(String(name))
        }
        return out
    }

    /// Disks in `after` that were not in `before` (sorted).
    public static func newDisks(before: String, after: String) -> [String] {
        disks(lsblk: after).subtracting(disks(lsblk: before)).sorted()
    }

    public static func template(_ template: String, volumeID: String) -> String {
        template.replacingOccurrences(of: "{volume_id}", with: volumeID)
    }

    /// Volume ids go into paths and commands: only what Cinder ids are made of.
    public static func checkVolumeID(_ id: String) throws {
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw ConversionHostError(.volume, "'\(id)' is not a volume id")
        }
    }
}

/// In-process locks by key, FIFO.
actor AttachLocks {
    static let shared = AttachLocks()
    private var held: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func acquire(_ key: String) async {
        if !held.contains(key) {
            held.insert(key)
            return
        }
        await withCheckedContinuation { waiters[key, default: []].append($0) }
    }

    func release(_ key: String) {
        if var w = waiters[key], !w.isEmpty {
            let next = w.removeFirst()
            waiters[key] = w.isEmpty ? nil : w
            next.resume()  // the lock passes to it
        } else {
            held.remove(key)
        }
    }
}

/// `flock` on a conversion host, held by an ssh session: released when we close its stdin, or
/// when the connection drops (the migrator died), never left behind.
final class RemoteLock: Sendable {
    static let path = "~/.cache/os-migrate/attach.lock"
    private let child: ChildProcess

    private init(child: ChildProcess) { self.child = child }

    static func acquire(_ host: ConversionHost, timeout: Double) async throws -> RemoteLock {
        let script = "set -e; f=\(RemoteShell.path(path)); mkdir -p \"$(dirname \"$f\")\"; exec 9>>\"$f\"; "
            + "flock -w \(Int(max(1, timeout))) 9 || { echo TIMEOUT; exit 3; }; echo LOCKED; cat >/dev/null"
        let child = try ChildProcess(argv: host.ssh.sshArguments() + [script], stdin: .pipe, stdout: .pipe, stderr: .pipe)
        child.collectStderr()
        let line = await onThread { child.readLine() ?? "" }
        if line == "LOCKED" { return RemoteLock(child: child) }
        child.closeStdin()
        let status = await onThread { child.wait().code }
        let out = CommandOutput(status: status, stdout: line, stderr: child.stderrText())
        if let e = host.sshError(out) { throw e }
        if line == "TIMEOUT" {
            throw ConversionHostError(.volume, "\(host.label): the attach lock \(path) stayed taken for \(Int(timeout)) s")
        }
        throw ConversionHostError(.volume, "\(host.label): cannot take the attach lock \(path): \(out.lastErrorLine ?? "exit status \(status)")")
    }

    func release() async {
        child.closeStdin()
        let c = child
        _ = await onThread { c.wait() }
    }
}

/// Runs blocking work on its own thread (not on the cooperative pool).
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { cont in
        Thread.detachNewThread { cont.resume(returning: body()) }
    }
}
