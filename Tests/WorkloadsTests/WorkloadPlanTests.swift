import Foundation
import OpenStack
import Resources
import Testing
@testable import Workloads

/// The pure part of a workload migration: what a record means, and where a resumed run starts.
@Suite("Workload plans")
struct WorkloadPlanTests {
    static func ref(_ name: String) -> JSONValue { ["name": .string(name), "project_name": "%auth%", "domain_name": "%auth%"] }

    static func volume(_ id: String, device: String, size: Int, boot: Bool, name: String, type: String? = "fast",
                       az: String? = "nova") -> JSONValue
    {
        [
            "type": "openstack.network.ServerVolume",
            "params": ["name": .string(name), "description": .null, "volume_type": type.map(JSONValue.string) ?? .null,
                       "availability_zone": az.map(JSONValue.string) ?? .null,
                       "volume_image_metadata": boot ? ["hw_disk_bus": "scsi"] : .null],
            "_info": ["id": .string(id), "device": .string(device), "size": .int(size), "boot_index": boot ? 0 : .null,
                      "is_bootable": .bool(boot)],
            "_migration_params": [:],
        ]
    }

    static func record(image: JSONValue = .null, volumes: [JSONValue], migration: JSONObject = [:], ports: Int = 1) -> ResourceRecord {
        var m = WorkloadKind.migrationDefaults
        for (k, v) in migration { m[k] = v }
        let port: JSONValue = ["type": "openstack.network.ServerPort", "_info": ["id": "p1"], "_migration_params": [:], "params": [
            "network_ref": ref("net-a"), "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips_refs": [["ip_address": "10.0.0.5", "subnet_ref": ref("sub-a")]],
            "security_group_refs": [ref("web")], "port_security_enabled": true, "allowed_address_pairs": [],
            "binding_vnic_type": "normal",
        ]]
        return ResourceRecord(type: WorkloadKind.typeName, params: [
            "name": "vm1", "flavor_ref": ["name": "m1.small", "project_name": .null, "domain_name": .null], "image_ref": image,
            "key_name": "key", "availability_zone": "nova", "metadata": ["role": "db"], "tags": ["a"], "config_drive": .null,
            "security_group_refs": [ref("web")], "volumes": .array(volumes), "ports": .array(Array(repeating: port, count: ports)),
            "floating_ips": [["type": "openstack.network.ServerFloatingIP", "_info": [:], "_migration_params": [:], "params": [
                "floating_ip_address": "203.0.113.9", "fixed_ip_address": "10.0.0.5", "floating_network_ref": ["name": "public"],
            ]]],
        ], info: ["id": "srv-1"], migrationParams: m)
    }

    @Test func bootFromVolumeSnapshotsTheBootVolumeAndDetachesDataVolumes() throws {
        // Listed out of device order, on a virtio-scsi guest (sda...), with a boot volume that is not /dev/vda.
        let r = Self.record(volumes: [
            Self.volume("v-data2", device: "/dev/sdc", size: 2, boot: false, name: "data2"),
            Self.volume("v-boot", device: "/dev/sda", size: 10, boot: true, name: "root"),
            Self.volume("v-data1", device: "/dev/sdb", size: 1, boot: false, name: "data1"),
        ], migration: ["boot_disk_copy": true])
        let plan = try WorkloadPlan.make(r, volumeTypes: ["fast": "ssd"], zones: ["nova": "zone-b"])
        #expect(plan.volumes.map(\.device) == ["/dev/sda", "/dev/sdb", "/dev/sdc"])
        #expect(plan.volumes.map(\.staging) == [.snapshot, .detach, .detach])
        #expect(plan.bootVolume?.sourceID == "v-boot")
        #expect(plan.volumes.map(\.volumeType) == ["ssd", "ssd", "ssd"])
        #expect(plan.volumes.map(\.availabilityZone) == ["zone-b", "zone-b", "zone-b"])
        #expect(plan.bootVolume?.imageMetadata == ["hw_disk_bus": "scsi"])
        #expect(plan.image == nil)
        #expect(plan.gigabytes == 13)
        #expect(plan.ports.first?.fixedIPs.first?.ip == "10.0.0.5")
        #expect(plan.floatingIPs.first?.network?.name == "public")
        #expect(plan.floatingIPMode == .auto && plan.portMode == .nova)
    }

    @Test func bootFromImageReimagesByDefault() throws {
        let r = Self.record(image: ["name": "cirros", "project_name": .null, "domain_name": .null],
                            volumes: [Self.volume("v-data1", device: "/dev/sdb", size: 1, boot: false, name: "data1")])
        let plan = try WorkloadPlan.make(r)
        #expect(plan.image?.name == "cirros")
        #expect(plan.volumes.map(\.staging) == [.detach])
        #expect(plan.bootVolume == nil)
    }

    @Test func bootFromImageWithBootDiskCopySnapshotsTheServer() throws {
        let r = Self.record(image: ["name": "cirros"], volumes: [], migration: ["boot_disk_copy": true])
        let plan = try WorkloadPlan.make(r)
        #expect(plan.image == nil)
        #expect(plan.volumes.map(\.staging) == [.serverImage])
        #expect(plan.bootVolume?.size == 0)
    }

    @Test func dataCopyFalseUsesTheGivenDestinationVolumes() throws {
        let r = Self.record(volumes: [
            Self.volume("v-boot", device: "/dev/sda", size: 10, boot: true, name: "root"),
            Self.volume("v-data1", device: "/dev/sdb", size: 1, boot: false, name: "data1"),
        ], migration: ["data_copy": false, "boot_volume": ["uuid": "dst-boot"], "additional_volumes": [["uuid": "dst-d1"]]])
        let plan = try WorkloadPlan.make(r)
        #expect(plan.volumes.map(\.existingDestination) == ["dst-boot", "dst-d1"])
        #expect(plan.gigabytes == 0)
    }

    @Test func novaModeRefusesPortsWithSeveralAddresses() throws {
        var r = Self.record(image: ["name": "cirros"], volumes: [])
        var ports = r.params["ports"]!.arrayValue!
        var pp = ports[0]["params"]!.objectValue!
        pp["fixed_ips_refs"] = [["ip_address": "10.0.0.5"], ["ip_address": "10.0.0.6"]]
        var port = ports[0].objectValue!
        port["params"] = .object(pp)
        ports[0] = .object(port)
        r.params["ports"] = .array(ports)
        #expect(throws: WorkloadPlan.Invalid.self) { try WorkloadPlan.make(r) }
        r.migrationParams["port_creation_mode"] = "neutron"
        #expect(try WorkloadPlan.make(r).ports[0].fixedIPs.count == 2)
    }

    @Test func validationNamesTheField() {
        var r = Self.record(image: ["name": "cirros"], volumes: [])
        r.migrationParams["floating_ip_mode"] = "sometimes"
        r.migrationParams["data_copy"] = "yes"
        #expect(WorkloadKind.validate(r) == [
            "_migration_params.floating_ip_mode \"sometimes\" is not one of auto, new, existing, skip",
            "_migration_params.data_copy is not true or false",
        ])
    }

    @Test func stepsResumeAfterTheLastOneDone() {
        #expect(MigrationStep.resume(after: nil) == .stage)
        #expect(MigrationStep.resume(after: "copy") == .detach)
        #expect(MigrationStep.resume(after: "cleanup") == nil)
        #expect(MigrationStep.allCases.first == .stage && MigrationStep.allCases.last == .cleanup)
    }

    @Test func deviceOrderPutsShorterNamesFirst() {
        let devices = ["/dev/sdaa", "/dev/sdc", "/dev/sda", "/dev/sdz", "/dev/sdb"]
        #expect(devices.sorted { WorkloadKind.deviceOrder($0) < WorkloadKind.deviceOrder($1) }
            == ["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdz", "/dev/sdaa"])
    }
}

@Suite("Migration ledger")
struct LedgerTests {
    @Test func recordsResumeAndRelease() throws {
        let dir = NSTemporaryDirectory() + "osm-ledger-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ledger = try Ledger(dataDir: dir)
        let w = try ledger.begin(sourceID: "s1", name: "vm1")
        #expect(w.attempts == 1 && w.state == .running && w.step == nil)
        try ledger.record("s1", cloud: .src, kind: "snapshot", role: "boot-snapshot", id: "snap-1")
        try ledger.record("s1", cloud: .dst, kind: "volume", role: "dst-volume:0", id: "vol-1", detail: ["device": "/dev/sda"])
        try ledger.completeStep("s1", "stage")
        // A second process (a resumed run) sees the same state.
        let again = try Ledger(dataDir: dir)
        #expect(try again.workload("s1")?.step == "stage")
        #expect(try again.begin(sourceID: "s1", name: "vm1").attempts == 1)
        #expect(try again.resource("s1", role: "dst-volume:0")?.details == ["device": "/dev/sda"])
        // Recording a role again replaces it, never duplicates.
        try again.record("s1", cloud: .dst, kind: "volume", role: "dst-volume:0", id: "vol-2")
        #expect(try again.resources("s1").map(\.resourceID) == ["snap-1", "vol-2"])
        let snap = try #require(try again.resource("s1", role: "boot-snapshot"))
        try again.setState(snap, .released)
        #expect(try again.resources("s1", state: .created).map(\.resourceID) == ["vol-2"])
        try again.finish("s1", state: .failed, error: "boom")
        let retry = try again.begin(sourceID: "s1", name: "vm1")
        #expect(retry.attempts == 2 && retry.step == nil && retry.error == nil)
    }

    /// Nova writes `addresses` in the server's interface order (the first NIC's network first);
    /// a dictionary loses it, and sorting by name would swap a guest's eth0 and eth1.
    @Test func portsFollowNovasInterfaceOrderNotNetworkNames() throws {
        let body = Data(#"""
        {"server": {"id": "s1", "addresses": {"zeta-net": [{"version": 4, "addr": "10.9.0.5", "OS-EXT-IPS:type": "fixed",
         "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}, {"version": 4, "addr": "203.0.113.7", "OS-EXT-IPS:type": "floating"}],
         "alpha-net": [{"version": 4, "addr": "10.1.0.5", "OS-EXT-IPS:type": "fixed"}],
         "mid-net": [{"version": 6, "addr": "fd00::5", "OS-EXT-IPS:type": "fixed"}]}, "name": "vm1"}}
        """#.utf8)
        let order = try #require(WorkloadKind.addressNetworkOrder(body))
        #expect(order == ["zeta-net", "alpha-net", "mid-net"])
        let decoded = try JSONDecoder().decode(JSONValue.self, from: body)
        #expect(WorkloadKind.novaAddressOrder(decoded["server"]?["addresses"], networkOrder: order) == ["10.9.0.5", "10.1.0.5", "fd00::5"])
        #expect(WorkloadKind.novaAddressOrder(decoded["server"]?["addresses"]) == ["10.1.0.5", "fd00::5", "10.9.0.5"])
        #expect(WorkloadKind.addressNetworkOrder(Data("not json".utf8)) == nil)
    }
}
