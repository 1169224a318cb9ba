import ArgumentParser
import DataPlane
import Engine
import Foundation
import OpenStack
import Resources
import Workloads

/// Kind names on the command line: `networks`, `router-interfaces` (or `router_interfaces`), `all`.
enum KindSelection {
    static var validNames: String { (ResourceRegistry.kinds.map { $0.name } + ["all"]).joined(separator: ", ") }

    static func resolve(_ names: [String], dataDir: String? = nil) throws -> [any ResourceKind.Type] {
        if names.isEmpty || names.contains("all") {
            guard let dataDir else { return ResourceRegistry.kinds }
            return ResourceRegistry.kinds.filter {
                DataDirectory.hasEntry((dataDir as NSString).appendingPathComponent($0.fileName))
            }
        }
        var out: [any ResourceKind.Type] = []
        for n in names {
            guard let k = ResourceRegistry.kind(named: n) else {
                throw ValidationError("unknown kind '\(n)' (known: \(validNames))")
            }
            if !out.contains(where: { $0.name == k.name }) { out.append(k) }
        }
        return out.sorted { a, b in
            (ResourceRegistry.kinds.firstIndex { $0.name == a.name } ?? 0) < (ResourceRegistry.kinds.firstIndex { $0.name == b.name } ?? 0)
        }
    }

    static func load(_ kinds: [any ResourceKind.Type], dataDir: String) throws -> [KindFile] {
        try kinds.map { kind in
            let path = (dataDir as NSString).appendingPathComponent(kind.fileName)
            guard DataDirectory.hasEntry(path) else {
                throw DataFileError(path, "not found (run `os-migrate export \(kind.name)` first)")
            }
            return KindFile(kind: kind, file: try ResourceFile.load(path))
        }
    }
}

struct RenameOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Rename at import: KIND:SOURCE=DESTINATION (KIND: projects, users, flavors, images, networks..., domains, volume-types, availability-zones); references follow (repeatable).", valueName: "kind:src=dst"))
    var mapName: [String] = []
    @Option(name: .long, help: ArgumentHelp("Prefix the names of the data directory's projects, users and flavors at import, or KIND=PREFIX for one kind; references follow (repeatable).", valueName: "prefix"))
    var renamePrefix: [String] = []

    /// The renames these options ask for (checked: conflicts, over-long or unprintable names).
    func mapping(dataDir: String) throws -> NameMapping {
        var names = NameMapping()
        for m in mapName { try names.add(spec: m) }
        for p in renamePrefix { try names.add(prefixSpec: p, dataDir: dataDir) }
        return names
    }
}

struct FilterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Only resources whose name matches: KIND=NAME or KIND=/REGEX/ (repeatable; for that kind, replaces the vars file's os_migrate_*_filter).", valueName: "kind=name"))
    var filter: [String] = []
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export resources of the source project into the data directory.",
        discussion: "Kinds: \(KindSelection.validNames). Existing files are merged: new resources are added, changed ones replaced, others kept.")

    @Argument(help: "Kinds to export.") var kinds: [String] = []
    @Option(name: .long, help: ArgumentHelp("Also download image data into this directory (<id>-<name> files), for moves where the migrator cannot reach both clouds at once.", valueName: "dir"))
    var imageBlobsDir: String?
    @OptionGroup var filters: FilterOptions
    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await CommandRunner.run(common) { transport, config in
            let selected = try KindSelection.resolve(kinds.isEmpty ? ["all"] : kinds)
            let nameFilters = try NameFilters(cli: filters.filter, vars: config.vars)
            let session = try CloudSession(profile: try config.requireSource(), transport: transport)
            try await session.checkRegion()
            let sink = ConsoleSink(json: common.json, showItems: common.verbose > 0)
            let start = ContinuousClock.now
            var exportOptions = ExportOptions(imageBlobsDir: imageBlobsDir)
            // The source conversion host and what it was deployed with are never exported.
            exportOptions.excludedNames = try ConversionHostSettings.load(side: .src, vars: config.vars, dataDir: config.dataDir).ownNames
            let summaries = try await Exporter.run(kinds: selected, session: session, dataDir: config.dataDir,
                                                   filters: nameFilters, sink: sink,
                                                   options: exportOptions)
            for s in summaries { sink.export(s) }
            if !common.json {
                let d = ContinuousClock.now - start
                sink.write(String(format: "exported %d resources in %.2f s (%d API calls)", summaries.reduce(0) { $0 + $1.added + $1.updated + $1.unchanged },
                                  d.seconds, session.requests.total))
            }
            return 0
        }
    }
}

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Create or update the data directory's resources in the destination project.",
        discussion: "Kinds: \(KindSelection.validNames). Files are validated and every reference resolved before the first change.")

    @Argument(help: "Kinds to import (default: every file in the data directory).") var kinds: [String] = []
    @Flag(name: .long, help: "Show what would be created or updated, change nothing.") var dryRun = false
    @Flag(name: .long, help: "Keep destination security group rules that the rules file does not list (by default they are deleted from the groups the files cover).")
    var keepUnlistedRules = false
    /// Deleting unlisted rules is the default now; the old flag is still accepted and does nothing.
    @Flag(name: .long, help: ArgumentHelp("Accepted for compatibility; deleting unlisted rules is the default.", visibility: .hidden))
    var pruneRules = false
    @Option(name: .long, parsing: .unconditional, help: "Resources of one kind imported at once.") var concurrency = 8
    @Flag(name: .long, help: "Create detached volumes empty, without their data (copying it needs conversion hosts).")
    var noData = false
    @Option(name: .long, help: ArgumentHelp("Read image data from this directory (written by `export --image-blobs-dir`) instead of streaming it from the source cloud.", valueName: "dir"))
    var imageBlobsDir: String?
    @Option(name: .long, help: ArgumentHelp("A YAML or JSON mapping of user name to initial password, for the users import creates (never printed).", valueName: "file"))
    var userPasswordFile: String?
    @OptionGroup var renames: RenameOptions
    @OptionGroup(title: "Workloads") var workloads: WorkloadImportOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...64).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 64 (got \(concurrency))") }
    }

    func run() async throws {
        try await CommandRunner.run(common) { transport, config in
            var selected = try KindSelection.resolve(kinds, dataDir: config.dataDir)
            // `all` is every data file, workloads.yml included: its VMs migrate after the resources
            // they need (a running VM is skipped unless --stop-source).
            guard !selected.isEmpty else { throw ConfigError(DataDirectory.noFilesMessage(config.dataDir, action: "import")) }
            let workloadKinds = selected.filter { !$0.importedByEngine }
            selected = selected.filter { $0.importedByEngine }
            let named = !(kinds.isEmpty || kinds.contains("all"))
            // Under `all`, an empty workloads.yml (a tenant without servers) asks for nothing.
            let workloadFiles = try KindSelection.load(workloadKinds, dataDir: config.dataDir).filter { named || !$0.file.records.isEmpty }
            let files = try KindSelection.load(selected, dataDir: config.dataDir)
            let nameFilters = try NameFilters(cli: filters.filter, vars: config.vars)
            var names = try renames.mapping(dataDir: config.dataDir)
            try workloads.add(to: &names, vars: config.vars)
            let collisions = Validator.collisions(files + workloadFiles, names: names)
            if !collisions.isEmpty { throw ValidationFailure(collisions) }
            var resource = ImportOptions(dryRun: dryRun, keepUnlistedRules: keepUnlistedRules)
            resource.noData = noData
            if let dir = imageBlobsDir {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                    throw ConfigError("--image-blobs-dir \(dir): not a directory")
                }
                resource.imageBlobsDir = dir
            }
            if let f = userPasswordFile { resource.userPasswords = try UserPasswords.load(f).adding(aliases: names.renames(.user)) }
            if imageBlobsDir == nil,
               files.contains(where: { $0.kind.name == ImageKind.name && $0.file.records.contains { $0.info["status"]?.stringValue == "active" } })
            {
                // Image data streams from the source cloud (an images file without data needs none).
                if let src = config.src {
                    resource.source = try CloudSession(profile: src, transport: transport)
                } else if !dryRun {
                    throw ConfigError("images: no source for the image data: pass --src-cloud NAME to stream it from the source cloud, or --image-blobs-dir DIR")
                }
            }
            let session = try CloudSession(profile: try config.requireDestination(), transport: transport)
            try await session.checkRegion()
            try await resource.source?.checkRegion()
            let sink = ConsoleSink(json: common.json)
            if files.contains(where: { $0.kind.name == DetachedVolumeKind.name && !$0.file.records.isEmpty }), !noData {
                // Volume data moves through the conversion hosts.
                let src: CloudSession
                let hosts: ConversionHostPair
                do {
                    src = try resource.source ?? CloudSession(profile: try config.requireSource(), transport: transport)
                    SSHMultiplexing.shared.enable()
                    hosts = try await ConversionHosts.pair(
                        src: try ConversionHostSettings.load(side: .src, vars: config.vars, dataDir: config.dataDir), srcSession: src,
                        dst: try ConversionHostSettings.load(side: .dst, vars: config.vars, dataDir: config.dataDir), dstSession: session)
                } catch {
                    throw ConfigError("detached-volumes: their data moves through the conversion hosts, which are not available (\(error)); "
                        + "or pass --no-data to create the volumes empty")
                }
                resource.volumeCopier = ConversionHostVolumeCopier(hosts: hosts, src: src, dst: session, ledgerDir: config.dataDir) { label, p in
                    sink.progress(ProgressEvent(kind: DetachedVolumeKind.name, name: label, phase: "copy", done: Int64(p.bytesDone),
                                                total: Int64(p.bytesTotal), rate: p.rate))
                }
            }
            var recap = Recap()
            var requests = [session.requests] + (resource.source.map { [$0.requests] } ?? [])
            if !files.isEmpty {
                var options = Importer.Options(resource: resource, concurrency: concurrency)
                options.names = names
                recap = try await Importer.run(files: files, session: session, options: options, filters: nameFilters, sink: sink)
            }
            for file in workloadFiles {
                let (r, counters) = try await WorkloadImport.run(file: file, config: config, transport: transport, options: workloads,
                                                               names: names, filters: nameFilters, dryRun: dryRun,
                                                               planned: PlannedNames(files.map { ($0.kind, $0.file.records) }), sink: sink)
                recap = recap + r
                requests += counters
            }
            sink.recap(recap, requests: requests)
            return recap.failed == 0 ? 0 : 1
        }
    }
}

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the data files; with --dst-cloud, also that every reference resolves.")

    @Argument(help: "Kinds to validate (default: every file in the data directory).") var kinds: [String] = []
    @OptionGroup var renames: RenameOptions
    @OptionGroup var filters: FilterOptions
    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await CommandRunner.run(common) { transport, config in
            let selected = try KindSelection.resolve(kinds, dataDir: config.dataDir)
            guard !selected.isEmpty else { throw ConfigError(DataDirectory.noFilesMessage(config.dataDir, action: "validate")) }
            let files = try KindSelection.load(selected, dataDir: config.dataDir)
            // What import would refuse before its first write, validate refuses too.
            _ = try NameFilters(cli: filters.filter, vars: config.vars)
            var problems = Validator.check(files)
            if problems.isEmpty { problems = Validator.collisions(files, names: try renames.mapping(dataDir: config.dataDir)) }
            if problems.isEmpty, let dst = config.dst {
                let session = try CloudSession(profile: dst, transport: transport)
                try await session.checkRegion()
                let resolver = try await ReferenceResolver(session: session)
                // Anything in any data file counts as "will exist".
                let all = try KindSelection.load(KindSelection.resolve([], dataDir: config.dataDir), dataDir: config.dataDir)
                problems = try await ReferenceCheck.unresolved(
                    files.map { ($0, Array($0.file.records.enumerated())) }, resolver: resolver,
                    creatable: all.map { ($0.kind, $0.file.records) })
            }
            if !problems.isEmpty { throw ValidationFailure(problems) }
            let warnings = Validator.warnings(files)
            for w in warnings { printWarning(w) }
            let count = files.reduce(0) { $0 + $1.file.records.count }
            let msg = "valid: \(files.count) file(s), \(count) resource(s)" + (config.dst == nil ? "" : ", every reference resolves")
            if common.json {
                printLine(JSONValue.object(["valid": true, "files": .int(files.count), "resources": .int(count),
                                            "warnings": .array(warnings.map { .string(TerminalText.capped($0)) })]).jsonString())
            } else {
                printLine(msg)
            }
            return 0
        }
    }
}
