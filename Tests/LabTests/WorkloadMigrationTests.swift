import Engine
import Foundation
import OpenStack
import Resources
import Subprocess
import Testing
import TestSupport

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Issue 5 on the lab: cold migration of fake-driver VMs through two conversion hosts (Nova
/// servers plus private sshds on loopback), with their volumes' bytes compared on the lab host.
@Suite("Workload migration", .serialized)
struct WorkloadMigrationTests {
    /// A source tenant with a network, a security group and a keypair, its twin destination
    /// tenant, and deployed conversion hosts.
    struct Env {
        let src: LabTenant
        let dst: LabTenant
        let hosts: LabConversionHosts
        let s: CloudSession
        let d: CloudSession
        let network: String
        let image: String

        func run(_ args: [String], env: [String: String] = [:], timeout: Double = 900) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
            try await CLIRunner.run(args + ["--vars", hosts.varsFile], env: env, timeout: timeout)
        }

        var workloadsPath: String { hosts.dataDir + "/workloads.yml" }

        /// Change a workload's record in workloads.yml.
        func edit(_ name: String, _ change: (inout ResourceRecord) -> Void) throws {
            var f = try ResourceFile.load(workloadsPath)
            guard let i = f.records.firstIndex(where: { $0.name == name }) else { throw TestFailure("no workload \(name)") }
            change(&f.records[i])
            try f.write()
        }
    }

    static func withEnv(_ tag: String, _ body: (Env) async throws -> Void) async throws {
        try await LabTenant.with(tag + "s") { src in
            try await LabTenant.with(tag + "d") { dst in
                let hosts = try LabConversionHosts.make(src: src, dst: dst)
                defer { hosts.stop() }
                let s = try src.session()
                let d = try dst.session()
                let net = try await s.create(Neutron.networks, ["name": "app-net"])
                _ = try await s.create(Neutron.subnets, ["name": "app-subnet", "network_id": .string(net.id), "ip_version": 4,
                                                         "cidr": "10.60.0.0/24"])
                let sg = try await s.create(Neutron.securityGroups, ["name": "app-sg", "description": "app"])
                _ = try await s.create(Neutron.securityGroupRules, ["security_group_id": .string(sg.id), "direction": "ingress",
                                                                    "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
                                                                    "port_range_max": 22])
                let pub = try String(contentsOfFile: hosts.keyFile + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                _ = try await s.createKeypair(name: "app-key", publicKey: pub, type: "ssh", userID: nil)
                let image = try #require(try await s.named(Glance.images, "osmlab-image").first).id
                let deploy = try await CLIRunner.run(["conversion-hosts", "deploy", "--vars", hosts.varsFile], timeout: 900)
                try #require(deploy.exitCode == 0, "deploy failed: \(deploy.stderr)\(deploy.stdout)")
                try await body(Env(src: src, dst: dst, hosts: hosts, s: s, d: d, network: net.id, image: image))
            }
        }
    }

    /// Export the pre-workload resources and the workloads, import the former.
    static func prepare(_ env: Env) async throws {
        let exp = try await env.run(["export", "networks", "subnets", "security-groups", "security-group-rules", "keypairs", "workloads"])
        try #require(exp.exitCode == 0, "export failed: \(exp.stderr)")
        let imp = try await env.run(["import", "networks", "subnets", "security-groups", "security-group-rules", "keypairs"])
        try #require(imp.exitCode == 0, "import failed: \(imp.stderr)\(imp.stdout)")
    }

    static func item(_ stdout: String, _ name: String) -> JSONValue? {
        stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            .last { $0["event"]?.stringValue == "item" && $0["kind"]?.stringValue == "workloads" && $0["name"]?.stringValue == name }
    }

    @Test("boot-from-volume and re-imaged VMs move with byte-identical volumes; a rerun changes nothing")
    func coldMigration() async throws {
        try await Self.withEnv("wl") { env in
            let s = env.s, d = env.d
            let boot = try await WorkloadLab.volume(s, name: "bfv-root", image: env.image)
            let d1 = try await WorkloadLab.volume(s, name: "bfv-data1", size: 1)
            let d2 = try await WorkloadLab.volume(s, name: "bfv-data2", size: 2)
            let d3 = try await WorkloadLab.volume(s, name: "img-data1", size: 1)
            try await WorkloadLab.fill(d1.id, seed: 1, offsetMiB: 0, count: 3)
            try await WorkloadLab.fill(d1.id, seed: 2, offsetMiB: 700, count: 1)
            try await WorkloadLab.fill(d2.id, seed: 3, offsetMiB: 0, count: 8)
            try await WorkloadLab.fill(d2.id, seed: 4, offsetMiB: 2000, count: 2)
            try await WorkloadLab.fill(d3.id, seed: 5, offsetMiB: 10, count: 1)
            let vmBFV = try await WorkloadLab.server(s, name: "vm-bfv", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                     bootVolume: boot.id, image: nil, data: [d1.id, d2.id], flavor: "1")
            let vmImg = try await WorkloadLab.server(s, name: "vm-img", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                     bootVolume: nil, image: env.image, data: [d3.id], flavor: "1")
            _ = try await WorkloadLab.server(s, name: "vm-running", network: env.network, securityGroup: "app-sg", key: "app-key",
                                             bootVolume: nil, image: env.image, data: [], flavor: "1")
            for vm in [vmBFV, vmImg] {
                try await s.stopServer(vm)
                try await WorkloadLab.waitServer(s, vm, "SHUTOFF")
            }
            try await Self.prepare(env)
            let yaml = try String(contentsOfFile: env.workloadsPath, encoding: .utf8)
            #expect(yaml.contains("name: vm-bfv") && yaml.contains("name: vm-img") && yaml.contains("name: vm-running"))
            #expect(!yaml.contains("os_migrate_conv_src"), "the source conversion host was exported as a workload")
            try env.edit("vm-bfv") { $0.migrationParams["port_creation_mode"] = "neutron" }

            let run = try await env.run(["import", "workloads", "--json"])
            #expect(run.exitCode == 0, "\(run.stderr)\n\(run.stdout)")
            #expect(Self.item(run.stdout, "vm-bfv")?["status"]?.stringValue == "changed", "\(run.stdout)")
            #expect(Self.item(run.stdout, "vm-img")?["status"]?.stringValue == "changed", "\(run.stdout)")
            #expect(Self.item(run.stdout, "vm-running")?["status"]?.stringValue == "skipped")
            #expect(Self.item(run.stdout, "vm-running")?["message"]?.stringValue == "source is ACTIVE: stop it or pass --stop-source (or --sync to copy it while it runs)")

            // The destination servers, field by field against the source.
            for name in ["vm-bfv", "vm-img"] {
                let source = try #require(try await s.named(Nova.servers, name).first)
                let target = try #require(try await d.named(Nova.servers, name).first)
                #expect(target.flavor?.originalName == source.flavor?.originalName)
                #expect(target.keyName == "app-key")
                #expect(target.metadata == source.metadata)
                #expect(try await d.serverSecurityGroupNames(target.id) == ["app-sg"])
                let sp = try await s.list(Neutron.ports, query: [QueryItem("device_id", source.id)]).collect()
                let dp = try await d.list(Neutron.ports, query: [QueryItem("device_id", target.id)]).collect()
                #expect(sp.map { $0.fixedIPs?.map(\.ipAddress) ?? [] } == dp.map { $0.fixedIPs?.map(\.ipAddress) ?? [] })
                if name == "vm-bfv" { #expect(sp.map(\.macAddress) == dp.map(\.macAddress), "neutron mode keeps the MAC") }
                // Volumes in device order, byte-identical.
                let sa = try await s.volumeAttachments(server: source.id).sorted { ($0.device ?? "") < ($1.device ?? "") }
                let da = try await d.volumeAttachments(server: target.id).sorted { ($0.device ?? "") < ($1.device ?? "") }
                #expect(sa.count == da.count)
                for (a, b) in zip(sa, da) {
                    let sv = try await s.get(Cinder.volumes, a.volumeID), dv = try await d.get(Cinder.volumes, b.volumeID)
                    #expect(sv.name == dv.name && sv.size == dv.size && sv.bootable == dv.bootable)
                    #expect(try await WorkloadLab.identical(sv.id, dv.id), "\(name) \(a.device ?? ""): volumes differ")
                    #expect(dv.metadata?["os_migrate_digest"]?.hasPrefix("osm-sha256-chunked:") == true)
                }
                if name == "vm-img" { #expect(target.imageID == env.image) }
                // The source is as it was: stopped, its data volumes back.
                #expect(try await s.get(Nova.servers, source.id).status == "SHUTOFF")
            }
            #expect(try await s.get(Cinder.volumes, d1.id).attachments.first?.serverID == vmBFV)
            #expect(try await s.get(Cinder.volumes, d2.id).attachments.first?.serverID == vmBFV)
            #expect(try await s.get(Cinder.volumes, d3.id).attachments.first?.serverID == vmImg)
            // No temporaries left in the source.
            #expect(try await s.list(Cinder.snapshots).collect().isEmpty)
            #expect(try await s.list(Cinder.volumes).collect().filter { $0.name.hasPrefix("os-migrate-") }.isEmpty)

            // Rerun: everything ok, nothing copied or created.
            let inventory = try await WorkloadLab.inventory(d)
            let again = try await env.run(["import", "workloads", "--json"])
            #expect(again.exitCode == 0)
            #expect(Self.item(again.stdout, "vm-bfv")?["status"]?.stringValue == "ok")
            #expect(Self.item(again.stdout, "vm-img")?["status"]?.stringValue == "ok")
            #expect(try await WorkloadLab.inventory(d) == inventory)
            let report = try await env.run(["report", "--json"])
            let doc = try JSONDecoder().decode(JSONValue.self, from: Data(report.stdout.utf8))
            let states = (doc["workloads"]?.arrayValue ?? []).map { "\($0["name"]!.stringValue!)=\($0["state"]!.stringValue!)" }.sorted()
            #expect(states == ["vm-bfv=done", "vm-img=done"])
            let copies = (doc["workloads"]?.arrayValue ?? []).flatMap { $0["copies"]?.arrayValue ?? [] }
            #expect(copies.count == 4)
        }
    }

    @Test("a failure at server creation leaves both clouds clean; a missing network fails before any data moves")
    func failureIsCleanedUp() async throws {
        try await Self.withEnv("wlf") { env in
            let s = env.s, d = env.d
            let boot = try await WorkloadLab.volume(s, name: "f-root", image: env.image)
            let data = try await WorkloadLab.volume(s, name: "f-data", size: 1)
            try await WorkloadLab.fill(data.id, seed: 9, offsetMiB: 0, count: 2)
            let vm = try await WorkloadLab.server(s, name: "vm-fail", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                  bootVolume: boot.id, image: nil, data: [data.id], flavor: "1")
            try await s.stopServer(vm)
            try await WorkloadLab.waitServer(s, vm, "SHUTOFF")
            try await Self.prepare(env)
            let srcBefore = try await WorkloadLab.inventory(s)
            let dstBefore = try await WorkloadLab.inventory(d)

            // --dry-run: the plan after the prerequisites, and not one write in either cloud.
            let plan = try await env.run(["import", "workloads", "--dry-run", "--json"])
            #expect(plan.exitCode == 0, "\(plan.stderr)")
            #expect(Self.item(plan.stdout, "vm-fail")?["message"]?.stringValue
                == "would migrate: 2 volume(s) to copy (2 GiB), 1 port(s), 0 floating IP(s)", "\(plan.stdout)")
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            #expect(try await WorkloadLab.inventory(d) == dstBefore)
            #expect(try await s.get(Nova.servers, vm).status == "SHUTOFF")

            let failed = try await env.run(["import", "workloads", "--json"], env: ["OSM_FAIL_AT": "server"])
            #expect(failed.exitCode == 1)
            let msg = Self.item(failed.stdout, "vm-fail")?["message"]?.stringValue ?? ""
            #expect(msg.hasPrefix("test: injected failure at step server (OSM_FAIL_AT); everything it created was removed"), "\(msg)")
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            #expect(try await WorkloadLab.inventory(d) == dstBefore)
            #expect(try await s.get(Cinder.volumes, data.id).attachments.first?.serverID == vm)

            // A volume type the destination lacks is found before anything moves, with the way out.
            try env.edit("vm-fail") { r in
                var vols = r.params["volumes"]?.arrayValue ?? []
                for i in vols.indices where vols[i]["params"]?["name"]?.stringValue == "f-data" {
                    var v = vols[i].objectValue ?? [:]
                    var p = v["params"]?.objectValue ?? [:]
                    p["volume_type"] = "gold"
                    v["params"] = .object(p)
                    vols[i] = .object(v)
                }
                r.params["volumes"] = .array(vols)
            }
            let noType = try await env.run(["import", "workloads", "--json"])
            #expect(noType.exitCode == 1)
            let m1 = Self.item(noType.stdout, "vm-fail")?["message"]?.stringValue ?? ""
            #expect(m1.hasPrefix("prerequisites not met in the destination: volume 'f-data': volume type 'gold' does not exist in the destination (known: "), "\(m1)")
            #expect(m1.hasSuffix("map it with --map-volume-type SOURCE=DESTINATION"), "\(m1)")
            // Mapped, the prerequisites pass (a dry run: nothing moves yet).
            let mapped = try await env.run(["import", "workloads", "--dry-run", "--json", "--map-volume-type", "gold=__DEFAULT__"])
            #expect(mapped.exitCode == 0, "\(mapped.stdout)")
            #expect(Self.item(mapped.stdout, "vm-fail")?["message"]?.stringValue?.hasPrefix("would migrate: 2 volume(s)") == true, "\(mapped.stdout)")
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            #expect(try await WorkloadLab.inventory(d) == dstBefore)

            // The destination loses the workload's network: the prerequisite step says so, nothing moves.
            let dnet = try #require(try await d.named(Neutron.networks, "app-net").first)
            try await d.delete(Neutron.networks, dnet.id, ignoreMissing: false)
            let noNet = try await env.run(["import", "workloads", "--json"])
            #expect(noNet.exitCode == 1)
            let m2 = Self.item(noNet.stdout, "vm-fail")?["message"]?.stringValue ?? ""
            #expect(m2.hasPrefix("prerequisites not met in the destination: ports[0] network: network 'app-net' not found in the destination"), "\(m2)")
            let dstNow = try await WorkloadLab.inventory(d)
            #expect(dstNow.filter { $0.hasPrefix("volume") }.isEmpty, "no destination volume may be created: \(dstNow)")
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
        }
    }

    @Test("killed during the copy, a rerun finishes, moves only the rest, and leaks nothing")
    func resumeAfterKill() async throws {
        try await Self.withEnv("wlk") { env in
            let s = env.s, d = env.d
            let data = try await WorkloadLab.volume(s, name: "k-data", size: 2)
            try await WorkloadLab.fill(data.id, seed: 11, offsetMiB: 0, count: 768)
            let vm = try await WorkloadLab.server(s, name: "vm-kill", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                  bootVolume: nil, image: env.image, data: [data.id], flavor: "1")
            try await s.stopServer(vm)
            try await WorkloadLab.waitServer(s, vm, "SHUTOFF")
            try await Self.prepare(env)
            let srcBefore = try await WorkloadLab.inventory(s)

            // Run, and kill the whole process group once a quarter of the data has moved.
            let killedAt = try await Self.runAndKill(["import", "workloads", "--json", "--vars", env.hosts.varsFile]) { event in
                guard event["event"]?.stringValue == "progress", let done = event["done"]?.intValue, let total = event["total"]?.intValue else {
                    return false
                }
                return done > total / 4
            }
            #expect(killedAt != nil, "the copy finished before it could be killed")
            let report = try await env.run(["report", "--json"])
            let doc = try JSONDecoder().decode(JSONValue.self, from: Data(report.stdout.utf8))
            #expect(doc["workloads"]?.arrayValue?.first?["state"]?.stringValue == "running")

            let rerun = try await env.run(["import", "workloads", "--json"])
            #expect(rerun.exitCode == 0, "\(rerun.stderr)\n\(rerun.stdout)")
            #expect(Self.item(rerun.stdout, "vm-kill")?["status"]?.stringValue == "changed", "\(rerun.stdout)")
            let after = try JSONDecoder().decode(JSONValue.self, from: Data(try await env.run(["report", "--json"]).stdout.utf8))
            let copy = try #require(after["workloads"]?.arrayValue?.first?["copies"]?.arrayValue?.first)
            let reused = copy["bytes_reused"]?.intValue ?? 0
            let wire = copy["bytes_on_wire"]?.intValue ?? 0
            #expect(reused > 0, "the second run reused nothing: \(copy.jsonString())")
            #expect(wire < 768 << 20, "the second run moved everything again: \(copy.jsonString())")
            let target = try #require(try await d.named(Nova.servers, "vm-kill").first)
            let attached = try await d.volumeAttachments(server: target.id)
            #expect(attached.count == 1)
            if let a = attached.first { #expect(try await WorkloadLab.identical(data.id, a.volumeID)) }
            // Nothing leaked: the source is as before; the destination holds just the migrated VM.
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            let dstVolumes = try await d.list(Cinder.volumes).collect()
            #expect(dstVolumes.map(\.name) == ["k-data"], "\(dstVolumes.map(\.name))")
            #expect(try await s.get(Cinder.volumes, data.id).attachments.first?.serverID == vm)
        }
    }

    @Test("after the server exists: a failure removes it and its ports and starts a stopped source again; a kill is finished by the rerun without a duplicate; NIC order is kept")
    func afterTheServerExists() async throws {
        try await Self.withEnv("wla") { env in
            let s = env.s, d = env.d
            // A second network whose name sorts first: the NIC order must not follow names.
            let second = try await s.create(Neutron.networks, ["name": "aa-net"])
            _ = try await s.create(Neutron.subnets, ["name": "aa-subnet", "network_id": .string(second.id), "ip_version": 4,
                                                     "cidr": "10.61.0.0/24"])
            let undoData = try await WorkloadLab.volume(s, name: "u-data", size: 1)
            let lateData = try await WorkloadLab.volume(s, name: "l-data", size: 1)
            try await WorkloadLab.fill(undoData.id, seed: 31, offsetMiB: 0, count: 2)
            try await WorkloadLab.fill(lateData.id, seed: 32, offsetMiB: 5, count: 3)
            let undo = try await WorkloadLab.server(s, name: "vm-undo", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                    bootVolume: nil, image: env.image, data: [undoData.id], flavor: "1")
            let late = try await WorkloadLab.server(s, name: "vm-late", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                    bootVolume: nil, image: env.image, data: [lateData.id], flavor: "1",
                                                    moreNetworks: [second.id])
            // Nova mode makes ports from a network and an IP: the rest of a source port must follow.
            let lateSecond = try #require(try await s.list(Neutron.ports, query: [QueryItem("device_id", late), QueryItem("network_id", second.id)])
                .collect().first)
            _ = try await s.update(Neutron.ports, lateSecond.id, ["allowed_address_pairs": [["ip_address": "10.61.0.200"]]])
            // Floating IPs on both VMs' first ports (router to `public` in both projects).
            let publicNet = try #require(try await s.named(Neutron.networks, "public").first)
            let router = try await s.create(Neutron.routers, ["name": "app-router", "external_gateway_info": ["network_id": .string(publicNet.id)]])
            let appSubnet = try #require(try await s.named(Neutron.subnets, "app-subnet").first)
            try await s.addRouterInterface(router: router.id, subnetID: appSubnet.id)
            var sourceFIPs: [String: String] = [:]
            for (name, vm) in [("vm-undo", undo), ("vm-late", late)] {
                let port = try #require(try await s.list(Neutron.ports, query: [QueryItem("device_id", vm), QueryItem("network_id", env.network)])
                    .collect().first)
                let fip = try await s.create(Neutron.floatingIPs, ["floating_network_id": .string(publicNet.id), "port_id": .string(port.id)])
                sourceFIPs[name] = fip.floatingIPAddress
            }
            try await Self.prepare(env)
            let more = try await env.run(["export", "routers", "router-interfaces"])
            try #require(more.exitCode == 0, "\(more.stderr)")
            let routers = try await env.run(["import", "routers", "router-interfaces"])
            try #require(routers.exitCode == 0, "\(routers.stderr)\(routers.stdout)")
            let yaml = try String(contentsOfFile: env.workloadsPath, encoding: .utf8)
            let late0 = try #require(yaml.range(of: "name: vm-late"))
            let afterLate = yaml[late0.upperBound...]
            let appAt = try #require(afterLate.range(of: "name: app-net")).lowerBound
            let aaAt = try #require(afterLate.range(of: "name: aa-net")).lowerBound
            #expect(appAt < aaAt, "vm-late's ports are not in NIC order (app-net first)")
            let srcBefore = try await WorkloadLab.inventory(s)
            let dstBefore = try await WorkloadLab.inventory(d)

            // Server, ports and floating IP exist, then the run fails: they all go, the running source
            // that --stop-source stopped runs again, its volume is back.
            let failed = try await env.run(["import", "workloads", "--stop-source", "--filter", "workloads=vm-undo", "--json"],
                                           env: ["OSM_FAIL_AFTER": "floatingIPs"])
            #expect(failed.exitCode == 1)
            let msg = Self.item(failed.stdout, "vm-undo")?["message"]?.stringValue ?? ""
            #expect(msg == "test: injected failure after step floatingIPs (OSM_FAIL_AFTER); everything it created was removed and the source restored",
                    "\(msg)")
            #expect(try await WorkloadLab.inventory(d) == dstBefore)
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            #expect(try await s.get(Nova.servers, undo).status == "ACTIVE")
            #expect(try await s.get(Cinder.volumes, undoData.id).attachments.first?.serverID == undo)

            // Killed right after the server was created (Nova made its ports): the rerun sees them
            // as its own, finishes, and creates nothing twice.
            let killed = try await env.run(["import", "workloads", "--stop-source", "--filter", "workloads=vm-late", "--json",
                                            "--map-flavor", "m1.tiny=m1.small"], env: ["OSM_EXIT_AFTER": "server"])
            #expect(killed.exitCode == 137, "\(killed.stderr)")
            #expect(try await d.named(Nova.servers, "vm-late").count == 1)
            let rerun = try await env.run(["import", "workloads", "--filter", "workloads=vm-late", "--json"])
            #expect(rerun.exitCode == 0, "\(rerun.stderr)\n\(rerun.stdout)")
            #expect(Self.item(rerun.stdout, "vm-late")?["status"]?.stringValue == "changed", "\(rerun.stdout)")
            let servers = try await d.named(Nova.servers, "vm-late")
            #expect(servers.count == 1)
            let target = try #require(servers.first)
            #expect(target.flavor?.originalName == "m1.small", "--map-flavor m1.tiny=m1.small was not applied")
            let ports = try await d.list(Neutron.ports, query: [QueryItem("device_id", target.id)]).collect()
            #expect(ports.count == 2, "\(ports.map(\.id))")
            let secondIP = lateSecond.fixedIPs?.first?.ipAddress
            let migratedSecond = ports.first { ($0.fixedIPs ?? []).contains { $0.ipAddress == secondIP } }
            #expect(migratedSecond?.allowedAddressPairs?.map(\.ipAddress) == ["10.61.0.200"])
            // floating_ip_mode auto: the source still holds its address, so a new one is made on the same port.
            let appPort = ports.first { ($0.fixedIPs ?? []).contains { $0.ipAddress.hasPrefix("10.60.") } }
            let dstFIPs = try await d.list(Neutron.floatingIPs, query: [QueryItem("port_id", appPort?.id ?? "-")]).collect()
            #expect(dstFIPs.count == 1 && dstFIPs.first?.floatingIPAddress != sourceFIPs["vm-late"], "\(dstFIPs.map(\.floatingIPAddress))")
            let raw = try await d.send(APIRequest(ServiceType.compute, .GET, "/servers/\(target.id)"))
            #expect(WorkloadKind.addressNetworkOrder(raw.body) == ["app-net", "aa-net"])
            let attached = try await d.volumeAttachments(server: target.id)
            #expect(attached.count == 1)
            if let a = attached.first { #expect(try await WorkloadLab.identical(lateData.id, a.volumeID)) }
            // Success leaves the source stopped, with its volume back, and no temporaries.
            #expect(try await s.get(Nova.servers, late).status == "SHUTOFF")
            #expect(try await s.get(Cinder.volumes, lateData.id).attachments.first?.serverID == late)
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            let dstVolumes = try await d.list(Cinder.volumes).collect().map(\.name)
            #expect(dstVolumes == ["l-data"], "\(dstVolumes)")
        }
    }

    @Test("detached volumes move with their data, verified; a rerun is ok and copies nothing")
    func detachedVolumeData() async throws {
        try await Self.withEnv("wlv") { env in
            let s = env.s, d = env.d
            let a = try await WorkloadLab.volume(s, name: "dv-data", size: 1)
            try await WorkloadLab.fill(a.id, seed: 21, offsetMiB: 0, count: 4)
            try await WorkloadLab.fill(a.id, seed: 22, offsetMiB: 900, count: 2)
            let exp = try await env.run(["export", "detached-volumes"])
            try #require(exp.exitCode == 0, "\(exp.stderr)")
            let imp = try await env.run(["import", "detached-volumes", "--json"])
            #expect(imp.exitCode == 0, "\(imp.stderr)\n\(imp.stdout)")
            let events = imp.stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            let item = events.last { $0["event"]?.stringValue == "item" && $0["name"]?.stringValue == "dv-data" }
            #expect(item?["message"]?.stringValue == "created (1 GiB, data copied and verified)", "\(imp.stdout)")
            let target = try #require(try await d.named(Cinder.volumes, "dv-data").first)
            #expect(try await WorkloadLab.identical(a.id, target.id))
            #expect(target.metadata?["os_migrate_source_volume"] == a.id)
            #expect(target.metadata?["os_migrate_digest"]?.hasPrefix("osm-sha256-chunked:") == true)
            let sourceNow = try await s.get(Cinder.volumes, a.id)
            #expect(target.attachments.isEmpty && sourceNow.attachments.isEmpty)
            let again = try await env.run(["import", "detached-volumes", "--json"])
            let last = again.stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            #expect(last.last { $0["name"]?.stringValue == "dv-data" }?["status"]?.stringValue == "ok")
            #expect(last.last?["api_writes"]?.intValue == 0)
            #expect(try await d.list(Cinder.volumes).collect().count == 1)

            // A destination volume of that name that os-migrate did not create is someone's data: never written.
            _ = try await WorkloadLab.volume(s, name: "dv-clash", size: 1)
            let theirs = try await WorkloadLab.volume(d, name: "dv-clash", size: 1)
            try await WorkloadLab.fill(theirs.id, seed: 23, offsetMiB: 0, count: 1)
            func head(_ id: String) async throws -> Data? {
                let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: try await WorkloadLab.volumePath(id)))
                defer { try? h.close() }
                return try h.read(upToCount: 1 << 20)
            }
            let theirBytes = try await head(theirs.id)
            let exp2 = try await env.run(["export", "detached-volumes"])
            try #require(exp2.exitCode == 0, "\(exp2.stderr)")
            let clash = try await env.run(["import", "detached-volumes", "--json"])
            #expect(clash.exitCode == 1)
            let events2 = clash.stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            let failed = events2.last { $0["event"]?.stringValue == "item" && $0["name"]?.stringValue == "dv-clash" }
            #expect(failed?["status"]?.stringValue == "failed")
            #expect(failed?["message"]?.stringValue == "volume \(theirs.id) named 'dv-clash' exists in the destination but was not created by os-migrate (no os_migrate_source_volume metadata): copying would overwrite its data; delete or rename it",
                    "\(clash.stdout)")
            #expect(try await head(theirs.id) == theirBytes)
            #expect(try await d.get(Cinder.volumes, theirs.id).metadata?["os_migrate_source_volume"] == nil)
        }
    }

    /// Run the CLI; kill it and every process it started (SIGKILL) when `when` says so.
    /// Returns the event that triggered the kill, nil if the process ended first.
    static func runAndKill(_ args: [String], when: @escaping @Sendable (JSONValue) -> Bool) async throws -> JSONValue? {
        var overrides: [Environment.Key: String?] = [:]
        for key in ProcessInfo.processInfo.environment.keys where key.hasPrefix("OS_") { overrides[Environment.Key(stringLiteral: key)] = .some(nil) }
        let config = Configuration(executable: .path(FilePath(CLIRunner.binaryPath)), arguments: Arguments(args),
                                   environment: Environment.inherit.updating(overrides))
        let r = try await Subprocess.run(config, input: .none, output: .sequence, error: .discarded) { execution -> JSONValue? in
            for try await line in execution.standardOutput.strings() {
                if let v = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), when(v) {
                    killTree(execution.processIdentifier.value)
                    return v
                }
            }
            return nil
        }
        return r.closureResult
    }

    /// SIGKILL a process and all its descendants (found through /proc), children first frozen.
    static func killTree(_ root: Int32) {
        var tree = [root]
        var i = 0
        while i < tree.count {
            let parent = tree[i]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry),
                      let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")")
                else { continue }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 1, Int32(fields[1]) == parent, !tree.contains(pid) { tree.append(pid) }
            }
            i += 1
        }
        for pid in tree { kill(pid, SIGSTOP) }
        for pid in tree { kill(pid, SIGKILL) }
    }
}
