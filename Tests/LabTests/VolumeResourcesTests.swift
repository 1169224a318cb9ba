import Foundation
import OpenStack
import Testing
import TestSupport

/// Detached volumes end to end on the lab (without their data: that needs conversion hosts).
@Suite("Detached volume resources", .serialized)
struct VolumeResourcesTests {
    func waitVolume(_ s: CloudSession, _ id: String, _ status: String) async throws -> Volume {
        try await Waiter.wait("volume \(id)", service: ServiceType.blockStorage, timeout: 180, interval: 1, until: [status],
                              fetch: { try await s.find(Cinder.volumes, id: id) }, status: { $0.status })
    }

    /// A volume as the API shows it, without ids.
    func describe(_ v: Volume) -> JSONValue {
        [
            "size": .int(v.size), "description": v.description.map(JSONValue.string) ?? .null, "bootable": .bool(v.bootable),
            "type": v.volumeType.map(JSONValue.string) ?? .null, "zone": v.availabilityZone.map(JSONValue.string) ?? .null,
            "image_metadata": .object((v.volumeImageMetadata ?? [:]).mapValues(JSONValue.string)),
        ]
    }

    @Test("export only detached volumes; import refuses without --no-data, creates empty with it, re-import ok, edits, conflicts")
    func fullCycle() async throws {
        try await LabTenant.with("volsrc") { src in
            try await LabTenant.with("voldst") { dst in
                let s = try src.session()
                let a = try await s.create(Cinder.volumes, ["name": "dv-a", "size": 1, "description": "first detached"])
                let b = try await s.create(Cinder.volumes, ["name": "dv-b", "size": 2])
                let att = try await s.create(Cinder.volumes, ["name": "dv-attached", "size": 1])
                for v in [a, b, att] { _ = try await waitVolume(s, v.id, "available") }
                try await s.setVolumeBootable(b.id, true)
                try await s.setVolumeImageMetadata(b.id, ["os_distro": "cirros", "hw_disk_bus": "virtio"])

                // A server uses dv-attached: it is not a detached volume.
                let net = try await s.create(Neutron.networks, ["name": "vol-net"])
                _ = try await s.create(Neutron.subnets, ["name": "vol-subnet", "network_id": .string(net.id), "ip_version": 4,
                                                         "cidr": "10.77.0.0/24"])
                let image = try #require(try await s.list(Glance.images, query: [QueryItem("name", "osmlab-image")]).collect().first)
                let server = try await s.create(Nova.servers, ["name": "vol-server", "imageRef": .string(image.id), "flavorRef": "1",
                                                               "networks": [["uuid": .string(net.id)]]])
                _ = try await Waiter.wait("server", service: ServiceType.compute, timeout: 180, interval: 1, until: ["ACTIVE"],
                                          fetch: { try await s.find(Nova.servers, id: server.id) }, status: { $0.status })
                try await s.attachVolume(server: server.id, volume: att.id)
                _ = try await waitVolume(s, att.id, "in-use")

                let env = try MigrationEnv("vol", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let exp = try await env.run(["export", "detached-volumes", "--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")
                let yaml = try env.file("detached_volumes.yml")
                #expect(yaml.contains("  type: openstack.network.ServerVolume\n"))
                #expect(!yaml.contains("dv-attached"))
                #expect(yaml.contains("    volume_image_metadata:\n      hw_disk_bus: virtio\n      os_distro: cirros\n"))
                #expect(yaml.contains("    is_bootable: true\n    size: 2\n"))

                // Without --no-data the data needs the conversion hosts: none here, so one line, nothing written.
                let dstBefore = try await dst.session().list(Cinder.volumes).collect().map(\.id)
                let refused = try await env.run(["import", "detached-volumes", "--dst-cloud", "dst", "--json"])
                #expect(refused.exitCode == 1)
                #expect(refused.stderr == "os-migrate: error: detached-volumes: their data moves through the conversion hosts, which are not available "
                    + "(no source cloud: pass --src-cloud NAME (a clouds.yaml entry) or --vars FILE with os_migrate_src_auth); "
                    + "or pass --no-data to create the volumes empty\n")
                #expect(try await dst.session().list(Cinder.volumes).collect().map(\.id) == dstBefore)

                let imp = try await env.run(["import", "detached-volumes", "--dst-cloud", "dst", "--no-data", "--json"])
                #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
                #expect(CLIEvents.items(imp.stdout, "changed") == ["detached-volumes: dv-a", "detached-volumes: dv-b"])
                #expect(CLIEvents.item(imp.stdout, "dv-b")?["message"]?.stringValue == "created (empty, 2 GiB: --no-data, its data was not copied)")
                let d = try dst.session()
                for (name, source) in [("dv-a", a.id), ("dv-b", b.id)] {
                    let sv = try await s.get(Cinder.volumes, source)
                    let dv = try #require(try await d.named(Cinder.volumes, name).first)
                    #expect(describe(sv) == describe(dv), "\(name)")
                }

                let again = try await env.run(["import", "detached-volumes", "--dst-cloud", "dst", "--no-data", "--json"])
                let r = CLIEvents.recap(again.stdout)
                #expect(CLIEvents.count(r, "ok") == 2 && CLIEvents.count(r, "api_writes") == 0, "\(again.stdout)")
                #expect(CLIEvents.item(again.stdout, "dv-a")?["message"]?.stringValue == "exists (--no-data: its data is not checked)")
                #expect(try await d.named(Cinder.volumes, "dv-a").count == 1)

                // Description: changed in place.
                try env.edit("detached_volumes.yml", "description: first detached", "description: first (edited)")
                let edit = try await env.run(["import", "detached-volumes", "--dst-cloud", "dst", "--no-data", "--json"])
                #expect(CLIEvents.items(edit.stdout, "changed") == ["detached-volumes: dv-a"])
                #expect(CLIEvents.item(edit.stdout, "dv-a")?["message"]?.stringValue == "updated: description")
                #expect(try await d.named(Cinder.volumes, "dv-a").first?.description == "first (edited)")

                // A different size is not the same volume, and never a second one.
                try env.edit("detached_volumes.yml", "    is_bootable: false\n    size: 1\n", "    is_bootable: false\n    size: 3\n")
                let sized = try await env.run(["import", "detached-volumes", "--dst-cloud", "dst", "--no-data", "--json"])
                #expect(sized.exitCode == 1)
                #expect(CLIEvents.item(sized.stdout, "dv-a")?["message"]?.stringValue
                    == "a volume named 'dv-a' exists in the destination with size 1 GiB, the file says 3 GiB")
                #expect(try await d.named(Cinder.volumes, "dv-a").count == 1)

                // A type the destination lacks is refused before creating, with the mapping to use.
                try env.edit("detached_volumes.yml", "    name: dv-a\n", "    name: dv-c\n")
                let typed = try await env.run(["import", "detached-volumes", "--dst-cloud", "dst", "--no-data", "--json",
                                               "--map-name", "volume-type:__DEFAULT__=gold"])
                #expect(typed.exitCode == 1)
                #expect(CLIEvents.item(typed.stdout, "dv-c")?["message"]?.stringValue
                    == "volume type 'gold' does not exist in the destination (known: __DEFAULT__); map it with --map-name volume-type:SOURCE=DESTINATION")
                #expect(try await d.named(Cinder.volumes, "dv-c").isEmpty)
            }
        }
    }
}
