import DataPlane
import Foundation
import OpenStack
import Resources

/// The link between the hosts: the destination host reaches the source host over SSH with a key of its own.
extension ConversionHosts {
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
        let report = Reporter(prefix: "link", log: log)
        let settings = sourceSettings
        let key = try await ensureKeyFile(settings.linkKeypairPrivatePath, settings: settings, what: "link key", generate: true)
        report.item("ssh key", settings.linkKeypairPrivatePath, key.created ? .changed : .ok, key.created ? "generated" : "",
               action: key.created ? "created" : nil)

        // 1. Authorize the link key on the source host.
        let pubLine = SSHKeys.authorizedKeysLine(key.text, comment: "os-migrate-link")
        try await src.runChecked(RemoteShell.appendOnce(line: pubLine, to: settings.authorizedKeysFile), what: "authorizing the link key")
        report.ok("authorized key", "\(src.name):\(settings.authorizedKeysFile)")

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
        report.ok("files", "\(dst.name):\(files.key)")

        // 3. SSH rules for the destination host's egress addresses when SSH is restricted.
        if let srcSession, let dstSession {
            try await allowLinkSource(src: src, dst: dst, sourceSettings: settings, srcSession: srcSession, dstSession: dstSession,
                                      report: report)
        }

        // 4. Check from the destination host.
        let pair = pair(src: src, dst: dst, sourceSettings: settings)
        let version = try await checkLink(pair, timeout: settings.sshTimeout, executable: settings.agentExecutable)
        report.ok("check", "\(dst.name) → \(src.name)", version)
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

    /// Allows SSH on the source host's group from the destination host's egress addresses (its
    /// floating IP and its router's gateway), when SSH is not open to all.
    static func allowLinkSource(src: ConversionHost, dst: ConversionHost, sourceSettings: ConversionHostSettings,
                                srcSession: CloudSession, dstSession: CloudSession,
                                report: Reporter) async throws
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
            report.changed("security group rule", "\(group.name): SSH from \(s)/32", "the destination host", action: "created")
        }
    }
}
