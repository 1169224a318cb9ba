import Foundation

// Glance (image v2) model and calls. Glance puts custom properties at the top level of an
// image, so the model keeps every key it does not know in `properties`.

public struct Image: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var status: String
    public var visibility: String?
    public var isProtected: Bool?
    public var isHidden: Bool?
    public var checksum: String?
    public var hashAlgo: String?
    public var hashValue: String?
    public var size: Int64?
    public var virtualSize: Int64?
    public var containerFormat: String?
    public var diskFormat: String?
    public var minDisk: Int?
    public var minRAM: Int?
    public var owner: String?
    public var tags: [String]
    public var createdAt: String?
    public var updatedAt: String?
    /// Every other key: custom and well-known properties (hw_disk_bus, os_distro, kernel_id...).
    public var properties: JSONObject

    /// Keys Glance manages itself or that are modelled above.
    public static let coreKeys: Set<String> = [
        "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value",
        "size", "virtual_size", "container_format", "disk_format", "min_disk", "min_ram", "owner", "tags",
        "created_at", "updated_at", "file", "schema", "self", "direct_url", "locations", "stores",
    ]

    public init(from decoder: any Decoder) throws {
        let all = try JSONValue(from: decoder).objectValue ?? [:]
        guard let id = all["id"]?.stringValue else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "image without id"))
        }
        self.id = id
        name = all["name"]?.stringValue ?? ""
        status = all["status"]?.stringValue ?? "unknown"
        visibility = all["visibility"]?.stringValue
        isProtected = all["protected"]?.boolValue
        isHidden = all["os_hidden"]?.boolValue
        checksum = all["checksum"]?.stringValue
        hashAlgo = all["os_hash_algo"]?.stringValue
        hashValue = all["os_hash_value"]?.stringValue
        size = all["size"]?.intValue.map(Int64.init)
        virtualSize = all["virtual_size"]?.intValue.map(Int64.init)
        containerFormat = all["container_format"]?.stringValue
        diskFormat = all["disk_format"]?.stringValue
        minDisk = all["min_disk"]?.intValue
        minRAM = all["min_ram"]?.intValue
        owner = all["owner"]?.stringValue
        tags = (all["tags"]?.arrayValue ?? []).compactMap(\.stringValue)
        createdAt = all["created_at"]?.stringValue
        updatedAt = all["updated_at"]?.stringValue
        properties = all.filter { !Self.coreKeys.contains($0.key) && !$0.key.hasPrefix("os_glance_") }
    }

    public func encode(to encoder: any Encoder) throws {
        var o = properties
        o["id"] = .string(id)
        o["name"] = .string(name)
        o["status"] = .string(status)
        if let visibility { o["visibility"] = .string(visibility) }
        if let checksum { o["checksum"] = .string(checksum) }
        if let size { o["size"] = .int(Int(size)) }
        if let owner { o["owner"] = .string(owner) }
        o["tags"] = .array(tags.map(JSONValue.string))
        try JSONValue.object(o).encode(to: encoder)
    }
}

public enum Glance {
    /// Glance bodies are not wrapped; the generic create/update do not apply.
    public static let images = APICollection<Image>(service: ServiceType.image, path: "/images", singular: "image", plural: "images")
}

extension CloudSession {
    public func image(_ id: String) async throws -> Image {
        try await decode(Image.self, APIRequest(ServiceType.image, .GET, Glance.images.itemPath(id)))
    }

    public func findImage(id: String) async throws -> Image? {
        do { return try await image(id) } catch let e as OpenStackError where e.isNotFound { return nil }
    }

    /// Create an image record (no data yet).
    public func createImage(_ attributes: JSONObject) async throws -> Image {
        try await decode(Image.self, APIRequest(ServiceType.image, .POST, "/images", body: .object(attributes)))
    }

    /// Apply a JSON patch (RFC 6902 operations) to an image's metadata.
    public func patchImage(_ id: String, _ operations: [JSONValue]) async throws -> Image {
        try await decode(Image.self, APIRequest(ServiceType.image, .PATCH, Glance.images.itemPath(id), body: .array(operations),
                                                headers: ["Content-Type": "application/openstack-images-v2.1-json-patch"],
                                                idempotent: true))
    }

    public func deleteImage(_ id: String) async throws {
        _ = try await send(APIRequest(ServiceType.image, .DELETE, Glance.images.itemPath(id), acceptedStatuses: [404]))
    }
}
