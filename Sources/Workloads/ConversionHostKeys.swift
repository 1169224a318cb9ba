import DataPlane
import Foundation
import OpenStack
import Resources

#if canImport(Glibc)
    import Glibc
#endif

/// Keys: the migrator's and the link's key files, and the conversion hosts' SSH host keys pinned on first contact.
extension ConversionHosts {
    /// Generates `path` (and `.pub`) with ssh-keygen once; returns the public key.
    static func ensureKeyFile(_ path: String, settings: ConversionHostSettings, what: String, generate: Bool) async throws
        -> (text: String, created: Bool)
    {
        // Both sides deploy at once and share the key: one ssh-keygen.
        await AttachLocks.shared.acquire("keyfile:" + path)
        do {
            let r = try await ensureKeyFileLocked(path, settings: settings, what: what, generate: generate)
            await AttachLocks.shared.release("keyfile:" + path)
            return r
        } catch {
            await AttachLocks.shared.release("keyfile:" + path)
            throw error
        }
    }

    private static func ensureKeyFileLocked(_ path: String, settings: ConversionHostSettings, what: String, generate: Bool) async throws
        -> (text: String, created: Bool)
    {
        let fm = FileManager.default
        var created = false
        if !fm.fileExists(atPath: path) {
            guard generate else {
                throw ConfigError("\(settings.origin): os_migrate_conversion_keypair_generate is false and the \(what) \(path) does not exist")
            }
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o700])
            var argv = ["ssh-keygen", "-q", "-t", settings.keyType, "-N", "", "-C", "os-migrate-\(what.replacingOccurrences(of: " ", with: "-"))",
                        "-f", path]
            if settings.keyType == "rsa" { argv += ["-b", String(settings.keyBits)] }
            let r = try await LocalCommand.run(argv, timeout: 60)
            guard r.status == 0 else {
                throw ConversionHostError(.other, "ssh-keygen could not create the \(what) \(path): \(r.lastErrorLine ?? "exit status \(r.status)")")
            }
            created = true
        }
        chmod(path, 0o600)
        let pubPath = path + ".pub"
        if !fm.fileExists(atPath: pubPath) {
            let r = try await LocalCommand.run(["ssh-keygen", "-y", "-f", path], timeout: 60)
            guard r.status == 0 else {
                throw ConversionHostError(.other, "cannot read the \(what) \(path): \(r.lastErrorLine ?? "exit status \(r.status)")")
            }
            try r.stdout.write(toFile: pubPath, atomically: true, encoding: .utf8)
        }
        let text = try String(contentsOfFile: pubPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return (text, created)
    }

    /// Pins the host key on first contact (ssh-keyscan, or accept-new through a ProxyJump).
    /// A host already pinned is left as it is, unless the server was just created (its old pin,
    /// for an earlier server of the same id, cannot exist; an address's old pin is never reused).
    static func pinHostKey(_ host: ConversionHost, settings: ConversionHostSettings, fresh: Bool,
                           report: Reporter) async throws
    {
        let alias = HostKeyPinning.alias(serverID: host.serverID)
        let file = settings.knownHostsPath
        let current = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        if !HostKeyPinning.lines(for: alias, in: current).isEmpty && !fresh {
            report.ok("host key", alias, "pinned in \(file)")
            return
        }
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let deadline = ContinuousClock.now + .seconds(settings.sshTimeout)
        var lastProblem = "no answer"
        if settings.proxyJump == nil {
            while true {
                let r = try await LocalCommand.run(["ssh-keyscan", "-T", "10", "-p", String(host.ssh.port ?? 22), "-t", "ed25519,ecdsa,rsa",
                                                    host.address], timeout: 60)
                let keys = HostKeyPinning.parseKeyscan(r.stdout)
                if !keys.isEmpty {
                    try writePins(file: file) { HostKeyPinning.pinning(alias, keys: keys, in: $0) }
                    report.changed("host key", alias, "pinned \(keys.map(\.type).joined(separator: ", ")) on first contact in \(file)",
                                   action: "created")
                    return
                }
                lastProblem = r.lastErrorLine ?? "no host key received"
                if ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .seconds(3))
            }
        } else {
            // Through a jump host ssh-keyscan cannot reach the host: let ssh record the key of the
            // first contact (accept-new) into our file, under the alias, once.
            try writePins(file: file) { HostKeyPinning.removing(alias, from: $0) }
            var first = host.ssh
            first.options = first.options.map { $0 == "StrictHostKeyChecking=yes" ? "StrictHostKeyChecking=accept-new" : $0 }
            while true {
                let r = try await LocalCommand.run(first.sshArguments() + ["true"], timeout: 60)
                let pinned = HostKeyPinning.lines(for: alias, in: (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
                if !pinned.isEmpty {
                    report.changed("host key", alias, "pinned on first contact through \(settings.proxyJump!) in \(file)", action: "created")
                    return
                }
                lastProblem = r.lastErrorLine ?? "exit status \(r.status)"
                if ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .seconds(3))
            }
        }
        throw ConversionHostError(.unreachable, "\(host.label): SSH did not answer within \(Int(settings.sshTimeout)) s: \(lastProblem)")
    }

    /// Read, change and replace the pinned keys under an exclusive lock: both sides deploy at
    /// once (and several processes may share a data dir), so an unlocked read-modify-write could
    /// lose the other side's pin.
    static func writePins(file: String, _ change: (String) -> String) throws {
        let lockFD = open(file + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw ConversionHostError(.other, "cannot lock \(file): \(String(cString: strerror(errno)))") }
        defer { close(lockFD) }
        while flock(lockFD, LOCK_EX) != 0 {
            if errno != EINTR { throw ConversionHostError(.other, "cannot lock \(file): \(String(cString: strerror(errno)))") }
        }
        defer { flock(lockFD, LOCK_UN) }
        let current = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        let updated = change(current)
        let tmp = file + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(updated.utf8), attributes: [.posixPermissions: 0o600]),
              rename(tmp, file) == 0
        else {
            Glibc.unlink(tmp)
            throw ConversionHostError(.other, "cannot write \(file): \(String(cString: strerror(errno)))")
        }
    }

    static func unpin(serverID: String, settings: ConversionHostSettings) throws {
        guard FileManager.default.fileExists(atPath: settings.knownHostsPath) else { return }
        try writePins(file: settings.knownHostsPath) { HostKeyPinning.removing(HostKeyPinning.alias(serverID: serverID), from: $0) }
    }

    /// Removes the data-dir keys and pins (`--purge-keys`). Returns the files removed.
    @discardableResult
    public static func purgeKeys(_ settings: ConversionHostSettings) throws -> [String] {
        var removed: [String] = []
        for p in [settings.keypairPrivatePath, settings.keypairPrivatePath + ".pub", settings.linkKeypairPrivatePath,
                  settings.linkKeypairPrivatePath + ".pub", settings.knownHostsPath]
        where FileManager.default.fileExists(atPath: p) {
            try FileManager.default.removeItem(atPath: p)
            removed.append(p)
        }
        return removed
    }
}

/// Host keys pinned on first contact, in `<data_dir>/conversion/known_hosts` (pure parts).
///
/// Each conversion host's keys are stored under `HostKeyAlias` `os-migrate-conv-<server id>`, so
/// that two hosts behind one address (ports, ProxyJump) never mix, an address that moves to
/// another server is not trusted for it, and a rebuilt server (new id) is pinned afresh.
public enum HostKeyPinning {
    public static func alias(serverID: String) -> String { "os-migrate-conv-\(serverID)" }

    /// `(type, base64 key)` pairs from ssh-keyscan output (comments and blank lines skipped).
    public static func parseKeyscan(_ output: String) -> [(type: String, key: String)] {
        var keys: [(String, String)] = []
        for line in output.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            let f = t.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 3, f[1].hasPrefix("ssh-") || f[1].hasPrefix("ecdsa-") || f[1].hasPrefix("sk-") else { continue }
            if !keys.contains(where: { $0.0 == String(f[1]) && $0.1 == String(f[2]) }) { keys.append((String(f[1]), String(f[2]))) }
        }
        return keys
    }

    /// The known_hosts lines pinned for `alias`.
    public static func lines(for alias: String, in text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { line in
            line.split(separator: " ").first.map { $0.split(separator: ",").contains(Substring(alias)) } ?? false
        }
    }

    /// `text` without the lines of `alias`.
    public static func removing(_ alias: String, from text: String) -> String {
        let kept = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init).filter { line in
            !(line.split(separator: " ").first.map { $0.split(separator: ",").contains(Substring(alias)) } ?? false)
        }
        return kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n"
    }

    /// `text` with `alias` pinned to `keys` (its previous lines replaced).
    public static func pinning(_ alias: String, keys: [(type: String, key: String)], in text: String) -> String {
        removing(alias, from: text) + keys.map { "\(alias) \($0.type) \($0.key)\n" }.joined()
    }
}
