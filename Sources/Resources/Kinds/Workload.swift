import Foundation
import OpenStack
import Yams

/// Servers (`workloads.yml`, `openstack.compute.Server`), with their ports, floating IPs and
/// volumes nested as the reference tool writes them. Export and validation live here; import
/// is the Workloads module's per-VM state machine (`os-migrate import workloads`).
///
/// Beyond the reference: ports keep port security, allowed address pairs and their own
/// security groups; volumes carry their device and boot index (in `_info`) and are ordered by
/// device; the boot volume is found from the attachments, never by assuming `/dev/vda`.
public enum WorkloadKind: ResourceKind {
    public static let name = "workloads"
    public static let fileName = "workloads.yml"
    public static let typeName = "openstack.compute.Server"
    public static let dependencies = ["networks", "subnets", "security-groups", "flavors", "keypairs", "images"]
    public static let requiredParams = ["name", "flavor_ref", "ports", "volumes"]
    public static let filterVariable = "os_migrate_workloads_filter"
    public static let importedByEngine = false

    public static let portType = "openstack.network.ServerPort"
    public static let floatingIPType = "openstack.network.ServerFloatingIP"
    public static let volumeType = "openstack.network.ServerVolume"

    /// The reference tool's `_migration_params` defaults.
    public static let migrationDefaults: JSONObject = [
        "additional_volumes": [["uuid": .null]],
        "boot_disk_copy": false,
        "boot_volume": ["uuid": .null],
        "boot_volume_params": ["availability_zone": .null, "description": .null, "name": .null, "volume_type": .null],
        "data_copy": true,
        "floating_ip_mode": "auto",
        "nbdkit_export_name": .null,
        "nbdkit_socket_uri": .null,
        "port_creation_mode": "nova",
        "use_nbdkit_direct": false,
    ]

    public static let floatingIPModes: Set<String> = ["auto", "new", "existing", "skip"]
    public static let portCreationModes: Set<String> = ["nova", "neutron"]

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        let m = record.migrationParams
        if let mode = m["floating_ip_mode"], !mode.isNull {
            if let s = mode.stringValue, floatingIPModes.contains(s) {} else {
                out.append("_migration_params.floating_ip_mode \(mode.jsonString()) is not one of auto, new, existing, skip")
            }
        }
        if let mode = m["port_creation_mode"], !mode.isNull {
            if let s = mode.stringValue, portCreationModes.contains(s) {} else {
                out.append("_migration_params.port_creation_mode \(mode.jsonString()) is not nova or neutron")
            }
        }
        for key in ["boot_disk_copy", "data_copy"] {
            if let v = m[key], !v.isNull, v.boolValue == nil { out.append("_migration_params.\(key) is not true or false") }
        }
        guard let ports = record.params["ports"]?.arrayValue else {
            if record.params["ports"] != nil { out.append("params.ports is not a list") }
            return out
        }
        for (i, p) in ports.enumerated() {
            let pp = p["params"]
            if Reference(pp?["network_ref"]) == nil { out.append("params.ports[\(i)].params.network_ref is missing") }
            for (j, ip) in (pp?["fixed_ips_refs"]?.arrayValue ?? []).enumerated() {
                if ip["ip_address"]?.stringValue == nil {
                    out.append("params.ports[\(i)].params.fixed_ips_refs[\(j)].ip_address is missing")
                } else if let problem = ValueRule.ipAddress.problem(ip["ip_address"]!) {
                    out.append("params.ports[\(i)].params.fixed_ips_refs[\(j)].ip_address \(problem)")
                }
            }
            if let mac = pp?["mac_address"], let problem = ValueRule.macAddress.problem(mac) {
                out.append("params.ports[\(i)].params.mac_address \(problem)")
            }
            if m["port_creation_mode"]?.stringValue ?? "nova" == "nova", (pp?["fixed_ips_refs"]?.arrayValue?.count ?? 0) > 1 {
                out.append("params.ports[\(i)] has several fixed IPs: port_creation_mode nova keeps only one per port, use neutron")
            }
        }
        guard let volumes = record.params["volumes"]?.arrayValue else {
            if record.params["volumes"] != nil { out.append("params.volumes is not a list") }
            return out
        }
        for (i, v) in volumes.enumerated() {
            if v["_info"]?["id"]?.stringValue == nil { out.append("params.volumes[\(i)]._info.id is missing") }
            if v["_info"]?["size"]?.intValue == nil { out.append("params.volumes[\(i)]._info.size is missing") }
        }
        if record.params["image_ref"]?.isNull ?? true, m["boot_disk_copy"]?.boolValue == false,
           !volumes.contains(where: { $0["_info"]?["boot_index"]?.intValue == 0 })
        {
            out.append("params.image_ref is null and no volume is the boot volume: set _migration_params.boot_disk_copy to true")
        }
        return out
    }

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        var refs: [FieldReference] = []
        if let r = Reference(record.params["flavor_ref"]) { refs.append(FieldReference(field: "params.flavor_ref", type: .flavor, ref: r)) }
        let copiesBoot = record.migrationParams["boot_disk_copy"]?.boolValue ?? false
        if !copiesBoot, let r = Reference(record.params["image_ref"]) {
            refs.append(FieldReference(field: "params.image_ref", type: .image, ref: r))
        }
        for (i, g) in (record.params["security_group_refs"]?.arrayValue ?? []).enumerated() {
            if let r = Reference(g) { refs.append(FieldReference(field: "params.security_group_refs[\(i)]", type: .securityGroup, ref: r)) }
        }
        for (i, p) in (record.params["ports"]?.arrayValue ?? []).enumerated() {
            if let r = Reference(p["params"]?["network_ref"]) {
                refs.append(FieldReference(field: "params.ports[\(i)].params.network_ref", type: .network, ref: r))
            }
            for (j, ip) in (p["params"]?["fixed_ips_refs"]?.arrayValue ?? []).enumerated() {
                if let r = Reference(ip["subnet_ref"]) {
                    refs.append(FieldReference(field: "params.ports[\(i)].params.fixed_ips_refs[\(j)].subnet_ref", type: .subnet, ref: r))
                }
            }
            for (j, g) in (p["params"]?["security_group_refs"]?.arrayValue ?? []).enumerated() {
                if let r = Reference(g) {
                    refs.append(FieldReference(field: "params.ports[\(i)].params.security_group_refs[\(j)]", type: .securityGroup, ref: r))
                }
            }
        }
        if (record.migrationParams["floating_ip_mode"]?.stringValue ?? "auto") != "skip" {
            for (i, f) in (record.params["floating_ips"]?.arrayValue ?? []).enumerated() {
                if let r = Reference(f["params"]?["floating_network_ref"]) {
                    refs.append(FieldReference(field: "params.floating_ips[\(i)].params.floating_network_ref", type: .network, ref: r))
                }
            }
        }
        return refs
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        .fail(reason: "workloads are migrated by `os-migrate import workloads`")
    }

    // MARK: export

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let servers = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.compute, .GET, "/servers/detail"), key: "servers")
            .collect().compactMap(\.objectValue)
            .filter { ($0["tenant_id"]?.stringValue ?? ctx.projectID) == ctx.projectID }
            .filter { !(ctx.options.excludedNames[filterVariable] ?? []).contains($0["name"]?.stringValue ?? "") }
        // One listing of the project's ports and floating IPs serves every server.
        let ports = try await ctx.session.list(
            JSONValue.self, APIRequest(ServiceType.network, .GET, "/ports", query: [QueryItem("project_id", ctx.projectID)]), key: "ports"
        ).collect()
        let fips = try await ctx.session.list(
            JSONValue.self, APIRequest(ServiceType.network, .GET, "/floatingips", query: [QueryItem("project_id", ctx.projectID)]),
            key: "floatingips"
        ).collect()
        let flavors = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.compute, .GET, "/flavors/detail",
                                                                             query: [QueryItem("is_public", "None")]), key: "flavors").collect()
        return try await boundedMap(servers, limit: 8) { server in
            try await record(server, ports: ports, fips: fips, flavors: flavors, ctx)
        }
    }

    static func record(_ server: JSONObject, ports: [JSONValue], fips: [JSONValue], flavors: [JSONValue],
                       _ ctx: ExportContext) async throws -> ResourceRecord
    {
        let id = server["id"]?.stringValue ?? ""
        let flavorName = server["flavor"]?["original_name"]?.stringValue
        let flavorID = server["flavor"]?["id"]?.stringValue
            ?? flavors.first { $0["name"]?.stringValue == flavorName }?["id"]?.stringValue
        let flavorRef: JSONValue = if let flavorName { Reference(name: flavorName).json } else {
            try await ctx.refs.ref(.flavor, id: flavorID)
        }
        let imageID = server["image"]?["id"]?.stringValue
        var imageRef: JSONValue = .null
        var notes: [String] = []
        if let imageID {
            do { imageRef = try await ctx.refs.ref(.image, id: imageID) } catch {
                notes.append("image \(imageID) no longer exists: the boot disk will be copied")
            }
        }
        let sgs = try await ctx.session.json(APIRequest(ServiceType.compute, .GET, "/servers/\(id)/os-security-groups"),
                                             key: "security_groups").arrayValue ?? []
        var sgRefs: [JSONValue] = []
        for g in sgs {
            if let gid = g["id"]?.stringValue { sgRefs.append(try await ctx.refs.ref(.securityGroup, id: gid)) }
        }
        sgRefs.sort { $0.jsonString() < $1.jsonString() }

        let serverPorts = ports.filter {
            $0["device_id"]?.stringValue == id && ($0["device_owner"]?.stringValue ?? "").hasPrefix("compute:")
        }
        var networkOrder: [String]? = nil
        if (server["addresses"]?.objectValue?.count ?? 0) > 1 {
            // Several networks: their order is the guest's NIC order, which only the raw answer keeps.
            let raw = try await ctx.session.send(APIRequest(ServiceType.compute, .GET, "/servers/\(id)"))
            networkOrder = addressNetworkOrder(raw.body)
        }
        let order = novaAddressOrder(server["addresses"], networkOrder: networkOrder)
        let sortedPorts = serverPorts.sorted { a, b in
            let ka = portOrder(a, order), kb = portOrder(b, order)
            return ka != kb ? ka < kb : (a["id"]?.stringValue ?? "") < (b["id"]?.stringValue ?? "")
        }
        var portRecords: [JSONValue] = []
        var fipRecords: [JSONValue] = []
        for p in sortedPorts {
            portRecords.append(try await portRecord(p, ctx))
            for f in fips where f["port_id"]?.stringValue == p["id"]?.stringValue {
                fipRecords.append(try await floatingIPRecord(f, ctx))
            }
        }
        let volumes = try await volumeRecords(serverID: id, bootFromVolume: imageID == nil, ctx)

        var migration = migrationDefaults
        if imageRef.isNull { migration["boot_disk_copy"] = true }
        let configDrive = server["config_drive"]?.stringValue
        let params: JSONObject = [
            "availability_zone": server["OS-EXT-AZ:availability_zone"] ?? .null,
            "config_drive": (configDrive?.isEmpty ?? true) ? .null : .string(configDrive!),
            "description": server["description"] ?? .null,
            "disk_config": server["OS-DCF:diskConfig"] ?? .null,
            "flavor_ref": flavorRef,
            "floating_ips": .array(fipRecords),
            "image_ref": imageRef,
            "key_name": server["key_name"] ?? .null,
            "metadata": server["metadata"] ?? .object([:]),
            "name": server["name"] ?? .null,
            "ports": .array(portRecords),
            "scheduler_hints": .null,
            "security_group_refs": .array(sgRefs),
            "tags": FieldMap.sortedList(server["tags"] ?? .array([])),
            "user_data": server["OS-EXT-SRV-ATTR:user_data"] ?? .null,
            "volumes": .array(volumes),
        ]
        var info: JSONObject = [
            "created_at": server["created"] ?? .null, "flavor_id": flavorID.map(JSONValue.string) ?? .null,
            "hypervisor_hostname": server["OS-EXT-SRV-ATTR:hypervisor_hostname"] ?? .null, "id": .string(id),
            "launched_at": server["OS-SRV-USG:launched_at"] ?? .null, "project_id": server["tenant_id"] ?? .null,
            "security_group_ids": .array(sgs.compactMap { $0["id"] }.sorted { $0.jsonString() < $1.jsonString() }),
            "status": server["status"] ?? .null, "updated_at": server["updated"] ?? .null, "user_id": server["user_id"] ?? .null,
        ]
        if !notes.isEmpty { info["export_notes"] = .array(notes.map(JSONValue.string)) }
        return ResourceRecord(type: typeName, params: params, info: info, migrationParams: migration)
    }

    /// Fixed IPs in the order Nova lists them (`addresses`, network by network, in
    /// `networkOrder`: the order of the server's interfaces; by name when unknown).
    public static func novaAddressOrder(_ addresses: JSONValue?, networkOrder: [String]? = nil) -> [String] {
        guard let nets = addresses?.objectValue else { return [] }
        func rank(_ n: String) -> Int { networkOrder?.firstIndex(of: n) ?? Int.max }
        return nets.sorted { rank($0.key) != rank($1.key) ? rank($0.key) < rank($1.key) : $0.key < $1.key }.flatMap { _, list in
            (list.arrayValue ?? []).filter { ($0["OS-EXT-IPS:type"]?.stringValue ?? "fixed") == "fixed" }.compactMap { $0["addr"]?.stringValue }
        }
    }

    /// The network names of `server.addresses` in the order Nova wrote them (its interface order).
    /// JSON decoding into a dictionary loses that order; a YAML node (JSON is YAML) keeps it.
    public static func addressNetworkOrder(_ body: Data) -> [String]? {
        guard let text = String(data: body, encoding: .utf8), let node = try? Yams.compose(yaml: text),
              let addresses = node["server"]?["addresses"]?.mapping
        else { return nil }
        return addresses.map { $0.key.string ?? "" }
    }

    static func portOrder(_ port: JSONValue, _ order: [String]) -> Int {
        let ips = (port["fixed_ips"]?.arrayValue ?? []).compactMap { $0["ip_address"]?.stringValue }
        return ips.compactMap { order.firstIndex(of: $0) }.min() ?? 1000
    }

    static func portRecord(_ p: JSONValue, _ ctx: ExportContext) async throws -> JSONValue {
        var ips: [JSONValue] = []
        for ip in p["fixed_ips"]?.arrayValue ?? [] {
            ips.append(["ip_address": ip["ip_address"] ?? .null, "subnet_ref": try await ctx.refs.ref(.subnet, id: ip["subnet_id"]?.stringValue)])
        }
        var sgRefs: [JSONValue] = []
        for g in p["security_groups"]?.arrayValue ?? [] {
            sgRefs.append(try await ctx.refs.ref(.securityGroup, id: g.stringValue))
        }
        let pairs = (p["allowed_address_pairs"]?.arrayValue ?? []).sorted { $0.jsonString() < $1.jsonString() }
        let params: JSONObject = [
            "allowed_address_pairs": .array(pairs),
            "binding_profile": p["binding:profile"] ?? .object([:]),
            "binding_vnic_type": p["binding:vnic_type"] ?? .null,
            "fixed_ips_refs": .array(ips),
            "mac_address": p["mac_address"] ?? .null,
            "network_ref": try await ctx.refs.ref(.network, id: p["network_id"]?.stringValue),
            "port_security_enabled": p["port_security_enabled"] ?? .null,
            "security_group_refs": .array(sgRefs.sorted { $0.jsonString() < $1.jsonString() }),
        ]
        return ResourceRecord(type: portType, params: params,
                              info: ["device_id": p["device_id"] ?? .null, "device_owner": p["device_owner"] ?? .null,
                                     "id": p["id"] ?? .null]).json
    }

    static func floatingIPRecord(_ f: JSONValue, _ ctx: ExportContext) async throws -> JSONValue {
        let params: JSONObject = [
            "description": f["description"] ?? .null, "dns_domain": f["dns_domain"] ?? .null, "dns_name": f["dns_name"] ?? .null,
            "fixed_ip_address": f["fixed_ip_address"] ?? .null, "floating_ip_address": f["floating_ip_address"] ?? .null,
            "floating_network_ref": try await ctx.refs.ref(.network, id: f["floating_network_id"]?.stringValue),
            "qos_policy_ref": try await ctx.refs.ref(.qosPolicy, id: f["qos_policy_id"]?.stringValue),
        ]
        var info: JSONObject = [:]
        for k in ["created_at", "floating_network_id", "id", "port_id", "qos_policy_id", "router_id", "updated_at"] { info[k] = f[k] ?? .null }
        info["tags"] = FieldMap.sortedList(f["tags"] ?? .array([]))
        return ResourceRecord(type: floatingIPType, params: params, info: info).json
    }

    /// Volumes in device order; the boot volume (of a server booted from a volume) is the
    /// bootable volume on the first device.
    static func volumeRecords(serverID: String, bootFromVolume: Bool, _ ctx: ExportContext) async throws -> [JSONValue] {
        let attachments = try await ctx.session.volumeAttachments(server: serverID)
            .sorted { deviceOrder($0.device ?? "") < deviceOrder($1.device ?? "") }
        var volumes: [(VolumeAttachment, Volume)] = []
        for a in attachments { volumes.append((a, try await ctx.session.get(Cinder.volumes, a.volumeID))) }
        let bootID = bootFromVolume ? volumes.first(where: { $0.1.bootable })?.1.id : nil
        return volumes.map { a, v in
            var attachmentsInfo: [JSONValue] = []
            for x in v.attachments {
                attachmentsInfo.append(["attached_at": x.attachedAt.map(JSONValue.string) ?? .null,
                                        "attachment_id": x.attachmentID.map(JSONValue.string) ?? .null,
                                        "device": x.device.map(JSONValue.string) ?? .null,
                                        "server_id": x.serverID.map(JSONValue.string) ?? .null])
            }
            let params: JSONObject = [
                "availability_zone": v.availabilityZone.map(JSONValue.string) ?? .null,
                "description": v.description.map(JSONValue.string) ?? .null,
                "name": .string(v.name),
                "volume_image_metadata": v.volumeImageMetadata.map { .object($0.mapValues(JSONValue.string)) } ?? .null,
                "volume_type": v.volumeType.map(JSONValue.string) ?? .null,
            ]
            let info: JSONObject = [
                "attachments": .array(attachmentsInfo), "boot_index": v.id == bootID ? 0 : .null,
                "device": a.device.map(JSONValue.string) ?? .null, "id": .string(v.id), "is_bootable": .bool(v.bootable),
                "size": .int(v.size),
            ]
            return ResourceRecord(type: volumeType, params: params, info: info).json
        }
    }

    /// "/dev/sdb" < "/dev/sdz" < "/dev/sdaa": shorter names first, then alphabetical.
    public static func deviceOrder(_ device: String) -> String {
        String(format: "%04d", device.count) + device
    }
}
