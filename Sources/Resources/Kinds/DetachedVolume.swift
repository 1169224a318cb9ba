import OpenStack

/// Volumes of the project that no server uses (`detached_volumes.yml`,
/// `openstack.network.ServerVolume`, the reference tool's type string).
///
/// Exported with name, description, type, AZ and image metadata (`params`), size and bootable
/// (`_info`, as the reference tool has them). Import is idempotent: a destination volume with the
/// same name and size is the volume (its description, bootable flag and image metadata are
/// brought in line; a different type or zone fails), never a duplicate. The data moves through
/// the conversion hosts with the data plane (verified; the digest and the source volume id are
/// recorded in the destination volume's metadata, so a rerun knows the copy is done, and a copy
/// interrupted by a kill resumes). `--no-data` creates volumes empty and says so on each item.
public enum DetachedVolumeKind: ResourceKind {
    public static let name = "detached-volumes"
    public static let fileName = "detached_volumes.yml"
    public static let typeName = "openstack.network.ServerVolume"
    public static let requiredParams = ["name"]
    public static let filterVariable = "os_migrate_detached_volumes_filter"
    public static let exportFilterVariable = "os_migrate_volumes_filter"
    public static let nameParams: [String: RefType] = ["availability_zone": .availabilityZone, "volume_type": .volumeType]

    /// Where created volumes go; the identity (names are mapped by the engine before).
    public static let placement = VolumePlacement.identity

    public static let dataCopyUnavailable =
        "copying volume data needs the conversion hosts (`os-migrate conversion-hosts deploy`); or pass --no-data to create the volume empty"

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
        let copier = ctx.options.volumeCopier
        guard ctx.options.noData || copier != nil else { return .fail(reason: dataCopyUnavailable) }
        let source = record.id ?? ""
        switch Volumes.match(spec, in: try await Volumes.existing(named: spec.name, ctx.session), placement: placement) {
        case .conflict(let why):
            return .fail(reason: why)
        case .found(let v, let differing):
            var fields = differing
            if let copier, !Volumes.holdsVerifiedCopy(v, of: source) {
                // Created by an interrupted run, or empty by --no-data (both carry our source key):
                // copy into it (a resumed copy moves only the rest). Any other volume of that name is
                // someone's data, never overwritten.
                guard let owner = v.metadata?[Volumes.sourceKey] else {
                    return .fail(reason: "volume \(v.id) named '\(spec.name)' exists in the destination but was not created by os-migrate "
                        + "(no \(Volumes.sourceKey) metadata): copying would overwrite its data; delete or rename it")
                }
                guard owner == source else {
                    return .fail(reason: "volume \(v.id) named '\(spec.name)' holds the copy of another source volume (\(owner))")
                }
                if v.attachments.contains(where: { $0.serverID != copier.destinationHostServerID }) {
                    return .fail(reason: "volume \(v.id) named '\(spec.name)' exists without a verified copy and is attached: detach it or delete it")
                }
                fields.append("data")
                return .update(id: v.id, fields: fields) {
                    let settled = try await Volumes.settle(v, ctx.session)
                    try await Volumes.reconcile(spec, settled, fields: differing, ctx.session)
                    _ = try await copier.copy(sourceVolume: source, into: v.id, label: spec.name)
                }
            }
            if fields.isEmpty {
                return .ok(id: v.id, note: copier == nil ? "exists (--no-data: its data is not checked)" : "exists with its verified data")
            }
            return .update(id: v.id, fields: differing) {
                try await Volumes.reconcile(spec, try await Volumes.settle(v, ctx.session), fields: differing, ctx.session)
            }
        case .none:
            let options = try await ctx.cache.value("volume-placement") {
                let o = try await Volumes.placementOptions(ctx.session)
                return ["types": .array(o.types.map(JSONValue.string)), "zones": o.zones.map { .array($0.map(JSONValue.string)) } ?? .null]
            }
            var types = (options["types"]?.arrayValue ?? []).compactMap(\.stringValue)
            // A type the volume-types kind creates in this run (or would, in a dry run) is there.
            if let t = placement.volumeType(spec.volumeType), !types.contains(t),
               try await ctx.resolver.exists(.volumeType, Reference(name: t))
            {
                types.append(t)
            }
            let zones = options["zones"]?.arrayValue?.compactMap(\.stringValue)
            if let problem = Volumes.placementProblem(spec, placement: placement, types: types, zones: zones) {
                return .fail(reason: problem)
            }
            guard let copier else {
                return .create(detail: "empty, \(spec.size) GiB: --no-data, its data was not copied") {
                    try await Volumes.create(spec, ctx.session, placement: placement, metadata: [Volumes.sourceKey: source]).id
                }
            }
            return .create(detail: "\(spec.size) GiB, data copied and verified") {
                let v = try await Volumes.create(spec, ctx.session, placement: placement, metadata: [Volumes.sourceKey: source])
                do {
                    _ = try await copier.copy(sourceVolume: source, into: v.id, label: spec.name)
                } catch {
                    // Nothing half-made stays behind: the next run starts this volume again.
                    try? await ctx.session.delete(Cinder.volumes, v.id)
                    throw error
                }
                return v.id
            }
        }
    }
}
