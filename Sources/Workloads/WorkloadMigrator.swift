import DataPlane
import Engine
import Foundation
import Logging
import OpenStack
import Resources

/// Options of `import workloads`.
public struct WorkloadMigrationOptions: Sendable {
    public var dryRun = false
    /// Workloads migrated at once.
    public var parallel = 2
    /// Volume copies at once within a workload.
    public var copyParallel = 2
    /// Stop a running source VM instead of skipping it.
    public var stopSource = false
    /// Warm migration: a sync pass (the source keeps running, nothing but its volumes moves).
    public var sync = false
    /// Warm migration's end: stop the source (when running), a final pass, then the server.
    public var cutover = false
    /// Names, volume types and availability zones mapped at import.
    public var names = NameMapping()
    /// Seconds for each wait (snapshot, volume, attach, server boot).
    public var timeout: Double = 1800
    /// Data plane settings.
    public var chunkSize = 4 << 20
    public var streams = 1
    /// The local os-migrate binary the data plane deploys to conversion hosts (default: this one).
    public var agentExecutable: String?
    /// Names of source servers that are conversion hosts (never migrated).
    public var conversionHostNames: Set<String> = []
    /// In a dry run: what the same run's earlier kinds would create (a prerequisite among them
    /// is met).
    public var planned = PlannedNames()

    public init() {}
}

/// The steps of one workload's migration, in order. The ledger records the last one done, so a
/// rerun after a kill starts at the next.
public enum MigrationStep: String, CaseIterable, Sendable {
    case stage, attachSource, createVolumes, attachDestination, copy, detach, ports, server, floatingIPs, cleanup

    public var next: MigrationStep? {
        let all = Self.allCases
        let i = all.firstIndex(of: self)!
        return i + 1 < all.count ? all[i + 1] : nil
    }

    /// The steps `WorkloadRun.transfer` runs together, one pipeline per volume; the ledger
    /// records each of them once the whole transfer is done.
    public static let transfer: [MigrationStep] = [.stage, .attachSource, .createVolumes, .attachDestination, .copy]

    /// The step to run after `completed` (nil: none done yet).
    public static func resume(after completed: String?) -> MigrationStep? {
        guard let completed else { return .stage }
        return MigrationStep(rawValue: completed)?.next
    }
}

/// Migrates workloads one state machine each: prerequisites, then the steps, recording every
/// resource in the ledger before moving on; on failure everything is undone.
public final class WorkloadMigrator: Sendable {
    let src: CloudSession
    let dst: CloudSession
    let hosts: ConversionHostPair?
    let ledger: Ledger
    let options: WorkloadMigrationOptions
    let sink: any EventSink
    let logger = Logger(label: "os-migrate.workloads")

    public init(src: CloudSession, dst: CloudSession, hosts: ConversionHostPair?, ledger: Ledger, options: WorkloadMigrationOptions,
                sink: any EventSink)
    {
        self.src = src
        self.dst = dst
        self.hosts = hosts
        self.ledger = ledger
        self.options = options
        self.sink = sink
    }

    public static let kind = WorkloadKind.name

    /// Migrate the workloads, `parallel` at a time; one result per workload.
    public func run(_ records: [ResourceRecord]) async throws -> [ItemResult] {
        let resolver = try await ReferenceResolver(session: dst)
        let results = try await boundedMap(records, limit: max(1, options.parallel)) { record in
            let r = await self.migrate(record, resolver: resolver)
            self.sink.item(r)
            return r
        }
        return results
    }

    func result(_ name: String, _ status: ItemResult.Status, _ message: String, action: String? = nil, id: String? = nil) -> ItemResult {
        ItemResult(kind: Self.kind, name: name, status: status, message: message, action: action, id: id)
    }

    /// One workload, start to end. Never throws: the outcome is the result.
    func migrate(_ record: ResourceRecord, resolver: ReferenceResolver) async -> ItemResult {
        let name = record.name ?? record.id ?? "?"
        let plan: WorkloadPlan
        do {
            plan = try WorkloadPlan.make(options.names.apply(record, kind: WorkloadKind.self),
                                         volumeTypes: options.names.volumeTypes, zones: options.names.availabilityZones)
        } catch {
            return result(name, .failed, "\(error)")
        }
        if options.conversionHostNames.contains(name) || plan.sourceID == hosts?.src.serverID {
            return result(name, .skipped, "conversion host")
        }
        do {
            let entry = try ledger.workload(plan.sourceID)
            // Done before: as long as the destination server is there, nothing to do but finish a
            // source cleanup that failed.
            if let entry, entry.state == .done, let d = entry.destinationID, try await dst.find(Nova.servers, id: d) != nil {
                let run = WorkloadRun(migrator: self, plan: plan, resolver: resolver)
                if run.leftovers().isEmpty { return result(name, .ok, "already migrated (destination server \(d))", id: d) }
                try await run.cleanupSource()
                let left = run.leftovers()
                if left.isEmpty { return result(name, .changed, "already migrated; source cleanup finished", action: "cleaned", id: d) }
                return result(name, .failed, "already migrated; source cleanup still incomplete: "
                    + left.map { "\($0.kind) \($0.resourceID)" }.joined(separator: ", "), id: d)
            }
            let resuming = entry?.state == .running
            if options.sync { return await sync(name, plan, resolver: resolver, entry: entry) }
            if !resuming {
                if let s = try await dst.named(Nova.servers, name).first { return result(name, .ok, "already in the destination (server \(s.id))", id: s.id) }
            }
            guard let source = try await src.find(Nova.servers, id: plan.sourceID) else {
                return result(name, .failed, "source server \(plan.sourceID) not found")
            }
            if source.status != "SHUTOFF" {
                if !options.stopSource && !options.cutover {
                    return result(name, .skipped, "source is \(source.status): stop it or pass --stop-source (or --sync to copy it while it runs)")
                }
                if source.status != "ACTIVE" {
                    return result(name, .skipped, "source is \(source.status); only ACTIVE servers are stopped")
                }
            }
            let problems = try await Prerequisites.check(plan, dst: dst, resolver: resolver, ledger: ledger, hosts: hosts, resuming: resuming,
                                                         planned: options.dryRun ? options.planned : PlannedNames())
            if !problems.isEmpty {
                let failure = "prerequisites not met in the destination: " + problems.joined(separator: "; ")
                // What an interrupted run made (copied and verified volumes too) is ours and stays:
                // a conflict with someone else's resource is resolved by hand, then the run resumes.
                return result(name, .failed, failure + (resuming ? "; the interrupted migration's work is kept: resolve this and run "
                                                                    + "`os-migrate import workloads` again to finish it" : ""))
            }
            if options.dryRun {
                let copies = plan.volumes.filter { $0.existingDestination == nil }
                return result(name, .changed,
                              "would migrate: \(copies.count) volume(s) to copy (\(plan.gigabytes) GiB), \(plan.ports.count) port(s), "
                                  + "\(plan.floatingIPs.count) floating IP(s)" + (source.status == "SHUTOFF" ? "" : ", after stopping the source"),
                              action: "migrated")
            }
            try ledger.begin(sourceID: plan.sourceID, name: name)
            let run = WorkloadRun(migrator: self, plan: plan, resolver: resolver)
            do {
                if options.cutover, try ledger.workload(plan.sourceID)?.step == nil {
                    try await run.prepareCutover()
                    try ledger.log(plan.sourceID, step: StepTimeline.cutoverPrepared, "ports and destination attachments")
                    // Stopped by the operator before the cutover: its downtime began at that stop.
                    if source.status == "SHUTOFF", try ledger.workload(plan.sourceID)?.stopRequestedAt == nil,
                       let stopped = try? await src.lastStopRequested(plan.sourceID) {
                        try ledger.stopRequested(plan.sourceID, at: stopped)
                    }
                }
                if source.status != "SHUTOFF" {
                    if !options.cutover, try ledger.workload(plan.sourceID)?.step == nil, !run.copied.isEmpty {
                        try await run.checkConversionHosts()
                    }
                    // Recorded first: a failure (or a kill, then a failure) starts it again.
                    try ledger.record(plan.sourceID, cloud: .src, kind: "stopped-server", role: "stopped-source", id: plan.sourceID)
                    try ledger.stopRequested(plan.sourceID)
                    try await stopSource(plan.sourceID)
                    try ledger.log(plan.sourceID, step: StepTimeline.sourceStopped, "SHUTOFF")
                }
                var step = MigrationStep.resume(after: try ledger.workload(plan.sourceID)?.step)
                while let first = step {
                    // The transfer's steps run as one (from the first not yet done); the others alone.
                    let group = MigrationStep.transfer.contains(first) ? Array(MigrationStep.transfer.drop { $0 != first }) : [first]
                    for s in group { try Self.injectedFailure(s) }
                    try await run.perform(first)
                    for s in group {
                        try Self.injectedFailure(after: s)
                        try ledger.completeStep(plan.sourceID, s.rawValue)
                        if s == .server, let stopped = try ledger.workload(plan.sourceID)?.stopRequestedAt {
                            // Downtime: the source's stop asked for → the destination server ACTIVE.
                            try ledger.setDowntime(plan.sourceID, seconds: Date().timeIntervalSince(stopped))
                        }
                        Self.injectedExit(recorded: s)
                    }
                    step = group.last?.next
                }
                try ledger.finish(plan.sourceID, state: .done)
                let server = try ledger.workload(plan.sourceID)?.destinationID
                return result(name, .changed, run.summary(), action: "migrated", id: server)
            } catch {
                return await fail(name, "\(error)", run)
            }
        } catch {
            return result(name, .failed, "\(error)")
        }
    }

    /// A warm sync pass: the source keeps running (or stays stopped); its volumes are copied into
    /// destination volumes kept for the next pass and the cutover. A failed pass removes its
    /// temporaries and leaves the source as it was.
    func sync(_ name: String, _ plan: WorkloadPlan, resolver: ReferenceResolver, entry: Ledger.Workload?) async -> ItemResult {
        do {
            guard let source = try await src.find(Nova.servers, id: plan.sourceID) else {
                return result(name, .failed, "source server \(plan.sourceID) not found")
            }
            guard ["ACTIVE", "SHUTOFF"].contains(source.status) else {
                return result(name, .skipped, "source is \(source.status): a sync copies ACTIVE or SHUTOFF servers")
            }
            if entry?.state == .running, entry?.step != nil {
                return result(name, .failed, "a migration of this workload is under way (last step \(entry?.step ?? "")): finish it with `os-migrate import workloads`")
            }
            if let s = try await dst.named(Nova.servers, name).first { return result(name, .ok, "already in the destination (server \(s.id))", id: s.id) }
            let run = WorkloadRun(migrator: self, plan: plan, resolver: resolver)
            if options.dryRun {
                let pass = try ledger.nextPass(plan.sourceID)
                return result(name, .changed, "would sync (pass \(pass)): \(run.copied.count) volume(s), \(plan.gigabytes) GiB, the source running",
                              action: "synced")
            }
            try ledger.begin(sourceID: plan.sourceID, name: name)
            do {
                let summary = try await run.syncPass()
                try ledger.finishSync(plan.sourceID)
                return result(name, .changed, summary, action: "synced")
            } catch {
                let problems = await run.temporariesLeft()
                let failure = "sync failed: \(error)" + (problems.isEmpty ? "; its temporaries were removed, the source is untouched"
                    : "; cleanup incomplete: " + problems.joined(separator: "; "))
                try? ledger.finish(plan.sourceID, state: .failed, error: failure)
                return result(name, .failed, failure)
            }
        } catch {
            return result(name, .failed, "\(error)")
        }
    }

    /// The failure path: undo everything the run created in both clouds, restore the source.
    func fail(_ name: String, _ failure: String, _ run: WorkloadRun) async -> ItemResult {
        try? ledger.log(run.id, step: "failed", failure)
        let leftovers = await run.rollback()
        try? ledger.finish(run.id, state: .failed, error: failure)
        let cleaned = leftovers.isEmpty ? "everything it created was removed and the source restored"
            : "cleanup incomplete: " + leftovers.joined(separator: "; ")
        return result(name, .failed, "\(failure); \(cleaned)")
    }

    func stopSource(_ id: String) async throws {
        try await src.stopServer(id)
        _ = try await Waiter.wait("source server \(id)", service: ServiceType.compute, timeout: options.timeout, until: ["SHUTOFF"],
                                  failOn: ["ERROR"], fetch: { try await self.src.find(Nova.servers, id: id) }, status: { $0.status })
    }

    /// Test hook: `OSM_FAIL_AT=<step>` makes that step fail, to prove the failure path.
    static func injectedFailure(_ step: MigrationStep) throws {
        if ProcessInfo.processInfo.environment["OSM_FAIL_AT"] == step.rawValue {
            throw InjectedFailure("injected failure at step \(step.rawValue) (OSM_FAIL_AT)")
        }
    }

    /// Test hook: `OSM_EXIT_INSIDE=<role>` ends the process at once right after the cloud answered
    /// the create of that ledger role (`dst-port:0`, `dst-server`…; a trailing `*` matches a
    /// prefix), before the ledger records it: the instant a kill is hardest to recover from.
    static func injectedExit(inside role: String) {
        guard let want = ProcessInfo.processInfo.environment["OSM_EXIT_INSIDE"], !want.isEmpty else { return }
        if want == role || (want.hasSuffix("*") && role.hasPrefix(want.dropLast())) { exit(137) }
    }

    /// Test hook: `OSM_EXIT_RECORDED=<step>` ends the process right after the ledger recorded the
    /// step as done.
    static func injectedExit(recorded step: MigrationStep) {
        if ProcessInfo.processInfo.environment["OSM_EXIT_RECORDED"] == step.rawValue { exit(137) }
    }

    /// Test hooks: after a step did its work but before the ledger says so, `OSM_FAIL_AFTER=<step>`
    /// fails (what it made must be undone) and `OSM_EXIT_AFTER=<step>` ends the process at once,
    /// as a kill would (the next run must take over what it made).
    static func injectedFailure(after step: MigrationStep) throws {
        let env = ProcessInfo.processInfo.environment
        if env["OSM_EXIT_AFTER"] == step.rawValue { exit(137) }
        if env["OSM_FAIL_AFTER"] == step.rawValue {
            throw InjectedFailure("injected failure after step \(step.rawValue) (OSM_FAIL_AFTER)")
        }
    }
}

/// A failure a test asked for (`OSM_FAIL_AT`, `OSM_FAIL_AFTER`), to prove the failure path. Reads
/// "test: injected failure …".
struct InjectedFailure: Error, CustomStringConvertible, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { "test: \(message)" }
}
