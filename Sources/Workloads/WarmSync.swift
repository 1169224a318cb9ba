import DataPlane
import Foundation
import OpenStack
import Resources

/// A warm migration's sync pass (`import workloads --sync`): the source keeps running. Each
/// volume is read from a crash-consistent point in time (a Cinder snapshot of the in-use volume,
/// or an image of an image-booted server, made into a temporary volume) and copied into its
/// destination volume, which is created once, kept between passes and through a failed cutover
/// (ledger state `kept`), and written only by our copies: the chunk map keyed by its id says what
/// it holds, so a pass moves only what changed since the last one. A pass's temporaries are
/// removed at its end; what a killed pass left is removed by the next pass (or by the cutover).
/// The cutover is the cold path (`import workloads --cutover`): stop, stage, a final pass that
/// trusts the map, ports, server, floating IPs.
extension WorkloadRun {
    func syncPass() async throws -> String {
        let h = try hosts()
        // What an interrupted pass (or run) left: attachments first, then temporaries.
        try await detach()
        var problems: [String] = []
        await undoSource(&problems, restart: false)
        if !problems.isEmpty {
            throw OpenStackError(kind: .waitFailed, service: "cleanup", message: "an earlier pass's temporaries: " + problems.joined(separator: "; "))
        }
        let pass = try ledger.nextPass(id)
        let started = Date()
        var staged: [(index: Int, volume: WorkloadPlan.Volume, staged: String)] = []
        for (i, v) in copied {
            let tmp = try await syncSource(i, v, pass: pass)
            _ = try await ensureDestinationVolume(i, v, staged: tmp, keep: true)
            staged.append((i, v, tmp))
        }
        let targets = try staged.map { try destinationVolume($0.index) }
        async let sourceSide: Void = attach(h.src, session: src, side: .src, volumes: staged.map(\.staged))
        async let destinationSide: Void = attach(h.dst, session: dst, side: .dst, volumes: targets)
        _ = try await (sourceSide, destinationSide)
        KillPoint.reached("sync-attached")
        let results = try await runCopies(try copyJobs(staged))
        KillPoint.reached("sync-copied")
        for (job, r) in results {
            try ledger.saveSyncPass(Ledger.SyncPass(
                workload: id, device: job.device, pass: pass, destinationVolume: job.target, size: Int64(r.sourceSize),
                bytesChanged: Int64(r.bytesCopied), bytesOnWire: Int64(r.bytesOnWire), seconds: r.seconds, digest: r.digest, at: Date()))
        }
        try await detach()
        await undoSource(&problems, restart: false)
        if !problems.isEmpty {
            throw OpenStackError(kind: .waitFailed, service: "cleanup", message: "this pass's temporaries: " + problems.joined(separator: "; "))
        }
        let size = results.reduce(Int64(0)) { $0 + Int64($1.1.sourceSize) }
        let changed = results.reduce(Int64(0)) { $0 + Int64($1.1.bytesCopied) }
        let wire = results.reduce(Int64(0)) { $0 + Int64($1.1.bytesOnWire) }
        func gib(_ b: Int64) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
        return "sync pass \(pass): \(results.count) volume(s), \(gib(changed)) changed of \(gib(size)) (\(gib(wire)) on the wire) in "
            + String(format: "%.1f s", Date().timeIntervalSince(started)) + "; the source keeps running: `--cutover` to finish"
    }

    /// A temporary volume holding `v` as it is now, from a snapshot (volumes, in use or not) or
    /// an image of the server (an image-booted server's disk).
    func syncSource(_ i: Int, _ v: WorkloadPlan.Volume, pass: Int) async throws -> String {
        let name = "\(tempName)-sync-\(i)"
        switch v.staging {
        case .snapshot, .detach:
            let snap = try await ensure("sync-snapshot:\(i)", .src, "snapshot", adopt: {
                try await adoptNamed(Cinder.snapshots, src, name) { $0.volumeID == v.sourceID && !$0.status.hasPrefix("error") }
            }) {
                try await src.json(APIRequest(ServiceType.blockStorage, .POST, "/snapshots", body: ["snapshot": [
                    "volume_id": .string(v.sourceID ?? ""), "force": true, "name": .string(name),
                    "description": .string("os-migrate: warm sync pass \(pass), temporary"),
                ]]), key: "snapshot")["id"]?.stringValue ?? ""
            }
            try await waitSnapshot(snap)
            let tmp = try await ensure("sync-volume:\(i)", .src, "volume", adopt: {
                try await adoptNamed(Cinder.volumes, src, name) { $0.snapshotID == snap && !$0.status.hasPrefix("error") }
            }) {
                try await src.create(Cinder.volumes, ["snapshot_id": .string(snap), "size": .int(v.size), "name": .string(name),
                                                      "description": .string("os-migrate: warm sync pass \(pass), temporary")]).id
            }
            _ = try await waitVolume(src, tmp, "available")
            return tmp
        case .serverImage:
            let image = try await ensure("sync-image", .src, "image", adopt: {
                try await adoptNamed(Glance.images, src, name) { !["killed", "deleted"].contains($0.status) }
            }) {
                try await src.createServerImage(plan.sourceID, name: name)
            }
            let img = try await Waiter.wait("image \(image)", service: ServiceType.image, timeout: timeout, until: ["active"],
                                            failOn: ["killed", "deleted"], fetch: { try await src.findImage(id: image) }, status: { $0.status })
            let size = max(Int(((img.size ?? 0) + (1 << 30) - 1) >> 30), img.minDisk ?? 0, 1)
            let tmp = try await ensure("sync-volume:\(i)", .src, "volume", adopt: {
                try await adoptNamed(Cinder.volumes, src, name) { !$0.status.hasPrefix("error") }
            }) {
                try await src.create(Cinder.volumes, ["imageRef": .string(image), "size": .int(size), "name": .string(name),
                                                      "description": .string("os-migrate: warm sync pass \(pass), temporary")]).id
            }
            _ = try await waitVolume(src, tmp, "available")
            return tmp
        }
    }
}
