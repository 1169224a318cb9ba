import Foundation
import Logging
import OpenStack

/// Cinder volume types (`volume_types.yml`, `openstack.block_storage.VolumeType`; admin).
///
/// Types are cloud-wide and found by name. The description, visibility (`is_public`), extra specs
/// (set and unset) and, for a private type, the access list (`access_project_refs`, projects by
/// reference) are reconciled to the file. Cinder's own `__DEFAULT__` type is in every cloud: it is
/// not exported, and a record of that name is matched (and reconciled) but never created.
/// `--map-name volume-types:SRC=DST` renames a type and the `volume_type` of the volumes that use it.
public enum VolumeTypeKind: ResourceKind {
    public static let name = "volume-types"
    public static let fileName = "volume_types.yml"
    public static let typeName = "openstack.block_storage.VolumeType"
    public static let refType: RefType? = .volumeType
    public static let dependencies = ["projects"]
    public static let requiredParams = ["name"]
    public static let filterVariable = "os_migrate_volume_types_filter"
    public static let adminOnly = true

    /// The type Cinder makes itself (since Train), in every cloud.
    public static let defaultTypeName = "__DEFAULT__"

    /// The params compared as they are; extra specs and the access list are compared apart.
    public static let fieldMap = FieldMap([
        Field("description"),
        Field("is_public", "os-volume-type-access:is_public"),
        Field("name"),
    ], info: [InfoField("id"), InfoField("qos_specs_id")])

    /// Cinder's limits: 255 characters for names, descriptions, and extra spec keys and values.
    public static let valueRules: [String: ValueRule] = [
        "access_project_refs": .list(.any, max: 10_000),
    ]

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        (record.params["access_project_refs"]?.arrayValue ?? []).enumerated().compactMap { i, v in
            Reference(v).map { FieldReference(field: "params.access_project_refs[\(i)]", type: .project, ref: $0) }
        }
    }

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        if let v = record.params["extra_specs"], !v.isNull {
            if let o = v.objectValue {
                for (k, s) in o.sorted(by: { $0.key < $1.key }) {
                    if k.count > 255 { out.append("params.extra_specs has a key of \(k.count) characters (at most 255)") }
                    if let text = s.stringValue {
                        if text.count > 255 { out.append("params.extra_specs.\(k) has \(text.count) characters (at most 255)") }
                    } else {
                        out.append("params.extra_specs.\(k) is not a string")
                    }
                }
            } else {
                out.append("params.extra_specs is not a mapping")
            }
        }
        if let a = record.params["access_project_refs"]?.arrayValue {
            for (i, r) in a.enumerated() where Reference(r) == nil {
                out.append("params.access_project_refs[\(i)] is not a reference (a mapping with name, project_name, domain_name)")
            }
            if !a.isEmpty, record.params["is_public"]?.boolValue == true {
                out.append("params.access_project_refs is set but the volume type is public")
            }
        }
        return out
    }

    // MARK: export

    /// Every type, public and private (`is_public=None`: admins only see public ones without it).
    static let listing = APIRequest(Cinder.types.service, .GET, Cinder.types.path, query: [QueryItem("is_public", "None")])

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let types = try await ctx.session.list(JSONValue.self, listing, key: Cinder.types.plural).collect().compactMap(\.objectValue)
            .filter { $0["name"]?.stringValue != defaultTypeName }
        return try await boundedMap(types, limit: 8) { try await record(from: $0, session: ctx.session, refs: ctx.refs) }
    }

    /// The record of a type; `access` (project ids) is read for private types.
    static func record(from t: JSONObject, session: CloudSession, refs: ReferenceBuilder,
                       access: [String]? = nil) async throws -> ResourceRecord
    {
        let id = t["id"]?.stringValue ?? ""
        let isPublic = t["os-volume-type-access:is_public"]?.boolValue ?? t["is_public"]?.boolValue ?? true
        var specs = t["extra_specs"]
        if specs == nil || specs?.isNull == true {
            specs = try await session.json(APIRequest(Cinder.types.service, .GET, Cinder.types.itemPath(id) + "/extra_specs"),
                                           key: "extra_specs")
        }
        var accessRefs: [JSONValue] = []
        if !isPublic {
            // Cinder keeps access entries of deleted projects: those are left out.
            let projects: [String]
            if let access { projects = access } else { projects = try await accessList(id, session) }
            for project in projects {
                let what = "volume type \(t["name"]?.stringValue ?? id): access of project \(project)"
                if let r = try await KindSupport.unlessGone(what, Logger(label: "os-migrate.export"), { try await refs.ref(.project, id: project) }) {
                    accessRefs.append(r)
                }
            }
        }
        let params: JSONObject = [
            "access_project_refs": FieldMap.sortedList(.array(accessRefs), by: ["name", "domain_name"]),
            "description": t["description"] ?? .null,
            "extra_specs": specs ?? [:],
            "is_public": .bool(isPublic),
            "name": t["name"] ?? .null,
        ]
        return ResourceRecord(type: typeName, params: params, info: fieldMap.infoValues(from: t))
    }

    /// The projects a private type is shared with.
    static func accessList(_ id: String, _ session: CloudSession) async throws -> [String] {
        try await session.json(APIRequest(Cinder.types.service, .GET, Cinder.types.itemPath(id) + "/os-volume-type-access"),
                               key: "volume_type_access").arrayValue?.compactMap { $0["project_id"]?.stringValue }.sorted() ?? []
    }

    // MARK: import

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name else { return .fail(reason: "params.name is missing") }
        let wantedAccess = try await ProjectAccess.projects(record, ctx)
        let found = try await KindSupport.cachedList(ctx, "volume-types:all", listing, Cinder.types.plural)
            .filter { $0["name"]?.stringValue == name }
        guard let object = found.first, let id = object["id"]?.stringValue else {
            if name == defaultTypeName { return .skip(reason: "\(defaultTypeName) is Cinder's own type: it is never created") }
            return .create(detail: "") { try await create(record, access: wantedAccess, ctx) }
        }
        let isPublic = object["os-volume-type-access:is_public"]?.boolValue ?? object["is_public"]?.boolValue ?? true
        let haveAccess = isPublic ? [] : try await accessList(id, ctx.session)
        let current = try await Self.record(from: object, session: ctx.session, refs: ctx.current, access: haveAccess).params
        let wantedSpecs = ProjectAccess.stringMap(record.params["extra_specs"])
        let currentSpecs = ProjectAccess.stringMap(current["extra_specs"])
        var extra: [String] = []
        if record.params["extra_specs"] != nil, wantedSpecs != currentSpecs { extra.append("extra_specs") }
        if let wantedAccess, record.params["is_public"]?.boolValue == false, Set(wantedAccess) != Set(haveAccess) {
            extra.append("access_project_refs")
        }
        return fieldMap.step(id: id, desired: comparable(record), current: comparable(ResourceRecord(type: typeName, params: current)).params,
                             extra: (extra, [])) { diffs in
            var body: JSONObject = [:]
            // Cinder refuses a null description: "" clears it.
            if diffs.contains("description") { body["description"] = record.params["description"].flatMap { $0.isNull ? nil : $0 } ?? "" }
            if diffs.contains("is_public") { body["is_public"] = record.params["is_public"] ?? .null }
            if !body.isEmpty {
                _ = try await ctx.session.send(APIRequest(Cinder.types.service, .PUT, Cinder.types.itemPath(id),
                                                          body: [Cinder.types.singular: .object(body)], idempotent: true))
            }
            if diffs.contains("extra_specs") { try await reconcileSpecs(id, wanted: wantedSpecs, current: currentSpecs, ctx.session) }
            if let wantedAccess, record.params["is_public"]?.boolValue == false, diffs.contains("access_project_refs") || diffs.contains("is_public") {
                try await reconcileAccess(id, wanted: wantedAccess, current: haveAccess, ctx.session)
            }
        }
    }

    /// A description null and "" say the same (Cinder cannot store null once one was set).
    static func comparable(_ record: ResourceRecord) -> ResourceRecord {
        var r = record
        if r.params["description"]?.stringValue == "" { r.params["description"] = .null }
        return r
    }

    static func create(_ record: ResourceRecord, access: [String]?, _ ctx: ImportContext) async throws -> String {
        let p = record.params
        var body: JSONObject = ["name": p["name"] ?? .null]
        if let d = p["description"], !d.isNull { body["description"] = d }
        if let v = p["is_public"], !v.isNull { body["os-volume-type-access:is_public"] = v }
        let specs = ProjectAccess.stringMap(p["extra_specs"])
        if !specs.isEmpty { body["extra_specs"] = .object(specs.mapValues(JSONValue.string)) }
        let created = try await ctx.session.json(APIRequest(Cinder.types.service, .POST, Cinder.types.path,
                                                            body: [Cinder.types.singular: .object(body)]), key: Cinder.types.singular)
        guard let id = created["id"]?.stringValue else {
            throw OpenStackError(kind: .decoding, service: Cinder.types.service, message: "created volume type has no id")
        }
        if p["is_public"]?.boolValue == false, let access {
            try await reconcileAccess(id, wanted: access, current: [], ctx.session)
        }
        return id
    }

    static func reconcileSpecs(_ id: String, wanted: [String: String], current: [String: String], _ session: CloudSession) async throws {
        let set = wanted.filter { current[$0.key] != $0.value }
        if !set.isEmpty {
            _ = try await session.send(APIRequest(Cinder.types.service, .POST, Cinder.types.itemPath(id) + "/extra_specs",
                                                  body: ["extra_specs": .object(set.mapValues(JSONValue.string))], idempotent: true))
        }
        for key in current.keys.sorted() where wanted[key] == nil {
            _ = try await session.send(APIRequest(Cinder.types.service, .DELETE, Cinder.types.itemPath(id) + "/extra_specs/" + APIPath.escape(key),
                                                  acceptedStatuses: [404]))
        }
    }

    static func reconcileAccess(_ id: String, wanted: [String], current: [String], _ session: CloudSession) async throws {
        func action(_ name: String, _ project: String, ignoring status: Int) async throws {
            _ = try await session.send(APIRequest(Cinder.types.service, .POST, Cinder.types.itemPath(id) + "/action",
                                                  body: [name: ["project": .string(project)]], idempotent: true, acceptedStatuses: [status]))
        }
        // Granted already (a retried call): 409; not granted any more: 404.
        for project in wanted where !current.contains(project) { try await action("addProjectAccess", project, ignoring: 409) }
        for project in current where !wanted.contains(project) { try await action("removeProjectAccess", project, ignoring: 404) }
    }
}
