import DataPlane
import Foundation
import OpenStack
import Resources

#if canImport(Glibc)
    import Glibc
#endif

/// Deploying one side: everything it needs in the cloud, created when missing and reused by name.
extension ConversionHosts {
    /// Creates what is missing and reuses what exists (by name) for one side: key, network,
    /// subnet, router, security group, keypair, server, floating IP; waits for SSH, pins the host
    /// key on first contact, and installs (or checks) the agent. Returns the ready host.
    public static func deploy(_ settings: ConversionHostSettings, session: CloudSession, log: @escaping Log) async throws -> ConversionHost {
        let side = settings.side
        let cloud = session.profile.name
        let report = Reporter(prefix: side.rawValue, log: log)
        let flavorName = try settings.requireFlavor()
        let externalName: String? = (settings.manageNetwork || settings.manageFloatingIP) ? try settings.requireExternalNetwork() : nil

        // The key pair file first: nothing in the cloud is worth creating without it.
        let publicKey = try await ensureKeyFile(settings.keypairPrivatePath, settings: settings, what: "conversion host key",
                                                generate: settings.generateKeypair)
        report.item("ssh key", settings.keypairPrivatePath, publicKey.created ? .changed : .ok, publicKey.created ? "generated" : "",
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
                report.ok("network", n.name, id: n.id)
            } else {
                var attrs: JSONObject = ["name": .string(settings.networkName), "admin_state_up": true,
                                         "description": "os-migrate conversion host network"]
                if let mtu = settings.networkMTU { attrs["mtu"] = .int(mtu) }
                network = try await session.create(Neutron.networks, attrs)
                report.changed("network", network.name, action: "created", id: network.id)
            }
            let subnet: Subnet
            if let s = try await session.named(Neutron.subnets, settings.subnetName, query: [QueryItem("network_id", network.id)]).first {
                subnet = s
                report.ok("subnet", s.name, s.cidr, id: s.id)
            } else {
                subnet = try await session.create(Neutron.subnets, [
                    "name": .string(settings.subnetName), "network_id": .string(network.id), "ip_version": 4,
                    "cidr": .string(settings.subnetCIDR), "gateway_ip": .string(settings.routerIP), "enable_dhcp": true,
                    "allocation_pools": [["start": .string(settings.allocationStart), "end": .string(settings.allocationEnd)]],
                    "dns_nameservers": .array(settings.dnsNameservers.map(JSONValue.string)),
                ])
                report.changed("subnet", subnet.name, subnet.cidr, action: "created", id: subnet.id)
            }
            try await ensureRouter(settings, session: session, subnet: subnet, external: external!, owned: owned, report: report)
        } else {
            network = try one(try await session.named(Neutron.networks, settings.networkName), "network '\(settings.networkName)'",
                              cloud: cloud, key: "os_migrate_conversion_net_name", settings: settings)
            report.ok("network", network.name, "not managed (os_migrate_conversion_manage_network is false)", id: network.id)
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
            report.ok("keypair", k.name)
        } else {
            _ = try await session.createKeypair(name: settings.keypairName, publicKey: publicKey.text, type: nil, userID: nil)
            report.changed("keypair", settings.keypairName, action: "created")
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
            report.ok("server", s.name, s.status, id: s.id)
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
            report.changed("server", settings.hostName, "flavor \(flavor.name), image \(image.name)", action: "created", id: server.id)
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
        report.ok("ssh", "\(host.ssh.destination):\(host.ssh.port ?? 22)", "host key pinned in \(settings.knownHostsPath)")

        // The agent.
        let info = try await checkAgent(host, deploy: true, executable: settings.agentExecutable)
        report.item("agent", host.name, info.deployed ? .changed : .ok, info.version, action: info.deployed ? "installed" : nil)
        return host
    }

    static func ensureRouter(_ settings: ConversionHostSettings, session: CloudSession, subnet: Subnet, external: Network,
                             owned: [QueryItem], report: Reporter) async throws
    {
        var router: Router
        if let r = try await session.named(Neutron.routers, settings.routerName, query: owned).first {
            router = r
            if r.externalGatewayInfo?.networkID != external.id {
                router = try await session.update(Neutron.routers, r.id, ["external_gateway_info": ["network_id": .string(external.id)]])
                report.changed("router", r.name, "gateway set on \(external.name)", action: "updated", id: r.id)
            } else {
                report.ok("router", r.name, id: r.id)
            }
        } else {
            router = try await session.create(Neutron.routers, [
                "name": .string(settings.routerName), "external_gateway_info": ["network_id": .string(external.id)],
                "description": "os-migrate conversion host router",
            ])
            report.changed("router", router.name, "gateway on \(external.name)", action: "created", id: router.id)
        }
        let ifaces = try await session.list(Neutron.ports, query: [QueryItem("device_id", router.id)]).collect()
            .filter { ($0.deviceOwner ?? "").hasPrefix("network:router_interface") }
        if ifaces.contains(where: { ($0.fixedIPs ?? []).contains { $0.subnetID == subnet.id } }) {
            report.ok("router interface", "\(router.name):\(subnet.name)", settings.routerIP)
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
        report.changed("router interface", "\(router.name):\(subnet.name)", settings.routerIP, action: "created", id: port.id)
    }

    static func ensureSecurityGroup(_ settings: ConversionHostSettings, session: CloudSession, owned: [QueryItem],
                                    allowed: (cidr: String, reason: String),
                                    report: Reporter) async throws -> SecurityGroup
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
        report.item("security group", group.name, changed ? .changed : .ok, "SSH from \(allowed.cidr): \(allowed.reason)",
                    action: changed ? "updated" : nil, id: group.id)
        return group
    }

    static func ensureFloatingIP(_ settings: ConversionHostSettings, session: CloudSession, server: Server, network: Network,
                                 external: Network, owned: [QueryItem],
                                 report: Reporter) async throws
    {
        let ports = try await session.list(Neutron.ports, query: [QueryItem("device_id", server.id)]).collect()
        guard let port = ports.first(where: { $0.networkID == network.id }) ?? ports.first else {
            throw ConversionHostError(.notUsable, "conversion host \(server.name) has no port for a floating IP")
        }
        for p in ports {
            if let f = try await session.list(Neutron.floatingIPs, query: [QueryItem("port_id", p.id)]).collect().first {
                report.ok("floating IP", f.floatingIPAddress, id: f.id)
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
            report.changed("floating IP", address, "associated", action: "updated", id: f.id)
            return
        }
        let f = try await session.create(Neutron.floatingIPs, [
            "floating_network_id": .string(external.id), "port_id": .string(port.id),
            "description": .string("os-migrate conversion host \(settings.hostName)"),
        ])
        report.changed("floating IP", f.floatingIPAddress, "on \(external.name)", action: "created", id: f.id)
    }

    /// The security group's SSH source, and why.
    static func allowedSSHSource(_ settings: ConversionHostSettings, session: CloudSession) async throws -> (cidr: String, reason: String) {
        if let c = settings.sshAllowedCIDR { return (c, "os_migrate_conversion_ssh_allowed_cidr") }
        let url = try await session.endpoint(ServiceType.network).url
        let local = URLComponents(string: url)?.host.flatMap { LocalAddress.toward(host: $0, port: 443) }
        return SSHSource.decide(explicit: nil, migratorAddress: local)
    }
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
