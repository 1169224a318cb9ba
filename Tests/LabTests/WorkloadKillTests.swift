import Engine
import Foundation
import OpenStack
import Resources
import Testing
import TestSupport
import Workloads

/// A kill at the hardest instant of a create: after the cloud answered, before the ledger
/// recorded the answer (`OSM_EXIT_INSIDE=<role>`). The ledger holds the intent, so the next run
/// takes the resource over instead of making a second one or mistaking it for someone else's
/// (the port lockout: a port with the source's MAC and fixed IP that the prerequisites blamed).
@Suite("Workload migration killed inside a create", .serialized)
struct WorkloadKillTests {
    struct Case: Sendable {
        let vm: String
        /// The test hook and its value: where the kill lands.
        let hook: String
        let at: String
        let bootFromVolume: Bool
        let neutronPorts: Bool
        let floatingIP: Bool
        /// The ledger role whose create was interrupted (kills inside a create).
        var role: String? { hook == "OSM_EXIT_INSIDE" ? at : nil }
    }

    /// Kills inside a create (after the cloud's answer, before the ledger's record) …
    static let inside = [
        Case(vm: "k-port", hook: "OSM_EXIT_INSIDE", at: "dst-port:0", bootFromVolume: true, neutronPorts: true, floatingIP: false),
        Case(vm: "k-server", hook: "OSM_EXIT_INSIDE", at: "dst-server", bootFromVolume: true, neutronPorts: false, floatingIP: false),
        Case(vm: "k-nserver", hook: "OSM_EXIT_INSIDE", at: "dst-server", bootFromVolume: false, neutronPorts: true, floatingIP: false),
        Case(vm: "k-volume", hook: "OSM_EXIT_INSIDE", at: "dst-volume:0", bootFromVolume: false, neutronPorts: false, floatingIP: false),
        Case(vm: "k-snapshot", hook: "OSM_EXIT_INSIDE", at: "boot-snapshot", bootFromVolume: true, neutronPorts: false, floatingIP: false),
        Case(vm: "k-staged", hook: "OSM_EXIT_INSIDE", at: "staged-volume:boot", bootFromVolume: true, neutronPorts: true, floatingIP: false),
        Case(vm: "k-fip", hook: "OSM_EXIT_INSIDE", at: "dst-fip:0", bootFromVolume: false, neutronPorts: false, floatingIP: true),
    ]

    /// … and at every step boundary: after the step's last call before its record, and right
    /// after the record; boot-from-volume and image-booted VMs, both port modes, in turn.
    static let boundaries: [Case] = MigrationStep.allCases.enumerated().flatMap { i, step in
        [("OSM_EXIT_AFTER", "a"), ("OSM_EXIT_RECORDED", "r")].enumerated().map { j, hook in
            let n = 2 * i + j
            return Case(vm: "k\(i)\(hook.1)-\(step.rawValue.lowercased())", hook: hook.0, at: step.rawValue, bootFromVolume: n % 2 == 0,
                        neutronPorts: (n / 2) % 2 == 0, floatingIP: step == .floatingIPs)
        }
    }

    static let cases = inside + boundaries

    @Test("killed inside each create and at each step boundary, the rerun finishes: one of each, bytes equal, nothing leaked, then all ok")
    func killedInsideCreates() async throws {
        try await WorkloadMigrationTests.withEnv("wk") { env in
            let s = env.s, d = env.d
            let publicNet = try #require(try await s.named(Neutron.networks, "public").first)
            let router = try await s.create(Neutron.routers, ["name": "k-router", "external_gateway_info": ["network_id": .string(publicNet.id)]])
            let subnet = try #require(try await s.named(Neutron.subnets, "app-subnet").first)
            try await s.addRouterInterface(router: router.id, subnetID: subnet.id)
            var dataVolumes: [String: String] = [:]
            var servers: [String: String] = [:]
            for (i, c) in Self.cases.enumerated() {
                let boot = c.bootFromVolume ? try await WorkloadLab.volume(s, name: "\(c.vm)-root", image: env.image) : nil
                let data = try await WorkloadLab.volume(s, name: "\(c.vm)-data", size: 1)
                try await WorkloadLab.fill(data.id, seed: UInt64(40 + i), offsetMiB: 3 * i, count: 2)
                dataVolumes[c.vm] = data.id
                let vm = try await WorkloadLab.server(s, name: c.vm, network: env.network, securityGroup: "app-sg", key: "app-key",
                                                      bootVolume: boot?.id, image: c.bootFromVolume ? nil : env.image, data: [data.id], flavor: "1")
                servers[c.vm] = vm
                if c.floatingIP {
                    let port = try #require(try await s.list(Neutron.ports, query: [QueryItem("device_id", vm)]).collect().first)
                    _ = try await s.create(Neutron.floatingIPs, ["floating_network_id": .string(publicNet.id), "port_id": .string(port.id)])
                }
            }
            for vm in servers.values { try await s.stopServer(vm) }
            for vm in servers.values { try await WorkloadLab.waitServer(s, vm, "SHUTOFF") }
            try await WorkloadMigrationTests.prepare(env)
            let more = try await env.run(["export", "routers", "router-interfaces"])
            try #require(more.exitCode == 0, "\(more.stderr)")
            let routers = try await env.run(["import", "routers", "router-interfaces"])
            try #require(routers.exitCode == 0, "\(routers.stderr)\(routers.stdout)")
            for c in Self.cases where c.neutronPorts {
                try env.edit(c.vm) { $0.migrationParams["port_creation_mode"] = "neutron" }
            }
            let srcBefore = try await WorkloadLab.inventory(s)

            for c in Self.cases {
                let filter = ["--filter", "workloads=\(c.vm)"]
                let killed = try await env.run(["import", "workloads", "--json"] + filter, env: [c.hook: c.at])
                #expect(killed.exitCode == 137, "\(c.vm): not killed at \(c.hook)=\(c.at): \(killed.stderr)\n\(killed.stdout)")
                let report = try JSONDecoder().decode(JSONValue.self, from: Data(try await env.run(["report", "--json"]).stdout.utf8))
                let entry = report["workloads"]?.arrayValue?.first { $0["name"]?.stringValue == c.vm }
                #expect(entry?["state"]?.stringValue == "running", "\(c.vm)")
                if let role = c.role {
                    // The killed create is among the interrupted ones; other volumes' pipelines may
                    // have had their own create under way at that instant (one per role at most).
                    let interrupted = entry?["interrupted_creates"]?.arrayValue?.map { $0["role"]?.stringValue ?? "" } ?? []
                    #expect(interrupted.contains(role), "\(c.vm): \(entry?.jsonString() ?? "")")
                    #expect(Set(interrupted).count == interrupted.count, "\(c.vm): \(interrupted)")
                }

                let rerun = try await env.run(["import", "workloads", "--json"] + filter)
                #expect(rerun.exitCode == 0, "\(c.vm): \(rerun.stderr)\n\(rerun.stdout)")
                #expect(WorkloadMigrationTests.item(rerun.stdout, c.vm)?["status"]?.stringValue == "changed", "\(c.vm): \(rerun.stdout)")

                // One server, its port with the source's address (and MAC in neutron mode), its data.
                let targets = try await d.named(Nova.servers, c.vm)
                #expect(targets.count == 1, "\(c.vm): \(targets.count) destination servers")
                guard let target = targets.first else { continue }
                #expect(target.status == "ACTIVE")
                let sp = try await s.list(Neutron.ports, query: [QueryItem("device_id", servers[c.vm]!)]).collect()
                let dp = try await d.list(Neutron.ports, query: [QueryItem("device_id", target.id)]).collect()
                #expect(sp.map { $0.fixedIPs?.map(\.ipAddress) ?? [] } == dp.map { $0.fixedIPs?.map(\.ipAddress) ?? [] }, "\(c.vm)")
                if c.neutronPorts { #expect(sp.map(\.macAddress) == dp.map(\.macAddress), "\(c.vm)") }
                let ip = try #require(sp.first?.fixedIPs?.first?.ipAddress)
                let holders = try await d.list(Neutron.ports, query: [QueryItem("fixed_ips", "ip_address=\(ip)")]).collect()
                #expect(holders.count == 1, "\(c.vm): \(holders.count) destination ports hold \(ip)")
                let attached = try await d.volumeAttachments(server: target.id)
                let dataTarget = try await d.list(Cinder.volumes).collect().filter { $0.name == "\(c.vm)-data" }
                #expect(dataTarget.count == 1, "\(c.vm): \(dataTarget.count) destination data volumes")
                #expect(attached.count == (c.bootFromVolume ? 2 : 1), "\(c.vm)")
                if let v = dataTarget.first { #expect(try await WorkloadLab.identical(dataVolumes[c.vm]!, v.id), "\(c.vm): data differs") }
                if c.floatingIP {
                    #expect(try await d.list(Neutron.floatingIPs, query: [QueryItem("port_id", dp.first?.id ?? "-")]).collect().count == 1)
                }
                let after = try JSONDecoder().decode(JSONValue.self, from: Data(try await env.run(["report", "--json"]).stdout.utf8))
                let done = after["workloads"]?.arrayValue?.first { $0["name"]?.stringValue == c.vm }
                #expect(done?["state"]?.stringValue == "done", "\(c.vm)")
                #expect(done?["leftovers"]?.arrayValue?.isEmpty == true && done?["interrupted_creates"]?.arrayValue?.isEmpty == true,
                        "\(c.vm): \(done?.jsonString() ?? "")")
            }

            // The source holds exactly what it held (no snapshot, temporary volume or image left),
            // and a last run over everything is all ok and changes nothing.
            #expect(try await WorkloadLab.inventory(s) == srcBefore)
            let dstBefore = try await WorkloadLab.inventory(d)
            let last = try await env.run(["import", "workloads", "--json"])
            #expect(last.exitCode == 0, "\(last.stderr)")
            for c in Self.cases { #expect(WorkloadMigrationTests.item(last.stdout, c.vm)?["status"]?.stringValue == "ok", "\(c.vm)") }
            #expect(try await WorkloadLab.inventory(d) == dstBefore)
        }
    }
}
