import Foundation
import OpenStack

/// What a destination volume must be, from a `openstack.network.ServerVolume` record (detached
/// volumes, and the volumes nested in a workload): name, description, type, AZ and image
/// metadata from `params`; size and bootable from `_info`, where the reference tool keeps them.
public struct VolumeSpec: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var size: Int
    public var volumeType: String?
    public var availabilityZone: String?
    public var bootable: Bool
    public var imageMetadata: [String: String]?

    public init(name: String, description: String? = nil, size: Int, volumeType: String? = nil, availabilityZone: String? = nil,
                bootable: Bool = false, imageMetadata: [String: String]? = nil)
    {
        self.name = name
        self.description = description
        self.size = size
        self.volumeType = volumeType
        self.availabilityZone = availabilityZone
        self.bootable = bootable
        self.imageMetadata = imageMetadata
    }

    public init(record: ResourceRecord) throws {
        guard let name = record.name, !name.isEmpty else { throw ReferenceError("params.name is missing") }
        guard let size = record.info["size"]?.intValue, size > 0 else { throw ReferenceError("_info.size is missing or not a positive integer") }
        self.init(name: name, description: record.params["description"]?.stringValue, size: size,
                  volumeType: record.params["volume_type"]?.stringValue, availabilityZone: record.params["availability_zone"]?.stringValue,
                  bootable: record.info["is_bootable"]?.boolValue ?? false,
                  imageMetadata: record.params["volume_image_metadata"]?.objectValue?.compactMapValues { $0.stringValue ?? $0.jsonString() })
    }
}

/// How source placement maps to the destination; the identity unless the caller says otherwise
/// (the engine's `--map-name volume-type:...` / `availability-zone:...` have already renamed
/// the params by then).
public struct VolumePlacement: Sendable {
    public var volumeType: @Sendable (String?) -> String?
    public var availabilityZone: @Sendable (String?) -> String?

    public init(volumeType: @escaping @Sendable (String?) -> String? = { $0 },
                availabilityZone: @escaping @Sendable (String?) -> String? = { $0 })
    {
        self.volumeType = volumeType
        self.availabilityZone = availabilityZone
    }

    public static let identity = VolumePlacement()
}

/// The data-independent part of migrating a volume: find it in the destination, decide whether
/// it is the one, create it with its placement and metadata, bring its metadata in line. The data
/// path (conversion hosts, data plane) builds on these.
public enum Volumes {
    /// What the destination has for a spec.
    public enum Match: Sendable {
        case none
        /// The volume (by name and size); `fields` its metadata differences.
        case found(Volume, fields: [String])
        /// Something by that name that cannot be it: the reason, one line.
        case conflict(String)
    }

    /// The destination project's volumes named `name`.
    public static func existing(named name: String, _ session: CloudSession) async throws -> [Volume] {
        try await session.named(Cinder.volumes, name)
    }

    public static func match(_ spec: VolumeSpec, in volumes: [Volume], placement: VolumePlacement = .identity) -> Match {
        let live = volumes.filter { !["deleting", "error_deleting"].contains($0.status) }
        if live.isEmpty { return .none }
        let sized = live.filter { $0.size == spec.size }
        if sized.count > 1 { return .conflict("\(sized.count) volumes named '\(spec.name)' of \(spec.size) GiB in the destination project") }
        guard let v = sized.first else {
            return .conflict("a volume named '\(spec.name)' exists in the destination with size \(live.map { "\($0.size)" }.joined(separator: ", ")) GiB, the file says \(spec.size) GiB")
        }
        if v.status.hasPrefix("error") { return .conflict("volume \(v.id) named '\(spec.name)' is in status \(v.status): delete it to have it created again") }
        var fixed: [String] = []
        if let t = placement.volumeType(spec.volumeType), let cur = v.volumeType, t != cur {
            fixed.append("volume_type (destination \(cur), file \(t))")
        }
        if let z = placement.availabilityZone(spec.availabilityZone), let cur = v.availabilityZone, z != cur {
            fixed.append("availability_zone (destination \(cur), file \(z))")
        }
        if !fixed.isEmpty { return .conflict("volume \(v.id) differs in fields that cannot change: " + fixed.joined(separator: ", ")) }
        return .found(v, fields: differences(spec, v))
    }

    /// Metadata that differs and can be set: description, bootable, image metadata (keys the spec has).
    public static func differences(_ spec: VolumeSpec, _ v: Volume) -> [String] {
        var out: [String] = []
        if (spec.description ?? "") != (v.description ?? "") { out.append("description") }
        if spec.bootable != v.bootable { out.append("is_bootable") }
        if let meta = spec.imageMetadata, meta.contains(where: { v.volumeImageMetadata?[$0.key] != $0.value }) {
            out.append("volume_image_metadata")
        }
        return out
    }

    /// Set what `differences` found.
    public static func reconcile(_ spec: VolumeSpec, _ v: Volume, fields: [String], _ session: CloudSession) async throws {
        if fields.contains("description") {
            _ = try await session.update(Cinder.volumes, v.id, ["description": spec.description.map(JSONValue.string) ?? .null])
        }
        if fields.contains("is_bootable") { try await session.setVolumeBootable(v.id, spec.bootable) }
        if fields.contains("volume_image_metadata"), let meta = spec.imageMetadata {
            try await session.setVolumeImageMetadata(v.id, meta.filter { v.volumeImageMetadata?[$0.key] != $0.value })
        }
    }

    /// The options that map volume types and zones, as the calling command spells them.
    public struct MapOptions: Sendable {
        public var volumeType: String
        public var availabilityZone: String
        public init(volumeType: String, availabilityZone: String) {
            self.volumeType = volumeType
            self.availabilityZone = availabilityZone
        }

        public static let mapName = MapOptions(volumeType: "--map-name volume-type:SOURCE=DESTINATION",
                                               availabilityZone: "--map-name availability-zone:SOURCE=DESTINATION")
        public static let workloads = MapOptions(volumeType: "--map-volume-type SOURCE=DESTINATION", availabilityZone: "--map-az SOURCE=DESTINATION")
    }

    /// Checks before creating: the mapped type and zone exist in the destination. One line, or nil.
    public static func placementProblem(_ spec: VolumeSpec, placement: VolumePlacement = .identity, types: [String], zones: [String]?,
                                        mapOptions: MapOptions = .mapName) -> String?
    {
        if let t = placement.volumeType(spec.volumeType), !types.contains(t) {
            return "volume type '\(t)' does not exist in the destination (known: \(types.sorted().joined(separator: ", "))); map it with \(mapOptions.volumeType)"
        }
        if let z = placement.availabilityZone(spec.availabilityZone), let zones, !zones.contains(z) {
            return "availability zone '\(z)' does not exist in the destination (known: \(zones.sorted().joined(separator: ", "))); map it with \(mapOptions.availabilityZone)"
        }
        return nil
    }

    /// Volume type names and available zones of the destination.
    public static func placementOptions(_ session: CloudSession) async throws -> (types: [String], zones: [String]?) {
        let types = try await session.list(Cinder.types).collect().map(\.name)
        var zones: [String]? = nil
        if let v = try? await session.json(APIRequest(ServiceType.blockStorage, .GET, "/os-availability-zone"), key: "availabilityZoneInfo") {
            zones = (v.arrayValue ?? []).filter { $0["zoneState"]?["available"]?.boolValue != false }.compactMap { $0["zoneName"]?.stringValue }
        }
        return (types, zones)
    }

    /// Create an empty volume, wait until it is available, then set bootable and image metadata.
    /// A volume that ends in error is deleted and the error thrown.
    public static func create(_ spec: VolumeSpec, _ session: CloudSession, placement: VolumePlacement = .identity,
                              metadata: [String: String] = [:], timeout: Double = 600) async throws -> Volume
    {
        var body: JSONObject = ["name": .string(spec.name), "size": .int(spec.size)]
        if !metadata.isEmpty { body["metadata"] = .object(metadata.mapValues(JSONValue.string)) }
        if let d = spec.description { body["description"] = .string(d) }
        if let t = placement.volumeType(spec.volumeType) { body["volume_type"] = .string(t) }
        if let z = placement.availabilityZone(spec.availabilityZone) { body["availability_zone"] = .string(z) }
        let created = try await session.create(Cinder.volumes, body)
        KillPoint.reached("volume-created")
        let volume: Volume
        do {
            volume = try await Waiter.wait("volume \(created.id)", service: ServiceType.blockStorage, timeout: timeout, interval: 2,
                                           until: ["available"], fetch: { try await session.find(Cinder.volumes, id: created.id) },
                                           status: { $0.status })
        } catch {
            try? await session.delete(Cinder.volumes, created.id)
            throw error
        }
        if spec.bootable { try await session.setVolumeBootable(volume.id, true) }
        if let meta = spec.imageMetadata, !meta.isEmpty { try await session.setVolumeImageMetadata(volume.id, meta) }
        return try await session.get(Cinder.volumes, volume.id)
    }

    /// Wait for a volume someone (an interrupted run) is still creating.
    public static func settle(_ v: Volume, _ session: CloudSession, timeout: Double = 600) async throws -> Volume {
        guard ["creating", "downloading"].contains(v.status) else { return v }
        return try await Waiter.wait("volume \(v.id)", service: ServiceType.blockStorage, timeout: timeout, interval: 2,
                                     until: ["available", "in-use"], fetch: { try await session.find(Cinder.volumes, id: v.id) },
                                     status: { $0.status })
    }
}

/// Copies a source volume's data into a destination volume of the same size, verified. The
/// Workloads module implements it with the conversion hosts and the data plane.
public protocol VolumeDataCopier: Sendable {
    /// Returns the verified digest; a rerun against the same pair moves only what differs.
    func copy(sourceVolume: String, into destinationVolume: String, label: String) async throws -> String
    /// The server destination volumes are attached to while they are written (an interrupted
    /// copy leaves them there; the next one takes them over).
    var destinationHostServerID: String? { get }
}

extension Volumes {
    /// Metadata that ties a destination volume to its source and records its verified copy.
    public static let sourceKey = "os_migrate_source_volume"
    public static let digestKey = "os_migrate_digest"

    /// Does this destination volume hold the verified data of `source`?
    public static func holdsVerifiedCopy(_ v: Volume, of source: String) -> Bool {
        v.metadata?[sourceKey] == source && (v.metadata?[digestKey]?.isEmpty == false)
    }

    /// Record a verified copy in the destination volume's metadata (what `holdsVerifiedCopy` reads).
    public static func recordVerifiedCopy(_ session: CloudSession, volume: String, digest: String) async throws {
        try await session.setVolumeMetadata(volume, [digestKey: "osm-sha256-chunked:" + digest])
    }
}
