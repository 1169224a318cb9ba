import OpenStack

/// Neutron subnets (`subnets.yml`, `openstack.subnet.Subnet`). "No gateway" is `gateway_ip: null`
/// and is sent as such; service types are omitted when empty (newer Neutron rejects them).
/// DNS servers keep their order: unlike pools and routes, the order is meaningful.
public enum SubnetKind: NeutronKind {
    public static let name = "subnets"
    public static let fileName = "subnets.yml"
    public static let typeName = "openstack.subnet.Subnet"
    public static let refType: RefType? = .subnet
    public static let dependencies = ["networks"]
    public static let requiredParams = ["name", "cidr", "ip_version", "network_ref"]
    public static let filterVariable = "os_migrate_subnets_filter"
    public static let collection = Neutron.subnets

    public static let valueRules: [String: ValueRule] = [
        "cidr": .cidr, "ip_version": .intIn([4, 6]), "gateway_ip": .ipAddress,
        "dns_nameservers": .list(.ipAddress, max: 100),
        "allocation_pools": .list(.object(["start": .ipAddress, "end": .ipAddress], required: ["start", "end"]), max: 1000),
        "host_routes": .routes, "service_types": .list(.string(max: 255, line: true), max: 100),
        "ipv6_address_mode": .oneOf(["slaac", "dhcpv6-stateful", "dhcpv6-stateless"]),
        "ipv6_ra_mode": .oneOf(["slaac", "dhcpv6-stateful", "dhcpv6-stateless"]),
    ]

    /// What Neutron refuses (each tried in the lab, `SubnetChecksLabTests`): pools outside the
    /// cidr or starting after they end, a cidr of the other family than ip_version. A gateway
    /// outside the cidr is accepted (an on-link gateway of a provider network): a warning only.
    public static func validate(_ record: ResourceRecord) -> [String] {
        guard let text = record.params["cidr"]?.stringValue, let cidr = CIDR(text) else { return [] }
        var out: [String] = []
        if let v = record.params["ip_version"]?.intValue, [4, 6].contains(v), (v == 4) != cidr.address.isV4 {
            out.append("params.cidr \(text) is not an IPv\(v) network (params.ip_version \(v))")
        }
        for (i, pool) in (record.params["allocation_pools"]?.arrayValue ?? []).enumerated() {
            guard let a = pool["start"]?.stringValue.flatMap(IPAddress.init), let b = pool["end"]?.stringValue.flatMap(IPAddress.init) else { continue }
            if !cidr.contains(a) || !cidr.contains(b) {
                out.append("params.allocation_pools[\(i)] \(pool["start"]!.stringValue!)-\(pool["end"]!.stringValue!) is outside params.cidr \(text)")
            } else if a.bytes.lexicographicallyPrecedes(b.bytes) == false && a != b {
                out.append("params.allocation_pools[\(i)] starts after it ends")
            }
        }
        return out
    }

    public static func advisories(_ record: ResourceRecord) -> [String] {
        guard let text = record.params["cidr"]?.stringValue, let cidr = CIDR(text),
              let g = record.params["gateway_ip"]?.stringValue, let ip = IPAddress(g), !cidr.contains(ip) else { return [] }
        return ["params.gateway_ip \(g) is outside params.cidr \(text) (an on-link gateway: Neutron accepts it, imported as is)"]
    }

    public static let fieldMap = FieldMap([
        .list("allocation_pools", sortBy: ["start", "end"]),
        Field("cidr", update: .immutable),
        Field("description"),
        // Order matters to resolvers (the first is tried first): kept as Neutron stores it.
        Field("dns_nameservers"),
        Field("gateway_ip", create: .always),
        .list("host_routes", sortBy: ["destination", "nexthop"]),
        Field("ip_version", update: .immutable),
        Field("ipv6_address_mode", update: .immutable),
        Field("ipv6_ra_mode", update: .immutable),
        Field("is_dhcp_enabled", "enable_dhcp"),
        Field("name"),
        .ref("network_ref", "network_id", .network, update: .immutable),
        .ref("segment_ref", "segment_id", .segment),
        .list("service_types", create: .skipFalsey),
        .ref("subnet_pool_ref", "subnetpool_id", .subnetPool, update: .immutable),
        .tags,
        Field("use_default_subnet_pool", "use_default_subnetpool", create: .skipFalsey, update: .ignored),
    ], info: [
        InfoField("created_at"), InfoField("id"), InfoField("network_id"), InfoField("prefix_length", "prefixlen"),
        InfoField("project_id"), InfoField("revision_number"), InfoField("segment_id"),
        InfoField("subnet_pool_id", "subnetpool_id"), InfoField("updated_at"),
    ])
}
