import OpenStack

/// Router interfaces (`router_interfaces.yml`, `openstack.network.RouterInterface`): a router's
/// port on a subnet, with its exact IP addresses.
public enum RouterInterfaceKind: ResourceKind {
    public static let name = "router-interfaces"
    public static let fileName = "router_interfaces.yml"
    public static let typeName = "openstack.network.RouterInterface"
    public static let dependencies = ["networks", "subnets", "routers"]
    public static let requiredParams = ["device_ref", "fixed_ips_refs", "network_ref"]
    public static let isNamed = false
    public static let filterVariable = "os_migrate_routers_filter"
    public static let filterPath = "device_ref.name"

    static let routerOwners: Set<String> = [
        "network:router_interface", "network:ha_router_replicated_interface", "network:router_interface_distributed",
    ]

    /// Neutron serializes interface changes per router; concurrent ones only contend.
    public static func serialKey(_ record: ResourceRecord) -> String? { record.value(at: "device_ref.name")?.stringValue }

    public static func label(_ record: ResourceRecord) -> String {
        let router = record.value(at: "device_ref.name")?.stringValue ?? "?"
        let ips = (record.params["fixed_ips_refs"]?.arrayValue ?? []).compactMap { $0["ip_address"]?.stringValue }
        return ([router] + ips).joined(separator: " ")
    }

    /// Each fixed IP inside the cidr of its subnet, when subnets.yml is checked too and holds
    /// exactly one subnet of that name.
    public static func crossFileProblems(_ record: ResourceRecord, others: [String: [ResourceRecord]]) -> [String] {
        var out: [String] = []
        let subnets = others[SubnetKind.name] ?? []
        for (i, ip) in (record.params["fixed_ips_refs"]?.arrayValue ?? []).enumerated() {
            guard let name = ip["subnet_ref"]?["name"]?.stringValue, let a = ip["ip_address"]?.stringValue, let address = IPAddress(a) else { continue }
            let named = subnets.filter { $0.name == name }
            guard named.count == 1, let c = named[0].params["cidr"]?.stringValue, let cidr = CIDR(c) else { continue }
            if !cidr.contains(address) {
                out.append("params.fixed_ips_refs[\(i)].ip_address \(a) is not inside subnet '\(name)' (\(c) in \(SubnetKind.fileName))")
            }
        }
        return out
    }

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        var refs: [FieldReference] = []
        if let r = Reference(record.params["device_ref"]) { refs.append(FieldReference(field: "params.device_ref", type: .router, ref: r)) }
        if let r = Reference(record.params["network_ref"]) { refs.append(FieldReference(field: "params.network_ref", type: .network, ref: r)) }
        for (i, ip) in (record.params["fixed_ips_refs"]?.arrayValue ?? []).enumerated() {
            if let r = Reference(ip["subnet_ref"]) {
                refs.append(FieldReference(field: "params.fixed_ips_refs[\(i)].subnet_ref", type: .subnet, ref: r))
            }
        }
        return refs
    }

    public static func validate(_ record: ResourceRecord) -> [String] {
        guard let ips = record.params["fixed_ips_refs"]?.arrayValue, !ips.isEmpty else {
            return ["params.fixed_ips_refs is empty"]
        }
        var out: [String] = []
        for (i, ip) in ips.enumerated() {
            if ip["ip_address"]?.stringValue == nil { out.append("params.fixed_ips_refs[\(i)].ip_address is missing") }
            else if let a = ip["ip_address"]?.stringValue, IPAddress(a) == nil {
                out.append("params.fixed_ips_refs[\(i)].ip_address is not an IP address: \(ValueRule.show(.string(a)))")
            }
            if Reference(ip["subnet_ref"]) == nil { out.append("params.fixed_ips_refs[\(i)].subnet_ref is missing") }
        }
        return out
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        var query = [QueryItem("project_id", ctx.projectID)]
        for owner in routerOwners.sorted() { query.append(QueryItem("device_owner", owner)) }
        let ports = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.network, .GET, Neutron.ports.path, query: query),
                                               key: Neutron.ports.plural).collect().compactMap(\.objectValue)
        return try await boundedMap(ports, limit: 8) { port in
            var ips: [JSONValue] = []
            for ip in port["fixed_ips"]?.arrayValue ?? [] {
                ips.append(["ip_address": ip["ip_address"] ?? .null,
                            "subnet_ref": try await ctx.refs.ref(.subnet, id: ip["subnet_id"]?.stringValue)])
            }
            let params: JSONObject = [
                "device_owner": port["device_owner"] ?? .null,
                "device_ref": try await ctx.refs.ref(.router, id: port["device_id"]?.stringValue),
                "fixed_ips_refs": FieldMap.sortedList(.array(ips), by: ["ip_address"]),
                "network_ref": try await ctx.refs.ref(.network, id: port["network_id"]?.stringValue),
            ]
            return ResourceRecord(type: typeName, params: params, info: ["id": port["id"] ?? .null])
        }
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let routerID = try await ctx.resolve(.router, record, "device_ref"),
              let networkID = try await ctx.resolve(.network, record, "network_ref")
        else { return .fail(reason: "params.device_ref or params.network_ref is null") }
        var wanted: [(subnet: String, ip: String)] = []
        for (i, ip) in (record.params["fixed_ips_refs"]?.arrayValue ?? []).enumerated() {
            let subnet: String?
            do { subnet = try await ctx.resolver.resolve(.subnet, ip["subnet_ref"]) } catch let e as ReferenceError {
                throw ReferenceError("params.fixed_ips_refs[\(i)].subnet_ref: \(e.description)")
            }
            guard let subnet, let address = ip["ip_address"]?.stringValue else { continue }
            wanted.append((subnet, address))
        }
        let wantedIPs = wanted
        let fixedIPs: JSONValue = .array(wanted.map { ["subnet_id": .string($0.subnet), "ip_address": .string($0.ip)] })
        let create: ImportStep = .create(detail: "") {
            // On the subnet's gateway address, let Neutron make the port, as `router add subnet`
            // does: a port we create would also pick up SLAAC addresses of the network.
            if wantedIPs.count == 1 {
                let subnet = try await ctx.session.get(Neutron.subnets, wantedIPs[0].subnet)
                if subnet.gatewayIP == wantedIPs[0].ip {
                    let r = try await ctx.session.addRouterInterface(router: routerID, subnetID: wantedIPs[0].subnet)
                    return r["port_id"]?.stringValue ?? ""
                }
            }
            let port = try await ctx.session.json(
                APIRequest(ServiceType.network, .POST, Neutron.ports.path, body: [Neutron.ports.singular: ["network_id": .string(networkID), "fixed_ips": fixedIPs]]),
                key: Neutron.ports.singular)
            guard let portID = port["id"]?.stringValue else {
                throw OpenStackError(kind: .decoding, service: ServiceType.network, message: "created port has no id")
            }
            do {
                try await ctx.session.addRouterInterface(router: routerID, portID: portID)
            } catch {
                // Leave nothing behind: the port exists only for this interface.
                _ = try? await ctx.session.send(APIRequest(ServiceType.network, .DELETE, Neutron.ports.itemPath(portID), acceptedStatuses: [404]))
                throw error
            }
            return portID
        }
        if [routerID, networkID].contains(where: { $0.hasPrefix(ReferenceResolver.placeholderPrefix) }) { return create }

        // Who holds these addresses in the destination?
        var holders: [String: JSONObject] = [:]
        for w in wanted {
            let q = [QueryItem("network_id", networkID), QueryItem("fixed_ips", "ip_address=\(w.ip)")]
            for p in try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.network, .GET, Neutron.ports.path, query: q), key: Neutron.ports.plural)
                .collect().compactMap(\.objectValue)
            {
                let held = (p["fixed_ips"]?.arrayValue ?? []).contains {
                    $0["ip_address"]?.stringValue == w.ip && $0["subnet_id"]?.stringValue == w.subnet
                }
                if held, let id = p["id"]?.stringValue { holders[id] = p }
            }
        }
        if holders.count > 1 {
            return .fail(reason: "the addresses are held by \(holders.count) different ports: \(holders.keys.sorted().joined(separator: ", "))")
        }
        guard let (portID, port) = holders.first else { return create }
        let owner = port["device_owner"]?.stringValue ?? ""
        let device = port["device_id"]?.stringValue ?? ""
        if device == routerID && routerOwners.contains(owner) { return .ok(id: portID) }
        if !device.isEmpty || !owner.isEmpty {
            let ip = wanted.map(\.ip).joined(separator: ", ")
            return .fail(reason: "address \(ip) is already used by port \(portID) (device_owner \(owner.isEmpty ? "none" : owner), device \(device.isEmpty ? "none" : device))")
        }
        // A free port holding the address (left by an interrupted run): attach it.
        return .update(id: portID, fields: ["device_ref"]) {
            try await ctx.session.addRouterInterface(router: routerID, portID: portID)
        }
    }
}
