import DataPlane
import Foundation
import OpenStack
import Resources

/// `conversion-hosts delete`: one side's resources removed, in the order Neutron allows.
extension ConversionHosts {
    /// Deletes one side's server (and its floating IP when managed), keypair, security group, and
    /// router, subnet and network when managed. Idempotent. The data-dir keys are kept.
    public static func delete(_ settings: ConversionHostSettings, session: CloudSession, log: @escaping Log) async throws {
        let side = settings.side
        let report = Reporter(prefix: side.rawValue, log: log, changedAction: "deleted")
        let projectID = try await session.currentProjectID
        let owned = [QueryItem("project_id", projectID)]

        let servers = try await session.named(Nova.servers, settings.hostName)
        if servers.isEmpty { report.ok("server", settings.hostName, "absent") }
        for server in servers {
            if settings.manageFloatingIP {
                for port in try await session.list(Neutron.ports, query: [QueryItem("device_id", server.id)]).collect() {
                    for fip in try await session.list(Neutron.floatingIPs, query: [QueryItem("port_id", port.id)]).collect() {
                        if settings.deleteFloatingIP && settings.floatingIPAddress != fip.floatingIPAddress {
                            try await session.delete(Neutron.floatingIPs, fip.id)
                            report.changed("floating IP", fip.floatingIPAddress, id: fip.id)
                        } else {
                            _ = try await session.update(Neutron.floatingIPs, fip.id, ["port_id": .null])
                            report.changed("floating IP", fip.floatingIPAddress, "disassociated, kept", id: fip.id)
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
            report.changed("server", server.name, id: server.id)
        }

        if try await session.keypair(settings.keypairName) != nil {
            try await session.deleteKeypair(settings.keypairName)
            report.changed("keypair", settings.keypairName)
        } else {
            report.ok("keypair", settings.keypairName, "absent")
        }

        let groups = try await session.named(Neutron.securityGroups, settings.securityGroupName, query: owned)
        if groups.isEmpty { report.ok("security group", settings.securityGroupName, "absent") }
        for g in groups {
            try await Waiter.untilNoConflict { try await session.delete(Neutron.securityGroups, g.id) }
            report.changed("security group", g.name, id: g.id)
        }

        guard settings.manageNetwork else { return }
        let networks = try await session.named(Neutron.networks, settings.networkName, query: owned)
        let routers = try await session.named(Neutron.routers, settings.routerName, query: owned)
        if routers.isEmpty { report.ok("router", settings.routerName, "absent") }
        for r in routers {
            for p in try await session.list(Neutron.ports, query: [QueryItem("device_id", r.id)]).collect()
            where (p.deviceOwner ?? "").hasPrefix("network:router_interface") {
                try await session.removeRouterInterface(router: r.id, portID: p.id)
            }
            if r.externalGatewayInfo != nil {
                _ = try await session.update(Neutron.routers, r.id, ["external_gateway_info": [:]])
            }
            try await Waiter.untilNoConflict { try await session.delete(Neutron.routers, r.id) }
            report.changed("router", r.name, id: r.id)
        }
        if networks.isEmpty {
            report.ok("subnet", settings.subnetName, "absent")
            report.ok("network", settings.networkName, "absent")
        }
        for n in networks {
            for s in try await session.named(Neutron.subnets, settings.subnetName, query: [QueryItem("network_id", n.id)]) {
                try await Waiter.untilNoConflict { try await session.delete(Neutron.subnets, s.id) }
                report.changed("subnet", s.name, id: s.id)
            }
            do {
                try await Waiter.untilNoConflict { try await session.delete(Neutron.networks, n.id) }
            } catch let e as OpenStackError where e.isConflict {
                let ports = try await session.list(Neutron.ports, query: [QueryItem("network_id", n.id)]).collect()
                throw ConversionHostError(.other, "network \(n.name) in cloud '\(session.profile.name)' is still in use by "
                    + "\(ports.count) port(s) (\(ports.map { $0.deviceOwner ?? $0.id }.joined(separator: ", "))): delete them, then run delete again")
            }
            report.changed("network", n.name, id: n.id)
        }
    }
}
