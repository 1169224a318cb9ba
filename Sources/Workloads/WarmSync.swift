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
        // What an interrupted pass (or run) left.
        try await removeTemporaries("an earlier pass's temporaries")
        let pass = try ledger.nextPass(id)
        let started = Date()
        // Each volume's point in time and its destination volume, side by side.
        // (A struct, not a tuple, comes out of the task group: see DeployOutcome.)
        let staged = try await boundedMap(copied, limit: 4) { i, v in
            let tmp = try await self.syncSource(i, v, pass: pass)
            _ = try await self.ensureDestinationVolume(i, v, staged: tmp, keep: true)
            return StagedCopy(index: i, volume: v, staged: tmp)
        }
        let targets = try staged.map { try destinationVolume($0.index) }
        // The destination volumes stay attached to their host between passes (and for the
        // cutover); only the source side's temporaries come and go.
        async let sourceSide: Void = attach(h.src, session: src, side: .src, volumes: staged.map(\.staged))
        async let destinationSide: Void = attach(h.dst, session: dst, side: .dst, volumes: targets, keep: true)
        _ = try await (sourceSide, destinationSide)
        KillPoint.reached("sync-attached")
        let results = try await runCopies(try copyJobs(staged))
        KillPoint.reached("sync-copied")
        for (job, r) in results {
            try ledger.saveSyncPass(Ledger.SyncPass(
                workload: id, device: job.device, pass: pass, destinationVolume: job.target, size: Int64(r.sourceSize),
                bytesChanged: Int64(r.bytesCopied), bytesOnWire: Int64(r.bytesOnWire), seconds: r.seconds, digest: r.digest, at: Date()))
        }
        try await removeTemporaries("this pass's temporaries")
        let size = results.reduce(Int64(0)) { $0 + Int64($1.1.sourceSize) }
        let changed = results.reduce(Int64(0)) { $0 + Int64($1.1.bytesCopied) }
        let wire = results.reduce(Int64(0)) { $0 + Int64($1.1.bytesOnWire) }
        func gib(_ b: Int64) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
        return "sync pass \(pass): \(results.count) volume(s), \(gib(changed)) changed of \(gib(size)) (\(gib(wire)) on the wire) in "
            + String(format: "%.1f s", Date().timeIntervalSince(started)) + "; the source keeps running: `--cutover` to finish"
    }

    /// The cutover's work that does not need the source stopped, done before its downtime
    /// begins: the ports (the destination's, nothing the source holds); after a sync, the
    /// destination volumes attached to their host (where the last pass left them, unless a
    /// failed cutover took them off); and both conversion hosts answering with this build's
    /// agent (deployed now when missing, not during the downtime), so that an unreachable host
    /// fails the cutover before the source is stopped. The steps that follow find it all done
    /// (and with connection sharing, the hosts' ssh connections open).
    func prepareCutover() async throws {
        let targets = try copied.compactMap { try recorded("dst-volume:\($0.index)")?.resourceID }
        async let ports: Void = createPorts()
        if !copied.isEmpty {
            async let agents: Void = checkConversionHosts()
            if !targets.isEmpty && targets.count == copied.count {
                try await attach(try hosts().dst, session: dst, side: .dst, volumes: targets, keep: true)
            }
            try await agents
        }
        try await ports
    }

    /// Both conversion hosts answer and run this build's agent (deployed now when missing).
    /// Asked before the source is stopped: a host that cannot copy fails the migration while the
    /// source still runs, and an agent upload does not count as downtime.
    func checkConversionHosts() async throws {
        let h = try hosts()
        let exe = migrator.options.agentExecutable
        async let srcAgent = ConversionHosts.checkAgent(h.src, deploy: true, executable: exe)
        async let dstAgent = ConversionHosts.checkAgent(h.dst, deploy: true, executable: exe)
        _ = try await (srcAgent, dstAgent)
    }

    /// Detach what the conversion hosts hold and delete the source-side temporaries; what could
    /// not be undone, one line each (it stays in the ledger for the next pass).
    func temporariesLeft() async -> [String] {
        var problems: [String] = []
        do { try await detach(includingKept: false) } catch { problems.append("detach: \(error)") }
        await undoSource(&problems, restart: false)
        return problems
    }

    func removeTemporaries(_ what: String) async throws {
        let problems = await temporariesLeft()
        if !problems.isEmpty {
            throw OpenStackError(kind: .waitFailed, service: "cleanup", message: "\(what): " + problems.joined(separator: "; "))
        }
    }

    /// A temporary volume holding `v` as it is now, from a snapshot (volumes, in use or not) or
    /// an image of the server (an image-booted server's disk).
    func syncSource(_ i: Int, _ v: WorkloadPlan.Volume, pass: Int) async throws -> String {
        let what = "os-migrate: warm sync pass \(pass), temporary"
        return try await temporaryVolume(of: v, Temporary(snapshotRole: "sync-snapshot:\(i)", volumeRole: "sync-volume:\(i)", imageRole: "sync-image",
                                                          name: "\(tempName)-sync-\(i)", snapshotDescription: what, volumeDescription: what))
    }
}
