import Foundation
import OpenStack

/// Glance images (`images.yml`, `openstack.image.Image`): the project's own images, their
/// metadata and their data.
///
/// Params keep the reference tool's 46 keys (its openstacksdk attribute names, e.g. `is_protected`
/// for `protected`, `needs_config_drive` for `img_config_drive`; every other property in
/// `properties`), plus `tags`. `hash_algo`/`hash_value` and `_info.checksum`/`size` describe the
/// data and are what import verifies against.
///
/// Data moves from the source Glance to the destination Glance as a stream: never on the
/// migrator's disk, never whole in memory, hashed (MD5 and SHA-512) on the way and checked against
/// the source's and the destination's checksums. With `--image-blobs-dir`, export writes the data
/// to files and import reads them (the reference tool's mode, for moves without a path between
/// the clouds). A new image gets `protected` only once its data is verified, so a failed upload
/// can always be deleted.
///
/// In the destination project, an active image of that name with the same data is `ok` (metadata
/// reconciled); an image of that name that is not active (an upload a killed run left `queued`
/// or `saving`) is replaced; an active one with other data is someone's image, never deleted
/// (`failed`), nor is a protected one.
/// A source image without data (a snapshot that stayed `queued`) is exported as metadata only
/// and skipped at import.
public enum ImageKind: ResourceKind {
    public static let name = "images"
    public static let fileName = "images.yml"
    public static let typeName = "openstack.image.Image"
    public static let refType: RefType? = .image
    /// Formats are checked in `validate`: a snapshot that never got data has none.
    public static let requiredParams = ["name"]
    public static let filterVariable = "os_migrate_images_filter"

    enum Conversion { case string, int, bool, float }

    /// Param, Glance key, how the reference tool (openstacksdk) types it. Core attributes (typed
    /// by Glance itself) and well-known properties (strings in Glance).
    static let fields: [(param: String, key: String, conv: Conversion, core: Bool)] = [
        ("architecture", "architecture", .string, false),
        ("container_format", "container_format", .string, true),
        ("disk_format", "disk_format", .string, true),
        ("has_auto_disk_config", "auto_disk_config", .string, false),
        ("hash_algo", "os_hash_algo", .string, true),
        ("hash_value", "os_hash_value", .string, true),
        ("hw_cpu_cores", "hw_cpu_cores", .int, false),
        ("hw_cpu_policy", "hw_cpu_policy", .string, false),
        ("hw_cpu_sockets", "hw_cpu_sockets", .int, false),
        ("hw_cpu_thread_policy", "hw_cpu_thread_policy", .string, false),
        ("hw_cpu_threads", "hw_cpu_threads", .int, false),
        ("hw_disk_bus", "hw_disk_bus", .string, false),
        ("hw_machine_type", "hw_machine_type", .string, false),
        ("hw_qemu_guest_agent", "hw_qemu_guest_agent", .string, false),
        ("hw_rng_model", "hw_rng_model", .string, false),
        ("hw_scsi_model", "hw_scsi_model", .string, false),
        ("hw_serial_port_count", "hw_serial_port_count", .int, false),
        ("hw_video_model", "hw_video_model", .string, false),
        ("hw_video_ram", "hw_video_ram", .int, false),
        ("hw_vif_model", "hw_vif_model", .string, false),
        ("hw_watchdog_action", "hw_watchdog_action", .string, false),
        ("hypervisor_type", "hypervisor_type", .string, false),
        ("instance_type_rxtx_factor", "instance_type_rxtx_factor", .float, false),
        ("is_hidden", "os_hidden", .bool, true),
        ("is_hw_boot_menu_enabled", "hw_boot_menu", .bool, false),
        ("is_hw_vif_multiqueue_enabled", "hw_vif_multiqueue_enabled", .bool, false),
        ("is_protected", "protected", .bool, true),
        ("min_disk", "min_disk", .int, true),
        ("min_ram", "min_ram", .int, true),
        ("name", "name", .string, true),
        ("needs_config_drive", "img_config_drive", .string, false),
        ("needs_secure_boot", "os_secure_boot", .string, false),
        ("os_admin_user", "os_admin_user", .string, false),
        ("os_command_line", "os_command_line", .string, false),
        ("os_distro", "os_distro", .string, false),
        ("os_require_quiesce", "os_require_quiesce", .bool, false),
        ("os_shutdown_timeout", "os_shutdown_timeout", .int, false),
        ("os_type", "os_type", .string, false),
        ("os_version", "os_version", .string, false),
        ("visibility", "visibility", .string, true),
        ("vm_mode", "vm_mode", .string, false),
        ("vmware_adaptertype", "vmware_adaptertype", .string, false),
        ("vmware_ostype", "vmware_ostype", .string, false),
    ]

    /// Glance keys that are openstacksdk attributes outside params (in `_info`, or not exported),
    /// or that Glance manages: never in `properties`.
    static let nonProperties: Set<String> = Set(fields.map(\.key)).union([
        "checksum", "created_at", "direct_url", "file", "id", "instance_uuid", "kernel_id", "locations", "metadata", "owner",
        "ramdisk_id", "schema", "self", "size", "status", "store", "stores", "tags", "updated_at", "url", "virtual_size",
        "location", "properties",
    ])

    static let info: [(key: String, api: String)] = [
        ("checksum", "checksum"), ("created_at", "created_at"), ("direct_url", "direct_url"), ("file", "file"), ("id", "id"),
        ("instance_uuid", "instance_uuid"), ("kernel_id", "kernel_id"), ("locations", "locations"), ("metadata", "metadata"),
        ("owner_id", "owner"), ("ramdisk_id", "ramdisk_id"), ("schema", "schema"), ("size", "size"), ("status", "status"),
        ("store", "store"), ("updated_at", "updated_at"), ("url", "url"), ("virtual_size", "virtual_size"),
    ]

    /// Params fixed once an image has data.
    static let immutable: Set<String> = ["container_format", "disk_format"]
    /// Params that describe the data, not compared as metadata.
    static let dataParams: Set<String> = ["hash_algo", "hash_value"]

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        ["kernel_ref", "ramdisk_ref"].compactMap { p in
            Reference(record.params[p]).map { FieldReference(field: "params.\(p)", type: .image, ref: $0) }
        }
    }

    /// Glance's formats (its defaults for `disk_formats` and `container_formats`) and limits.
    public static let valueRules: [String: ValueRule] = [
        "disk_format": .oneOf(["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]),
        "container_format": .oneOf(["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]),
        "min_disk": .int(0...2_147_483_647), "min_ram": .int(0...2_147_483_647),
        "os_distro": .string(max: 255, line: true), "os_version": .string(max: 255, line: true),
        "architecture": .string(max: 255, line: true),
    ]

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        for key in ["container_format", "disk_format"] {
            if record.params[key] == nil {
                out.append("params.\(key) is missing")
            } else if record.params[key]?.isNull == true, record.info["status"]?.stringValue == "active" {
                out.append("params.\(key) is null")
            }
        }
        if let v = record.params["visibility"]?.stringValue, !["public", "private", "shared", "community"].contains(v) {
            out.append("params.visibility '\(v)' is not public, private, shared or community")
        }
        if let p = record.params["properties"], !p.isNull, p.objectValue == nil { out.append("params.properties is not a mapping") }
        for key in (record.params["properties"]?.objectValue ?? [:]).keys.sorted() where key.hasPrefix("os_glance_") {
            out.append("params.properties.\(key) is reserved by Glance")
        }
        if let s = record.info["size"], !s.isNull, (s.intValue ?? -1) < 0 { out.append("_info.size is not a non-negative integer") }
        return out
    }

    /// Kernels and ramdisks before the images that boot with them.
    public static func importOrder(_ records: [ResourceRecord]) -> [ResourceRecord] {
        records.filter { references($0).isEmpty } + records.filter { !references($0).isEmpty }
    }

    // MARK: conversion

    static func typed(_ v: JSONValue?, _ conv: Conversion) -> JSONValue {
        guard let v, !v.isNull else { return .null }
        switch conv {
        case .string: return v.stringValue.map(JSONValue.string) ?? .string(plain(v))
        case .int:
            if let i = v.intValue { return .int(i) }
            if let s = v.stringValue, let i = Int(s.trimmingCharacters(in: .whitespaces)) { return .int(i) }
            return v
        case .float:
            if let d = v.doubleValue { return .double(d) }
            if let s = v.stringValue, let d = Double(s.trimmingCharacters(in: .whitespaces)) { return .double(d) }
            return v
        case .bool:
            if let b = v.boolValue { return .bool(b) }
            if let s = v.stringValue?.lowercased() {
                if ["true", "yes", "1", "on", "y", "t"].contains(s) { return .bool(true) }
                if ["false", "no", "0", "off", "n", "f"].contains(s) { return .bool(false) }
            }
            return v
        }
    }

    /// A property value as Glance stores it: a string.
    static func plain(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e15 ? String(format: "%.1f", d) : "\(d)"
        case .null: return ""
        default: return v.jsonString()
        }
    }

    /// Params of a Glance image as the reference tool writes them (refs resolved by `refs`).
    static func params(from image: JSONObject, refs: ReferenceBuilder) async throws -> JSONObject {
        var p: JSONObject = [:]
        for f in fields { p[f.param] = typed(image[f.key], f.conv) }
        var props: JSONObject = [:]
        for (k, v) in image where !nonProperties.contains(k) && !k.hasPrefix("os_glance_") { props[k] = v }
        p["properties"] = .object(props)
        p["tags"] = FieldMap.sortedList(image["tags"] ?? .array([]))
        p["kernel_ref"] = try await refs.ref(.image, id: image["kernel_id"]?.stringValue)
        p["ramdisk_ref"] = try await refs.ref(.image, id: image["ramdisk_id"]?.stringValue)
        return p
    }

    static func record(from image: JSONObject, refs: ReferenceBuilder) async throws -> ResourceRecord {
        var info: JSONObject = [:]
        for i in Self.info { info[i.key] = image[i.api] ?? .null }
        return ResourceRecord(type: typeName, params: try await params(from: image, refs: refs), info: info)
    }

    // MARK: export

    /// A project's images, hidden ones included.
    static func projectImages(_ session: CloudSession, project: String, name: String? = nil) async throws -> [JSONObject] {
        var out: [JSONObject] = []
        var seen = Set<String>()
        for hidden in [false, true] {
            var q = [QueryItem("owner", project), QueryItem("visibility", "all")]
            if hidden { q.append(QueryItem("os_hidden", "true")) }
            if let name { q.append(QueryItem("name", name)) }
            for v in try await session.list(JSONValue.self, APIRequest(ServiceType.image, .GET, "/images", query: q), key: "images").collect() {
                guard let o = v.objectValue, let id = o["id"]?.stringValue, o["owner"]?.stringValue == project,
                      seen.insert(id).inserted else { continue }
                out.append(o)
            }
        }
        return out
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let images = try await projectImages(ctx.session, project: ctx.projectID)
            .filter { !["deleted", "pending_delete"].contains($0["status"]?.stringValue ?? "") }
        return try await boundedMap(images, limit: 8) { try await record(from: $0, refs: ctx.refs) }
    }

    /// The file for an image's data in a blobs directory: `<id>-<name>`, as the reference tool
    /// names it ('/' in names replaced).
    public static func blobPath(_ dir: String, id: String, name: String) -> String {
        (dir as NSString).appendingPathComponent("\(id)-\(name.replacingOccurrences(of: "/", with: "_"))")
    }

    /// With `--image-blobs-dir`: each exported image's data into the directory, verified, unless a
    /// complete file is already there.
    public static func afterExport(_ records: [ResourceRecord], _ ctx: ExportContext) async -> [ItemResult] {
        guard let dir = ctx.options.imageBlobsDir else { return [] }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        } catch {
            return [ItemResult(kind: name, name: dir, status: .failed, message: "cannot create the blobs directory: \(error)")]
        }
        return (try? await boundedMap(records, limit: 3) { record in await exportBlob(record, dir: dir, ctx) }) ?? []
    }

    static func exportBlob(_ record: ResourceRecord, dir: String, _ ctx: ExportContext) async -> ItemResult {
        let label = label(record)
        guard let id = record.id, let n = record.name else {
            return ItemResult(kind: name, name: label, status: .failed, message: "no _info.id or params.name")
        }
        let status = record.info["status"]?.stringValue ?? "unknown"
        guard status == "active", let size = record.info["size"]?.intValue else {
            return ItemResult(kind: name, name: label, status: .skipped, message: "no data (status \(status)): metadata only", id: id)
        }
        let path = blobPath(dir, id: id, name: n)
        if let attrs = try? FileManager.default.attributesOfItem(atPath: path), (attrs[.size] as? NSNumber)?.int64Value == Int64(size) {
            return ItemResult(kind: name, name: label, status: .ok, message: "data already in \(path)", id: id)
        }
        do {
            let meter = meter(label, phase: "download", total: Int64(size), ctx.progress)
            let t = try await ctx.session.downloadImageData(id, to: path, progress: meter)
            if let problem = mismatch(t.digests, md5: record.info["checksum"]?.stringValue, algo: record.params["hash_algo"]?.stringValue,
                                      hash: record.params["hash_value"]?.stringValue, size: Int64(size), what: "the source's")
            {
                try? FileManager.default.removeItem(atPath: path)
                return ItemResult(kind: name, name: label, status: .failed, message: "download: \(problem)", id: id)
            }
            return ItemResult(kind: name, name: label, status: .changed, message: "data written to \(path) (\(mib(Int64(size))), checksums verified)",
                              action: "downloaded", id: id)
        } catch {
            return ItemResult(kind: name, name: label, status: .failed, message: "download: \(error)", id: id)
        }
    }

    // MARK: import

    static func mib(_ bytes: Int64) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    static func meter(_ label: String, phase: String, total: Int64, _ progress: ProgressHandler?) -> ProgressMeter? {
        guard let progress else { return nil }
        return ProgressMeter(total: total) { done, total, rate in
            progress(ProgressEvent(kind: name, name: label, phase: phase, done: done, total: total, rate: rate))
        }
    }

    /// Why digests do not match what is expected, or nil.
    static func mismatch(_ d: StreamDigests, md5: String?, algo: String?, hash: String?, size: Int64?, what: String) -> String? {
        if let size, d.size != size { return "\(d.size) bytes went through, \(what) size is \(size)" }
        if let md5, !md5.isEmpty, md5.lowercased() != d.md5 { return "MD5 \(d.md5) differs from \(what) checksum \(md5)" }
        if let hash, !hash.isEmpty, let mine = d.hash(algo), mine != hash.lowercased() {
            return "SHA-512 \(mine.prefix(16))... differs from \(what) os_hash_value \(hash.prefix(16))..."
        }
        return nil
    }

    /// Does a destination image hold the record's data?
    static func sameData(_ image: JSONObject, _ record: ResourceRecord) -> Bool {
        guard image["status"]?.stringValue == "active" else { return false }
        let md5 = record.info["checksum"]?.stringValue
        if let md5, image["checksum"]?.stringValue != md5 { return false }
        if let size = record.info["size"]?.intValue, image["size"]?.intValue != size { return false }
        if let algo = record.params["hash_algo"]?.stringValue, let hash = record.params["hash_value"]?.stringValue,
           image["os_hash_algo"]?.stringValue == algo, image["os_hash_value"]?.stringValue != hash
        {
            return false
        }
        return md5 != nil || record.params["hash_value"]?.stringValue != nil
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name else { return .fail(reason: "params.name is missing") }
        let status = record.info["status"]?.stringValue ?? "unknown"
        guard status == "active", let size = record.info["size"]?.intValue else {
            return .skip(reason: "the source image has no data (status \(status)): metadata only, not imported")
        }
        let all = try await ctx.cache.value("images:\(ctx.projectID)") {
            .array(try await projectImages(ctx.session, project: ctx.projectID).map(JSONValue.object))
        }.arrayValue?.compactMap(\.objectValue) ?? []
        let found = all.filter { $0["name"]?.stringValue == name }
        let matching = found.filter { sameData($0, record) }
        if matching.count > 1 {
            return .fail(reason: "\(matching.count) images named '\(name)' with this data in the destination project")
        }
        if let image = matching.first {
            return try await compare(record, image, ctx)
        }
        let active = found.filter { $0["status"]?.stringValue == "active" }
        if active.count > 1 {
            return .fail(reason: "\(active.count) images named '\(name)' in the destination project, none with this data")
        }
        if let p = found.first(where: { $0["protected"]?.boolValue == true }) {
            return .fail(reason: "image \(p["id"]?.stringValue ?? "?") named '\(name)' in the destination is protected and does not hold this data (status \(p["status"]?.stringValue ?? "?"), checksum \(p["checksum"]?.stringValue ?? "none")): not replaced")
        }
        if let a = active.first {
            // Someone's image: deleting it could break the servers booted from it.
            return .fail(reason: "image \(a["id"]?.stringValue ?? "?") named '\(name)' in the destination holds other data (checksum \(a["checksum"]?.stringValue ?? "none")): not replaced; delete it, or import this one under another name (--map-name images:\(name)=NEW)")
        }
        let stale = found.compactMap { $0["id"]?.stringValue }
        var detail = "\(mib(Int64(size)))" + (ctx.options.imageBlobsDir != nil ? " from the blobs directory" : " streamed from the source")
        if let old = found.first {
            detail += "; replaces image \(old["id"]?.stringValue ?? "?"): an incomplete upload (status \(old["status"]?.stringValue ?? "?"))"
        }
        let kernel = try await deferrable(record, "kernel_ref", ctx)
        let ramdisk = try await deferrable(record, "ramdisk_ref", ctx)
        return .create(detail: detail) {
            for id in stale { try await ctx.session.deleteImage(id) }
            return try await create(record, size: Int64(size), kernel: kernel, ramdisk: ramdisk, ctx)
        }
    }

    /// An image reference resolved now, or nil when it names an image this run creates later
    /// (set by `finish`).
    static func deferrable(_ record: ResourceRecord, _ param: String, _ ctx: ImportContext) async throws -> String? {
        do {
            return try await ctx.resolve(.image, record, param)
        } catch let e as ReferenceError where e.description.hasSuffix("not found in the destination") {
            return nil
        }
    }

    /// The create body: metadata without `protected` (set once the data is verified).
    static func createBody(_ record: ResourceRecord, kernel: String?, ramdisk: String?) -> JSONObject {
        var body: JSONObject = [:]
        for f in fields where !dataParams.contains(f.param) && f.param != "is_protected" {
            guard let v = record.params[f.param], !v.isNull else { continue }
            body[f.key] = f.core ? typed(v, f.conv) : .string(plain(typed(v, f.conv)))
        }
        for (k, v) in record.params["properties"]?.objectValue ?? [:] where !v.isNull && !k.hasPrefix("os_glance_") {
            body[k] = .string(plain(v))
        }
        if let tags = record.params["tags"]?.arrayValue { body["tags"] = .array(tags.compactMap(\.stringValue).sorted().map(JSONValue.string)) }
        if let kernel { body["kernel_id"] = .string(kernel) }
        if let ramdisk { body["ramdisk_id"] = .string(ramdisk) }
        return body
    }

    static func create(_ record: ResourceRecord, size: Int64, kernel: String?, ramdisk: String?, _ ctx: ImportContext) async throws -> String {
        let label = label(record)
        let expectedMD5 = record.info["checksum"]?.stringValue
        var blob: String? = nil
        if let dir = ctx.options.imageBlobsDir {
            blob = try findBlob(dir, record)
        } else {
            guard let source = ctx.options.source else {
                throw ConfigError("no source cloud to stream the data of image '\(label)' from")
            }
            guard let sourceID = record.id, let src = try await source.findImage(id: sourceID) else {
                throw OpenStackError(kind: .notFound, service: ServiceType.image,
                                     message: "source image \(record.id ?? "?") is gone from cloud '\(source.profile.name)'")
            }
            guard src.status == "active" else {
                throw OpenStackError(kind: .notFound, service: ServiceType.image, message: "source image \(sourceID) is \(src.status), not active")
            }
            if let m = expectedMD5, let c = src.checksum, m != c {
                throw ChecksumMismatch("source image \(sourceID) changed since the export (checksum \(c), file says \(m)): export again")
            }
        }
        let body = createBody(record, kernel: kernel, ramdisk: ramdisk)
        var lastError: (any Error)?
        for attempt in 1...3 {
            let image = try await ctx.session.createImage(body)
            KillPoint.reached("image-created")
            do {
                let meter = meter(label, phase: blob == nil ? "transfer" : "upload", total: size, ctx.progress)
                let t: ImageDataTransfer
                if let blob {
                    t = try await ctx.session.uploadImageData(image.id, fromFile: blob, progress: meter)
                } else {
                    t = try await ctx.session.copyImageData(into: image.id, from: ctx.options.source!, sourceImageID: record.id!,
                                                            size: size, progress: meter)
                }
                try await verify(image.id, t, record, ctx)
                KillPoint.reached("image-uploaded")
                if record.params["is_protected"]?.boolValue == true {
                    _ = try await ctx.session.patchImage(image.id, [["op": "replace", "path": "/protected", "value": true]])
                }
                return image.id
            } catch {
                // Leave nothing half-made behind, then decide whether another attempt can help.
                try? await ctx.session.deleteImage(image.id)
                lastError = error
                // A stream cannot be resent into the same image: the upload starts over with a new
                // one. Which failures are worth it, and the pause, are the one retry policy's.
                if let e = error as? OpenStackError, [.transport, .timeout].contains(e.kind) || e.status.map(RetryPolicy.isRetryableStatus) == true,
                   attempt < 3
                {
                    ctx.logger.notice("image \(label): \(e); starting the data over (attempt \(attempt + 1) of 3)")
                    try await Task.sleep(for: .milliseconds(Int(RetryPolicy().delay(afterAttempt: attempt - 1) * 1000)))
                    continue
                }
                throw error
            }
        }
        throw lastError ?? OpenStackError(kind: .transport, service: ServiceType.image, message: "image \(label): upload failed")
    }

    /// What went through must match the source's checksums and what the destination computed.
    static func verify(_ id: String, _ t: ImageDataTransfer, _ record: ResourceRecord, _ ctx: ImportContext) async throws {
        let d = t.digests
        if let problem = mismatch(d, md5: record.info["checksum"]?.stringValue, algo: record.params["hash_algo"]?.stringValue,
                                  hash: record.params["hash_value"]?.stringValue, size: record.info["size"]?.intValue.map(Int64.init),
                                  what: "the source's")
        {
            throw ChecksumMismatch("image data check failed: \(problem)")
        }
        if let header = t.sourceContentMD5, !header.isEmpty, header.lowercased() != d.md5 {
            throw ChecksumMismatch("image data check failed: MD5 \(d.md5) differs from the source's Content-MD5 \(header)")
        }
        let dst = try await ctx.session.image(id)
        guard dst.status == "active" else {
            throw OpenStackError(kind: .decoding, service: ServiceType.image, message: "uploaded image \(id) is \(dst.status), not active")
        }
        if let problem = mismatch(d, md5: dst.checksum, algo: dst.hashAlgo, hash: dst.hashValue, size: dst.size, what: "the destination's") {
            throw ChecksumMismatch("image data check failed: \(problem)")
        }
    }

    static func findBlob(_ dir: String, _ record: ResourceRecord) throws -> String {
        guard let id = record.id else { throw ConfigError("image '\(label(record))': no _info.id to find its data by") }
        if let n = record.name {
            let p = blobPath(dir, id: id, name: n)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        // Renamed at import: the file keeps the source name.
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        if let f = files.sorted().first(where: { $0.hasPrefix(id + "-") && !$0.hasSuffix(".part") }) {
            return (dir as NSString).appendingPathComponent(f)
        }
        throw ConfigError("image '\(label(record))': no data file \(id)-<name> in \(dir) (export with --image-blobs-dir)")
    }

    // MARK: metadata of an image that has the data

    static func compare(_ record: ResourceRecord, _ image: JSONObject, _ ctx: ImportContext) async throws -> ImportStep {
        guard let id = image["id"]?.stringValue else { return .fail(reason: "destination image has no id") }
        let current = try await params(from: image, refs: ctx.current)
        var diffs: [String] = []
        for (param, desired) in record.params.sorted(by: { $0.key < $1.key }) where !dataParams.contains(param) {
            let cur = current[param] ?? .null
            switch param {
            case "properties":
                let d = (desired.objectValue ?? [:]).filter { !$0.value.isNull && !$0.key.hasPrefix("os_glance_") }.mapValues(plain)
                let c = (cur.objectValue ?? [:]).mapValues(plain)
                if d != c { diffs.append(param) }
            case "tags":
                if FieldMap.sortedList(desired.isNull ? .array([]) : desired) != FieldMap.sortedList(cur) { diffs.append(param) }
            case "kernel_ref", "ramdisk_ref":
                // Compared once every image exists (finish).
                continue
            default:
                guard let f = fields.first(where: { $0.param == param }) else { continue }
                if !KindSupport.same(typed(desired, f.conv), cur) { diffs.append(param) }
            }
        }
        if diffs.isEmpty { return .ok(id: id) }
        let fixed = diffs.filter(immutable.contains)
        if !fixed.isEmpty {
            return .fail(reason: "differs in fields that cannot change once an image has data: "
                + fixed.map { KindSupport.describe($0, current: current[$0], desired: record.params[$0]) }.joined(separator: ", "))
        }
        let ops = patch(diffs, record, image)
        return .update(id: id, fields: diffs) {
            _ = try await ctx.session.patchImage(id, ops)
        }
    }

    /// JSON-patch operations that bring `image` to the record for `params`.
    static func patch(_ params: [String], _ record: ResourceRecord, _ image: JSONObject) -> [JSONValue] {
        var ops: [JSONValue] = []
        func set(_ key: String, _ value: JSONValue?) {
            let path = JSONValue.string("/" + key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1"))
            if let value, !value.isNull {
                ops.append(["op": image[key] == nil ? "add" : "replace", "path": path, "value": value])
            } else if image[key] != nil {
                ops.append(["op": "remove", "path": path])
            }
        }
        for p in params {
            switch p {
            case "properties":
                let d = (record.params["properties"]?.objectValue ?? [:]).filter { !$0.value.isNull }
                var current = Set<String>()
                for (k, _) in image where !nonProperties.contains(k) && !k.hasPrefix("os_glance_") { current.insert(k) }
                for k in current.union(d.keys).sorted() where d[k].map(plain) != image[k].map(plain) {
                    set(k, d[k].map { .string(plain($0)) })
                }
            case "tags":
                ops.append(["op": "replace", "path": "/tags",
                            "value": .array((record.params["tags"]?.arrayValue ?? []).compactMap(\.stringValue).sorted().map(JSONValue.string))])
            default:
                guard let f = fields.first(where: { $0.param == p }) else { continue }
                let v = typed(record.params[p], f.conv)
                if f.core {
                    ops.append(["op": "replace", "path": .string("/" + f.key), "value": v])
                } else {
                    set(f.key, v.isNull ? nil : .string(plain(v)))
                }
            }
        }
        return ops
    }

    /// Kernel and ramdisk references, once every image of the run exists.
    public static func finish(_ records: [ResourceRecord], _ ctx: ImportContext) async -> [ItemResult] {
        var results: [ItemResult] = []
        for record in records where !references(record).isEmpty {
            guard let name = record.name, record.info["status"]?.stringValue == "active" else { continue }
            do {
                var wanted: [String: String?] = [:]
                for (param, key) in [("kernel_ref", "kernel_id"), ("ramdisk_ref", "ramdisk_id")] where record.params[param] != nil {
                    wanted.updateValue(try await ctx.resolve(.image, record, param), forKey: key)
                }
                if wanted.values.contains(where: { KindSupport.isPlaceholder($0) }) { continue }
                guard let image = try await projectImages(ctx.session, project: ctx.projectID, name: name).first(where: { sameData($0, record) }),
                      let id = image["id"]?.stringValue
                else { continue }
                var ops: [JSONValue] = []
                var fields: [String] = []
                for (key, value) in wanted.sorted(by: { $0.key < $1.key }) where image[key]?.stringValue != value {
                    fields.append(key == "kernel_id" ? "kernel_ref" : "ramdisk_ref")
                    if let value {
                        ops.append(["op": image[key] == nil ? "add" : "replace", "path": .string("/" + key), "value": .string(value)])
                    } else {
                        ops.append(["op": "remove", "path": .string("/" + key)])
                    }
                }
                if ops.isEmpty { continue }
                if !ctx.options.dryRun { _ = try await ctx.session.patchImage(id, ops) }
                results.append(ItemResult(kind: self.name, name: label(record), status: .changed,
                                          message: (ctx.options.dryRun ? "would update: " : "updated: ") + fields.joined(separator: ", "),
                                          action: "updated", fields: fields, id: id))
            } catch {
                results.append(ItemResult(kind: self.name, name: label(record), status: .failed, message: "kernel/ramdisk: \(error)"))
            }
        }
        return results
    }
}

/// An image's data does not match its checksums (the source's, the destination's, the
/// Content-MD5 header), or the source image changed since the export: the data, not the API
/// call, is wrong. Reads as it did as an `OpenStackError` of kind `.decoding`:
/// "image: unexpected response: <message>".
public struct ChecksumMismatch: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "\(ServiceType.image): unexpected response: \(message)" }
}
