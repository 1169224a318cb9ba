import DataPlane
import Foundation
import OpenStack
import Resources

/// Deploys, finds, checks and deletes the conversion hosts (one Nova server per cloud, reached
/// over SSH with a pinned host key), and links the destination host to the source host.
/// See docs/conversion-hosts.md.
public enum ConversionHosts {
    /// Progress: one result per resource (`ok` = already there, `changed` = created or deleted).
    public typealias Log = @Sendable (ItemResult) -> Void

    /// One progress line per resource, its kind under a prefix (the side, or "link").
    struct Reporter: Sendable {
        /// Before every kind: "src", "dst" or "link".
        let prefix: String
        let log: Log
        /// The action of every `changed` item that names none ("deleted" for delete).
        var changedAction: String? = nil

        /// A reporter that drops everything (tests).
        static let silent = Reporter(prefix: "", log: { _ in })

        func item(_ kind: String, _ name: String, _ status: ItemResult.Status, _ message: String = "",
                  action: String? = nil, id: String? = nil) {
            log(ItemResult(kind: "\(prefix) \(kind)", name: name, status: status, message: message,
                           action: action ?? (status == .changed ? changedAction : nil), id: id))
        }

        /// Already there (or left alone).
        func ok(_ kind: String, _ name: String, _ message: String = "", id: String? = nil) {
            item(kind, name, .ok, message, id: id)
        }

        /// Created, updated or deleted.
        func changed(_ kind: String, _ name: String, _ message: String = "", action: String? = nil, id: String? = nil) {
            item(kind, name, .changed, message, action: action, id: id)
        }
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

    // MARK: - lookups

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
