import OpenStack

/// Volumes of the project that no server uses (`detached_volumes.yml`,
/// `openstack.network.ServerVolume`, the reference tool's type string).
///
/// Exported with name, description, type, AZ and image metadata (`params`), size and bootable
/// (`_info`, as the reference tool has them). Import is idempotent: a destination volume with the
/// same name and size is the volume (its description, bootable flag and image metadata are
/// brought in line; a different type or zone fails), never a duplicate. Copying the data needs
/// the conversion hosts; until that path exists, import creates volumes empty only with
/// `--no-data` and says so on each item, and without it fails each volume saying why.
public enum DetachedVolumeKind: ResourceKind {
    public static let name = "detached-volumes"
    public static let fileName = "detached_volumes.yml"
    public static let typeName = "openstack.network.ServerVolume"
    public static let requiredParams = ["name"]
    public static let filterVariable = "os_migrate_detached_volumes_filter"
    public static let exportFilterVariable = "os_migrate_volumes_filter"

    /// Where created volumes go; the identity (names are mapped by the engine before).
    public static let placement = VolumePlacement.identity

    public static let dataCopyUnavailable =
        "copying volume data needs conversion hosts, which this version does not deploy yet; rerun with --no-data to create the volume empty"

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        if (record.info["size"]?.intValue ?? 0) <= 0 { out.append("_info.size is missing or not a positive integer") }
        if let m = record.params["volume_image_metadata"], !m.isNull {
            if let o = m.objectValue {
                for (k, v) in o.sorted(by: { $0.key < $1.key }) where v.stringValue == nil {
                    out.append("params.volume_image_metadata.\(k) is not a string")
                }
            } else {
                out.append("params.volume_image_metadata is not a mapping")
            }
        }
        return out
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        try await ctx.session.list(Cinder.volumes).collect()
            .filter { $0.attachments.isEmpty && !["in-use", "attaching", "detaching", "deleting", "error_deleting"].contains($0.status) }
            .map(record(from:))
    }

    static func record(from v: Volume) -> ResourceRecord {
        let meta: JSONValue = v.volumeImageMetadata.map { .object($0.mapValues(JSONValue.string)) } ?? .null
        return ResourceRecord(type: typeName, params: [
            "availability_zone": v.availabilityZone.map(JSONValue.string) ?? .null,
            "description": v.description.map(JSONValue.string) ?? .null,
            "name": .string(v.name),
            "volume_image_metadata": meta,
            "volume_type": v.volumeType.map(JSONValue.string) ?? .null,
        ], info: [
            "attachments": .array([]), "id": .string(v.id), "is_bootable": .bool(v.bootable), "size": .int(v.size),
        ])
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        let spec = try VolumeSpec(record: record)
        guard ctx.options.noData else { return .fail(reason: dataCopyUnavailable) }
        switch Volumes.match(spec, in: try await Volumes.existing(named: spec.name, ctx.session), placement: placement) {
        case .conflict(let why):
            return .fail(reason: why)
        case .found(let v, let fields):
            if fields.isEmpty { return .ok(id: v.id, note: "exists (--no-data: its data is not checked)") }
            return .update(id: v.id, fields: fields) {
                try await Volumes.reconcile(spec, try await Volumes.settle(v, ctx.session), fields: fields, ctx.session)
            }
        case .none:
            let options = try await ctx.cache.value("volume-placement") {
                let o = try await Volumes.placementOptions(ctx.session)
                return ["types": .array(o.types.map(JSONValue.string)), "zones": o.zones.map { .array($0.map(JSONValue.string)) } ?? .null]
            }
            let types = (options["types"]?.arrayValue ?? []).compactMap(\.stringValue)
            let zones = options["zones"]?.arrayValue?.compactMap(\.stringValue)
            if let problem = Volumes.placementProblem(spec, placement: placement, types: types, zones: zones) {
                return .fail(reason: problem)
            }
            return .create(detail: "empty, \(spec.size) GiB: --no-data, its data was not copied") {
                try await Volumes.create(spec, ctx.session, placement: placement).id
            }
        }
    }
}
