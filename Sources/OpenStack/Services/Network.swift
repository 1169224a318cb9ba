import Foundation

// Neutron (network v2.0) models and calls. Fields follow the API; every field that a
// deployment may omit (extensions, admin-only attributes) is optional.

public struct Network: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var projectID: String?
    public var status: String?
    public var adminStateUp: Bool?
    public var shared: Bool?
    public var routerExternal: Bool?
    public var mtu: Int?
    public var portSecurityEnabled: Bool?
    public var availabilityZoneHints: [String]?
    public var availabilityZones: [String]?
    public var subnets: [String]?
    public var tags: [String]?
    public var dnsDomain: String?
    public var isDefault: Bool?
    public var vlanTransparent: Bool?
    public var providerNetworkType: String?
    public var providerPhysicalNetwork: String?
    public var providerSegmentationID: Int?
    public var segments: [JSONValue]?
    public var qosPolicyID: String?
    public var createdAt: String?
    public var updatedAt: String?
    public var revisionNumber: Int?

    enum CodingKeys: String, CodingKey {
        case id, name, description, status, shared, mtu, subnets, tags, segments
        case projectID = "project_id", adminStateUp = "admin_state_up", routerExternal = "router:external"
        case portSecurityEnabled = "port_security_enabled", availabilityZoneHints = "availability_zone_hints"
        case availabilityZones = "availability_zones", dnsDomain = "dns_domain", isDefault = "is_default"
        case vlanTransparent = "vlan_transparent", providerNetworkType = "provider:network_type"
        case providerPhysicalNetwork = "provider:physical_network", providerSegmentationID = "provider:segmentation_id"
        case qosPolicyID = "qos_policy_id", createdAt = "created_at", updatedAt = "updated_at"
        case revisionNumber = "revision_number"
    }
}

public struct AllocationPool: Codable, Sendable, Hashable, Comparable {
    public var start: String
    public var end: String
    public init(start: String, end: String) {
        self.start = start
        self.end = end
    }
    public static func < (a: Self, b: Self) -> Bool { (a.start, a.end) < (b.start, b.end) }
}

public struct HostRoute: Codable, Sendable, Hashable, Comparable {
    public var destination: String
    public var nexthop: String
    public init(destination: String, nexthop: String) {
        self.destination = destination
        self.nexthop = nexthop
    }
    public static func < (a: Self, b: Self) -> Bool { (a.destination, a.nexthop) < (b.destination, b.nexthop) }
}

public struct Subnet: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var networkID: String
    public var projectID: String?
    public var cidr: String
    public var ipVersion: Int
    public var gatewayIP: String?
    public var enableDHCP: Bool?
    public var allocationPools: [AllocationPool]?
    public var dnsNameservers: [String]?
    public var hostRoutes: [HostRoute]?
    public var ipv6AddressMode: String?
    public var ipv6RAMode: String?
    public var serviceTypes: [String]?
    public var subnetpoolID: String?
    public var segmentID: String?
    public var useDefaultSubnetpool: Bool?
    public var tags: [String]?
    public var createdAt: String?
    public var updatedAt: String?
    public var revisionNumber: Int?

    enum CodingKeys: String, CodingKey {
        case id, name, description, cidr, tags
        case networkID = "network_id", projectID = "project_id", ipVersion = "ip_version", gatewayIP = "gateway_ip"
        case enableDHCP = "enable_dhcp", allocationPools = "allocation_pools", dnsNameservers = "dns_nameservers"
        case hostRoutes = "host_routes", ipv6AddressMode = "ipv6_address_mode", ipv6RAMode = "ipv6_ra_mode"
        case serviceTypes = "service_types", subnetpoolID = "subnetpool_id", segmentID = "segment_id"
        case useDefaultSubnetpool = "use_default_subnetpool", createdAt = "created_at", updatedAt = "updated_at"
        case revisionNumber = "revision_number"
    }
}

public struct FixedIP: Codable, Sendable, Hashable {
    public var subnetID: String
    public var ipAddress: String
    public init(subnetID: String, ipAddress: String) {
        self.subnetID = subnetID
        self.ipAddress = ipAddress
    }
    enum CodingKeys: String, CodingKey {
        case subnetID = "subnet_id", ipAddress = "ip_address"
    }
}

public struct ExternalGatewayInfo: Codable, Sendable, Hashable {
    public var networkID: String
    public var enableSNAT: Bool?
    public var externalFixedIPs: [FixedIP]?
    enum CodingKeys: String, CodingKey {
        case networkID = "network_id", enableSNAT = "enable_snat", externalFixedIPs = "external_fixed_ips"
    }
}

public struct Router: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var projectID: String?
    public var status: String?
    public var adminStateUp: Bool?
    public var externalGatewayInfo: ExternalGatewayInfo?
    public var routes: [HostRoute]?
    public var distributed: Bool?
    public var ha: Bool?
    public var availabilityZoneHints: [String]?
    public var availabilityZones: [String]?
    public var flavorID: String?
    public var tags: [String]?
    public var createdAt: String?
    public var updatedAt: String?
    public var revisionNumber: Int?

    enum CodingKeys: String, CodingKey {
        case id, name, description, status, routes, distributed, ha, tags
        case projectID = "project_id", adminStateUp = "admin_state_up", externalGatewayInfo = "external_gateway_info"
        case availabilityZoneHints = "availability_zone_hints", availabilityZones = "availability_zones"
        case flavorID = "flavor_id", createdAt = "created_at", updatedAt = "updated_at"
        case revisionNumber = "revision_number"
    }
}

public struct AllowedAddressPair: Codable, Sendable, Hashable {
    public var ipAddress: String
    public var macAddress: String?
    enum CodingKeys: String, CodingKey {
        case ipAddress = "ip_address", macAddress = "mac_address"
    }
}

public struct Port: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var networkID: String
    public var projectID: String?
    public var deviceID: String?
    public var deviceOwner: String?
    public var macAddress: String?
    public var fixedIPs: [FixedIP]?
    public var status: String?
    public var adminStateUp: Bool?
    public var securityGroups: [String]?
    public var portSecurityEnabled: Bool?
    public var allowedAddressPairs: [AllowedAddressPair]?
    public var vnicType: String?
    public var bindingProfile: JSONValue?
    public var bindingHostID: String?
    public var tags: [String]?
    public var dnsName: String?
    public var qosPolicyID: String?
    public var createdAt: String?
    public var updatedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, name, description, status, tags
        case networkID = "network_id", projectID = "project_id", deviceID = "device_id", deviceOwner = "device_owner"
        case macAddress = "mac_address", fixedIPs = "fixed_ips", adminStateUp = "admin_state_up"
        case securityGroups = "security_groups", portSecurityEnabled = "port_security_enabled"
        case allowedAddressPairs = "allowed_address_pairs", vnicType = "binding:vnic_type"
        case bindingProfile = "binding:profile", bindingHostID = "binding:host_id", dnsName = "dns_name"
        case qosPolicyID = "qos_policy_id", createdAt = "created_at", updatedAt = "updated_at"
    }
}

public struct SecurityGroupRule: Codable, Sendable {
    public var id: String
    public var securityGroupID: String
    public var direction: String
    public var ethertype: String?
    public var `protocol`: String?
    public var portRangeMin: Int?
    public var portRangeMax: Int?
    public var remoteIPPrefix: String?
    public var remoteGroupID: String?
    public var remoteAddressGroupID: String?
    public var description: String?
    public var projectID: String?
    public var createdAt: String?
    public var updatedAt: String?
    public var revisionNumber: Int?

    enum CodingKeys: String, CodingKey {
        case id, direction, ethertype, `protocol`, description
        case securityGroupID = "security_group_id", portRangeMin = "port_range_min", portRangeMax = "port_range_max"
        case remoteIPPrefix = "remote_ip_prefix", remoteGroupID = "remote_group_id"
        case remoteAddressGroupID = "remote_address_group_id", projectID = "project_id"
        case createdAt = "created_at", updatedAt = "updated_at", revisionNumber = "revision_number"
    }
}

public struct SecurityGroup: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var projectID: String?
    public var rules: [SecurityGroupRule]?
    public var tags: [String]?
    public var stateful: Bool?
    public var createdAt: String?
    public var updatedAt: String?
    public var revisionNumber: Int?

    enum CodingKeys: String, CodingKey {
        case id, name, description, tags, stateful
        case projectID = "project_id", rules = "security_group_rules", createdAt = "created_at"
        case updatedAt = "updated_at", revisionNumber = "revision_number"
    }
}

public struct FloatingIP: Codable, Sendable {
    public var id: String
    public var floatingIPAddress: String
    public var fixedIPAddress: String?
    public var floatingNetworkID: String
    public var portID: String?
    public var routerID: String?
    public var projectID: String?
    public var status: String?
    public var description: String?
    public var dnsDomain: String?
    public var dnsName: String?
    public var qosPolicyID: String?
    public var tags: [String]?
    public var createdAt: String?
    public var updatedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, status, description, tags
        case floatingIPAddress = "floating_ip_address", fixedIPAddress = "fixed_ip_address"
        case floatingNetworkID = "floating_network_id", portID = "port_id", routerID = "router_id"
        case projectID = "project_id", dnsDomain = "dns_domain", dnsName = "dns_name", qosPolicyID = "qos_policy_id"
        case createdAt = "created_at", updatedAt = "updated_at"
    }
}

/// Resources we only ever refer to by name: subnet pools, QoS policies, address groups, segments.
public struct NeutronNamedObject: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var projectID: String?

    enum CodingKeys: String, CodingKey {
        case id, name
        case projectID = "project_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        projectID = try c.decodeIfPresent(String.self, forKey: .projectID)
    }
}

public enum Neutron {
    public static let networks = APICollection<Network>(service: ServiceType.network, path: "/networks", singular: "network", plural: "networks")
    public static let subnets = APICollection<Subnet>(service: ServiceType.network, path: "/subnets", singular: "subnet", plural: "subnets")
    public static let routers = APICollection<Router>(service: ServiceType.network, path: "/routers", singular: "router", plural: "routers")
    public static let ports = APICollection<Port>(service: ServiceType.network, path: "/ports", singular: "port", plural: "ports")
    public static let securityGroups = APICollection<SecurityGroup>(
        service: ServiceType.network, path: "/security-groups", singular: "security_group", plural: "security_groups")
    public static let securityGroupRules = APICollection<SecurityGroupRule>(
        service: ServiceType.network, path: "/security-group-rules", singular: "security_group_rule", plural: "security_group_rules")
    public static let floatingIPs = APICollection<FloatingIP>(
        service: ServiceType.network, path: "/floatingips", singular: "floatingip", plural: "floatingips")
    public static let subnetPools = APICollection<NeutronNamedObject>(
        service: ServiceType.network, path: "/subnetpools", singular: "subnetpool", plural: "subnetpools")
    public static let qosPolicies = APICollection<NeutronNamedObject>(
        service: ServiceType.network, path: "/qos/policies", singular: "policy", plural: "policies")
    public static let addressGroups = APICollection<NeutronNamedObject>(
        service: ServiceType.network, path: "/address-groups", singular: "address_group", plural: "address_groups")
    public static let segments = APICollection<NeutronNamedObject>(
        service: ServiceType.network, path: "/segments", singular: "segment", plural: "segments")
    public static let flavors = APICollection<NeutronNamedObject>(
        service: ServiceType.network, path: "/flavors", singular: "flavor", plural: "flavors")
}

extension CloudSession {
    /// Replace a Neutron resource's tags (networks, subnets, routers, ports, security groups...).
    public func setTags<T>(_ c: APICollection<T>, _ id: String, _ tags: [String]) async throws {
        _ = try await send(APIRequest(c.service, .PUT, c.itemPath(id) + "/tags",
                                      body: ["tags": .array(tags.map(JSONValue.string))]))
    }

    /// Attach a port or a subnet to a router.
    @discardableResult
    public func addRouterInterface(router: String, portID: String? = nil, subnetID: String? = nil) async throws -> JSONValue {
        var body: JSONObject = [:]
        if let portID { body["port_id"] = .string(portID) }
        if let subnetID { body["subnet_id"] = .string(subnetID) }
        // Adding the same port twice fails with a clear 4xx; it is safe to retry.
        return try await json(APIRequest(ServiceType.network, .PUT, Neutron.routers.itemPath(router) + "/add_router_interface",
                                         body: .object(body)))
    }

    public func removeRouterInterface(router: String, portID: String) async throws {
        _ = try await send(APIRequest(ServiceType.network, .PUT, Neutron.routers.itemPath(router) + "/remove_router_interface",
                                      body: ["port_id": .string(portID)], acceptedStatuses: [404]))
    }
}
