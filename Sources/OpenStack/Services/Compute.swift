import Foundation

// Nova (compute v2.1, microversioned) models and calls.

/// A flavor as embedded in a server (microversion 2.47+: no id, the original name instead).
public struct ServerFlavor: Codable, Sendable {
    public var id: String?
    public var originalName: String?
    public var vcpus: Int?
    public var ram: Int?
    public var disk: Int?
    public var ephemeral: Int?
    public var swap: Int?
    public var extraSpecs: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id, vcpus, ram, disk, ephemeral, swap
        case originalName = "original_name", extraSpecs = "extra_specs"
    }
}

public struct ServerAddress: Codable, Sendable, Hashable {
    public var addr: String
    public var version: Int?
    public var type: String?
    public var macAddress: String?

    enum CodingKeys: String, CodingKey {
        case addr, version
        case type = "OS-EXT-IPS:type", macAddress = "OS-EXT-IPS-MAC:mac_addr"
    }
}

public struct AttachedVolumeRef: Codable, Sendable, Hashable {
    public var id: String
    public var deleteOnTermination: Bool?
    enum CodingKeys: String, CodingKey {
        case id
        case deleteOnTermination = "delete_on_termination"
    }
}

public struct Server: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var status: String
    public var description: String?
    public var flavor: ServerFlavor?
    /// The image id; nil when the server boots from a volume (Nova says `"image": ""`).
    public var imageID: String?
    public var keyName: String?
    public var availabilityZone: String?
    public var metadata: [String: String]?
    public var tags: [String]?
    public var configDrive: String?
    public var userData: String?
    public var addresses: [String: [ServerAddress]]?
    public var securityGroups: [String]?
    public var volumesAttached: [AttachedVolumeRef]?
    public var diskConfig: String?
    public var vmState: String?
    public var taskState: String?
    public var powerState: Int?
    public var projectID: String?
    public var userID: String?
    public var createdAt: String?
    public var updatedAt: String?
    public var launchedAt: String?
    public var hypervisorHostname: String?
    public var locked: Bool?
    public var faultMessage: String?

    enum CodingKeys: String, CodingKey {
        case id, name, status, description, flavor, image, metadata, tags, addresses, locked, fault
        case keyName = "key_name", availabilityZone = "OS-EXT-AZ:availability_zone", configDrive = "config_drive"
        case userData = "OS-EXT-SRV-ATTR:user_data", securityGroups = "security_groups"
        case volumesAttached = "os-extended-volumes:volumes_attached", diskConfig = "OS-DCF:diskConfig"
        case vmState = "OS-EXT-STS:vm_state", taskState = "OS-EXT-STS:task_state", powerState = "OS-EXT-STS:power_state"
        case projectID = "tenant_id", userID = "user_id", createdAt = "created", updatedAt = "updated"
        case launchedAt = "OS-SRV-USG:launched_at", hypervisorHostname = "OS-EXT-SRV-ATTR:hypervisor_hostname"
    }

    struct NameOnly: Codable { var name: String }
    struct IDOnly: Codable { var id: String }
    struct Fault: Codable { var message: String? }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        status = try c.decodeIfPresent(String.self, forKey: .status) ?? "UNKNOWN"
        description = try c.decodeIfPresent(String.self, forKey: .description)
        flavor = try c.decodeIfPresent(ServerFlavor.self, forKey: .flavor)
        imageID = (try? c.decodeIfPresent(IDOnly.self, forKey: .image))?.id
        keyName = try c.decodeIfPresent(String.self, forKey: .keyName)
        availabilityZone = try c.decodeIfPresent(String.self, forKey: .availabilityZone)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
        tags = try c.decodeIfPresent([String].self, forKey: .tags)
        configDrive = try c.decodeIfPresent(String.self, forKey: .configDrive)
        userData = try c.decodeIfPresent(String.self, forKey: .userData)
        addresses = try c.decodeIfPresent([String: [ServerAddress]].self, forKey: .addresses)
        securityGroups = try c.decodeIfPresent([NameOnly].self, forKey: .securityGroups)?.map(\.name)
        volumesAttached = try c.decodeIfPresent([AttachedVolumeRef].self, forKey: .volumesAttached)
        diskConfig = try c.decodeIfPresent(String.self, forKey: .diskConfig)
        vmState = try c.decodeIfPresent(String.self, forKey: .vmState)
        taskState = try c.decodeIfPresent(String.self, forKey: .taskState)
        powerState = try c.decodeIfPresent(Int.self, forKey: .powerState)
        projectID = try c.decodeIfPresent(String.self, forKey: .projectID)
        userID = try c.decodeIfPresent(String.self, forKey: .userID)
        createdAt = try c.decodeIfPresent(String.self, forKey: .createdAt)
        updatedAt = try c.decodeIfPresent(String.self, forKey: .updatedAt)
        launchedAt = try c.decodeIfPresent(String.self, forKey: .launchedAt)
        hypervisorHostname = try c.decodeIfPresent(String.self, forKey: .hypervisorHostname)
        locked = try c.decodeIfPresent(Bool.self, forKey: .locked)
        faultMessage = try c.decodeIfPresent(Fault.self, forKey: .fault)?.message
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(description, forKey: .description)
        try c.encodeIfPresent(flavor, forKey: .flavor)
        try c.encodeIfPresent(imageID.map { IDOnly(id: $0) }, forKey: .image)
        try c.encodeIfPresent(keyName, forKey: .keyName)
        try c.encodeIfPresent(availabilityZone, forKey: .availabilityZone)
        try c.encodeIfPresent(metadata, forKey: .metadata)
        try c.encodeIfPresent(tags, forKey: .tags)
        try c.encodeIfPresent(addresses, forKey: .addresses)
        try c.encodeIfPresent(securityGroups?.map { NameOnly(name: $0) }, forKey: .securityGroups)
        try c.encodeIfPresent(volumesAttached, forKey: .volumesAttached)
        try c.encodeIfPresent(projectID, forKey: .projectID)
    }
}

public struct Flavor: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var vcpus: Int
    public var ram: Int
    public var disk: Int
    public var ephemeral: Int
    public var swap: Int
    public var rxtxFactor: Double?
    public var isPublic: Bool
    public var disabled: Bool?
    public var description: String?
    public var extraSpecs: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id, name, vcpus, ram, disk, swap, description
        case ephemeral = "OS-FLV-EXT-DATA:ephemeral", rxtxFactor = "rxtx_factor", isPublic = "os-flavor-access:is_public"
        case disabled = "OS-FLV-DISABLED:disabled", extraSpecs = "extra_specs"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        vcpus = try c.decode(Int.self, forKey: .vcpus)
        ram = try c.decode(Int.self, forKey: .ram)
        disk = try c.decode(Int.self, forKey: .disk)
        ephemeral = try c.decodeIfPresent(Int.self, forKey: .ephemeral) ?? 0
        // Before microversion 2.75 Nova says "" for no swap.
        swap = (try? c.decodeIfPresent(Int.self, forKey: .swap)) ?? 0
        rxtxFactor = try c.decodeIfPresent(Double.self, forKey: .rxtxFactor)
        isPublic = try c.decodeIfPresent(Bool.self, forKey: .isPublic) ?? true
        disabled = try c.decodeIfPresent(Bool.self, forKey: .disabled)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        extraSpecs = try c.decodeIfPresent([String: String].self, forKey: .extraSpecs)
    }
}

public struct Keypair: Codable, Sendable {
    public var name: String
    public var publicKey: String
    public var fingerprint: String?
    public var type: String?
    public var userID: String?
    public var createdAt: String?
    public var id: Int?

    enum CodingKeys: String, CodingKey {
        case name, fingerprint, type, id
        case publicKey = "public_key", userID = "user_id", createdAt = "created_at"
    }
}

public struct VolumeAttachment: Codable, Sendable {
    public var id: String?
    public var volumeID: String
    public var serverID: String?
    public var device: String?
    public var tag: String?
    public var deleteOnTermination: Bool?

    enum CodingKeys: String, CodingKey {
        case id, device, tag
        case volumeID = "volumeId", serverID = "serverId", deleteOnTermination = "delete_on_termination"
    }
}

public enum Nova {
    public static let servers = APICollection<Server>(service: ServiceType.compute, path: "/servers", listPath: "/servers/detail",
                                                      singular: "server", plural: "servers", nameFilterIsRegex: true)
    public static let flavors = APICollection<Flavor>(service: ServiceType.compute, path: "/flavors", listPath: "/flavors/detail",
                                                      singular: "flavor", plural: "flavors", filtersByName: false)
}

/// A server's instance actions (`GET /servers/{id}/os-instance-actions`): what was done to it, when.
public enum InstanceActions {
    /// When the newest `stop` in a listing began (nil: never stopped through the API). Nova
    /// writes `2026-12-05T03:27:22.000000` (2.58+) or `2026-12-05 03:27:22.000000`, in UTC.
    public static func lastStop(in listing: JSONValue) -> Date? {
        (listing.arrayValue ?? []).filter { $0["action"]?.stringValue == "stop" }
            .compactMap { $0["start_time"]?.stringValue }
            .compactMap { KeystoneAuth.parseDate($0.replacingOccurrences(of: " ", with: "T")) }
            .max()
    }
}

extension CloudSession {
    /// When the server was last stopped through the API (its newest `stop` instance action).
    public func lastStopRequested(_ serverID: String) async throws -> Date? {
        InstanceActions.lastStop(in: try await json(APIRequest(ServiceType.compute, .GET, Nova.servers.itemPath(serverID) + "/os-instance-actions"),
                                                    key: "instanceActions"))
    }

    /// Run a server action (`os-stop`, `os-start`, `createImage`...). Actions are not repeated on
    /// ambiguous failures; stop and start are safe to repeat and say so.
    @discardableResult
    public func serverAction(_ serverID: String, _ action: String, _ body: JSONValue = .null,
                             idempotent: Bool = false) async throws -> HTTPResult
    {
        try await send(APIRequest(ServiceType.compute, .POST, Nova.servers.itemPath(serverID) + "/action",
                                  body: [action: body], idempotent: idempotent))
    }

    public func stopServer(_ id: String) async throws {
        _ = try await send(APIRequest(ServiceType.compute, .POST, Nova.servers.itemPath(id) + "/action",
                                      body: ["os-stop": .null], idempotent: true, acceptedStatuses: [409]))
    }

    public func startServer(_ id: String) async throws {
        _ = try await send(APIRequest(ServiceType.compute, .POST, Nova.servers.itemPath(id) + "/action",
                                      body: ["os-start": .null], idempotent: true, acceptedStatuses: [409]))
    }

    /// Snapshot a server into a Glance image; returns the image id.
    public func createServerImage(_ id: String, name: String, metadata: [String: String] = [:]) async throws -> String {
        let r = try await serverAction(id, "createImage", ["name": .string(name),
                                                           "metadata": .object(metadata.mapValues(JSONValue.string))])
        if let v = try? r.json(), let image = v["image_id"]?.stringValue { return image }
        if let loc = r.headers.first(name: "Location"), let last = loc.split(separator: "/").last { return String(last) }
        throw OpenStackError(kind: .decoding, service: ServiceType.compute, message: "createImage returned no image id")
    }

    public func serverSecurityGroupNames(_ id: String) async throws -> [String] {
        let v = try await json(APIRequest(ServiceType.compute, .GET, Nova.servers.itemPath(id) + "/os-security-groups"),
                               key: "security_groups")
        return (v.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
    }

    public func volumeAttachments(server id: String) async throws -> [VolumeAttachment] {
        try await decode([VolumeAttachment].self,
                         APIRequest(ServiceType.compute, .GET, Nova.servers.itemPath(id) + "/os-volume_attachments"),
                         key: "volumeAttachments")
    }

    /// Attach a volume to a server; Nova picks the device name.
    @discardableResult
    public func attachVolume(server: String, volume: String, deleteOnTermination: Bool? = nil) async throws -> VolumeAttachment {
        var body: JSONObject = ["volumeId": .string(volume)]
        if let d = deleteOnTermination { body["delete_on_termination"] = .bool(d) }
        return try await decode(VolumeAttachment.self,
                                APIRequest(ServiceType.compute, .POST, Nova.servers.itemPath(server) + "/os-volume_attachments",
                                           body: ["volumeAttachment": .object(body)]),
                                key: "volumeAttachment")
    }

    public func detachVolume(server: String, volume: String) async throws {
        _ = try await send(APIRequest(ServiceType.compute, .DELETE,
                                      Nova.servers.itemPath(server) + "/os-volume_attachments/" + APIPath.escape(volume),
                                      acceptedStatuses: [404]))
    }

    // Flavors

    public func flavorExtraSpecs(_ id: String) async throws -> [String: String] {
        try await decode([String: String].self, APIRequest(ServiceType.compute, .GET, Nova.flavors.itemPath(id) + "/os-extra_specs"),
                         key: "extra_specs")
    }

    public func setFlavorExtraSpecs(_ id: String, _ specs: [String: String]) async throws {
        _ = try await send(APIRequest(ServiceType.compute, .POST, Nova.flavors.itemPath(id) + "/os-extra_specs",
                                      body: ["extra_specs": .object(specs.mapValues(JSONValue.string))], idempotent: true))
    }

    public func deleteFlavorExtraSpec(_ id: String, key: String) async throws {
        _ = try await send(APIRequest(ServiceType.compute, .DELETE, Nova.flavors.itemPath(id) + "/os-extra_specs/" + APIPath.escape(key),
                                      acceptedStatuses: [404]))
    }

    /// Project ids with access to a private flavor.
    public func flavorAccess(_ id: String) async throws -> [String] {
        let v = try await json(APIRequest(ServiceType.compute, .GET, Nova.flavors.itemPath(id) + "/os-flavor-access"),
                               key: "flavor_access")
        return (v.arrayValue ?? []).compactMap { $0["tenant_id"]?.stringValue }
    }

    public func addFlavorAccess(_ id: String, project: String) async throws {
        _ = try await send(APIRequest(ServiceType.compute, .POST, Nova.flavors.itemPath(id) + "/action",
                                      body: ["addTenantAccess": ["tenant": .string(project)]], idempotent: true,
                                      acceptedStatuses: [409]))
    }

    // Keypairs (listed as [{"keypair": {...}}])

    public func keypairs(userID: String? = nil) async throws -> [Keypair] {
        struct Wrapped: Decodable, Sendable { var keypair: Keypair }
        var q: [QueryItem] = []
        if let userID { q.append(QueryItem("user_id", userID)) }
        return try await list(Wrapped.self, APIRequest(ServiceType.compute, .GET, "/os-keypairs", query: q), key: "keypairs")
            .collect().map(\.keypair)
    }

    public func keypair(_ name: String, userID: String? = nil) async throws -> Keypair? {
        var q: [QueryItem] = []
        if let userID { q.append(QueryItem("user_id", userID)) }
        do {
            return try await decode(Keypair.self, APIRequest(ServiceType.compute, .GET, "/os-keypairs/" + APIPath.escape(name), query: q),
                                    key: "keypair")
        } catch let e as OpenStackError where e.isNotFound {
            return nil
        }
    }

    public func createKeypair(name: String, publicKey: String, type: String?, userID: String?) async throws -> Keypair {
        var body: JSONObject = ["name": .string(name), "public_key": .string(publicKey)]
        if let type { body["type"] = .string(type) }
        if let userID { body["user_id"] = .string(userID) }
        return try await decode(Keypair.self, APIRequest(ServiceType.compute, .POST, "/os-keypairs", body: ["keypair": .object(body)]),
                                key: "keypair")
    }

    public func deleteKeypair(_ name: String, userID: String? = nil) async throws {
        var q: [QueryItem] = []
        if let userID { q.append(QueryItem("user_id", userID)) }
        _ = try await send(APIRequest(ServiceType.compute, .DELETE, "/os-keypairs/" + APIPath.escape(name), query: q,
                                      acceptedStatuses: [404]))
    }

    /// Absolute limits and usage (cores, RAM, instances).
    public func computeLimits() async throws -> JSONValue {
        try await json(APIRequest(ServiceType.compute, .GET, "/limits"), key: "limits")
    }
}
