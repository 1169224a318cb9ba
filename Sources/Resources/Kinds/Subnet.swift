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
    public static let path = "/subnets"
    public static let singular = "subnet"
    public static let plural = "subnets"

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
