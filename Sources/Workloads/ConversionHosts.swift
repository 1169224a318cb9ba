import DataPlane
import Foundation
import OpenStack
import Resources

#if canImport(Glibc)
    import Glibc
#endif

/// Deploys, finds, checks and deletes the conversion hosts (one Nova server per cloud, reached
/// over SSH with a pinned host key), and links the destination host to the source host.
/// See docs/conversion-hosts.md.
public enum ConversionHosts {
    /// Progress: one result per resource (`ok` = already there, `changed` = created or deleted).
    public typealias Log = @Sendable (ItemResult) -> Void

    // MARK: - deploy

    /// Creates what is missing and reuses what exists (by name) for one side: key, network,
    /// subnet, router, security group, keypair, server, floating IP; waits for SSH, pins the host
    /// key on first contact, and installs (or checks) the agent. Returns the ready host.
    public static func deploy(_ settings: ConversionHostSettings, session: CloudSession, log: @escaping Log) async throws -> ConversionHost {
        let side = settings.side
        let cloud = session.profile.name
        func report(_ kind: String, _ name: String, _ status: ItemResult.Status, _ message: String = "", action: String? = nil, id: String? = nil) {
            log(ItemResult(kind: "\(side.rawValue) \(kind)", name: name, status: status, message: message, action: action, id: id))
        }
        let flavorName = try settings.requireFlavor()
        let externalName: String? = (settings.manageNetwork || settings.manageFloatingIP) ? try settings.requireExternalNetwork() : nil

        // The key pair file first: nothing in the cloud is worth creating without it.
        let publicKey = try await ensureKeyFile(settings.keypairPrivatePath, settings: settings, what: "conversion host key",
                                                generate: settings.generateKeypair)
        report("ssh key", settings.keypairPrivatePath, publicKey.created ? .changed : .ok, publicKey.created ? "generated" : "",
               action: publicKey.created ? "created" : nil)

        // Look everything up before creating anything.
        let projectID = try await session.currentProjectID
        let owned = [QueryItem("project_id", projectID)]
        // Nova has no name filter for flavors: list and match.
        let flavor = try await one(session.list(Nova.flavors).collect().filter { $0.name == flavorName }, "flavor '\(flavorName)'",
                                   cloud: cloud, key: "os_migrate_\(side.rawValue)_conversion_flavor_name", settings: settings)
        let image = try await one(session.named(Glance.images, settings.imageName), "image '\(settings.imageName)'", cloud: cloud,
                                  key: "os_migrate_conversion_image_name", settings: settings)
        var external: Network?
        if let externalName {
            let nets = try await session.named(Neutron.networks, externalName).filter { $0.routerExternal ?? true }
            external = try one(nets, "external network '\(externalName)'", cloud: cloud,
                               key: "os_migrate_\(side.rawValue)_conversion_external_network_name", settings: settings)
        }

        // Network, subnet, router.
        let network: Network
        if settings.manageNetwork {
            if let n = try await session.named(Neutron.networks, settings.networkName, query: owned).first {
                network = n
                report("network", n.name, .ok, id: n.id)
            } else {
                var attrs: JSONObject = ["name": .string(settings.networkName), "admin_state_up": true,
                                         "description": "os-migrate conversion host network"]
                if let mtu = settings.networkMTU { attrs["mtu"] = .int(mtu) }
                network = try await session.create(Neutron.networks, attrs)
                report("network", network.name, .changed, action: "created", id: network.id)
            }
            let subnet: Subnet
            if let s = try await session.named(Neutron.subnets, settings.subnetName, query: [QueryItem("network_id", network.id)]).first {
                subnet = s
                report("subnet", s.name, .ok, s.cidr, id: s.id)
            } else {
                subnet = try await session.create(Neutron.subnets, [
                    "name": .string(settings.subnetName), "network_id": .string(network.id), "ip_version": 4,
                    "cidr": .string(settings.subnetCIDR), "gateway_ip": .string(settings.routerIP), "enable_dhcp": true,
                    "allocation_pools": [["start": .string(settings.allocationStart), "end": .string(settings.allocationEnd)]],
                    "dns_nameservers": .array(settings.dnsNameservers.map(JSONValue.string)),
                ])
                report("subnet", subnet.name, .changed, subnet.cidr, action: "created", id: subnet.id)
            }
            try await ensureRouter(settings, session: session, subnet: subnet, external: external!, owned: owned, report: report)
        } else {
            network = try one(try await session.named(Neutron.networks, settings.networkName), "network '\(settings.networkName)'",
                              cloud: cloud, key: "os_migrate_conversion_net_name", settings: settings)
            report("network", network.name, .ok, "not managed (os_migrate_conversion_manage_network is false)", id: network.id)
        }

        // Security group: SSH only from the allowed CIDR, ICMP.
        let allowed = try await allowedSSHSource(settings, session: session)
        _ = try await ensureSecurityGroup(settings, session: session, owned: owned, allowed: allowed, report: report)

        // Nova keypair.
        if let k = try await session.keypair(settings.keypairName) {
            guard SSHKeys.sameKey(k.publicKey, publicKey.text) else {
                throw ConversionHostError(.notUsable,
                    "the Nova keypair '\(settings.keypairName)' in cloud '\(cloud)' holds another public key than \(settings.keypairPrivatePath).pub: "
                    + "delete it (`os-migrate conversion-hosts delete --cloud \(side.rawValue)`) or set os_migrate_conversion_keypair_name")
            }
            report("keypair", k.name, .ok)
        } else {
            _ = try await session.createKeypair(name: settings.keypairName, publicKey: publicKey.text, type: nil, userID: nil)
            report("keypair", settings.keypairName, .changed, action: "created")
        }

        // The server.
        var created = false
        var server: Server
        let existing = try await session.named(Nova.servers, settings.hostName)
        if existing.count > 1 {
            throw ConversionHostError(.notUsable, "\(existing.count) servers are named \(settings.hostName) in cloud '\(cloud)': "
                + "delete the extra ones (\(existing.map(\.id).sorted().joined(separator: ", ")))")
        }
        if let s = existing.first {
            if s.status.uppercased() == "ERROR" {
                throw ConversionHostError(.notUsable, "conversion host \(s.name) in cloud '\(cloud)' is in ERROR\(s.faultMessage.map { " (\($0))" } ?? ""): "
                    + "run `os-migrate conversion-hosts delete --cloud \(side.rawValue)`, then deploy again")
            }
            server = s
            report("server", s.name, .ok, s.status, id: s.id)
        } else {
            var attrs: JSONObject = [
                "name": .string(settings.hostName), "flavorRef": .string(flavor.id), "key_name": .string(settings.keypairName),
                "networks": [["uuid": .string(network.id)]], "security_groups": [["name": .string(settings.securityGroupName)]],
                "metadata": ["os_migrate_conversion_host": .string(side.rawValue)],
            ]
            if let az = settings.availabilityZone { attrs["availability_zone"] = .string(az) }
            if settings.bootFromVolume {
                attrs["block_device_mapping_v2"] = [[
                    "boot_index": 0, "uuid": .string(image.id), "source_type": "image", "destination_type": "volume",
                    "volume_size": .int(settings.volumeSize), "delete_on_termination": true,
                ]]
            } else {
                attrs["imageRef"] = .string(image.id)
            }
            server = try await session.create(Nova.servers, attrs)
            created = true
            report("server", settings.hostName, .changed, "flavor \(flavor.name), image \(image.name)", action: "created", id: server.id)
        }
        let serverID = server.id
        server = try await Waiter.wait("conversion host \(settings.hostName)", service: ServiceType.compute, timeout: settings.deployTimeout,
                                       interval: 2, until: ["ACTIVE"], failOn: ["ERROR"],
                                       fetch: { try await session.find(Nova.servers, id: serverID) }, status: { $0.status },
                                       detail: { $0.faultMessage })

        // Floating IP.
        if settings.manageFloatingIP {
            try await ensureFloatingIP(settings, session: session, server: server, network: network, external: external!,
                                       owned: owned, report: report)
        }

        // SSH: wait, pin the host key on first contact, check our key works.
        let host = try await locate(settings, session: session)
        try await pinHostKey(host, settings: settings, fresh: created, report: report)
        try await waitForLogin(host, timeout: settings.sshTimeout)
        report("ssh", "\(host.ssh.destination):\(host.ssh.port ?? 22)", .ok, "host key pinned in \(settings.knownHostsPath)")

        // The agent.
        let info = try await checkAgent(host, deploy: true, executable: settings.agentExecutable)
        report("agent", host.name, info.deployed ? .changed : .ok, info.version, action: info.deployed ? "installed" : nil)
        return host
    }

    // MARK: - locate

    /// The existing, ACTIVE conversion host of one side, and how to reach it. Nothing is created;
    /// the host key must have been pinned by `deploy`.
    public static func locate(_ settings: ConversionHostSettings, session: CloudSession) async throws -> ConversionHost {
        let cloud = session.profile.name
        let servers = try await session.named(Nova.servers, settings.hostName)
        guard let server = servers.first else {
            throw ConversionHostError(.notFound, "conversion host \(settings.hostName) not found in cloud '\(cloud)': "
                + "run `os-migrate conversion-hosts deploy --cloud \(settings.side.rawValue)`")
        }
        guard servers.count == 1 else {
            throw ConversionHostError(.notUsable, "\(servers.count) servers are named \(settings.hostName) in cloud '\(cloud)': "
                + "delete the extra ones (\(servers.map(\.id).sorted().joined(separator: ", ")))")
        }
        guard server.status.uppercased() == "ACTIVE" else {
            throw ConversionHostError(.notUsable, "conversion host \(settings.hostName) in cloud '\(cloud)' is \(server.status), not ACTIVE"
                + (server.status.uppercased() == "SHUTOFF" ? ": start it" : ""))
        }
        let candidates = try await addressCandidates(server, session: session)
        guard let address = AddressChoice.choose(override: settings.sshAddress, candidates: candidates, preferredNetwork: settings.networkName) else {
            throw ConversionHostError(.notUsable, "conversion host \(settings.hostName) in cloud '\(cloud)' has no IPv4 address: "
                + "set os_migrate_\(settings.side.rawValue)_conversion_host_ssh_address")
        }
        return host(settings: settings, serverID: server.id, address: address)
    }

    /// The host value for a server reached at `address` (pure).
    public static func host(settings: ConversionHostSettings, serverID: String, address: String) -> ConversionHost {
        ConversionHost(side: settings.side, name: settings.hostName, serverID: serverID, address: address,
                       ssh: endpoint(settings: settings, serverID: serverID, address: address),
                       deviceDiscovery: settings.deviceDiscovery)
    }

    /// The migrator's SSH endpoint for a host (pure): our key, the pinned known_hosts under the
    /// server's alias, strict checking, then the operator's options and ProxyJump.
    public static func endpoint(settings: ConversionHostSettings, serverID: String, address: String) -> SSHEndpoint {
        var options = [
            "UserKnownHostsFile=\(settings.knownHostsPath)", "StrictHostKeyChecking=yes",
            "HostKeyAlias=\(HostKeyPinning.alias(serverID: serverID))", "IdentitiesOnly=yes", "ConnectTimeout=15",
        ]
        if let j = settings.proxyJump { options.append("ProxyJump=\(j)") }
        options += settings.sshOptions
        return SSHEndpoint(user: settings.sshUser, host: address, port: settings.sshPort, identity: settings.keypairPrivatePath,
                           options: options, remoteCommand: settings.agentPath)
    }

    // MARK: - pair and link

    /// Where the link files live on the destination host (`~` is expanded by ssh there).
    public static func linkFiles(source: ConversionHost) -> (key: String, knownHosts: String) {
        let base = "~/.cache/os-migrate/link/\(source.name)-\(source.serverID)"
        return (base + ".key", base + ".known_hosts")
    }

    /// How the destination host reaches the source host (pure): the link key and known_hosts on
    /// the destination host, the link address/port (default: the source host's SSH address/port).
    public static func linkEndpoint(source: ConversionHost, sourceSettings: ConversionHostSettings) -> SSHEndpoint {
        let files = linkFiles(source: source)
        return SSHEndpoint(
            user: sourceSettings.sshUser, host: sourceSettings.linkAddress ?? source.address,
            port: sourceSettings.linkPort ?? sourceSettings.sshPort, identity: files.key,
            options: ["UserKnownHostsFile=\(files.knownHosts)", "StrictHostKeyChecking=yes",
                      "HostKeyAlias=\(HostKeyPinning.alias(serverID: source.serverID))", "IdentitiesOnly=yes", "ConnectTimeout=15"],
            remoteCommand: sourceSettings.agentPath)
    }

    /// The pair a migration runs through (pure, from located hosts).
    public static func pair(src: ConversionHost, dst: ConversionHost, sourceSettings: ConversionHostSettings) -> ConversionHostPair {
        ConversionHostPair(src: src, dst: dst, link: linkEndpoint(source: src, sourceSettings: sourceSettings))
    }

    /// Locates both hosts and builds the pair.
    public static func pair(src srcSettings: ConversionHostSettings, srcSession: CloudSession,
                            dst dstSettings: ConversionHostSettings, dstSession: CloudSession) async throws -> ConversionHostPair
    {
        async let s = locate(srcSettings, session: srcSession)
        async let d = locate(dstSettings, session: dstSession)
        return pair(src: try await s, dst: try await d, sourceSettings: srcSettings)
    }

    /// Links the destination host to the source host: the link key (generated once) is authorized
    /// on the source host, copied to the destination host with the source host's pinned key, then
    /// the destination host must reach the source host over SSH and run the agent there.
    @discardableResult
    public static func link(src: ConversionHost, dst: ConversionHost, sourceSettings: ConversionHostSettings,
                            srcSession: CloudSession? = nil, dstSession: CloudSession? = nil,
                            log: @escaping Log) async throws -> ConversionHostPair
    {
        func report(_ kind: String, _ name: String, _ status: ItemResult.Status, _ message: String = "", action: String? = nil) {
            log(ItemResult(kind: "link \(kind)", name: name, status: status, message: message, action: action))
        }
        let settings = sourceSettings
        let key = try await ensureKeyFile(settings.linkKeypairPrivatePath, settings: settings, what: "link key", generate: true)
        report("ssh key", settings.linkKeypairPrivatePath, key.created ? .changed : .ok, key.created ? "generated" : "",
               action: key.created ? "created" : nil)

        // 1. Authorize the link key on the source host.
        let pubLine = SSHKeys.authorizedKeysLine(key.text, comment: "os-migrate-link")
        try await src.runChecked(RemoteShell.appendOnce(line: pubLine, to: settings.authorizedKeysFile), what: "authorizing the link key")
        report("authorized key", "\(src.name):\(settings.authorizedKeysFile)", .ok)

        // 2. The private key and the source host's pinned key on the destination host.
        let files = linkFiles(source: src)
        let privateKey = try Data(contentsOf: URL(fileURLWithPath: settings.linkKeypairPrivatePath))
        try await dst.runChecked(RemoteShell.writeStdin(to: files.key), stdin: privateKey, what: "installing the link key")
        let alias = HostKeyPinning.alias(serverID: src.serverID)
        let pinned = HostKeyPinning.lines(for: alias, in: (try? String(contentsOfFile: settings.knownHostsPath, encoding: .utf8)) ?? "")
        guard !pinned.isEmpty else {
            throw ConversionHostError(.hostKeyNotPinned, "\(src.label): its SSH host key is not pinned in \(settings.knownHostsPath): "
                + "run `os-migrate conversion-hosts deploy --cloud src`")
        }
        try await dst.runChecked(RemoteShell.writeStdin(to: files.knownHosts), stdin: Data((pinned.joined(separator: "\n") + "\n").utf8),
                                 what: "installing the source host's pinned key")
        report("files", "\(dst.name):\(files.key)", .ok)

        // 3. SSH rules for the destination host's egress addresses when SSH is restricted.
        if let srcSession, let dstSession {
            try await allowLinkSource(src: src, dst: dst, sourceSettings: settings, srcSession: srcSession, dstSession: dstSession,
                                      report: report)
        }

        // 4. Check from the destination host.
        let pair = pair(src: src, dst: dst, sourceSettings: settings)
        let version = try await checkLink(pair, timeout: settings.sshTimeout, executable: settings.agentExecutable)
        report("check", "\(dst.name) → \(src.name)", .ok, version)
        return pair
    }

    /// Removes the link files for `src` from the destination host (best effort, before either
    /// host is deleted: the key must not outlive the link).
    public static func unlink(src: ConversionHost, dst: ConversionHost) async {
        let files = linkFiles(source: src)
        _ = try? await dst.runRaw("rm -f " + [files.key, files.knownHosts].map(RemoteShell.path).joined(separator: " "), timeout: 30)
    }

    /// From the destination host: ssh to the source host with the link key and run `agent version`
    /// there. Returns the version line. Retries connection failures for up to `timeout` seconds.
    public static func checkLink(_ pair: ConversionHostPair, timeout: Double = 60, executable: String? = nil) async throws -> String {
        let remote = try RemoteAgentCheck.remoteCommand(pair.link, arguments: ["agent", "version"],
                                                        executable: executable ?? agentExecutablePath())
        let command = (pair.link.sshArguments() + [remote]).map(shellQuote).joined(separator: " ")
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            let r = try await pair.dst.run(command, timeout: 120)
            let line = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
            if r.status == 0, line.hasPrefix("os-migrate-agent ") { return line }
            let out = CommandOutput(status: r.status, stdout: r.stdout, stderr: r.stderr)
            let target = "\(pair.link.destination) port \(pair.link.port ?? 22)"
            let from = "the destination conversion host \(pair.dst.name) cannot"
            if r.status == RemoteAgentCheck.missingStatus {
                throw ConversionHostError(.agent, "\(from) run the agent on the source conversion host \(pair.src.name): it is not installed there; "
                    + "run `os-migrate conversion-hosts deploy --cloud src`")
            }
            switch SSHFailure.classify(status: r.status, stderr: r.stderr) {
            case .hostKeyChanged?:
                throw ConversionHostError(.hostKeyChanged, "\(from) trust the source conversion host \(pair.src.name) at \(target): "
                    + "its host key differs from the pinned one; run `os-migrate conversion-hosts deploy --cloud both` to re-link")
            case .hostKeyNotPinned?, .authentication?:
                throw ConversionHostError(.authentication, "\(from) log in to the source conversion host \(pair.src.name) at \(target): "
                    + "\(out.lastErrorLine ?? "refused"); run `os-migrate conversion-hosts deploy --cloud both` to re-link")
            case .unreachable?, .other?:
                if ContinuousClock.now < deadline {
                    try await Task.sleep(for: .seconds(3))
                    continue
                }
                throw ConversionHostError(.unreachable, "\(from) reach the source conversion host \(pair.src.name) at \(target): "
                    + "\(out.lastErrorLine ?? "connection failed") (check the security group, or set os_migrate_src_conversion_host_link_address)")
            case nil:
                throw ConversionHostError(.agent, "\(from) run the agent on the source conversion host \(pair.src.name): "
                    + "\(out.lastErrorLine ?? "exit status \(r.status)")")
            }
        }
    }

    // MARK: - agent

    /// `agent version` on the host (deploying this binary there when `deploy` and no agent path is set).
    public static func checkAgent(_ host: ConversionHost, deploy: Bool, executable: String? = nil) async throws -> RemoteAgentInfo {
        let endpoint = host.ssh
        let exe = executable ?? agentExecutablePath()
        let fix = host.ssh.remoteCommand == nil
            ? "deploy the self-contained agent (`scripts/build-agent`, installed as os-migrate-agent beside os-migrate: "
                + "x86_64 Linux with glibc \(AgentBuild.minimumGlibc.major).\(AgentBuild.minimumGlibc.minor) or later), "
                + "or install os-migrate there and set os_migrate_\(host.side.rawValue)_conversion_host_agent_path"
            : "check os_migrate_\(host.side.rawValue)_conversion_host_agent_path"
        // Another architecture: say so before copying a binary that cannot run there.
        if host.ssh.remoteCommand == nil, let local = ELFMachine.of(path: exe) {
            let r = try await host.run("uname -m", timeout: 60)
            let remote = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if r.status == 0, !remote.isEmpty, !ELFMachine.compatible(local, remote) {
                throw ConversionHostError(.agent, "\(host.label): the os-migrate agent cannot run there: this binary is built for \(local), "
                    + "the host is \(remote); \(fix)")
            }
        }
        do {
            return try await onThread {
                Result { try RemoteAgentCheck.version(endpoint, deploy: deploy, executable: exe) }
            }.get()
        } catch let e as DataPlaneError {
            switch e.kind {
            case .connect:
                // Say it the way every other ssh failure to this host is said.
                let probe = try await host.runRaw("true", timeout: 60)
                if let se = host.sshError(probe) { throw se }
                throw ConversionHostError(.unreachable, "\(host.label): \(e.message)")
            case .notFound:
                throw ConversionHostError(.agent, "\(host.label): the os-migrate agent of this build is not installed: "
                    + "run `os-migrate conversion-hosts deploy --cloud \(host.side.rawValue)`")
            default:
                var platform = ""
                if let r = try? await host.run("uname -m; ldd --version 2>&1 | head -n 1", timeout: 30), r.status == 0 {
                    let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                    platform = " (host: " + lines.joined(separator: ", ") + ")"
                    if lines.count > 1, AgentBuild.glibcTooOld(lddLine: lines[1]) {
                        platform += "; its glibc is older than the \(AgentBuild.minimumGlibc.major).\(AgentBuild.minimumGlibc.minor) the agent needs"
                    }
                }
                throw ConversionHostError(.agent, "\(host.label): \(e.message)\(platform); \(fix)")
            }
        }
    }

    // MARK: - status

    /// Checks one side without changing anything: server, addresses, SSH with the pinned key, agent.
    public static func status(_ settings: ConversionHostSettings, session: CloudSession) async -> ConversionHostStatus {
        var st = ConversionHostStatus(side: settings.side, cloud: session.profile.name, name: settings.hostName)
        st.sshUser = settings.sshUser
        st.sshPort = settings.sshPort
        st.deviceDiscovery = settings.deviceDiscovery.description
        do {
            let servers = try await session.named(Nova.servers, settings.hostName)
            guard let server = servers.first else {
                st.problems.append("conversion host \(settings.hostName) not found in cloud '\(session.profile.name)': "
                    + "run `os-migrate conversion-hosts deploy --cloud \(settings.side.rawValue)`")
                return st
            }
            st.found = true
            st.serverID = server.id
            st.serverStatus = server.status
            let candidates = try await addressCandidates(server, session: session)
            st.fixedIPs = candidates.filter { $0.kind == .fixed }.map(\.address)
            st.floatingIPs = candidates.filter { $0.kind == .floating }.map(\.address)
            if let g = try await session.named(Neutron.securityGroups, settings.securityGroupName,
                                                 query: [QueryItem("project_id", try await session.currentProjectID)]).first {
                st.sshAllowedFrom = (g.rules ?? []).filter { $0.direction == "ingress" && $0.protocol == "tcp" && $0.portRangeMin == 22 }
                    .map { $0.remoteIPPrefix ?? "any" }.sorted()
                st.sshAllowedReason = g.description.flatMap(SecurityGroupDescription.reason(from:))
            }
            let host = try await locate(settings, session: session)
            st.address = host.address
            do {
                try await waitForLogin(host, timeout: 0)
                st.reachable = true
            } catch {
                st.problems.append("\(error)")
                return st
            }
            do {
                st.agentVersion = try await checkAgent(host, deploy: false, executable: settings.agentExecutable).version
            } catch {
                st.problems.append("\(error)")
            }
        } catch {
            st.problems.append("\(error)")
        }
        return st
    }

    /// The link check for status: from the destination host to the source host.
    public static func linkStatus(src srcSettings: ConversionHostSettings, srcSession: CloudSession,
                                  dst dstSettings: ConversionHostSettings, dstSession: CloudSession) async -> LinkStatus
    {
        var ls = LinkStatus()
        do {
            let p = try await pair(src: srcSettings, srcSession: srcSession, dst: dstSettings, dstSession: dstSession)
            ls.address = p.link.host
            ls.port = p.link.port ?? 22
            ls.agentVersion = try await checkLink(p, timeout: 0, executable: srcSettings.agentExecutable)
            ls.ok = true
        } catch {
            ls.problem = "\(error)"
        }
        return ls
    }

    // MARK: - delete

    /// Deletes one side's server (and its floating IP when managed), keypair, security group, and
    /// router, subnet and network when managed. Idempotent. The data-dir keys are kept.
    public static func delete(_ settings: ConversionHostSettings, session: CloudSession, log: @escaping Log) async throws {
        let side = settings.side
        func report(_ kind: String, _ name: String, _ status: ItemResult.Status, _ message: String = "", id: String? = nil) {
            log(ItemResult(kind: "\(side.rawValue) \(kind)", name: name, status: status, message: message,
                           action: status == .changed ? "deleted" : nil, id: id))
        }
        let projectID = try await session.currentProjectID
        let owned = [QueryItem("project_id", projectID)]

        let servers = try await session.named(Nova.servers, settings.hostName)
        if servers.isEmpty { report("server", settings.hostName, .ok, "absent") }
        for server in servers {
            if settings.manageFloatingIP {
                for port in try await session.list(Neutron.ports, query: [QueryItem("device_id", server.id)]).collect() {
                    for fip in try await session.list(Neutron.floatingIPs, query: [QueryItem("port_id", port.id)]).collect() {
                        if settings.deleteFloatingIP && settings.floatingIPAddress != fip.floatingIPAddress {
                            try await session.delete(Neutron.floatingIPs, fip.id)
                            report("floating IP", fip.floatingIPAddress, .changed, id: fip.id)
                        } else {
                            _ = try await session.update(Neutron.floatingIPs, fip.id, ["port_id": .null])
                            report("floating IP", fip.floatingIPAddress, .changed, "disassociated, kept", id: fip.id)
                        }
                    }
                }
            }
            try await session.delete(Nova.servers, server.id)
            try await Waiter.waitGone("conversion host \(server.name)", service: ServiceType.compute, timeout: max(settings.deployTimeout, 300),
                                      interval: 2, failOn: ["ERROR_DELETING"]) {
                try await session.find(Nova.servers, id: server.id)?.status
            }
            try unpin(serverID: server.id, settings: settings)
            report("server", server.name, .changed, id: server.id)
        }

        if try await session.keypair(settings.keypairName) != nil {
            try await session.deleteKeypair(settings.keypairName)
            report("keypair", settings.keypairName, .changed)
        } else {
            report("keypair", settings.keypairName, .ok, "absent")
        }

        let groups = try await session.named(Neutron.securityGroups, settings.securityGroupName, query: owned)
        if groups.isEmpty { report("security group", settings.securityGroupName, .ok, "absent") }
        for g in groups {
            try await retryingConflicts { try await session.delete(Neutron.securityGroups, g.id) }
            report("security group", g.name, .changed, id: g.id)
        }

        guard settings.manageNetwork else { return }
        let networks = try await session.named(Neutron.networks, settings.networkName, query: owned)
        let routers = try await session.named(Neutron.routers, settings.routerName, query: owned)
        if routers.isEmpty { report("router", settings.routerName, .ok, "absent") }
        for r in routers {
            for p in try await session.list(Neutron.ports, query: [QueryItem("device_id", r.id)]).collect()
            where (p.deviceOwner ?? "").hasPrefix("network:router_interface") {
                try await session.removeRouterInterface(router: r.id, portID: p.id)
            }
            if r.externalGatewayInfo != nil {
                _ = try await session.update(Neutron.routers, r.id, ["external_gateway_info": [:]])
            }
            try await retryingConflicts { try await session.delete(Neutron.routers, r.id) }
            report("router", r.name, .changed, id: r.id)
        }
        if networks.isEmpty {
            report("subnet", settings.subnetName, .ok, "absent")
            report("network", settings.networkName, .ok, "absent")
        }
        for n in networks {
            for s in try await session.named(Neutron.subnets, settings.subnetName, query: [QueryItem("network_id", n.id)]) {
                try await retryingConflicts { try await session.delete(Neutron.subnets, s.id) }
                report("subnet", s.name, .changed, id: s.id)
            }
            do {
                try await retryingConflicts { try await session.delete(Neutron.networks, n.id) }
            } catch let e as OpenStackError where e.isConflict {
                let ports = try await session.list(Neutron.ports, query: [QueryItem("network_id", n.id)]).collect()
                throw ConversionHostError(.other, "network \(n.name) in cloud '\(session.profile.name)' is still in use by "
                    + "\(ports.count) port(s) (\(ports.map { $0.deviceOwner ?? $0.id }.joined(separator: ", "))): delete them, then run delete again")
            }
            report("network", n.name, .changed, id: n.id)
        }
    }

    /// Removes the data-dir keys and pins (`--purge-keys`). Returns the files removed.
    @discardableResult
    public static func purgeKeys(_ settings: ConversionHostSettings) throws -> [String] {
        var removed: [String] = []
        for p in [settings.keypairPrivatePath, settings.keypairPrivatePath + ".pub", settings.linkKeypairPrivatePath,
                  settings.linkKeypairPrivatePath + ".pub", settings.knownHostsPath]
        where FileManager.default.fileExists(atPath: p) {
            try FileManager.default.removeItem(atPath: p)
            removed.append(p)
        }
        return removed
    }

    // MARK: - internals: lookups

    static func one<T>(_ items: [T], _ what: String, cloud: String, key: String, settings: ConversionHostSettings) throws -> T {
        guard let first = items.first else {
            throw ConversionHostError(.notFound, "\(what) not found in cloud '\(cloud)' (\(key), \(settings.origin))")
        }
        guard items.count == 1 else {
            throw ConversionHostError(.notUsable, "\(items.count) of \(what) in cloud '\(cloud)': use a unique name (\(key))")
        }
        return first
    }

    /// Every IPv4 address of the server: floating IPs (Neutron), the access IP, fixed IPs (Nova).
    static func addressCandidates(_ server: Server, session: CloudSession) async throws -> [AddressChoice.Candidate] {
        var out: [AddressChoice.Candidate] = []
        let ports = try await session.list(Neutron.ports, query: [QueryItem("device_id", server.id)]).collect()
        for p in ports {
            for f in try await session.list(Neutron.floatingIPs, query: [QueryItem("port_id", p.id)]).collect() {
                out.append(.init(address: f.floatingIPAddress, kind: .floating, network: nil))
            }
        }
        let raw = try await session.json(APIRequest(ServiceType.compute, .GET, Nova.servers.itemPath(server.id)), key: "server")
        if let a = raw["accessIPv4"]?.stringValue, !a.isEmpty { out.append(.init(address: a, kind: .access, network: nil)) }
        for (net, addrs) in (server.addresses ?? [:]).sorted(by: { $0.key < $1.key }) {
            for a in addrs where a.version == 4 || IPv4.parse(a.addr) != nil {
                out.append(.init(address: a.addr, kind: a.type == "floating" ? .floating : .fixed, network: net))
            }
        }
        // A floating IP Nova also lists is the same one.
        var seen = Set<String>()
        return out.filter { seen.insert($0.address + "|" + $0.kind.rawValue).inserted }
    }

    static func ensureRouter(_ settings: ConversionHostSettings, session: CloudSession, subnet: Subnet, external: Network,
                             owned: [QueryItem], report: (String, String, ItemResult.Status, String, String?, String?) -> Void) async throws
    {
        var router: Router
        if let r = try await session.named(Neutron.routers, settings.routerName, query: owned).first {
            router = r
            if r.externalGatewayInfo?.networkID != external.id {
                router = try await session.update(Neutron.routers, r.id, ["external_gateway_info": ["network_id": .string(external.id)]])
                report("router", r.name, .changed, "gateway set on \(external.name)", "updated", r.id)
            } else {
                report("router", r.name, .ok, "", nil, r.id)
            }
        } else {
            router = try await session.create(Neutron.routers, [
                "name": .string(settings.routerName), "external_gateway_info": ["network_id": .string(external.id)],
                "description": "os-migrate conversion host router",
            ])
            report("router", router.name, .changed, "gateway on \(external.name)", "created", router.id)
        }
        let ifaces = try await session.list(Neutron.ports, query: [QueryItem("device_id", router.id)]).collect()
            .filter { ($0.deviceOwner ?? "").hasPrefix("network:router_interface") }
        if ifaces.contains(where: { ($0.fixedIPs ?? []).contains { $0.subnetID == subnet.id } }) {
            report("router interface", "\(router.name):\(subnet.name)", .ok, settings.routerIP, nil, nil)
            return
        }
        // The interface at the router IP: a port with that address (one left by an interrupted run is reused).
        let port: OpenStack.Port
        if let p = try await session.list(Neutron.ports, query: [QueryItem("network_id", subnet.networkID),
                                                                  QueryItem("fixed_ips", "ip_address=\(settings.routerIP)")]).collect()
            .first(where: { ($0.deviceID ?? "").isEmpty && ($0.fixedIPs ?? []).contains { $0.ipAddress == settings.routerIP } })
        {
            port = p
        } else {
            port = try await session.create(Neutron.ports, [
                "network_id": .string(subnet.networkID), "name": .string("\(settings.routerName)-interface"),
                "fixed_ips": [["subnet_id": .string(subnet.id), "ip_address": .string(settings.routerIP)]],
            ])
        }
        try await session.addRouterInterface(router: router.id, portID: port.id)
        report("router interface", "\(router.name):\(subnet.name)", .changed, settings.routerIP, "created", port.id)
    }

    static func ensureSecurityGroup(_ settings: ConversionHostSettings, session: CloudSession, owned: [QueryItem],
                                    allowed: (cidr: String, reason: String),
                                    report: (String, String, ItemResult.Status, String, String?, String?) -> Void) async throws -> SecurityGroup
    {
        let description = SecurityGroupDescription.make(cidr: allowed.cidr, reason: allowed.reason)
        var group: SecurityGroup
        var changed = false
        if let g = try await session.named(Neutron.securityGroups, settings.securityGroupName, query: owned).first {
            group = g
            if g.description != description {
                group = try await session.update(Neutron.securityGroups, g.id, ["description": .string(description)])
                group.rules = g.rules
            }
        } else {
            group = try await session.create(Neutron.securityGroups, ["name": .string(settings.securityGroupName),
                                                                      "description": .string(description)])
            changed = true
        }
        let rules = group.rules ?? []
        let ssh = rules.filter { $0.direction == "ingress" && $0.protocol == "tcp" && $0.portRangeMin == 22 && $0.portRangeMax == 22 }
        if !ssh.contains(where: { $0.remoteIPPrefix == allowed.cidr }) {
            _ = try await session.create(Neutron.securityGroupRules, [
                "security_group_id": .string(group.id), "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": .string(allowed.cidr),
            ])
            changed = true
        }
        // SSH from anywhere else goes (the link's rules for the destination host stay).
        for r in ssh where r.remoteIPPrefix != allowed.cidr && !(r.description ?? "").hasPrefix(SecurityGroupDescription.linkRulePrefix) {
            try await session.delete(Neutron.securityGroupRules, r.id)
            changed = true
        }
        if !rules.contains(where: { $0.direction == "ingress" && $0.protocol == "icmp" && ($0.ethertype ?? "IPv4") == "IPv4" }) {
            _ = try await session.create(Neutron.securityGroupRules, [
                "security_group_id": .string(group.id), "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
                "remote_ip_prefix": "0.0.0.0/0",
            ])
            changed = true
        }
        report("security group", group.name, changed ? .changed : .ok, "SSH from \(allowed.cidr): \(allowed.reason)",
               changed ? "updated" : nil, group.id)
        return group
    }

    static func ensureFloatingIP(_ settings: ConversionHostSettings, session: CloudSession, server: Server, network: Network,
                                 external: Network, owned: [QueryItem],
                                 report: (String, String, ItemResult.Status, String, String?, String?) -> Void) async throws
    {
        let ports = try await session.list(Neutron.ports, query: [QueryItem("device_id", server.id)]).collect()
        guard let port = ports.first(where: { $0.networkID == network.id }) ?? ports.first else {
            throw ConversionHostError(.notUsable, "conversion host \(server.name) has no port for a floating IP")
        }
        for p in ports {
            if let f = try await session.list(Neutron.floatingIPs, query: [QueryItem("port_id", p.id)]).collect().first {
                report("floating IP", f.floatingIPAddress, .ok, "", nil, f.id)
                return
            }
        }
        if let address = settings.floatingIPAddress {
            guard let f = try await session.list(Neutron.floatingIPs, query: owned + [QueryItem("floating_ip_address", address)]).collect()
                .first(where: { $0.floatingIPAddress == address })
            else {
                throw ConversionHostError(.notFound, "floating IP \(address) not found in cloud '\(session.profile.name)' "
                    + "(os_migrate_\(settings.side.rawValue)_conversion_floating_ip_address): allocate it first")
            }
            if let other = f.portID, other != port.id {
                throw ConversionHostError(.notUsable, "floating IP \(address) in cloud '\(session.profile.name)' is in use by port \(other)")
            }
            _ = try await session.update(Neutron.floatingIPs, f.id, ["port_id": .string(port.id)])
            report("floating IP", address, .changed, "associated", "updated", f.id)
            return
        }
        let f = try await session.create(Neutron.floatingIPs, [
            "floating_network_id": .string(external.id), "port_id": .string(port.id),
            "description": .string("os-migrate conversion host \(settings.hostName)"),
        ])
        report("floating IP", f.floatingIPAddress, .changed, "on \(external.name)", "created", f.id)
    }

    /// The security group's SSH source, and why.
    static func allowedSSHSource(_ settings: ConversionHostSettings, session: CloudSession) async throws -> (cidr: String, reason: String) {
        if let c = settings.sshAllowedCIDR { return (c, "os_migrate_conversion_ssh_allowed_cidr") }
        let url = try await session.endpoint(ServiceType.network).url
        let local = URLComponents(string: url)?.host.flatMap { LocalAddress.toward(host: $0, port: 443) }
        return SSHSource.decide(explicit: nil, migratorAddress: local)
    }

    /// Allows SSH on the source host's group from the destination host's egress addresses (its
    /// floating IP and its router's gateway), when SSH is not open to all.
    static func allowLinkSource(src: ConversionHost, dst: ConversionHost, sourceSettings: ConversionHostSettings,
                                srcSession: CloudSession, dstSession: CloudSession,
                                report: (String, String, ItemResult.Status, String, String?) -> Void) async throws
    {
        let srcProject = try await srcSession.currentProjectID
        guard let group = try await srcSession.named(Neutron.securityGroups, sourceSettings.securityGroupName,
                                                     query: [QueryItem("project_id", srcProject)]).first else { return }
        let rules = (group.rules ?? []).filter { $0.direction == "ingress" && $0.protocol == "tcp" && $0.portRangeMin == 22 }
        if rules.contains(where: { $0.remoteIPPrefix == "0.0.0.0/0" }) { return }
        var sources = Set<String>()
        if let server = try await dstSession.find(Nova.servers, id: dst.serverID) {
            for c in try await addressCandidates(server, session: dstSession) where c.kind != .fixed && IPv4.isGlobalUnicastOrLab(c.address) {
                sources.insert(c.address)
            }
        }
        let dstProject = try await dstSession.currentProjectID
        for r in try await dstSession.list(Neutron.routers, query: [QueryItem("project_id", dstProject)]).collect() {
            for ip in r.externalGatewayInfo?.externalFixedIPs ?? [] where IPv4.parse(ip.ipAddress) != nil { sources.insert(ip.ipAddress) }
        }
        for s in sources.sorted() where !rules.contains(where: { $0.remoteIPPrefix == s + "/32" }) {
            _ = try await srcSession.create(Neutron.securityGroupRules, [
                "security_group_id": .string(group.id), "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": .string(s + "/32"),
                "description": .string("\(SecurityGroupDescription.linkRulePrefix) \(dst.name)"),
            ])
            report("security group rule", "\(group.name): SSH from \(s)/32", .changed, "the destination host", "created")
        }
    }

    static func retryingConflicts(_ op: () async throws -> Void) async throws {
        var attempt = 0
        while true {
            do {
                try await op()
                return
            } catch let e as OpenStackError where e.isConflict && attempt < 10 {
                attempt += 1
                try await Task.sleep(for: .seconds(2))
            }
        }
    }

    // MARK: - internals: keys and SSH

    /// Generates `path` (and `.pub`) with ssh-keygen once; returns the public key.
    static func ensureKeyFile(_ path: String, settings: ConversionHostSettings, what: String, generate: Bool) async throws
        -> (text: String, created: Bool)
    {
        // Both sides deploy at once and share the key: one ssh-keygen.
        await AttachLocks.shared.acquire("keyfile:" + path)
        do {
            let r = try await ensureKeyFileLocked(path, settings: settings, what: what, generate: generate)
            await AttachLocks.shared.release("keyfile:" + path)
            return r
        } catch {
            await AttachLocks.shared.release("keyfile:" + path)
            throw error
        }
    }

    private static func ensureKeyFileLocked(_ path: String, settings: ConversionHostSettings, what: String, generate: Bool) async throws
        -> (text: String, created: Bool)
    {
        let fm = FileManager.default
        var created = false
        if !fm.fileExists(atPath: path) {
            guard generate else {
                throw ConfigError("\(settings.origin): os_migrate_conversion_keypair_generate is false and the \(what) \(path) does not exist")
            }
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o700])
            var argv = ["ssh-keygen", "-q", "-t", settings.keyType, "-N", "", "-C", "os-migrate-\(what.replacingOccurrences(of: " ", with: "-"))",
                        "-f", path]
            if settings.keyType == "rsa" { argv += ["-b", String(settings.keyBits)] }
            let r = try await LocalCommand.run(argv, timeout: 60)
            guard r.status == 0 else {
                throw ConversionHostError(.other, "ssh-keygen could not create the \(what) \(path): \(r.lastErrorLine ?? "exit status \(r.status)")")
            }
            created = true
        }
        chmod(path, 0o600)
        let pubPath = path + ".pub"
        if !fm.fileExists(atPath: pubPath) {
            let r = try await LocalCommand.run(["ssh-keygen", "-y", "-f", path], timeout: 60)
            guard r.status == 0 else {
                throw ConversionHostError(.other, "cannot read the \(what) \(path): \(r.lastErrorLine ?? "exit status \(r.status)")")
            }
            try r.stdout.write(toFile: pubPath, atomically: true, encoding: .utf8)
        }
        let text = try String(contentsOfFile: pubPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return (text, created)
    }

    /// Pins the host key on first contact (ssh-keyscan, or accept-new through a ProxyJump).
    /// A host already pinned is left as it is, unless the server was just created (its old pin,
    /// for an earlier server of the same id, cannot exist; an address's old pin is never reused).
    static func pinHostKey(_ host: ConversionHost, settings: ConversionHostSettings, fresh: Bool,
                           report: (String, String, ItemResult.Status, String, String?, String?) -> Void) async throws
    {
        let alias = HostKeyPinning.alias(serverID: host.serverID)
        let file = settings.knownHostsPath
        let current = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        if !HostKeyPinning.lines(for: alias, in: current).isEmpty && !fresh {
            report("host key", alias, .ok, "pinned in \(file)", nil, nil)
            return
        }
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let deadline = ContinuousClock.now + .seconds(settings.sshTimeout)
        var lastProblem = "no answer"
        if settings.proxyJump == nil {
            while true {
                let r = try await LocalCommand.run(["ssh-keyscan", "-T", "10", "-p", String(host.ssh.port ?? 22), "-t", "ed25519,ecdsa,rsa",
                                                    host.address], timeout: 60)
                let keys = HostKeyPinning.parseKeyscan(r.stdout)
                if !keys.isEmpty {
                    try writePins(file: file) { HostKeyPinning.pinning(alias, keys: keys, in: $0) }
                    report("host key", alias, .changed, "pinned \(keys.map(\.type).joined(separator: ", ")) on first contact in \(file)",
                           "created", nil)
                    return
                }
                lastProblem = r.lastErrorLine ?? "no host key received"
                if ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .seconds(3))
            }
        } else {
            // Through a jump host ssh-keyscan cannot reach the host: let ssh record the key of the
            // first contact (accept-new) into our file, under the alias, once.
            try writePins(file: file) { HostKeyPinning.removing(alias, from: $0) }
            var first = host.ssh
            first.options = first.options.map { $0 == "StrictHostKeyChecking=yes" ? "StrictHostKeyChecking=accept-new" : $0 }
            while true {
                let r = try await LocalCommand.run(first.sshArguments() + ["true"], timeout: 60)
                let pinned = HostKeyPinning.lines(for: alias, in: (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
                if !pinned.isEmpty {
                    report("host key", alias, .changed, "pinned on first contact through \(settings.proxyJump!) in \(file)", "created", nil)
                    return
                }
                lastProblem = r.lastErrorLine ?? "exit status \(r.status)"
                if ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .seconds(3))
            }
        }
        throw ConversionHostError(.unreachable, "\(host.label): SSH did not answer within \(Int(settings.sshTimeout)) s: \(lastProblem)")
    }

    /// Read, change and replace the pinned keys under an exclusive lock: both sides deploy at
    /// once (and several processes may share a data dir), so an unlocked read-modify-write could
    /// lose the other side's pin.
    static func writePins(file: String, _ change: (String) -> String) throws {
        let lockFD = open(file + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw ConversionHostError(.other, "cannot lock \(file): \(String(cString: strerror(errno)))") }
        defer { close(lockFD) }
        while flock(lockFD, LOCK_EX) != 0 {
            if errno != EINTR { throw ConversionHostError(.other, "cannot lock \(file): \(String(cString: strerror(errno)))") }
        }
        defer { flock(lockFD, LOCK_UN) }
        let current = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        let updated = change(current)
        let tmp = file + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(updated.utf8), attributes: [.posixPermissions: 0o600]),
              rename(tmp, file) == 0
        else {
            Glibc.unlink(tmp)
            throw ConversionHostError(.other, "cannot write \(file): \(String(cString: strerror(errno)))")
        }
    }

    static func unpin(serverID: String, settings: ConversionHostSettings) throws {
        guard FileManager.default.fileExists(atPath: settings.knownHostsPath) else { return }
        try writePins(file: settings.knownHostsPath) { HostKeyPinning.removing(HostKeyPinning.alias(serverID: serverID), from: $0) }
    }

    /// Logs in with `true` until it works (cloud-init may still be installing the key). A changed
    /// or unpinned host key fails at once. `timeout` 0: one attempt.
    static func waitForLogin(_ host: ConversionHost, timeout: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            let r = try await host.runRaw("true", timeout: 60)
            guard let e = host.sshError(r) else {
                if r.status == 0 { return }
                throw ConversionHostError(.unreachable, "\(host.label): `true` failed over ssh (exit status \(r.status)): \(r.lastErrorLine ?? "")")
            }
            if e.kind == .hostKeyChanged || e.kind == .hostKeyNotPinned || ContinuousClock.now >= deadline { throw e }
            try await Task.sleep(for: .seconds(3))
        }
    }
}

/// A host's status (what `conversion-hosts status` shows).
public struct ConversionHostStatus: Sendable, Equatable {
    public var side: CloudSide
    public var cloud: String
    public var name: String
    public var found = false
    public var serverID: String?
    public var serverStatus: String?
    /// The address the migrator uses.
    public var address: String?
    public var fixedIPs: [String] = []
    public var floatingIPs: [String] = []
    public var sshUser = ""
    public var sshPort = 22
    public var reachable = false
    public var agentVersion: String?
    public var deviceDiscovery = ""
    /// Sources of the security group's TCP 22 rules, and why (from the group's description).
    public var sshAllowedFrom: [String] = []
    public var sshAllowedReason: String?
    public var link: LinkStatus?
    public var problems: [String] = []

    public init(side: CloudSide, cloud: String, name: String) {
        self.side = side
        self.cloud = cloud
        self.name = name
    }

    public var ok: Bool { found && reachable && agentVersion != nil && problems.isEmpty && (link?.ok ?? true) }

    public var json: JSONValue {
        func opt(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        var o: JSONObject = [
            "cloud": .string(cloud), "name": .string(name), "found": .bool(found), "server_id": opt(serverID),
            "status": opt(serverStatus), "address": opt(address),
            "addresses": ["fixed": .array(fixedIPs.map(JSONValue.string)), "floating": .array(floatingIPs.map(JSONValue.string))],
            "ssh": ["user": .string(sshUser), "port": .int(sshPort), "reachable": .bool(reachable)],
            "agent": ["version": opt(agentVersion)],
            "device_discovery": .string(deviceDiscovery),
            "ssh_allowed_from": ["cidrs": .array(sshAllowedFrom.map(JSONValue.string)), "reason": opt(sshAllowedReason)],
            "ok": .bool(ok), "problems": .array(problems.map(JSONValue.string)),
        ]
        if let link { o["link"] = link.json }
        return .object(o)
    }

    public var text: String {
        var lines = ["\(side.rawValue): \(name) in cloud '\(cloud)'"]
        func row(_ k: String, _ v: String) { lines.append("  " + k.padding(toLength: 18, withPad: " ", startingAt: 0) + v) }
        row("server", found ? "\(serverID ?? "?") \(serverStatus ?? "?")" : "not found")
        if found {
            row("address", address ?? "-")
            if !fixedIPs.isEmpty { row("fixed IPs", fixedIPs.joined(separator: ", ")) }
            if !floatingIPs.isEmpty { row("floating IPs", floatingIPs.joined(separator: ", ")) }
            row("ssh", "\(sshUser)@\(address ?? "?"):\(sshPort) " + (reachable ? "reachable (pinned host key)" : "NOT reachable"))
            row("agent", agentVersion ?? "-")
            row("devices", deviceDiscovery)
            if !sshAllowedFrom.isEmpty || sshAllowedReason != nil {
                row("ssh allowed from", sshAllowedFrom.joined(separator: ", ") + (sshAllowedReason.map { " (\($0))" } ?? ""))
            }
            if let link {
                row("link", link.ok ? "\(link.address ?? "?"):\(link.port) ok, \(link.agentVersion ?? "")" : "FAILED")
            }
        }
        for p in problems { lines.append("  FAILED: \(p)") }
        if let p = link?.problem { lines.append("  FAILED: \(p)") }
        lines.append("  " + (ok ? "ok" : "failed"))
        return lines.joined(separator: "\n")
    }
}

/// The destination host's link to the source host.
public struct LinkStatus: Sendable, Equatable {
    public var ok = false
    public var address: String?
    public var port = 22
    public var agentVersion: String?
    public var problem: String?
    public init() {}

    public var json: JSONValue {
        ["ok": .bool(ok), "address": address.map(JSONValue.string) ?? .null, "port": .int(port),
         "agent": agentVersion.map(JSONValue.string) ?? .null, "problem": problem.map(JSONValue.string) ?? .null]
    }
}

// MARK: - pure decisions

/// Which address the migrator uses for a conversion host.
public enum AddressChoice {
    public enum Kind: String, Sendable { case floating, access, fixed }
    public struct Candidate: Sendable, Equatable {
        public var address: String
        public var kind: Kind
        public var network: String?
        public init(address: String, kind: Kind, network: String?) {
            self.address = address
            self.kind = kind
            self.network = network
        }
    }

    /// The override, else a floating IP, else the access IP, else a fixed IP (on the conversion
    /// network first, then in network name order). IPv4 only.
    public static func choose(override: String?, candidates: [Candidate], preferredNetwork: String?) -> String? {
        if let override, !override.isEmpty { return override }
        let v4 = candidates.filter { IPv4.parse($0.address) != nil }
        if let f = v4.first(where: { $0.kind == .floating }) { return f.address }
        if let a = v4.first(where: { $0.kind == .access }) { return a.address }
        let fixed = v4.filter { $0.kind == .fixed }
        if let preferredNetwork, let f = fixed.first(where: { $0.network == preferredNetwork }) { return f.address }
        return fixed.sorted { ($0.network ?? "") < ($1.network ?? "") }.first?.address
    }
}

/// The SSH source of the security group (pure).
public enum SSHSource {
    /// An explicit CIDR; else the migrator's address when it is a public one (a private or
    /// loopback address says nothing about what the cloud sees: NAT); else 0.0.0.0/0.
    public static func decide(explicit: String?, migratorAddress: String?) -> (cidr: String, reason: String) {
        if let explicit { return (explicit, "os_migrate_conversion_ssh_allowed_cidr") }
        if let a = migratorAddress, IPv4.isGlobalUnicast(a) { return (a + "/32", "the migrator's address") }
        return ("0.0.0.0/0", "the migrator's address is not known; set os_migrate_conversion_ssh_allowed_cidr to restrict it")
    }
}

/// The security group's description records where SSH is allowed from, and why (pure).
public enum SecurityGroupDescription {
    static let prefix = "os-migrate conversion hosts: SSH from "
    static let linkRulePrefix = "os-migrate link from"

    public static func make(cidr: String, reason: String) -> String { prefix + cidr + " (" + reason + ")" }

    public static func reason(from description: String) -> String? {
        guard description.hasPrefix(prefix), let open = description.firstIndex(of: "("), description.hasSuffix(")") else { return nil }
        return String(description[description.index(after: open)..<description.index(before: description.endIndex)])
    }
}

/// The architecture an ELF executable is built for (pure but for reading 20 bytes).
public enum ELFMachine {
    public static func of(path: String) -> String? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        return of(header: [UInt8](h.readData(ofLength: 20)))
    }

    public static func of(header b: [UInt8]) -> String? {
        guard b.count >= 20, b[0] == 0x7F, b[1] == 0x45, b[2] == 0x4C, b[3] == 0x46 else { return nil }
        let machine = b[5] == 2 ? UInt16(b[18]) << 8 | UInt16(b[19]) : UInt16(b[19]) << 8 | UInt16(b[18])
        switch machine {
        case 0x3E: return "x86_64"
        case 0x03: return "i686"
        case 0xB7: return "aarch64"
        case 0x28: return "arm"
        case 0x15: return b[4] == 2 ? "ppc64" : "ppc"
        case 0x16: return "s390x"
        case 0xF3: return "riscv64"
        default: return "ELF machine \(machine)"
        }
    }

    /// Whether `uname -m` names the architecture `local` (from `of`).
    public static func compatible(_ local: String, _ uname: String) -> Bool {
        let u = uname.lowercased()
        switch local {
        case "x86_64": return u == "x86_64" || u == "amd64"
        case "aarch64": return u == "aarch64" || u == "arm64"
        case "i686": return ["i386", "i486", "i586", "i686", "x86_64"].contains(u)
        case "arm": return u.hasPrefix("arm")
        case "ppc64": return u.hasPrefix("ppc64")
        default: return local == u
        }
    }
}

/// OpenSSH public keys (pure).
public enum SSHKeys {
    /// Same key type and base64 body (comments differ).
    public static func sameKey(_ a: String, _ b: String) -> Bool {
        let fa = a.split(separator: " ").prefix(2), fb = b.split(separator: " ").prefix(2)
        return fa.count == 2 && Array(fa) == Array(fb)
    }

    /// `type base64 comment` for authorized_keys.
    public static func authorizedKeysLine(_ publicKey: String, comment: String) -> String {
        (publicKey.split(separator: " ").prefix(2) + [Substring(comment)]).joined(separator: " ")
    }
}

extension IPv4 {
    /// A floating IP worth allowing: public, or the lab's documentation range.
    static func isGlobalUnicastOrLab(_ ip: String) -> Bool { isGlobalUnicast(ip) || cidr("203.0.113.0/24", contains: ip) }
}

/// The local address the kernel would use toward a host (UDP connect, nothing is sent).
enum LocalAddress {
    static func toward(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else { return nil }
        defer { freeaddrinfo(res) }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { return nil }
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard ok == 0 else { return nil }
        var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &local.sin_addr, &buf, socklen_t(INET_ADDRSTRLEN)) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
