import OpenStack

/// Neutron networks (`networks.yml`, `openstack.network.Network`).
public enum NetworkKind: NeutronKind {
    public static let name = "networks"
    public static let fileName = "networks.yml"
    public static let typeName = "openstack.network.Network"
    public static let refType: RefType? = .network
    public static let filterVariable = "os_migrate_networks_filter"
    public static let collection = Neutron.networks

    public static let valueRules: [String: ValueRule] = [
        "mtu": .int(68...65535), "dns_domain": .string(max: 255, line: true),
        "availability_zone_hints": .list(.name, max: 100), "provider_segmentation_id": .int(0...16_777_215),
        "provider_network_type": .string(max: 255, line: true), "provider_physical_network": .string(max: 255, line: true),
    ]

    public static let fieldMap = FieldMap([
        .list("availability_zone_hints", create: .skipFalsey, update: .immutable),
        Field("description"),
        Field("dns_domain", create: .skipFalsey),
        Field("is_admin_state_up", "admin_state_up"),
        // Setting these is admin-only in Neutron's default policy (create_network:shared,
        // :router:external, :is_default): with tenant credentials they are left out, with a note.
        Field("is_default", "is_default", create: .skipDefault(false), adminOnly: true),
        Field("is_port_security_enabled", "port_security_enabled"),
        Field("is_router_external", "router:external", create: .skipDefault(false), adminOnly: true),
        Field("is_shared", "shared", create: .skipDefault(false), adminOnly: true),
        Field("is_vlan_transparent", "vlan_transparent", update: .immutable),
        Field("mtu"),
        Field("name"),
        // Admin-only in Neutron's default policy: shown, sent and compared with admin credentials only.
        Field("provider_network_type", "provider:network_type", update: .immutable, adminOnly: true),
        Field("provider_physical_network", "provider:physical_network", update: .immutable, adminOnly: true),
        Field("provider_segmentation_id", "provider:segmentation_id", update: .immutable, adminOnly: true),
        .ref("qos_policy_ref", "qos_policy_id", .qosPolicy),
        Field("segments", update: .immutable, adminOnly: true),
        .tags,
    ], info: [
        InfoField("availability_zones", sorted: true), InfoField("created_at"), InfoField("id"), InfoField("project_id"),
        InfoField("qos_policy_id"), InfoField("revision_number"), InfoField("status"),
        InfoField("subnet_ids", "subnets", sorted: true), InfoField("updated_at"),
    ])
}
