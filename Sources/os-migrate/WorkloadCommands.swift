import ArgumentParser
import DataPlane
import Engine
import Foundation
import OpenStack
import Resources
import Workloads

/// `import workloads` options.
struct WorkloadImportOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "Workloads migrated at once.") var parallel = 2
    @Option(name: .long, parsing: .unconditional, help: "Volume copies at once within a workload.") var copyParallel = 2
    @Flag(name: .long, help: "Stop running source VMs (and wait for SHUTOFF) instead of skipping them.") var stopSource = false
    @Flag(name: .long, help: "Warm migration: copy the volumes while the VMs run (repeatable; each pass moves what changed). Nothing else is created.")
    var sync = false
    @Flag(name: .long, help: "Warm migration's end: stop each VM (when running), a last pass, then its ports, server and floating IPs; the downtime is measured.")
    var cutover = false
    @Option(name: .long, help: ArgumentHelp("Use destination network DST where the source used SRC (repeatable).", valueName: "src=dst"))
    var mapNetwork: [String] = []
    @Option(name: .long, help: ArgumentHelp("Volume type mapping (repeatable).", valueName: "src=dst")) var mapVolumeType: [String] = []
    @Option(name: .long, help: ArgumentHelp("Availability zone mapping, for servers and volumes (repeatable).", valueName: "src=dst"))
    var mapAz: [String] = []
    @Option(name: .long, help: ArgumentHelp("Flavor mapping (repeatable).", valueName: "src=dst")) var mapFlavor: [String] = []
    @Option(name: .long, parsing: .unconditional, help: "Seconds to wait for each snapshot, volume, attachment and server.") var timeout: Double = 1800

    func validate() throws {
        guard (1...32).contains(parallel) else { throw ValidationError("--parallel must be 1 to 32 (got \(parallel))") }
        guard (1...16).contains(copyParallel) else { throw ValidationError("--copy-parallel must be 1 to 16 (got \(copyParallel))") }
        guard !(sync && cutover) else { throw ValidationError("--sync and --cutover are two steps: run --sync (as often as you like), then --cutover") }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds (got \(timeout))") }
    }

    /// The mapping flags and the vars file's `os_migrate_*_map` dicts, as `--map-name` entries.
    func add(to names: inout NameMapping, vars: MigrationVars?) throws {
        let groups: [(flag: String, values: [String], kind: String, varsKey: String)] = [
            ("--map-network", mapNetwork, "networks", "os_migrate_network_map"),
            ("--map-volume-type", mapVolumeType, "volume-types", "os_migrate_volume_type_map"),
            ("--map-az", mapAz, "availability-zones", "os_migrate_availability_zone_map"),
            ("--map-flavor", mapFlavor, "flavors", "os_migrate_flavor_map"),
        ]
        for g in groups {
            if let map = vars?[g.varsKey] {
                guard let o = map.objectValue else { throw ConfigError("vars file \(vars!.path): \(g.varsKey) is not a mapping") }
                for (from, to) in o.sorted(by: { $0.key < $1.key }) {
                    guard let t = to.stringValue else { throw ConfigError("vars file \(vars!.path): \(g.varsKey).\(from) is not a string") }
                    try names.add(spec: "\(g.kind):\(from)=\(t)")
                }
            }
            for v in g.values {
                guard let eq = v.firstIndex(of: "="), eq != v.startIndex, v.index(after: eq) != v.endIndex else {
                    throw ConfigError("\(g.flag) \(v): expected SRC=DST")
                }
                try names.add(spec: "\(g.kind):\(v)")
            }
        }
    }
}

/// `import workloads`: the per-VM state machine, through the conversion hosts.
enum WorkloadImport {
    static func run(file: KindFile, config: RunConfiguration, transport: HTTPTransport, options: WorkloadImportOptions,
                    names: NameMapping, filters: NameFilters, dryRun: Bool, planned: PlannedNames = PlannedNames(),
                    sink: ConsoleSink) async throws -> (Recap, [RequestCounter])
    {
        let problems = Validator.check([file])
        if !problems.isEmpty { throw ValidationFailure(problems) }
        let src = try CloudSession(profile: try config.requireSource(), transport: transport)
        let dst = try CloudSession(profile: try config.requireDestination(), transport: transport)
        let srcSettings = try ConversionHostSettings.load(side: .src, vars: config.vars, dataDir: config.dataDir)
        let dstSettings = try ConversionHostSettings.load(side: .dst, vars: config.vars, dataDir: config.dataDir)

        var skipped: [ItemResult] = []
        var records: [ResourceRecord] = []
        for r in file.file.records {
            if filters.admits(r, kind: WorkloadKind.self) { records.append(r) } else {
                skipped.append(ItemResult(kind: WorkloadKind.name, name: WorkloadKind.label(r), status: .skipped,
                                          message: "filtered out by \(WorkloadKind.filterVariable)"))
            }
        }
        for s in skipped { sink.item(s) }
        // Conversion hosts only when some disk is copied (data_copy false with every volume given
        // by uuid needs none); a record the plan refuses fails later with its own message.
        let needsHosts = records.contains { r in
            guard let plan = try? WorkloadPlan.make(r) else { return false }
            return plan.volumes.contains { $0.existingDestination == nil }
        }
        var hosts: ConversionHostPair?
        if needsHosts {
            SSHMultiplexing.shared.enable()
            hosts = try await ConversionHosts.pair(src: srcSettings, srcSession: src, dst: dstSettings, dstSession: dst)
        }
        var opts = WorkloadMigrationOptions()
        opts.dryRun = dryRun
        opts.parallel = max(1, options.parallel)
        opts.copyParallel = max(1, options.copyParallel)
        opts.stopSource = options.stopSource
        opts.sync = options.sync
        opts.cutover = options.cutover
        opts.timeout = options.timeout
        opts.names = names
        opts.conversionHostNames = [srcSettings.hostName]
        opts.planned = planned
        let ledger = try Ledger(dataDir: config.dataDir)
        let migrator = WorkloadMigrator(src: src, dst: dst, hosts: hosts, ledger: ledger, options: opts, sink: sink)
        let results = try await migrator.run(records)
        return (Recap(skipped + results), [src.requests, dst.requests])
    }
}
