import Foundation
import Logging
import OpenStack
import Resources

/// Import: validate everything, check every reference, then create or update kind by kind in
/// dependency order, resources of one kind concurrently.
public enum Importer {
    public struct Options: Sendable {
        public var resource: ImportOptions
        public var concurrency: Int
        /// Renames applied to the records (and references to them) before anything else.
        public var names = NameMapping()
        public init(resource: ImportOptions = ImportOptions(), concurrency: Int = 8) {
            self.resource = resource
            self.concurrency = concurrency
        }
    }

    public static func run(files: [KindFile], session: CloudSession, options: Options, filters: NameFilters,
                           sink: any EventSink) async throws -> Recap
    {
        let problems = Validator.check(files)
        if !problems.isEmpty { throw ValidationFailure(problems) }
        for w in Validator.warnings(files) { sink.note("warning: " + w) }

        let ordered = files.sorted { orderIndex($0.kind) < orderIndex($1.kind) }
        let token = try await session.authenticate()
        for kf in ordered where kf.kind.adminOnly && !token.isAdmin {
            throw ConfigError("\(kf.kind.name) needs admin credentials; cloud '\(session.profile.name)' user \(token.userName) is not admin")
        }
        let resolver = try await ReferenceResolver(session: session)
        let current = try await ReferenceBuilder(session: session)
        var ctx = ImportContext(session: session, resolver: resolver, current: current, isAdmin: token.isAdmin,
                                options: options.resource, kinds: Set(ordered.map { $0.kind.name }))
        ctx.progress = { sink.progress($0) }
        let log = ResultLog(sink: sink)

        // Select, then prove every reference resolves before the first write.
        var selected: [(KindFile, [(Int, ResourceRecord)])] = []
        for kf in ordered {
            var keep: [(Int, ResourceRecord)] = []
            for (i, r) in kf.file.records.enumerated() {
                if filters.admits(r, kind: kf.kind) {
                    keep.append((i, options.names.apply(r, kind: kf.kind)))
                } else {
                    log.add(ItemResult(kind: kf.kind.name, name: kf.kind.label(r), status: .skipped,
                                       message: "filtered out by \(kf.kind.filterVariable)"))
                }
            }
            selected.append((kf, keep))
        }
        let unresolved = try await ReferenceCheck.unresolved(selected.map { ($0.0, $0.1) }, resolver: resolver,
                                                            creatable: selected.map { ($0.0.kind, $0.1.map(\.1)) })
        if !unresolved.isEmpty { throw ValidationFailure(unresolved) }

        for (kf, records) in selected {
            sink.note("\(kf.kind.name) (\(kf.file.fileName)): \(records.count) to import")
            await importKind(kf.kind, kf.kind.importOrder(records.map(\.1)), ctx: ctx, concurrency: options.concurrency, log: log)
        }
        for (kf, records) in selected {
            for r in await kf.kind.finish(records.map(\.1), ctx) { log.add(r) }
        }
        return Recap(log.all)
    }

    static func orderIndex(_ kind: any ResourceKind.Type) -> Int {
        ResourceRegistry.kinds.firstIndex { $0.name == kind.name } ?? Int.max
    }

    static func importKind(_ kind: any ResourceKind.Type, _ records: [ResourceRecord], ctx: ImportContext, concurrency: Int,
                           log: ResultLog) async
    {
        // Lanes: records sharing a serial key go one after another; lanes run side by side.
        var lanes: [[ResourceRecord]] = []
        var laneOf: [String: Int] = [:]
        for r in records {
            if let key = kind.serialKey(r) {
                if let i = laneOf[key] { lanes[i].append(r) } else {
                    laneOf[key] = lanes.count
                    lanes.append([r])
                }
            } else {
                lanes.append([r])
            }
        }
        _ = try? await boundedMap(lanes, limit: concurrency) { lane in
            for r in lane {
                let result = await importOne(kind, r, ctx: ctx)
                if let id = result.id, result.status == .ok || result.status == .changed,
                   !id.hasPrefix(ReferenceResolver.placeholderPrefix)
                {
                    await ctx.imported.add(kind.name, id)
                }
                log.add(result)
            }
        }
    }

    static func importOne(_ kind: any ResourceKind.Type, _ record: ResourceRecord, ctx: ImportContext) async -> ItemResult {
        let label = kind.label(record)
        let dry = ctx.options.dryRun
        do {
            switch try await kind.plan(record, ctx) {
            case .ok(let id, let note):
                return ItemResult(kind: kind.name, name: label, status: .ok, message: note ?? "", id: id)
            case .skip(let reason):
                return ItemResult(kind: kind.name, name: label, status: .skipped, message: reason)
            case .fail(let reason):
                return ItemResult(kind: kind.name, name: label, status: .failed, message: reason)
            case .create(let detail, let perform):
                let id = dry ? ReferenceResolver.placeholderPrefix + label : try await perform()
                if !dry { await ctx.created.add(kind.name, id) }
                if let t = kind.refType, let name = record.name {
                    // Owned by the project for project-scoped types; in its domain for the others.
                    await ctx.resolver.register(t, id: id, name: name, owner: nil)
                }
                let msg = (dry ? "would create" : "created") + (detail.isEmpty ? "" : " (\(detail))")
                return ItemResult(kind: kind.name, name: label, status: .changed, message: msg, action: "created",
                                  id: dry ? nil : id)
            case .update(let id, let fields, let changes, let note, let perform):
                if !dry { try await perform() }
                // The message names the fields; the values travel in `changes` (text output and
                // the JSON `diff` show them).
                var msg = (dry ? "would update: " : "updated: ") + fields.joined(separator: ", ")
                if let note { msg += "; " + note }
                return ItemResult(kind: kind.name, name: label, status: .changed, message: msg,
                                  action: "updated", fields: fields, changes: changes, id: id)
            }
        } catch {
            return ItemResult(kind: kind.name, name: label, status: .failed, message: "\(error)")
        }
    }
}

/// Checks that every reference in the files resolves: to something the files create, or to
/// something that exists in the destination.
public enum ReferenceCheck {
    public static func unresolved(_ files: [(KindFile, [(Int, ResourceRecord)])], resolver: ReferenceResolver,
                                  creatable: [(any ResourceKind.Type, [ResourceRecord])]) async throws -> [String]
    {
        let planned = PlannedNames(creatable)
        var checks: [(String, FieldReference)] = []
        for (kf, records) in files {
            for (i, r) in records {
                for ref in kf.kind.references(r) {
                    checks.append(("\(kf.file.path): \(kf.kind.describe(r, at: i)): \(ref.field)", ref))
                }
            }
        }
        // Each distinct reference is looked up once.
        var verdicts: [String: String?] = [:]
        var problems: [String] = []
        for (place, f) in checks {
            let key = "\(f.type.rawValue)\u{0}\(f.ref.name)\u{0}\(f.ref.projectName ?? "")\u{0}\(f.ref.domainName ?? "")"
            if planned.contains(f.type, f.ref) { continue }
            let verdict: String?
            if let v = verdicts[key] { verdict = v } else {
                do {
                    _ = try await resolver.resolve(f.type, f.ref)
                    verdict = nil
                } catch let e as ReferenceError where e.description.hasSuffix("not found in the destination") {
                    verdict = "\(f.type.rawValue) \(f.ref) is neither in the files nor in the destination"
                } catch {
                    verdict = "\(error)"
                }
                verdicts[key] = verdict
            }
            if let verdict { problems.append("\(place): \(verdict)") }
        }
        return problems
    }
}
