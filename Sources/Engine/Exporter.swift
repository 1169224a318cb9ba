import Foundation
import Logging
import OpenStack
import Resources

/// What one kind's export did to its file.
public struct ExportSummary: Sendable, Equatable {
    public var kind: String
    public var file: String
    public var added = 0
    public var updated = 0
    public var unchanged = 0
    public var filtered = 0
    public var total = 0
    public var written = false
}

/// Export: list the source project's resources and merge them into the data files.
public enum Exporter {
    public static func run(kinds: [any ResourceKind.Type], session: CloudSession, dataDir: String, filters: NameFilters,
                           sink: any EventSink, options: ExportOptions = ExportOptions()) async throws -> [ExportSummary]
    {
        let token = try await session.authenticate()
        let refs = try await ReferenceBuilder(session: session)
        var context = ExportContext(session: session, refs: refs, isAdmin: token.isAdmin)
        context.options = options
        context.progress = { sink.progress($0) }
        let ctx = context
        // Read every file first: a broken file stops the export before anything is written.
        var files: [String: ResourceFile] = [:]
        for kind in kinds {
            let file = try ResourceFile.loadOrEmpty((dataDir as NSString).appendingPathComponent(kind.fileName))
            let problems = Validator.check([KindFile(kind: kind, file: file)]).filter { $0.contains("unknown type") || $0.contains("does not belong") }
            if !problems.isEmpty { throw ValidationFailure(problems) }
            files[kind.name] = file
        }
        let runnable = kinds.filter { kind in
            if kind.adminOnly && !token.isAdmin {
                sink.note("\(kind.name): skipped, needs admin credentials")
                return false
            }
            return true
        }
        let log = ResultLog(sink: sink)
        let summaries = try await boundedMap(runnable.map { ($0, files[$0.name]!) }, limit: 8) { kind, file in
            try await exportKind(kind, file: file, ctx: ctx, filters: filters, log: log)
        }
        return summaries
    }

    static func exportKind(_ kind: any ResourceKind.Type, file: ResourceFile, ctx: ExportContext, filters: NameFilters,
                           log: ResultLog) async throws -> ExportSummary
    {
        var summary = ExportSummary(kind: kind.name, file: file.path)
        let exported = try await kind.export(ctx).sorted { ($0.id ?? "") < ($1.id ?? "") }
        var merged = file
        var admitted: [ResourceRecord] = []
        for record in exported {
            let label = kind.label(record)
            if ctx.options.excludes(record, kind: kind) {
                summary.filtered += 1
                log.add(ItemResult(kind: kind.name, name: label, status: .skipped, message: "the conversion host's own: not exported", id: record.id))
                continue
            }
            guard filters.admits(record, kind: kind, export: true) else {
                summary.filtered += 1
                log.add(ItemResult(kind: kind.name, name: label, status: .skipped, message: "filtered out by \(kind.filterVariable)",
                                   id: record.id))
                continue
            }
            admitted.append(record)
            if let i = merged.records.firstIndex(where: { kind.exportIdentity($0) != nil && kind.exportIdentity($0) == kind.exportIdentity(record) }) {
                if merged.records[i] == record {
                    summary.unchanged += 1
                    log.add(ItemResult(kind: kind.name, name: label, status: .ok, id: record.id))
                } else {
                    merged.records[i] = record
                    summary.updated += 1
                    log.add(ItemResult(kind: kind.name, name: label, status: .changed, message: "updated in \(kind.fileName)",
                                       action: "updated", id: record.id))
                }
            } else {
                merged.records.append(record)
                summary.added += 1
                log.add(ItemResult(kind: kind.name, name: label, status: .changed, message: "added to \(kind.fileName)",
                                   action: "added", id: record.id))
            }
        }
        summary.total = merged.records.count
        if summary.added + summary.updated > 0 || !FileManager.default.fileExists(atPath: file.path) {
            try merged.write()
            summary.written = true
        }
        for r in await kind.afterExport(admitted, ctx) { log.add(r) }
        return summary
    }
}

