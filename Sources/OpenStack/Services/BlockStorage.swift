import Foundation

// Cinder (block-storage v3, microversioned) models and calls.

public struct VolumeAttachmentInfo: Codable, Sendable, Hashable {
    public var id: String?
    public var attachmentID: String?
    public var serverID: String?
    public var hostName: String?
    public var device: String?
    public var volumeID: String?
    public var attachedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, device
        case attachmentID = "attachment_id", serverID = "server_id", hostName = "host_name", volumeID = "volume_id"
        case attachedAt = "attached_at"
    }
}

public struct Volume: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var size: Int
    public var status: String
    public var volumeType: String?
    public var availabilityZone: String?
    public var bootable: Bool
    public var attachments: [VolumeAttachmentInfo]
    public var volumeImageMetadata: [String: String]?
    public var metadata: [String: String]?
    public var snapshotID: String?
    public var sourceVolumeID: String?
    public var projectID: String?
    public var multiattach: Bool?
    public var encrypted: Bool?
    public var createdAt: String?
    public var updatedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, name, description, size, status, bootable, attachments, metadata, multiattach, encrypted
        case volumeType = "volume_type", availabilityZone = "availability_zone"
        case volumeImageMetadata = "volume_image_metadata", snapshotID = "snapshot_id", sourceVolumeID = "source_volid"
        case projectID = "os-vol-tenant-attr:tenant_id", createdAt = "created_at", updatedAt = "updated_at"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        description = try c.decodeIfPresent(String.self, forKey: .description)
        size = try c.decode(Int.self, forKey: .size)
        status = try c.decode(String.self, forKey: .status)
        volumeType = try c.decodeIfPresent(String.self, forKey: .volumeType)
        availabilityZone = try c.decodeIfPresent(String.self, forKey: .availabilityZone)
        // Cinder says "true"/"false" as strings.
        if let s = try? c.decodeIfPresent(String.self, forKey: .bootable) {
            bootable = s.lowercased() == "true"
        } else {
            bootable = (try? c.decodeIfPresent(Bool.self, forKey: .bootable)) ?? false
        }
        attachments = try c.decodeIfPresent([VolumeAttachmentInfo].self, forKey: .attachments) ?? []
        volumeImageMetadata = try c.decodeIfPresent([String: String].self, forKey: .volumeImageMetadata)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
        snapshotID = try c.decodeIfPresent(String.self, forKey: .snapshotID)
        sourceVolumeID = try c.decodeIfPresent(String.self, forKey: .sourceVolumeID)
        projectID = try c.decodeIfPresent(String.self, forKey: .projectID)
        multiattach = try c.decodeIfPresent(Bool.self, forKey: .multiattach)
        encrypted = try c.decodeIfPresent(Bool.self, forKey: .encrypted)
        createdAt = try c.decodeIfPresent(String.self, forKey: .createdAt)
        updatedAt = try c.decodeIfPresent(String.self, forKey: .updatedAt)
    }
}

public struct VolumeSnapshot: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var status: String
    public var volumeID: String
    public var size: Int
    public var description: String?
    public var metadata: [String: String]?
    public var createdAt: String?

    enum CodingKeys: String, CodingKey {
        case id, name, status, size, description, metadata
        case volumeID = "volume_id", createdAt = "created_at"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        status = try c.decode(String.self, forKey: .status)
        volumeID = try c.decode(String.self, forKey: .volumeID)
        size = try c.decode(Int.self, forKey: .size)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
        createdAt = try c.decodeIfPresent(String.self, forKey: .createdAt)
    }
}

public struct VolumeType: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var isPublic: Bool?
    enum CodingKeys: String, CodingKey {
        case id, name, description
        case isPublic = "os-volume-type-access:is_public"
    }
}

public enum Cinder {
    public static let volumes = APICollection<Volume>(service: ServiceType.blockStorage, path: "/volumes", listPath: "/volumes/detail",
                                                      singular: "volume", plural: "volumes")
    public static let snapshots = APICollection<VolumeSnapshot>(service: ServiceType.blockStorage, path: "/snapshots",
                                                                listPath: "/snapshots/detail", singular: "snapshot", plural: "snapshots")
    public static let types = APICollection<VolumeType>(service: ServiceType.blockStorage, path: "/types", singular: "volume_type",
                                                        plural: "volume_types")
}

extension CloudSession {
    @discardableResult
    public func volumeAction(_ id: String, _ action: String, _ body: JSONValue, idempotent: Bool = true) async throws -> HTTPResult {
        try await send(APIRequest(ServiceType.blockStorage, .POST, Cinder.volumes.itemPath(id) + "/action", body: [action: body],
                                  idempotent: idempotent))
    }

    public func setVolumeBootable(_ id: String, _ bootable: Bool) async throws {
        try await volumeAction(id, "os-set_bootable", ["bootable": .bool(bootable)])
    }

    public func setVolumeImageMetadata(_ id: String, _ metadata: [String: String]) async throws {
        guard !metadata.isEmpty else { return }
        try await volumeAction(id, "os-set_image_metadata", ["metadata": .object(metadata.mapValues(JSONValue.string))])
    }

    /// Merge keys into a volume's metadata.
    public func setVolumeMetadata(_ id: String, _ metadata: [String: String]) async throws {
        _ = try await send(APIRequest(ServiceType.blockStorage, .POST, Cinder.volumes.itemPath(id) + "/metadata",
                                      body: ["metadata": .object(metadata.mapValues(JSONValue.string))], idempotent: true))
    }

    public func blockStorageLimits() async throws -> JSONValue {
        try await json(APIRequest(ServiceType.blockStorage, .GET, "/limits"), key: "limits")
    }
}
