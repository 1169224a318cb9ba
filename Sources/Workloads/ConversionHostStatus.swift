import DataPlane
import Foundation
import OpenStack
import Resources

/// `conversion-hosts status`: a side and the link checked without changing anything.
extension ConversionHosts {
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
