import DataPlane
import Engine
import Foundation
import OpenStack
import Testing
import TestSupport
import Workloads

/// `os-migrate conversion-hosts` on the lab: two tenants, a private sshd per host (see
/// `LabConversionHosts` for how the hosts are reached), the built binary for the commands and
/// the library for attach/detach and the link check.
@Suite("Conversion hosts on the lab", .serialized)
struct ConversionHostTests {
    /// What a tenant holds, by kind: names (and counts) of everything deploy may create.
    struct Inventory: Equatable, CustomStringConvertible {
        var servers: [String] = []
        var networks: [String] = []
        var subnets: [String] = []
        var routers: [String] = []
        var ports = 0
        var securityGroups: [String] = []
        var securityGroupRules = 0
        var floatingIPs: [String] = []
        var keypairs: [String] = []
        var description: String {
            "servers \(servers), networks \(networks), subnets \(subnets), routers \(routers), ports \(ports), "
                + "groups \(securityGroups) (\(securityGroupRules) rules), FIPs \(floatingIPs), keypairs \(keypairs)"
        }

        static func of(_ tenant: LabTenant) async throws -> Inventory {
            let s = try tenant.session()
            let owned = [QueryItem("project_id", tenant.projectID)]
            var inv = Inventory()
            inv.servers = try await s.list(Nova.servers).collect().map(\.name).sorted()
            inv.networks = try await s.list(Neutron.networks, query: owned).collect().map(\.name).sorted()
            inv.subnets = try await s.list(Neutron.subnets, query: owned).collect().map(\.name).sorted()
            inv.routers = try await s.list(Neutron.routers, query: owned).collect().map(\.name).sorted()
            inv.ports = try await s.list(Neutron.ports, query: owned).collect().count
            let groups = try await s.list(Neutron.securityGroups, query: owned).collect()
            inv.securityGroups = groups.map(\.name).sorted()
            inv.securityGroupRules = groups.reduce(0) { $0 + ($1.rules?.count ?? 0) }
            inv.floatingIPs = try await s.list(Neutron.floatingIPs, query: owned).collect().map(\.floatingIPAddress).sorted()
            inv.keypairs = try await s.keypairs().map(\.name).sorted()
            return inv
        }

        /// Nothing of ours left (the project's default security group may stay).
        var isEmpty: Bool {
            servers.isEmpty && networks.isEmpty && subnets.isEmpty && routers.isEmpty && ports == 0
                && securityGroups.allSatisfy { $0 == "default" } && floatingIPs.isEmpty && keypairs.isEmpty
        }
    }

    func cli(_ args: [String], _ lab: LabConversionHosts) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        let r = try await CLIRunner.run(args + ["--vars", lab.varsFile], timeout: 900)
        // Never a secret on either stream.
        for t in [lab.varsText] {
            for line in t.split(separator: "\n") where line.contains("password:") {
                let secret = line.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
                    .trimmingCharacters(in: CharacterSet(charactersIn: "'"))
                #expect(!r.stdout.contains(secret) && !r.stderr.contains(secret))
            }
        }
        return r
    }

    func settings(_ side: CloudSide, _ lab: LabConversionHosts) throws -> ConversionHostSettings {
        var s = try ConversionHostSettings.load(side: side, vars: MigrationVars(path: lab.varsFile), dataDir: lab.dataDir)
        s.agentExecutable = CLIRunner.agentPath
        return s
    }

    @Test("deploy both (reused on rerun), status, link, attach/detach, tampered host key, delete leaves nothing")
    func lifecycle() async throws {
        try await LabTenant.with("chsrc") { srcTenant in
            try await LabTenant.with("chdst") { dstTenant in
                let lab = try LabConversionHosts.make(src: srcTenant, dst: dstTenant)
                defer { lab.stop() }
                try await run(lab, srcTenant, dstTenant)
            }
        }
    }

    func run(_ lab: LabConversionHosts, _ srcTenant: LabTenant, _ dstTenant: LabTenant) async throws {
        // Deploy both.
        let d1 = try await cli(["conversion-hosts", "deploy", "--cloud", "both"], lab)
        #expect(d1.exitCode == 0, "\(d1.stdout)\n\(d1.stderr)")
        #expect(d1.stderr == "")
        #expect(d1.stdout.contains("changed  src server: os_migrate_conv_src"))
        #expect(d1.stdout.contains("changed  dst server: os_migrate_conv_dst"))
        #expect(d1.stdout.contains("ok       link check: os_migrate_conv_dst → os_migrate_conv_src  (os-migrate-agent "))
        #expect(d1.stdout.contains("failed=0"))
        if d1.exitCode != 0 { return }

        let srcSession = try srcTenant.session(), dstSession = try dstTenant.session()
        for (tenant, side) in [(srcTenant, "src"), (dstTenant, "dst")] {
            let inv = try await Inventory.of(tenant)
            #expect(inv.servers == ["os_migrate_conv_\(side)"])
            #expect(inv.networks == ["os_migrate_conv"])
            #expect(inv.subnets == ["os_migrate_conv"])
            #expect(inv.routers == ["os_migrate_conv"])
            #expect(inv.securityGroups.contains("os_migrate_conv"))
            #expect(inv.keypairs == ["os_migrate_conv"])
            #expect(inv.floatingIPs.count == 1 && inv.floatingIPs[0].hasPrefix("203.0.113."))
            let s = try tenant.session()
            let server = try #require(try await s.named(Nova.servers, "os_migrate_conv_\(side)").first)
            #expect(server.status == "ACTIVE")
            #expect(server.keyName == "os_migrate_conv")
            #expect(server.securityGroups == ["os_migrate_conv"])
            let subnet = try #require(try await s.named(Neutron.subnets, "os_migrate_conv").first)
            #expect(subnet.cidr == "192.168.10.0/24" && subnet.gatewayIP == "192.168.10.1")
            #expect(subnet.allocationPools == [AllocationPool(start: "192.168.10.10", end: "192.168.10.99")])
            #expect(subnet.dnsNameservers == ["8.8.8.8"])
            let router = try #require(try await s.named(Neutron.routers, "os_migrate_conv").first)
            #expect(router.externalGatewayInfo != nil)
            let group = try #require(try await s.named(Neutron.securityGroups, "os_migrate_conv").first)
            let ingress = (group.rules ?? []).filter { $0.direction == "ingress" }
            // The migrator reaches the lab over loopback: its address is not known, so SSH is open (and status says why).
            #expect(ingress.contains { $0.protocol == "tcp" && $0.portRangeMin == 22 && $0.portRangeMax == 22 && $0.remoteIPPrefix == "0.0.0.0/0" })
            #expect(ingress.contains { $0.protocol == "icmp" })
            #expect(!ingress.contains { $0.protocol == "tcp" && $0.portRangeMin != 22 })
            #expect(!ingress.contains { $0.protocol == nil })
        }

        // What the source host was deployed with is never exported as the tenant's own.
        let exp = try await cli(["export", "networks", "subnets", "routers", "router-interfaces", "security-groups",
                                 "security-group-rules", "keypairs", "workloads"], lab)
        #expect(exp.exitCode == 0, "\(exp.stderr)")
        for file in ["networks", "subnets", "routers", "router_interfaces", "security_groups", "security_group_rules", "keypairs", "workloads"] {
            let text = try String(contentsOfFile: lab.dataDir + "/\(file).yml", encoding: .utf8)
            #expect(!text.contains("os_migrate_conv"), "\(file).yml: \(text)")
        }

        // Host keys pinned in the data dir, one alias per server, equal to the sshds' keys.
        let srcServerID = try #require(try await srcSession.named(Nova.servers, "os_migrate_conv_src").first?.id)
        let dstServerID = try #require(try await dstSession.named(Nova.servers, "os_migrate_conv_dst").first?.id)
        let pinned = try String(contentsOfFile: lab.knownHostsFile, encoding: .utf8)
        for (server, id) in [(lab.src, srcServerID), (lab.dst, dstServerID)] {
            let key = try String(contentsOfFile: server.directory + "/host_ed25519.pub", encoding: .utf8).split(separator: " ")[1]
            #expect(pinned.contains("os-migrate-conv-\(id) ssh-ed25519 \(key)"))
        }
        #expect(try FileManager.default.attributesOfItem(atPath: lab.keyFile)[.posixPermissions] as? Int == 0o600)
        #expect(try FileManager.default.attributesOfItem(atPath: lab.dataDir + "/conversion/link-ssh.key")[.posixPermissions] as? Int == 0o600)
        let linkPub = try String(contentsOfFile: lab.dataDir + "/conversion/link-ssh.key.pub", encoding: .utf8).split(separator: " ")[1]
        let authorized = try String(contentsOfFile: lab.src.directory + "/authorized_keys", encoding: .utf8)
        #expect(authorized.components(separatedBy: String(linkPub)).count == 2)

        // The link, through the library: from the destination host to the source host.
        let srcSettings = try settings(.src, lab), dstSettings = try settings(.dst, lab)
        let pair = try await ConversionHosts.pair(src: srcSettings, srcSession: srcSession, dst: dstSettings, dstSession: dstSession)
        #expect(pair.src.address == "127.0.0.1" && pair.src.ssh.port == lab.src.port)
        #expect(pair.link.host == "127.0.0.1" && pair.link.port == lab.src.port)
        let version = try await ConversionHosts.checkLink(pair, executable: CLIRunner.agentPath)
        #expect(version.hasPrefix("os-migrate-agent "))
        // And by hand on the destination host, the way the data plane's receiver will: plain ssh with the link endpoint.
        let byHand = try await pair.dst.run((pair.link.sshArguments() + ["echo linked"]).map(shellQuote).joined(separator: " "))
        #expect(byHand.status == 0 && byHand.stdout == "linked\n", "\(byHand.stderr)")

        // status --json.
        let st = try await cli(["conversion-hosts", "status", "--json"], lab)
        #expect(st.exitCode == 0, "\(st.stderr)")
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(st.stdout.utf8))
        #expect(json["ok"] == .bool(true))
        for (side, id, port) in [("src", srcServerID, lab.src.port), ("dst", dstServerID, lab.dst.port)] {
            let h = try #require(json["hosts"]?[side])
            #expect(h["name"] == .string("os_migrate_conv_\(side)"))
            #expect(h["found"] == true && h["ok"] == true && h["status"] == "ACTIVE")
            #expect(h["server_id"] == .string(id))
            #expect(h["address"] == "127.0.0.1")
            #expect(h["ssh"]?["port"] == .int(port) && h["ssh"]?["reachable"] == true && h["ssh"]?["user"] == .string(lab.src.user))
            #expect(h["agent"]?["version"]?.stringValue?.hasPrefix("os-migrate-agent ") == true)
            #expect(h["addresses"]?["floating"]?.arrayValue?.count == 1)
            #expect(h["addresses"]?["fixed"]?.arrayValue?.first?.stringValue?.hasPrefix("192.168.10.") == true)
            #expect(h["device_discovery"] == .string(LabConversionHosts.deviceTemplate))
            #expect(h["ssh_allowed_from"]?["cidrs"] == ["0.0.0.0/0"])
            #expect(h["ssh_allowed_from"]?["reason"]?.stringValue?.hasPrefix("the migrator's address is not known") == true)
            #expect(h["problems"] == [])
        }
        #expect(json["hosts"]?["dst"]?["link"]?["ok"] == true)
        #expect(json["hosts"]?["dst"]?["link"]?["port"] == .int(lab.src.port))
        #expect(json["hosts"]?["src"]?["link"] == nil)

        // Rerun: nothing new anywhere.
        let before = (try await Inventory.of(srcTenant), try await Inventory.of(dstTenant))
        let d2 = try await cli(["conversion-hosts", "deploy"], lab)
        #expect(d2.exitCode == 0, "\(d2.stderr)")
        #expect(d2.stdout.contains("changed=0"), "\(d2.stdout)")
        let after = (try await Inventory.of(srcTenant), try await Inventory.of(dstTenant))
        #expect(before.0 == after.0)
        #expect(before.1 == after.1)
        #expect(try String(contentsOfFile: lab.knownHostsFile, encoding: .utf8) == pinned)

        // Attach a fresh 1 GiB volume to the source host: the template path; Cinder says in-use.
        let volume = try await srcSession.create(Cinder.volumes, ["name": "osmt-ch-vol", "size": 1])
        _ = try await Waiter.wait("volume", service: "block-storage", timeout: 180, until: ["available"],
                                  fetch: { try await srcSession.find(Cinder.volumes, id: volume.id) }, status: { $0.status })
        let path = try await pair.src.attach(volumeID: volume.id, session: srcSession, timeout: 300)
        #expect(path == "/var/lib/osmlab/volumes/volume-\(volume.id)")
        let attached = try await srcSession.get(Cinder.volumes, volume.id)
        #expect(attached.status == "in-use")
        #expect(attached.attachments.map(\.serverID) == [srcServerID])
        // Attaching again finds it again.
        #expect(try await pair.src.attach(volumeID: volume.id, session: srcSession, timeout: 300) == path)
        try await pair.src.detach(volumeID: volume.id, session: srcSession, timeout: 300)
        let detached = try await srcSession.get(Cinder.volumes, volume.id)
        #expect(detached.status == "available" && detached.attachments.isEmpty)
        try await pair.src.detach(volumeID: volume.id, session: srcSession, timeout: 300)  // not attached: fine
        try await srcSession.delete(Cinder.volumes, volume.id)
        try await Waiter.waitGone("volume", service: "block-storage", timeout: 180) { try await srcSession.find(Cinder.volumes, id: volume.id)?.status }

        // SSH restricted in the vars file: the groups follow (the open rule goes), and the link opens
        // 22 on the source host to the destination host's egress addresses (floating IP, router gateway).
        guard FileManager.default.createFile(atPath: lab.varsFile, contents: Data((lab.varsText + "os_migrate_conversion_ssh_allowed_cidr: 198.51.100.0/24\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else { throw CocoaError(.fileWriteUnknown) }
        let d4 = try await cli(["conversion-hosts", "deploy"], lab)
        #expect(d4.exitCode == 0, "\(d4.stderr)")
        #expect(d4.stdout.contains("changed  src security group: os_migrate_conv  (SSH from 198.51.100.0/24: os_migrate_conversion_ssh_allowed_cidr)"))
        let dstFIP = try #require(try await dstSession.list(Neutron.floatingIPs).collect().first?.floatingIPAddress)
        let dstGateway = try #require(try await dstSession.named(Neutron.routers, "os_migrate_conv").first?.externalGatewayInfo?.externalFixedIPs?.first?.ipAddress)
        func sshSources(_ s: CloudSession) async throws -> [String] {
            let g = try #require(try await s.named(Neutron.securityGroups, "os_migrate_conv").first)
            return (g.rules ?? []).filter { $0.direction == "ingress" && $0.protocol == "tcp" && $0.portRangeMin == 22 }.compactMap(\.remoteIPPrefix).sorted()
        }
        #expect(try await sshSources(srcSession) == ["198.51.100.0/24", dstFIP + "/32", dstGateway + "/32"].sorted())
        #expect(try await sshSources(dstSession) == ["198.51.100.0/24"])
        let st2 = try await cli(["conversion-hosts", "status", "--json", "--cloud", "src"], lab)
        let json2 = try JSONDecoder().decode(JSONValue.self, from: Data(st2.stdout.utf8))
        #expect(json2["hosts"]?["src"]?["ssh_allowed_from"]?["reason"] == "os_migrate_conversion_ssh_allowed_cidr")
        guard FileManager.default.createFile(atPath: lab.varsFile, contents: Data(lab.varsText.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown)
        }

        // A tampered pin: status fails with the exact message, and changes nothing.
        let alias = "os-migrate-conv-\(srcServerID)"
        let srcKey = try String(contentsOfFile: lab.src.directory + "/host_ed25519.pub", encoding: .utf8).split(separator: " ")[1]
        let dstKey = try String(contentsOfFile: lab.dst.directory + "/host_ed25519.pub", encoding: .utf8).split(separator: " ")[1]
        try pinned.replacingOccurrences(of: "\(alias) ssh-ed25519 \(srcKey)", with: "\(alias) ssh-ed25519 \(dstKey)")
            .write(toFile: lab.knownHostsFile, atomically: true, encoding: .utf8)
        let bad = try await cli(["conversion-hosts", "status", "--cloud", "src"], lab)
        #expect(bad.exitCode == 1)
        #expect(bad.stderr == "os-migrate: error: conversion host os_migrate_conv_src (127.0.0.1:\(lab.src.port)) presented an SSH host key "
            + "that differs from the one pinned in \(lab.knownHostsFile) on first contact: the server was rebuilt, or someone is intercepting "
            + "the connection. Nothing was sent to it. If you rebuilt it on purpose, delete the lines starting with '\(alias)' from that file "
            + "and run `os-migrate conversion-hosts deploy --cloud src` to pin the new key\n")
        // Deploy does not silently re-pin a known server either.
        let d3 = try await cli(["conversion-hosts", "deploy", "--cloud", "src"], lab)
        #expect(d3.exitCode == 1)
        #expect(d3.stderr.contains("presented an SSH host key that differs"))
        try pinned.write(toFile: lab.knownHostsFile, atomically: true, encoding: .utf8)

        // The link files on the destination host (the same machine, the sshd user's home): key 0600.
        let home = String(cString: getpwnam(lab.dst.user)!.pointee.pw_dir)
        let linkKey = home + "/.cache/os-migrate/link/os_migrate_conv_src-\(srcServerID).key"
        #expect(try FileManager.default.attributesOfItem(atPath: linkKey)[.posixPermissions] as? Int == 0o600)
        #expect(FileManager.default.fileExists(atPath: home + "/.cache/os-migrate/link/os_migrate_conv_src-\(srcServerID).known_hosts"))

        // Delete both: nothing left in either tenant; a second delete is a no-op.
        let del = try await cli(["conversion-hosts", "delete"], lab)
        #expect(del.exitCode == 0, "\(del.stdout)\n\(del.stderr)")
        let srcLeft = try await Inventory.of(srcTenant), dstLeft = try await Inventory.of(dstTenant)
        #expect(srcLeft.isEmpty, "\(srcLeft)")
        #expect(dstLeft.isEmpty, "\(dstLeft)")
        #expect(HostKeyPinning.lines(for: alias, in: try String(contentsOfFile: lab.knownHostsFile, encoding: .utf8)).isEmpty)
        #expect(FileManager.default.fileExists(atPath: lab.keyFile))  // kept without --purge-keys
        #expect(!FileManager.default.fileExists(atPath: linkKey))
        let del2 = try await cli(["conversion-hosts", "delete", "--purge-keys"], lab)
        #expect(del2.exitCode == 0, "\(del2.stderr)")
        #expect(del2.stdout.contains("changed  key file: \(lab.keyFile)"))
        #expect(!FileManager.default.fileExists(atPath: lab.keyFile))
        #expect(!del2.stdout.contains("changed  src server"))

        // status after delete: not found, with what to do.
        let gone = try await cli(["conversion-hosts", "status", "--cloud", "dst"], lab)
        #expect(gone.exitCode == 1)
        #expect(gone.stderr == "os-migrate: error: conversion host os_migrate_conv_dst not found in cloud 'dst': "
            + "run `os-migrate conversion-hosts deploy --cloud dst`\n")
    }

    @Test("deploy without a flavor says which variable to set, before touching the cloud")
    func missingFlavor() async throws {
        let dir = try LabClouds.tempDir("chvars")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vars = dir + "/vars.yml"
        try """
            os_migrate_data_dir: \(dir)
            os_migrate_src_conversion_external_network_name: public
            os_migrate_src_auth: {auth_url: 'http://127.0.0.1:1/v3', username: u, password: p, project_name: x}
            """.write(toFile: vars, atomically: true, encoding: .utf8)
        let r = try await CLIRunner.run(["conversion-hosts", "deploy", "--cloud", "src", "--vars", vars])
        #expect(r.exitCode == 1)
        #expect(r.stderr.contains("os-migrate: error: vars file \(vars): os_migrate_src_conversion_flavor_name (or os_migrate_conversion_flavor_name) is not set"),
                "\(r.stderr)")
    }
}
