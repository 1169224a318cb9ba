import Foundation
import OpenStack

/// A Neutron resource declared by its collection and field map. Export, lookup by name in the
/// destination project, comparison, create and update come for free; hooks cover the rest.
public protocol NeutronKind: ResourceKind {
    associatedtype Element: Decodable & Sendable
    /// Where the resources live and how their bodies are wrapped (`Neutron.networks`): the one
    /// declaration of the collection's service, path, singular and plural.
    static var collection: APICollection<Element> { get }
    static var fieldMap: FieldMap { get }
    /// Params read beyond the field map (compound ones), for `knownParams`.
    static var extraParams: [String] { get }

    /// Source objects to export (default: all of the project's).
    static func include(_ object: JSONObject) -> Bool
    /// Adjust exported params and info beyond the field map.
    static func adjustExport(_ params: inout JSONObject, _ info: inout JSONObject, _ object: JSONObject,
                             refs: ReferenceBuilder) async throws
    /// Extra params that differ, beyond the field map (compound params), and notes to report.
    static func extraDifferences(_ record: ResourceRecord, _ current: JSONObject, _ ctx: ImportContext) -> (fields: [String], notes: [String])
    static func prepareCreate(_ body: inout JSONObject, _ record: ResourceRecord, _ ctx: ImportContext) async throws
    static func prepareUpdate(_ body: inout JSONObject, _ fields: [String], _ record: ResourceRecord, _ ctx: ImportContext) async throws
    static func afterCreate(id: String, _ record: ResourceRecord, _ ctx: ImportContext) async throws
    /// What a create leaves out beyond the field map's admin-only params (compound params).
    static func createNotes(_ record: ResourceRecord, isAdmin: Bool) -> [String]
}

extension NeutronKind {
    public static var service: String { collection.service }
    public static var path: String { collection.path }
    public static var singular: String { collection.singular }
    public static var plural: String { collection.plural }

    public static var requiredParams: [String] { ["name"] }
    /// The field map's params, the required ones, those with value rules, and `extraParams`.
    public static var knownParams: Set<String>? {
        Set(fieldMap.fields.map(\.param)).union(requiredParams).union(valueRules.keys).union(extraParams)
    }
    public static var extraParams: [String] { [] }
    public static func include(_ object: JSONObject) -> Bool { true }
    public static func adjustExport(_ params: inout JSONObject, _ info: inout JSONObject, _ object: JSONObject,
                                    refs: ReferenceBuilder) async throws {}
    public static func extraDifferences(_ record: ResourceRecord, _ current: JSONObject, _ ctx: ImportContext)
        -> (fields: [String], notes: [String]) { ([], []) }
    public static func prepareCreate(_ body: inout JSONObject, _ record: ResourceRecord, _ ctx: ImportContext) async throws {}
    public static func prepareUpdate(_ body: inout JSONObject, _ fields: [String], _ record: ResourceRecord,
                                     _ ctx: ImportContext) async throws {}
    public static func afterCreate(id: String, _ record: ResourceRecord, _ ctx: ImportContext) async throws {}
    public static func createNotes(_ record: ResourceRecord, isAdmin: Bool) -> [String] { [] }

    public static func references(_ record: ResourceRecord) -> [FieldReference] { fieldMap.references(record) }

    // MARK: export

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let objects = try await ctx.session.list(
            JSONValue.self, APIRequest(service, .GET, path, query: [QueryItem("project_id", ctx.projectID)]), key: plural
        ).collect().compactMap(\.objectValue).filter(include)
        return try await boundedMap(objects, limit: 8) { try await record(from: $0, refs: ctx.refs) }
    }

    public static func record(from object: JSONObject, refs: ReferenceBuilder) async throws -> ResourceRecord {
        var params = try await fieldMap.params(from: object, refs: refs)
        var info = fieldMap.infoValues(from: object)
        try await adjustExport(&params, &info, object, refs: refs)
        return ResourceRecord(type: typeName, params: params, info: info)
    }

    // MARK: import

    /// The destination objects of the project with exactly this name, from one listing of the
    /// project's collection per run (`fresh`: ask Neutron now).
    public static func existing(named name: String, _ ctx: ImportContext, fresh: Bool = false) async throws -> [JSONObject] {
        guard fresh else { return try await all(ctx).filter { $0["name"]?.stringValue == name } }
        return try await ctx.session.list(
            JSONValue.self,
            APIRequest(service, .GET, path, query: [QueryItem("name", name), QueryItem("project_id", ctx.projectID)]),
            key: plural
        ).collect().compactMap(\.objectValue).filter { $0["name"]?.stringValue == name }
    }

    /// The project's collection, listed once per run.
    public static func all(_ ctx: ImportContext) async throws -> [JSONObject] {
        try await KindSupport.cachedList(ctx, "project:" + path,
                                         APIRequest(service, .GET, path, query: [QueryItem("project_id", ctx.projectID)]), plural)
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name else { return .fail(reason: "params.name is missing") }
        let found = try await existing(named: name, ctx)
        if found.count > 1 {
            return .fail(reason: "\(found.count) \(singular.replacingOccurrences(of: "_", with: " "))s named '\(name)' in the destination project")
        }
        if let object = found.first { return try await compare(record, object, ctx) }
        let notes = [fieldMap.adminOnlyNote(record, isAdmin: ctx.isAdmin)].compactMap { $0 } + createNotes(record, isAdmin: ctx.isAdmin)
        return .create(detail: notes.joined(separator: "; ")) { try await create(record, ctx) }
    }

    public static func compare(_ record: ResourceRecord, _ object: JSONObject, _ ctx: ImportContext) async throws -> ImportStep {
        guard let id = object["id"]?.stringValue else { return .fail(reason: "destination \(singular) has no id") }
        let current = try await Self.record(from: object, refs: ctx.current).params
        return fieldMap.step(id: id, desired: record, current: current, extra: extraDifferences(record, current, ctx),
                             isAdmin: ctx.isAdmin) { diffs in
            var body = try await fieldMap.updateBody(diffs, record, ctx)
            try await prepareUpdate(&body, diffs, record, ctx)
            if !body.isEmpty {
                _ = try await ctx.session.send(APIRequest(service, .PUT, collection.itemPath(id),
                                                          body: [singular: .object(body)]))
            }
            if diffs.contains("tags"), let tags = fieldMap.tags(record) { try await ctx.session.setTags(collection, id, tags) }
        }
    }

    public static func create(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> String {
        var body = try await fieldMap.createBody(record, ctx)
        try await prepareCreate(&body, record, ctx)
        let created = try await ctx.session.json(APIRequest(service, .POST, path, body: [singular: .object(body)]),
                                                 key: singular)
        guard let id = created["id"]?.stringValue else {
            throw OpenStackError(kind: .decoding, service: service, message: "created \(singular) has no id")
        }
        try await afterCreate(id: id, record, ctx)
        if let tags = fieldMap.tags(record), !tags.isEmpty { try await ctx.session.setTags(collection, id, tags) }
        return id
    }
}
