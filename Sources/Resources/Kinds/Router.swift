import OpenStack

/// Neutron routers (`routers.yml`, `openstack.network.Router`).
///
/// Beyond the reference tool: the external gateway keeps `enable_snat` and its external fixed
/// IPs (applied when the importing user is admin, since Neutron reserves them to admins), and
/// static `routes` migrate, set once the router interfaces exist.
public enum RouterKind: NeutronKind {
    public static let name = "routers"
    public static let fileName = "routers.yml"
    public static let typeName = "openstack.network.Router"
    public static let refType: RefType? = .router
    public static let dependencies = ["networks", "subnets"]
    public static let filterVariable = "os_migrate_routers_filter"
    public static let collection = Neutron.routers
    static let gateway = "external_gateway_refinfo"
    public static var extraParams: [String] { [gateway] }

    public static let valueRules: [String: ValueRule] = [
        "routes": .routes, "availability_zone_hints": .list(.name, max: 100),
    ]

    public static let fieldMap = FieldMap([
        .list("availability_zone_hints", create: .skipFalsey, update: .immutable),
        Field("description"),
        .ref("flavor_ref", "flavor_id", .networkFlavor, update: .immutable),
        Field("is_admin_state_up", "admin_state_up"),
        // Admin-only in Neutron's default policy: shown, sent and compared with admin credentials only.
        Field("is_distributed", "distributed", adminOnly: true),
        Field("is_ha", "ha", adminOnly: true),
        Field("name"),
        .list("routes", create: .never, update: .ignored, sortBy: ["destination", "nexthop"]),
        .tags,
    ], info: [
        InfoField("availability_zones", sorted: true), InfoField("created_at"), InfoField("external_gateway_info"),
        InfoField("flavor_id"), InfoField("id"), InfoField("project_id"), InfoField("revision_number"),
        InfoField("routes"), InfoField("status"), InfoField("updated_at"),
    ])

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        var refs = fieldMap.references(record)
        if let r = Reference(record.params[gateway]?["network_ref"]) {
            refs.append(FieldReference(field: "params.\(gateway).network_ref", type: .network, ref: r))
        }
        return refs
    }

    public static func adjustExport(_ params: inout JSONObject, _ info: inout JSONObject, _ object: JSONObject,
                                    refs: ReferenceBuilder) async throws
    {
        guard let gw = object["external_gateway_info"], let net = gw["network_id"]?.stringValue else {
            params[gateway] = .null
            return
        }
        var out: JSONObject = ["network_ref": try await refs.ref(.network, id: net), "enable_snat": gw["enable_snat"] ?? .null]
        var ips: [JSONValue] = []
        for ip in gw["external_fixed_ips"]?.arrayValue ?? [] {
            // The external subnet may be invisible to a tenant: keep what can be named.
            guard let subnetRef = try? await refs.ref(.subnet, id: ip["subnet_id"]?.stringValue), !subnetRef.isNull else { continue }
            ips.append(["ip_address": ip["ip_address"] ?? .null, "subnet_ref": subnetRef])
        }
        out["external_fixed_ips"] = FieldMap.sortedList(.array(ips), by: ["ip_address"])
        params[gateway] = .object(out)
    }

    public static func extraDifferences(_ record: ResourceRecord, _ current: JSONObject, _ ctx: ImportContext)
        -> (fields: [String], notes: [String])
    {
        guard let desired = record.params[gateway] else { return ([], []) }
        let cur = current[gateway] ?? .null
        if desired.isNull || cur.isNull { return desired.isNull == cur.isNull ? ([], []) : ([gateway], []) }
        var differs = !FieldMap.sameReference(desired["network_ref"] ?? .null, cur["network_ref"] ?? .null)
        var notes: [String] = []
        if let snat = desired["enable_snat"], !snat.isNull, snat != cur["enable_snat"] {
            if ctx.isAdmin { differs = true } else { notes.append(FieldMap.adminNote("enable_snat \(snat.jsonString())", plural: false)) }
        }
        if ctx.isAdmin, let ips = desired["external_fixed_ips"], !ips.isFalsey,
           FieldMap.sortedList(ips, by: ["ip_address"]) != FieldMap.sortedList(cur["external_fixed_ips"] ?? .null, by: ["ip_address"])
        {
            differs = true
        }
        return (differs ? [gateway] : [], notes)
    }

    /// Without admin credentials a new router gets Neutron's defaults for what only admins may
    /// set on its gateway; say so instead of dropping it silently.
    public static func createNotes(_ record: ResourceRecord, isAdmin: Bool) -> [String] {
        guard !isAdmin, let gw = record.params[gateway], !gw.isNull else { return [] }
        var notes: [String] = []
        if let snat = gw["enable_snat"], snat == .bool(false) {
            notes.append(FieldMap.adminNote("enable_snat false", plural: false))
        }
        if let ips = gw["external_fixed_ips"], !ips.isFalsey {
            notes.append(FieldMap.adminNote("external_fixed_ips", plural: true))
        }
        return notes
    }

    /// `external_gateway_info` for the API; admin-only parts only when admin.
    static func gatewayBody(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> JSONValue? {
        guard let desired = record.params[gateway] else { return nil }
        if desired.isNull { return .null }
        var body: JSONObject = [:]
        do {
            body["network_id"] = .string(try await ctx.resolver.resolve(.network, desired["network_ref"]) ?? "")
        } catch let e as ReferenceError {
            throw ReferenceError("params.\(gateway).network_ref: \(e.description)")
        }
        if ctx.isAdmin {
            if let snat = desired["enable_snat"], !snat.isNull { body["enable_snat"] = snat }
            var ips: [JSONValue] = []
            for ip in desired["external_fixed_ips"]?.arrayValue ?? [] {
                var e: JSONObject = [:]
                if let a = ip["ip_address"], !a.isNull { e["ip_address"] = a }
                if let s = try await ctx.resolver.resolve(.subnet, ip["subnet_ref"]) { e["subnet_id"] = .string(s) }
                ips.append(.object(e))
            }
            if !ips.isEmpty { body["external_fixed_ips"] = .array(ips) }
        }
        return .object(body)
    }

    public static func prepareCreate(_ body: inout JSONObject, _ record: ResourceRecord, _ ctx: ImportContext) async throws {
        if let gw = try await gatewayBody(record, ctx), !gw.isNull { body["external_gateway_info"] = gw }
    }

    public static func prepareUpdate(_ body: inout JSONObject, _ fields: [String], _ record: ResourceRecord,
                                     _ ctx: ImportContext) async throws
    {
        if fields.contains(gateway), let gw = try await gatewayBody(record, ctx) { body["external_gateway_info"] = gw }
    }

    /// Static routes, once the interfaces that reach their next hops exist.
    public static func finish(_ records: [ResourceRecord], _ ctx: ImportContext) async -> [ItemResult] {
        var results: [ItemResult] = []
        for record in records {
            guard let name = record.name, let desired = record.params["routes"] else { continue }
            let wanted = FieldMap.sortedList(desired.isNull ? .array([]) : desired, by: ["destination", "nexthop"])
            do {
                guard let object = try await existing(named: name, ctx, fresh: true).first, let id = object["id"]?.stringValue else {
                    if ctx.options.dryRun, !wanted.isFalsey {
                        results.append(ItemResult(kind: self.name, name: name, status: .changed, message: "would set routes",
                                                  action: "updated", fields: ["routes"]))
                    }
                    continue
                }
                let current = FieldMap.sortedList(object["routes"] ?? .array([]), by: ["destination", "nexthop"])
                if current == wanted || (current.isFalsey && wanted.isFalsey) { continue }
                let change = [FieldChange(field: "routes", from: current, to: wanted)]
                if ctx.options.dryRun {
                    results.append(ItemResult(kind: self.name, name: name, status: .changed, message: "would update: routes",
                                              action: "updated", fields: ["routes"], changes: change, id: id))
                    continue
                }
                _ = try await ctx.session.send(APIRequest(service, .PUT, collection.itemPath(id), body: [singular: ["routes": wanted]]))
                results.append(ItemResult(kind: self.name, name: name, status: .changed, message: "updated: routes",
                                          action: "updated", fields: ["routes"], changes: change, id: id))
            } catch {
                results.append(ItemResult(kind: self.name, name: name, status: .failed, message: "routes: \(error)"))
            }
        }
        return results
    }
}
