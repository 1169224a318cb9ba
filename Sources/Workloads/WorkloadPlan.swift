import Foundation
import OpenStack
import Resources

/// What migrating one workload involves, decided from its record alone: a pure value the
/// state machine executes and the tests check without a cloud.
public struct WorkloadPlan: Sendable, Equatable {
    public enum PortMode: String, Sendable { case nova, neutron }
    public enum FloatingIPMode: String, Sendable { case auto, new, existing, skip }

    public struct Volume: Sendable, Equatable {
        public enum Staging: Sendable, Equatable {
            /// The boot volume stays on the VM: snapshot it, make a temporary volume from the snapshot.
            case snapshot
            /// A data volume: detach it from the (stopped) VM, re-attach it afterwards.
            case detach
            /// Boot from image with boot_disk_copy: snapshot the server into an image, make a
            /// temporary volume from the image.
            case serverImage
        }
        public var sourceID: String?
        public var device: String
        public var size: Int
        public var isBoot: Bool
        public var staging: Staging
        public var name: String
        public var description: String?
        public var volumeType: String?
        public var availabilityZone: String?
        public var imageMetadata: [String: String]
        /// With data_copy false: the destination volume that already holds the data.
        public var existingDestination: String?
    }

    public struct Port: Sendable, Equatable {
        public var network: Reference
        public var fixedIPs: [(subnet: Reference?, ip: String)]
        public var macAddress: String?
        public var securityGroups: [Reference]?
        public var portSecurityEnabled: Bool?
        public var allowedAddressPairs: [JSONValue]
        public var vnicType: String?

        public static func == (a: Port, b: Port) -> Bool {
            a.network == b.network && a.fixedIPs.map { "\($0.subnet?.name ?? "")/\($0.ip)" } == b.fixedIPs.map { "\($0.subnet?.name ?? "")/\($0.ip)" }
                && a.macAddress == b.macAddress && a.securityGroups == b.securityGroups && a.portSecurityEnabled == b.portSecurityEnabled
                && a.allowedAddressPairs == b.allowedAddressPairs && a.vnicType == b.vnicType
        }
    }

    public struct FloatingIP: Sendable, Equatable {
        public var address: String?
        public var fixedIP: String?
        public var network: Reference?
        public var description: String?
    }

    public var sourceID: String
    public var name: String
    public var flavor: Reference
    /// Destination boots from this image (re-image mode); nil when it boots from a volume.
    public var image: Reference?
    public var dataCopy: Bool
    public var volumes: [Volume]
    public var ports: [Port]
    public var portMode: PortMode
    public var floatingIPs: [FloatingIP]
    public var floatingIPMode: FloatingIPMode
    public var securityGroups: [Reference]
    public var keyName: String?
    public var availabilityZone: String?
    public var description: String?
    public var metadata: [String: String]
    public var tags: [String]
    public var configDrive: Bool
    public var userData: String?

    public var bootVolume: Volume? { volumes.first { $0.isBoot } }
    public var dataVolumes: [Volume] { volumes.filter { !$0.isBoot } }
    /// Total size of the volumes to create in the destination, GiB.
    public var gigabytes: Int { volumes.filter { $0.existingDestination == nil }.reduce(0) { $0 + $1.size } }

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The plan for a record whose names are already mapped (`NameMapping.apply`); volume types
    /// and availability zones of its nested volumes are mapped here.
    public static func make(_ record: ResourceRecord, volumeTypes: [String: String] = [:],
                            zones: [String: String] = [:]) throws -> WorkloadPlan
    {
        func volumeType(_ t: String?) -> String? { t.map { volumeTypes[$0] ?? $0 } }
        func az(_ z: String?) -> String? { z.map { zones[$0] ?? $0 } }
        let p = record.params
        let m = record.migrationParams
        let name = record.name ?? ""
        guard let id = record.id else { throw Invalid(description: "workload '\(name)': _info.id is missing") }
        guard let flavorRef = Reference(p["flavor_ref"]) else { throw Invalid(description: "workload '\(name)': params.flavor_ref is missing") }
        let flavor = flavorRef
        let dataCopy = m["data_copy"]?.boolValue ?? true
        let imageRef = Reference(p["image_ref"])
        let bootDiskCopy = (m["boot_disk_copy"]?.boolValue ?? false) || imageRef == nil

        var volumes: [Volume] = []
        let bootParams = m["boot_volume_params"]?.objectValue ?? [:]
        let records = (p["volumes"]?.arrayValue ?? []).sorted {
            WorkloadKind.deviceOrder($0["_info"]?["device"]?.stringValue ?? "") < WorkloadKind.deviceOrder($1["_info"]?["device"]?.stringValue ?? "")
        }
        for v in records {
            let info = v["_info"]?.objectValue ?? [:]
            let vp = v["params"]?.objectValue ?? [:]
            let isBoot = info["boot_index"]?.intValue == 0
            var vol = Volume(
                sourceID: info["id"]?.stringValue, device: info["device"]?.stringValue ?? "", size: info["size"]?.intValue ?? 0,
                isBoot: isBoot, staging: isBoot ? .snapshot : .detach,
                name: vp["name"]?.stringValue ?? "", description: vp["description"]?.stringValue,
                volumeType: volumeType(vp["volume_type"]?.stringValue),
                availabilityZone: az(vp["availability_zone"]?.stringValue),
                imageMetadata: (vp["volume_image_metadata"]?.objectValue ?? [:]).compactMapValues(\.stringValue))
            if isBoot {
                // boot_volume_params override the boot volume's own params where set (reference behaviour, fixed:
                // the volume's params are the default instead of being ignored).
                if let n = bootParams["name"]?.stringValue { vol.name = n }
                if let d = bootParams["description"]?.stringValue { vol.description = d }
                if let t = bootParams["volume_type"]?.stringValue { vol.volumeType = volumeType(t) }
                if let a = bootParams["availability_zone"]?.stringValue { vol.availabilityZone = az(a) }
            }
            volumes.append(vol)
        }
        let hasBootVolume = volumes.contains { $0.isBoot }
        if bootDiskCopy && !hasBootVolume {
            guard imageRef != nil else {
                throw Invalid(description: "workload '\(name)': it has neither an image nor a boot volume")
            }
            // Boot from image, disk copied: a snapshot of the server becomes the boot volume (its
            // size is known once the image exists: 0 here).
            volumes.insert(Volume(sourceID: nil, device: "root", size: 0, isBoot: true, staging: .serverImage,
                                  name: bootParams["name"]?.stringValue ?? "\(name)-boot",
                                  description: bootParams["description"]?.stringValue,
                                  volumeType: volumeType(bootParams["volume_type"]?.stringValue),
                                  availabilityZone: az(bootParams["availability_zone"]?.stringValue), imageMetadata: [:]),
                           at: 0)
        }
        if !dataCopy {
            // Storage moved out of band: the destination volumes are given by uuid.
            let bootUUID = m["boot_volume"]?["uuid"]?.stringValue
            let extra = (m["additional_volumes"]?.arrayValue ?? []).compactMap { $0["uuid"]?.stringValue }
            var next = 0
            for i in volumes.indices {
                if volumes[i].isBoot {
                    volumes[i].existingDestination = bootUUID
                } else if next < extra.count {
                    volumes[i].existingDestination = extra[next]
                    next += 1
                }
            }
            volumes = volumes.filter { $0.existingDestination != nil }
        }

        let portMode = PortMode(rawValue: m["port_creation_mode"]?.stringValue ?? "nova") ?? .nova
        var ports: [Port] = []
        for (i, pr) in (p["ports"]?.arrayValue ?? []).enumerated() {
            let pp = pr["params"]?.objectValue ?? [:]
            guard let net = Reference(pp["network_ref"]) else {
                throw Invalid(description: "workload '\(name)': params.ports[\(i)].params.network_ref is missing")
            }
            let ips: [(subnet: Reference?, ip: String)] = (pp["fixed_ips_refs"]?.arrayValue ?? []).compactMap { ip in
                guard let a = ip["ip_address"]?.stringValue else { return nil }
                return (Reference(ip["subnet_ref"]), a)
            }
            if portMode == .nova && ips.count > 1 {
                throw Invalid(description: "workload '\(name)': port \(i) has \(ips.count) fixed IPs; port_creation_mode nova keeps one per port (use neutron)")
            }
            let sgs = pp["security_group_refs"]?.arrayValue.map { $0.compactMap { Reference($0) } }
            ports.append(Port(network: net, fixedIPs: ips, macAddress: pp["mac_address"]?.stringValue, securityGroups: sgs,
                              portSecurityEnabled: pp["port_security_enabled"]?.boolValue,
                              allowedAddressPairs: pp["allowed_address_pairs"]?.arrayValue ?? [],
                              vnicType: pp["binding_vnic_type"]?.stringValue))
        }
        let fips: [FloatingIP] = (p["floating_ips"]?.arrayValue ?? []).map { f in
            let fp = f["params"]?.objectValue ?? [:]
            return FloatingIP(address: fp["floating_ip_address"]?.stringValue, fixedIP: fp["fixed_ip_address"]?.stringValue,
                              network: Reference(fp["floating_network_ref"]), description: fp["description"]?.stringValue)
        }
        let configDrive = p["config_drive"]?.stringValue.map { ["true", "1", "yes"].contains($0.lowercased()) } ?? p["config_drive"]?.boolValue ?? false
        return WorkloadPlan(
            sourceID: id, name: name, flavor: flavor, image: hasBootVolume || bootDiskCopy ? nil : imageRef, dataCopy: dataCopy,
            volumes: volumes, ports: ports, portMode: portMode, floatingIPs: fips,
            floatingIPMode: FloatingIPMode(rawValue: m["floating_ip_mode"]?.stringValue ?? "auto") ?? .auto,
            securityGroups: (p["security_group_refs"]?.arrayValue ?? []).compactMap { Reference($0) },
            keyName: p["key_name"]?.stringValue, availabilityZone: p["availability_zone"]?.stringValue,
            description: p["description"]?.stringValue,
            metadata: (p["metadata"]?.objectValue ?? [:]).compactMapValues(\.stringValue),
            tags: (p["tags"]?.arrayValue ?? []).compactMap(\.stringValue), configDrive: configDrive,
            userData: p["user_data"]?.stringValue)
    }
}
