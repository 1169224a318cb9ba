import Foundation
import Logging
import OpenStack

/// Nova flavors (`flavors.yml`, `openstack.compute.Flavor`; admin).
///
/// Flavors are found by name. Their sizes cannot change in Nova, so a destination flavor whose
/// vcpus, ram, disk, ephemeral, swap, rxtx_factor or visibility differ is reported `failed`,
/// naming the fields (the reference tool said "changed" and changed nothing). The description,
/// the extra specs and, for private flavors, the access list (`access_project_refs`, projects by
/// reference) are reconciled to the file.
///
/// `params.id` (beyond the reference tool) is the id to create the flavor with: kept when the
/// destination has no flavor with that id, so that what names flavors by id (scripts, templates,
/// orchestration state) still finds it; when the id is taken, Nova picks a new one and the item
/// says so. A file without `params.id` (the reference tool's) lets Nova pick. It is never compared:
/// a flavor that exists by name under another id is the same flavor.
public enum FlavorKind: ResourceKind {
    public static let name = "flavors"
    public static let fileName = "flavors.yml"
    public static let typeName = "openstack.compute.Flavor"
    public static let refType: RefType? = .flavor
    public static let dependencies = ["projects"]
    public static let requiredParams = ["name", "vcpus", "ram", "disk"]
    public static let filterVariable = "os_migrate_flavors_filter"
    public static let adminOnly = true

    /// Param, API attribute: fixed at creation.
    static let immutable: [(String, String)] = [
        ("disk", "disk"), ("ephemeral", "OS-FLV-EXT-DATA:ephemeral"), ("is_public", "os-flavor-access:is_public"),
        ("ram", "ram"), ("rxtx_factor", "rxtx_factor"), ("swap", "swap"), ("vcpus", "vcpus"),
    ]

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        (record.params["access_project_refs"]?.arrayValue ?? []).enumerated().compactMap { i, v in
            Reference(v).map { FieldReference(field: "params.access_project_refs[\(i)]", type: .project, ref: $0) }
        }
    }

    /// Nova's limits (a 32-bit signed whole number; at least one CPU and 1 MiB of RAM).
    public static let valueRules: [String: ValueRule] = [
        "vcpus": .int(1...2_147_483_647), "ram": .int(1...2_147_483_647), "disk": .int(0...2_147_483_647),
        "ephemeral": .int(0...2_147_483_647), "swap": .int(0...2_147_483_647), "rxtx_factor": .number(0.000001...3.4e38),
        "description": .string(max: 65535, line: false),
    ]

    static func isSpecKey(_ k: String) -> Bool {
        (1...255).contains(k.unicodeScalars.count) && k.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_:. ".unicodeScalars.contains($0)
        }
    }

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        if let v = record.params["extra_specs"], !v.isNull {
            if let o = v.objectValue {
                for (k, s) in o.sorted(by: { $0.key < $1.key }) {
                    // Nova's schema: keys of letters, digits, "-_:. " (1 to 255), values strings or numbers.
                    if !Self.isSpecKey(k) {
                        out.append("params.extra_specs has the key '\(k)', which Nova refuses (letters, digits and - _ : . or space; 1 to 255 of them)")
                    }
                    switch s {
                    case .string(let text) where text.count > 255: out.append("params.extra_specs.\(k) has \(text.count) characters (at most 255)")
                    case .string, .int, .double: break
                    default: out.append("params.extra_specs.\(k) is not a string or a number")
                    }
                }
            } else {
                out.append("params.extra_specs is not a mapping")
            }
        }
        if let v = record.params["access_project_refs"], !v.isNull {
            if let a = v.arrayValue {
                for (i, r) in a.enumerated() where Reference(r) == nil {
                    out.append("params.access_project_refs[\(i)] is not a reference (a mapping with name, project_name, domain_name)")
                }
                if !a.isEmpty, record.params["is_public"]?.boolValue == true {
                    out.append("params.access_project_refs is set but the flavor is public")
                }
            } else {
                out.append("params.access_project_refs is not a list")
            }
        }
        return out
    }

    // MARK: export

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let flavors = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.compute, .GET, "/flavors/detail",
                                                                            query: [QueryItem("is_public", "None")]), key: "flavors")
            .collect().compactMap(\.objectValue)
        return try await boundedMap(flavors, limit: 8) { f in
            try await record(from: f, session: ctx.session, refs: ctx.refs)
        }
    }

    /// The record of a flavor; its access list only with `refs`.
    static func record(from f: JSONObject, session: CloudSession, refs: ReferenceBuilder?) async throws -> ResourceRecord {
        let id = f["id"]?.stringValue ?? ""
        var specs = f["extra_specs"]
        if specs == nil { specs = .object(try await session.flavorExtraSpecs(id).mapValues(JSONValue.string)) }
        let isPublic = f["os-flavor-access:is_public"]?.boolValue ?? true
        var access: [JSONValue] = []
        if !isPublic, let refs {
            // Nova keeps access entries of deleted projects: those are left out.
            for project in try await session.flavorAccess(id) {
                if let r = try await KindSupport.unlessGone("flavor \(f["name"]?.stringValue ?? id): access of project \(project)", Logger(label: "os-migrate.export"),
                                                           { try await refs.ref(.project, id: project) })
                {
                    access.append(r)
                }
            }
        }
        // Before microversion 2.75 Nova says "" for no swap.
        let swap: JSONValue = f["swap"]?.intValue.map(JSONValue.int) ?? 0
        let params: JSONObject = [
            "access_project_refs": FieldMap.sortedList(.array(access), by: ["name", "domain_name"]),
            "description": f["description"] ?? .null,
            "disk": f["disk"] ?? .null,
            "ephemeral": f["OS-FLV-EXT-DATA:ephemeral"] ?? 0,
            "extra_specs": specs ?? [:],
            "id": .string(id),
            "is_public": .bool(isPublic),
            "name": f["name"] ?? .null,
            "ram": f["ram"] ?? .null,
            // A float, as the reference tool writes it (1.0, not 1).
            "rxtx_factor": f["rxtx_factor"]?.doubleValue.map(JSONValue.double) ?? .null,
            "swap": swap,
            "vcpus": f["vcpus"] ?? .null,
        ]
        return ResourceRecord(type: typeName, params: params,
                              info: ["id": .string(id), "is_disabled": f["OS-FLV-DISABLED:disabled"] ?? .null])
    }

    // MARK: import

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name else { return .fail(reason: "params.name is missing") }
        let wantedAccess = try await ProjectAccess.projects(record, ctx)
        let all = try await KindSupport.cachedList(ctx, "flavors:all", APIRequest(ServiceType.compute, .GET, "/flavors/detail",
                                                                                  query: [QueryItem("is_public", "None")]), "flavors")
        let found = all.filter { $0["name"]?.stringValue == name }
        guard let object = found.first, let id = object["id"]?.stringValue else {
            let wantedID = record.params["id"]?.stringValue
            let taken = wantedID.flatMap { w in all.first { $0["id"]?.stringValue == w } }
            var detail = ""
            if let w = wantedID {
                detail = taken == nil ? "id \(w) kept" : "id \(w) is taken by flavor '\(taken?["name"]?.stringValue ?? "?")': new id"
            }
            return .create(detail: detail) {
                try await create(record, id: taken == nil ? wantedID : nil, access: wantedAccess, ctx)
            }
        }
        let current = try await Self.record(from: object, session: ctx.session, refs: nil).params
        var fixed: [String] = []
        for (p, _) in immutable {
            guard let d = record.params[p], !d.isNull else { continue }
            if !KindSupport.same(d, current[p] ?? .null) { fixed.append(p) }
        }
        if !fixed.isEmpty {
            return .fail(reason: "differs in fields a flavor cannot change: "
                + fixed.map { KindSupport.describe($0, current: current[$0], desired: record.params[$0]) }.joined(separator: ", "))
        }
        var diffs: [String] = []
        if let d = record.params["description"], d != (current["description"] ?? .null), !(d.isFalsey && (current["description"] ?? .null).isFalsey) {
            diffs.append("description")
        }
        let wantedSpecs = ProjectAccess.stringMap(record.params["extra_specs"])
        let currentSpecs = ProjectAccess.stringMap(current["extra_specs"])
        if record.params["extra_specs"] != nil, wantedSpecs != currentSpecs { diffs.append("extra_specs") }
        let isPublic = current["is_public"]?.boolValue ?? true
        var currentAccess: [String] = []
        if !isPublic, let wantedAccess {
            currentAccess = try await ctx.session.flavorAccess(id)
            if Set(currentAccess) != Set(wantedAccess) { diffs.append("access_project_refs") }
        }
        if diffs.isEmpty { return .ok(id: id) }
        let change = diffs
        let haveAccess = currentAccess
        return .update(id: id, fields: change) {
            if change.contains("description") {
                _ = try await ctx.session.send(APIRequest(ServiceType.compute, .PUT, Nova.flavors.itemPath(id),
                                                          body: ["flavor": ["description": record.params["description"] ?? .null]]))
            }
            if change.contains("extra_specs") { try await reconcileSpecs(id, wanted: wantedSpecs, current: currentSpecs, ctx) }
            if change.contains("access_project_refs"), let wantedAccess {
                try await reconcileAccess(id, wanted: wantedAccess, current: haveAccess, ctx)
            }
        }
    }

    static func create(_ record: ResourceRecord, id: String?, access: [String]?, _ ctx: ImportContext) async throws -> String {
        let p = record.params
        var body: JSONObject = ["name": p["name"] ?? .null, "vcpus": p["vcpus"] ?? .null, "ram": p["ram"] ?? .null,
                                "disk": p["disk"] ?? .null]
        for (param, api) in [("ephemeral", "OS-FLV-EXT-DATA:ephemeral"), ("swap", "swap"), ("rxtx_factor", "rxtx_factor"),
                             ("is_public", "os-flavor-access:is_public"), ("description", "description")]
        {
            if let v = p[param], !v.isNull { body[api] = v }
        }
        if let id { body["id"] = .string(id) }
        let created: JSONValue
        do {
            created = try await ctx.session.json(APIRequest(ServiceType.compute, .POST, "/flavors", body: ["flavor": .object(body)]),
                                                 key: "flavor")
        } catch let e as OpenStackError where e.isConflict && id != nil && !e.message.contains("name") {
            // The id was taken meanwhile: let Nova pick one.
            body["id"] = nil
            created = try await ctx.session.json(APIRequest(ServiceType.compute, .POST, "/flavors", body: ["flavor": .object(body)]),
                                                 key: "flavor")
        }
        guard let newID = created["id"]?.stringValue else {
            throw OpenStackError(kind: .decoding, service: ServiceType.compute, message: "created flavor has no id")
        }
        let specs = ProjectAccess.stringMap(p["extra_specs"])
        if !specs.isEmpty { try await ctx.session.setFlavorExtraSpecs(newID, specs) }
        if p["is_public"]?.boolValue == false, let access {
            for project in access { try await ctx.session.addFlavorAccess(newID, project: project) }
        }
        return newID
    }

    static func reconcileSpecs(_ id: String, wanted: [String: String], current: [String: String], _ ctx: ImportContext) async throws {
        let set = wanted.filter { current[$0.key] != $0.value }
        if !set.isEmpty { try await ctx.session.setFlavorExtraSpecs(id, set) }
        for key in current.keys.sorted() where wanted[key] == nil { try await ctx.session.deleteFlavorExtraSpec(id, key: key) }
    }

    static func reconcileAccess(_ id: String, wanted: [String], current: [String], _ ctx: ImportContext) async throws {
        for project in wanted where !current.contains(project) { try await ctx.session.addFlavorAccess(id, project: project) }
        for project in current where !wanted.contains(project) {
            _ = try await ctx.session.send(APIRequest(ServiceType.compute, .POST, Nova.flavors.itemPath(id) + "/action",
                                                      body: ["removeTenantAccess": ["tenant": .string(project)]], idempotent: true,
                                                      acceptedStatuses: [404]))
        }
    }
}
