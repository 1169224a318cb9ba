import Foundation
import OpenStack
import Testing
import TestSupport

/// Images end to end on the lab: data streamed source Glance to destination Glance and verified,
/// metadata, kernel references, snapshots without data, a killed import, blobs mode.
@Suite("Image migration", .serialized)
struct ImageMigrationTests {
    /// Create an image in `s` and upload a file's bytes into it.
    func upload(_ s: CloudSession, _ attributes: JSONObject, file: String) async throws -> Image {
        let image = try await s.createImage(attributes)
        _ = try await s.uploadImageData(image.id, fromFile: file)
        return try await s.image(image.id)
    }

    func images(_ s: CloudSession) async throws -> [Image] {
        let project = try await s.currentProjectID
        return try await s.list(Glance.images, query: [QueryItem("owner", project), QueryItem("visibility", "all")]).collect()
    }

    func named(_ s: CloudSession, _ name: String) async throws -> [Image] {
        try await images(s).filter { $0.name == name }
    }

    @Test("200 MiB image: streamed, verified byte for byte, metadata and kernel reference, snapshot without data skipped, re-import ok, edit")
    func fullCycle() async throws {
        try await LabTenant.with("imgsrc") { src in
            try await LabTenant.with("imgdst") { dst in
                let env = try MigrationEnv("img", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let s = try src.session()
                let original = env.dir + "/big.raw"
                try RandomData.file(original, mebibytes: 200)
                let big = try await upload(s, ["name": "big", "disk_format": "raw", "container_format": "bare", "min_disk": 1,
                                               "hw_disk_bus": "scsi", "os_distro": "debian", "hw_cpu_cores": "2", "custom_key": "custom value",
                                               "tags": ["gold", "base"]], file: original)
                let small = env.dir + "/small.raw"
                try RandomData.file(small, mebibytes: 1)
                let kernel = try await upload(s, ["name": "kern", "disk_format": "aki", "container_format": "aki"], file: small)
                let machine = try await upload(s, ["name": "machine", "disk_format": "ami", "container_format": "ami",
                                                   "kernel_id": .string(kernel.id), "min_ram": 128], file: small)
                _ = try await s.patchImage(machine.id, [["op": "replace", "path": "/protected", "value": true]])
                // A snapshot of an image-backed server: on the lab (fake virt driver) it stays queued, without data.
                let net = try await s.create(Neutron.networks, ["name": "img-net"])
                _ = try await s.create(Neutron.subnets, ["name": "img-subnet", "network_id": .string(net.id), "ip_version": 4,
                                                         "cidr": "10.78.0.0/24"])
                let base = try #require(try await s.list(Glance.images, query: [QueryItem("name", "osmlab-image")]).collect().first)
                let server = try await s.create(Nova.servers, ["name": "img-server", "imageRef": .string(base.id), "flavorRef": "1",
                                                               "networks": [["uuid": .string(net.id)]]])
                _ = try await Waiter.wait("server", service: ServiceType.compute, timeout: 180, interval: 1, until: ["ACTIVE"],
                                          fetch: { try await s.find(Nova.servers, id: server.id) }, status: { $0.status })
                let snap = try await s.createServerImage(server.id, name: "snap-queued")
                _ = try await Waiter.wait("snapshot", service: ServiceType.image, timeout: 60, interval: 1, until: ["queued", "active"],
                                          fetch: { try await s.findImage(id: snap) }, status: { $0.status })
                _ = try await Waiter.wait("server", service: ServiceType.compute, timeout: 120, interval: 1, until: ["ACTIVE"],
                                          fetch: { try await s.find(Nova.servers, id: server.id) }, status: { $0.taskState == nil ? $0.status : "busy" })

                let exp = try await env.run(["export", "images", "--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")
                let yaml = try env.file("images.yml")
                #expect(yaml.contains("  type: openstack.image.Image\n"))
                #expect(yaml.contains("    kernel_ref:\n      domain_name: '%auth%'\n      name: kern\n      project_name: '%auth%'\n"))
                #expect(yaml.contains("    hw_cpu_cores: 2\n"))
                #expect(yaml.contains("    status: queued\n"))
                #expect(try await s.image(snap).status == "queued")

                let imp = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
                let r = CLIEvents.recap(imp.stdout)
                #expect(CLIEvents.count(r, "changed") == 3 && CLIEvents.count(r, "skipped") == 1 && CLIEvents.count(r, "failed") == 0,
                        "\(imp.stdout)")
                #expect(CLIEvents.item(imp.stdout, "snap-queued")?["message"]?.stringValue
                    == "the source image has no data (status queued): metadata only, not imported")
                let progress = CLIEvents.all(imp.stdout).filter { $0["event"]?.stringValue == "progress" && $0["name"]?.stringValue == "big" }
                #expect(progress.count >= 2)
                #expect(progress.last?["done"]?.intValue == 200 << 20 && progress.last?["total"]?.intValue == 200 << 20)

                // Through the API: same data, same metadata, the kernel reference points at the new kernel.
                let d = try dst.session()
                let dBig = try #require(try await named(d, "big").first)
                #expect(dBig.status == "active" && dBig.checksum == big.checksum && dBig.hashValue == big.hashValue && dBig.size == big.size)
                #expect(dBig.properties["hw_disk_bus"] == "scsi" && dBig.properties["custom_key"] == "custom value")
                #expect(dBig.properties["hw_cpu_cores"] == "2" && dBig.properties["os_distro"] == "debian")
                #expect(dBig.tags.sorted() == ["base", "gold"] && dBig.minDisk == 1)
                let dKernel = try #require(try await named(d, "kern").first)
                let dMachine = try #require(try await named(d, "machine").first)
                #expect(dMachine.properties["kernel_id"]?.stringValue == dKernel.id)
                #expect(dMachine.isProtected == true && dMachine.minRAM == 128 && dMachine.checksum == machine.checksum)
                #expect(try await named(d, "snap-queued").isEmpty)

                // Byte for byte: download from the destination and compare with the original file.
                let back = env.dir + "/back.raw"
                let t = try await d.downloadImageData(dBig.id, to: back)
                #expect(t.digests.md5 == big.checksum)
                #expect(FileManager.default.contentsEqual(atPath: original, andPath: back))
                try? FileManager.default.removeItem(atPath: back)

                // Again: nothing to do, nothing written.
                let again = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                let r2 = CLIEvents.recap(again.stdout)
                #expect(CLIEvents.count(r2, "ok") == 3 && CLIEvents.count(r2, "skipped") == 1 && CLIEvents.count(r2, "api_writes") == 0,
                        "\(again.stdout)")

                // Export again: byte-identical.
                let exp2 = try await env.run(["export", "images", "--src-cloud", "src"])
                #expect(exp2.exitCode == 0)
                #expect(try env.file("images.yml") == yaml)

                // Metadata edits are applied in place (no new upload).
                try env.edit("images.yml", "custom_key: custom value", "custom_key: edited value")
                try env.edit("images.yml", "    - base\n    - gold\n", "    - base\n    - gold\n    - new\n")
                let edit = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(CLIEvents.items(edit.stdout, "changed") == ["images: big"])
                #expect(CLIEvents.item(edit.stdout, "big")?["message"]?.stringValue == "updated: properties, tags")
                let edited = try #require(try await named(d, "big").first)
                #expect(edited.id == dBig.id && edited.properties["custom_key"] == "edited value" && edited.tags.sorted() == ["base", "gold", "new"])

                // A format cannot change once an image has data.
                try env.edit("images.yml", "    disk_format: raw\n", "    disk_format: qcow2\n")
                let fixed = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(fixed.exitCode == 1)
                #expect(CLIEvents.item(fixed.stdout, "big")?["message"]?.stringValue
                    == "differs in fields that cannot change once an image has data: disk_format (destination \"raw\", file \"qcow2\")")
                _ = try await d.patchImage(dMachine.id, [["op": "replace", "path": "/protected", "value": false]])
            }
        }
    }

    @Test("an import killed in the middle of an image leaves an incomplete image; the next run replaces it")
    func killedImport() async throws {
        try await LabTenant.with("imgksrc") { src in
            try await LabTenant.with("imgkdst") { dst in
                let env = try MigrationEnv("imgk", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let s = try src.session()
                let file = env.dir + "/data.raw"
                try RandomData.file(file, mebibytes: 200)
                let image = try await upload(s, ["name": "big", "disk_format": "raw", "container_format": "bare"], file: file)
                try? FileManager.default.removeItem(atPath: file)
                let exp = try await env.run(["export", "images", "--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")

                // Killed at the first progress event, with the data part way through.
                let run = try await KillingRunner.run(
                    ["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json", "--data-dir", env.data],
                    env: ["OS_CLIENT_CONFIG_FILE": env.clouds]
                ) { line in line.contains("\"event\":\"progress\"") && !line.contains("\"done\":209715200") }
                #expect(run.killed, "the import ended before it could be killed: \(run.stdout)")
                let d = try dst.session()
                // Glance notices the lost client and takes the image back from saving.
                var left = try await named(d, "big")
                for _ in 0..<50 where left.first?.status == "saving" {
                    try await Task.sleep(for: .milliseconds(200))
                    left = try await named(d, "big")
                }
                #expect(left.count == 1)
                let partial = try #require(left.first)
                #expect(partial.status != "active", "status \(partial.status)")

                // Detected and replaced.
                let rerun = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(rerun.exitCode == 0, "\(rerun.stdout)\n\(rerun.stderr)")
                let msg = CLIEvents.item(rerun.stdout, "big")?["message"]?.stringValue ?? ""
                #expect(msg == "created (200.0 MiB streamed from the source; replaces image \(partial.id): an incomplete upload (status \(partial.status)))",
                        "\(msg)")
                let now = try await named(d, "big")
                #expect(now.count == 1 && now.first?.status == "active" && now.first?.checksum == image.checksum
                    && now.first?.hashValue == image.hashValue && now.first?.id != partial.id)

                let again = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(CLIEvents.count(CLIEvents.recap(again.stdout), "ok") == 1)
                #expect(CLIEvents.count(CLIEvents.recap(again.stdout), "api_writes") == 0)
            }
        }
    }

    @Test("killed after the image record is made, and after its data is in: the rerun finishes each, one image, protected as the source")
    func killedAtEachInstant() async throws {
        try await LabTenant.with("imgpsrc") { src in
            try await LabTenant.with("imgpdst") { dst in
                let env = try MigrationEnv("imgp", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let s = try src.session(), d = try dst.session()
                let file = env.dir + "/data.raw"
                try RandomData.file(file, mebibytes: 3)
                var sources: [String: Image] = [:]
                for name in ["kp-created", "kp-uploaded"] {
                    sources[name] = try await upload(s, ["name": .string(name), "disk_format": "raw", "container_format": "bare"], file: file)
                    _ = try await s.patchImage(sources[name]!.id, [["op": "replace", "path": "/protected", "value": true]])
                }
                let exp = try await env.run(["export", "images", "--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")
                for (name, point) in [("kp-created", "image-created"), ("kp-uploaded", "image-uploaded")] {
                    let args = ["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json", "--filter", "images=\(name)"]
                    let killed = try await env.run(args, env: ["OSM_EXIT_AT": point])
                    #expect(killed.exitCode == 137, "\(point): \(killed.stderr)\n\(killed.stdout)")
                    let left = try #require(try await named(d, name).first)
                    #expect(left.isProtected == false)
                    let rerun = try await env.run(args)
                    #expect(rerun.exitCode == 0, "\(point): \(rerun.stdout)\n\(rerun.stderr)")
                    let msg = CLIEvents.item(rerun.stdout, name)?["message"]?.stringValue ?? ""
                    if point == "image-created" {
                        // No data yet: an incomplete upload, replaced.
                        #expect(msg == "created (3.0 MiB streamed from the source; replaces image \(left.id): an incomplete upload (status queued))", "\(msg)")
                    } else {
                        // The data is in and verified: the image is kept and only protected.
                        #expect(CLIEvents.item(rerun.stdout, name)?["status"]?.stringValue == "changed", "\(rerun.stdout)")
                        #expect(msg.contains("protected"), "\(msg)")
                    }
                    let now = try await named(d, name)
                    #expect(now.count == 1 && now.first?.status == "active" && now.first?.isProtected == true
                        && now.first?.checksum == sources[name]?.checksum, "\(point): \(now)")
                }
                let again = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(CLIEvents.count(CLIEvents.recap(again.stdout), "ok") == 2 && CLIEvents.count(CLIEvents.recap(again.stdout), "api_writes") == 0,
                        "\(again.stdout)")
                for (session, images) in [(s, try await images(s)), (d, try await images(d))] {
                    for i in images { _ = try await session.patchImage(i.id, [["op": "replace", "path": "/protected", "value": false]]) }
                }
            }
        }
    }

    @Test("destination images by that name with other data, protected or not, are kept and fail; renamed, the image migrates")
    func existingImages() async throws {
        try await LabTenant.with("imgesrc") { src in
            try await LabTenant.with("imgedst") { dst in
                let env = try MigrationEnv("imge", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let a = env.dir + "/a.raw", b = env.dir + "/b.raw"
                try RandomData.file(a, mebibytes: 2)
                try RandomData.file(b, mebibytes: 3)
                let s = try src.session(), d = try dst.session()
                let one = try await upload(s, ["name": "one", "disk_format": "raw", "container_format": "bare"], file: a)
                _ = try await upload(s, ["name": "two", "disk_format": "raw", "container_format": "bare"], file: a)
                let wrongOne = try await upload(d, ["name": "one", "disk_format": "raw", "container_format": "bare"], file: b)
                let wrongTwo = try await upload(d, ["name": "two", "disk_format": "raw", "container_format": "bare"], file: b)
                _ = try await d.patchImage(wrongTwo.id, [["op": "replace", "path": "/protected", "value": true]])
                let exp = try await env.run(["export", "images", "--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")

                let imp = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json"])
                #expect(imp.exitCode == 1)
                #expect(CLIEvents.item(imp.stdout, "one")?["message"]?.stringValue
                    == "image \(wrongOne.id) named 'one' in the destination holds other data (checksum \(wrongOne.checksum ?? "")): not replaced; delete it, or import this one under another name (--map-name images:one=NEW)")
                #expect(CLIEvents.item(imp.stdout, "two")?["message"]?.stringValue
                    == "image \(wrongTwo.id) named 'two' in the destination is protected and does not hold this data (status active, checksum \(wrongTwo.checksum ?? "")): not replaced")
                #expect(try await named(d, "one").map(\.id) == [wrongOne.id])
                // Renamed, it is migrated beside the other one.
                let renamed = try await env.run(["import", "images", "--src-cloud", "src", "--dst-cloud", "dst", "--json",
                                                 "--map-name", "images:one=one-migrated", "--filter", "images=one"])
                #expect(CLIEvents.item(renamed.stdout, "one-migrated")?["status"]?.stringValue == "changed", "\(renamed.stdout)")
                #expect(try await named(d, "one-migrated").map(\.checksum) == [one.checksum])
                #expect(try await named(d, "two").map(\.id) == [wrongTwo.id])
                _ = try await d.patchImage(wrongTwo.id, [["op": "replace", "path": "/protected", "value": false]])
            }
        }
    }

    @Test("--image-blobs-dir: export writes verified files once, import reads them without the source cloud")
    func blobsDirectory() async throws {
        try await LabTenant.with("imgbsrc") { src in
            try await LabTenant.with("imgbdst") { dst in
                let env = try MigrationEnv("imgb", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let f = env.dir + "/f.raw"
                try RandomData.file(f, mebibytes: 5)
                let s = try src.session()
                let image = try await upload(s, ["name": "blobbed/one", "disk_format": "raw", "container_format": "bare"], file: f)
                _ = try await s.createImage(["name": "no-data", "disk_format": "raw", "container_format": "bare"])
                let blobs = env.dir + "/blobs"
                let exp = try await env.run(["export", "images", "--src-cloud", "src", "--image-blobs-dir", blobs, "--json"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")
                let path = blobs + "/\(image.id)-blobbed_one"
                #expect(CLIEvents.item(exp.stdout, "blobbed/one")?["message"]?.stringValue
                    == "data written to \(path) (5.0 MiB, checksums verified)")
                #expect(CLIEvents.item(exp.stdout, "no-data")?["status"] == "skipped")
                #expect(FileManager.default.contentsEqual(atPath: f, andPath: path))
                let exp2 = try await env.run(["export", "images", "--src-cloud", "src", "--image-blobs-dir", blobs, "--json"])
                #expect(CLIEvents.item(exp2.stdout, "blobbed/one")?["message"]?.stringValue == "data already in \(path)")

                // No source cloud at all: the data comes from the files.
                let imp = try await env.run(["import", "images", "--dst-cloud", "dst", "--image-blobs-dir", blobs, "--json"])
                #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
                #expect(CLIEvents.item(imp.stdout, "blobbed/one")?["message"]?.stringValue == "created (5.0 MiB from the blobs directory)")
                let d = try dst.session()
                #expect(try await named(d, "blobbed/one").map(\.checksum) == [image.checksum])
                let again = try await env.run(["import", "images", "--dst-cloud", "dst", "--image-blobs-dir", blobs, "--json"])
                #expect(CLIEvents.count(CLIEvents.recap(again.stdout), "api_writes") == 0)
            }
        }
    }
}
