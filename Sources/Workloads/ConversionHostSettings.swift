import DataPlane
import Engine
import Foundation
import OpenStack
import Resources

/// Everything about one side's conversion host, from the vars file (the reference tool's variable
/// names and defaults, plus our per-side SSH overrides). See docs/conversion-hosts.md.
public struct ConversionHostSettings: Sendable, Equatable {
    public var side: CloudSide
    /// Where the values came from ("vars file PATH" or "defaults"), for messages.
    public var origin: String
    public var varsPath: String?

    // Network (os_migrate_conversion_*)
    public var manageNetwork: Bool
    public var networkName: String
    public var networkMTU: Int?
    public var subnetName: String
    public var subnetCIDR: String
    public var allocationStart: String
    public var allocationEnd: String
    public var dnsNameservers: [String]
    public var routerName: String
    public var routerIP: String
    public var securityGroupName: String
    public var externalNetworkName: String?

    // Floating IP
    public var manageFloatingIP: Bool
    public var deleteFloatingIP: Bool
    /// A pre-allocated floating IP address to use; nil = allocate one.
    public var floatingIPAddress: String?

    // Server
    public var hostName: String
    public var flavorName: String?
    public var imageName: String
    public var keypairName: String
    public var generateKeypair: Bool
    public var keyType: String
    public var keyBits: Int
    public var bootFromVolume: Bool
    public var volumeSize: Int
    public var availabilityZone: String?
    /// Seconds to wait for the server to become ACTIVE.
    public var deployTimeout: Double
    /// Seconds to wait for SSH to answer (and accept our key) once the server is ACTIVE.
    public var sshTimeout: Double

    // SSH
    public var sshUser: String
    /// Override of the address the migrator uses; nil = floating IP, else access IP, else fixed IP.
    public var sshAddress: String?
    public var sshPort: Int
    public var proxyJump: String?
    /// Extra `ssh -o` options.
    public var sshOptions: [String]
    public var deviceDiscovery: DeviceDiscovery
    /// The authorized_keys file on this host (the link key is appended to the source host's).
    public var authorizedKeysFile: String
    /// `os-migrate` on the host; nil = copy this binary there.
    public var agentPath: String?
    /// Private key of the conversion hosts (`ssh.key`; its `.pub` is the Nova keypair).
    public var keypairPrivatePath: String
    /// Private key the destination host uses to reach the source host.
    public var linkKeypairPrivatePath: String
    /// `<data_dir>/conversion/known_hosts`: the pinned host keys.
    public var knownHostsPath: String
    /// Source of the security group's TCP 22 rule; nil = the migrator's address when known, else 0.0.0.0/0.
    public var sshAllowedCIDR: String?

    // Link (source side: how the destination host reaches the source host)
    public var linkAddress: String?
    public var linkPort: Int?
    /// `os_migrate_link_conversion_hosts`.
    public var linkHosts: Bool

    // Playbook switches
    public var deployEnabled: Bool
    public var deleteEnabled: Bool

    /// The local `os-migrate` binary copied to the hosts (not from the vars file); nil = this
    /// process's executable. Tests that drive the library in-process set it to the built CLI.
    public var agentExecutable: String? = nil

    /// The reference defaults for a side (no vars file).
    public static func defaults(side: CloudSide, dataDir: String) -> ConversionHostSettings {
        // Only the vars-file parsing can fail; with no file there is nothing to be invalid.
        try! load(side: side, vars: nil, dataDir: dataDir)
    }

    /// Reads one side's settings. Missing or invalid values are one-line `ConfigError`s naming the
    /// vars file and the key.
    public static func load(side: CloudSide, vars: MigrationVars?, dataDir: String) throws -> ConversionHostSettings {
        let r = VarsReader(vars: vars)
        let s = side.rawValue
        let data = absolutePath(dataDir)
        func sideKey(_ rest: String) -> String { "os_migrate_\(s)_\(rest)" }

        let manageNetwork = try r.bool("os_migrate_conversion_manage_network") ?? true
        let cidr = try r.cidr("os_migrate_conversion_subnet_cidr") ?? "192.168.10.0/24"
        let allocStart = try r.ipv4("os_migrate_conversion_subnet_alloc_start") ?? "192.168.10.10"
        let allocEnd = try r.ipv4("os_migrate_conversion_subnet_alloc_end") ?? "192.168.10.99"
        let routerIP = try r.ipv4("os_migrate_conversion_router_ip") ?? "192.168.10.1"
        for (key, ip) in [("os_migrate_conversion_subnet_alloc_start", allocStart), ("os_migrate_conversion_subnet_alloc_end", allocEnd),
                          ("os_migrate_conversion_router_ip", routerIP)] where !IPv4.cidr(cidr, contains: ip) {
            throw r.error(key, "'\(ip)' is not in os_migrate_conversion_subnet_cidr \(cidr)")
        }
        if let a = IPv4.parse(allocStart), let b = IPv4.parse(allocEnd), a > b {
            throw r.error("os_migrate_conversion_subnet_alloc_end", "'\(allocEnd)' is before os_migrate_conversion_subnet_alloc_start \(allocStart)")
        }
        let discovery: DeviceDiscovery
        if let d = try r.string(sideKey("conversion_host_device_discovery")) {
            do { discovery = try DeviceDiscovery(parsing: d) } catch let e as ConfigError {
                throw r.error(sideKey("conversion_host_device_discovery"), e.description)
            }
        } else {
            discovery = .serial
        }
        let sshOptions = try r.stringList(sideKey("conversion_host_ssh_options")) ?? []
        for o in sshOptions {
            let key = o.split(whereSeparator: { $0 == "=" || $0 == " " }).first.map { $0.lowercased() } ?? ""
            if ["stricthostkeychecking", "userknownhostsfile", "hostkeyalias", "globalknownhostsfile"].contains(key) {
                throw r.error(sideKey("conversion_host_ssh_options"),
                              "'\(o)': host keys are pinned by os-migrate (\(data)/conversion/known_hosts); this option may not be set")
            }
        }
        let keyType = try r.string("os_migrate_conversion_host_ssh_key_type") ?? "ed25519"
        guard ["ed25519", "rsa", "ecdsa"].contains(keyType) else {
            throw r.error("os_migrate_conversion_host_ssh_key_type", "'\(keyType)' is not ed25519, rsa or ecdsa")
        }

        return ConversionHostSettings(
            side: side,
            origin: vars.map { "vars file \($0.path)" } ?? "defaults",
            varsPath: vars?.path,
            manageNetwork: manageNetwork,
            networkName: try r.name("os_migrate_conversion_net_name") ?? "os_migrate_conv",
            networkMTU: try r.int(sideKey("conversion_net_mtu"), in: 68...65535),
            subnetName: try r.name("os_migrate_conversion_subnet_name") ?? "os_migrate_conv",
            subnetCIDR: cidr,
            allocationStart: allocStart,
            allocationEnd: allocEnd,
            dnsNameservers: try r.ipv4List(sideKey("conversion_subnet_dns_nameservers")) ?? ["8.8.8.8"],
            routerName: try r.name("os_migrate_conversion_router_name") ?? "os_migrate_conv",
            routerIP: routerIP,
            securityGroupName: try r.name("os_migrate_conversion_secgroup_name") ?? "os_migrate_conv",
            externalNetworkName: try r.name(sideKey("conversion_external_network_name")),
            manageFloatingIP: try r.bool(sideKey("conversion_manage_fip")) ?? true,
            deleteFloatingIP: try (r.bool(sideKey("conversion_host_delete_fip")) ?? true)
                && (r.bool("os_migrate_conversion_delete_fip") ?? true),
            floatingIPAddress: try r.ipv4OrFalse(sideKey("conversion_floating_ip_address"))
                ?? r.ipv4OrFalse("os_migrate_conversion_floating_ip_address"),
            hostName: try r.name(sideKey("conversion_host_name")) ?? "os_migrate_conv_\(s)",
            flavorName: try r.name(sideKey("conversion_flavor_name")) ?? r.name("os_migrate_conversion_flavor_name"),
            imageName: try r.name(sideKey("conversion_image_name")) ?? r.name("os_migrate_conversion_image_name") ?? "os_migrate_conv",
            keypairName: try r.name("os_migrate_conversion_keypair_name") ?? "os_migrate_conv",
            generateKeypair: try r.bool("os_migrate_conversion_keypair_generate") ?? true,
            keyType: keyType,
            keyBits: try r.int("os_migrate_conversion_host_ssh_key_bits", in: 1024...16384) ?? 4096,
            bootFromVolume: try r.bool(sideKey("conversion_host_boot_from_volume")) ?? false,
            volumeSize: try r.int(sideKey("conversion_host_volume_size"), in: 1...65536) ?? 20,
            availabilityZone: try r.name(sideKey("conversion_availability_zone")),
            deployTimeout: Double(try r.int("os_migrate_conversion_host_deploy_timeout", in: 1...86400) ?? 180),
            sshTimeout: Double(try r.int("os_migrate_conversion_host_ssh_timeout", in: 1...86400) ?? 600),
            sshUser: try r.name(sideKey("conversion_host_ssh_user")) ?? r.name("os_migrate_conversion_host_ssh_user") ?? "cloud-user",
            sshAddress: try r.host(sideKey("conversion_host_ssh_address")),
            sshPort: try r.int(sideKey("conversion_host_ssh_port"), in: 1...65535) ?? 22,
            proxyJump: try r.name(sideKey("conversion_host_proxy_jump")),
            sshOptions: sshOptions,
            deviceDiscovery: discovery,
            authorizedKeysFile: try r.path(sideKey("conversion_host_authorized_keys_file")) ?? "~/.ssh/authorized_keys",
            agentPath: try r.path(sideKey("conversion_host_agent_path")),
            keypairPrivatePath: absolutePath(try r.path("os_migrate_conversion_keypair_private_path") ?? data + "/conversion/ssh.key"),
            linkKeypairPrivatePath: absolutePath(try r.path("os_migrate_conversion_link_keypair_private_path")
                ?? data + "/conversion/link-ssh.key"),
            knownHostsPath: data + "/conversion/known_hosts",
            sshAllowedCIDR: try r.cidr("os_migrate_conversion_ssh_allowed_cidr"),
            linkAddress: side == .src ? try r.host("os_migrate_src_conversion_host_link_address") : nil,
            linkPort: side == .src ? try r.int("os_migrate_src_conversion_host_link_port", in: 1...65535) : nil,
            linkHosts: try r.bool("os_migrate_link_conversion_hosts") ?? true,
            deployEnabled: try r.bool("os_migrate_deploy_\(s)_conversion_host") ?? true,
            deleteEnabled: try r.bool("os_migrate_delete_\(s)_conversion_host") ?? true)
    }

    /// The flavor, required to deploy.
    /// What deploying this host creates, by the filter variable of its kind (export leaves them out).
    public var ownNames: [String: Set<String>] {
        [WorkloadKind.filterVariable: [hostName], NetworkKind.filterVariable: [networkName], SubnetKind.filterVariable: [subnetName],
         RouterKind.filterVariable: [routerName], SecurityGroupKind.filterVariable: [securityGroupName],
         KeypairKind.filterVariable: [keypairName]]
    }

    public func requireFlavor() throws -> String {
        guard let flavorName else {
            throw ConfigError("\(origin): os_migrate_\(side.rawValue)_conversion_flavor_name (or os_migrate_conversion_flavor_name) is not set: "
                + "deploying the \(side.rawValue) conversion host needs a flavor (at least 20 GB of disk)")
        }
        return flavorName
    }

    /// The external network, required when the network or the floating IP is managed.
    public func requireExternalNetwork() throws -> String {
        guard let externalNetworkName else {
            let why = manageNetwork ? "the router's gateway" : "the floating IP"
            throw ConfigError("\(origin): os_migrate_\(side.rawValue)_conversion_external_network_name is not set: "
                + "it is needed for \(why) of the \(side.rawValue) conversion host")
        }
        return externalNetworkName
    }

    static func absolutePath(_ p: String) -> String {
        if p.hasPrefix("/") { return (p as NSString).standardizingPath }
        if p == "~" || p.hasPrefix("~/") { return (NSString(string: p).expandingTildeInPath as NSString).standardizingPath }
        return ((FileManager.default.currentDirectoryPath + "/" + p) as NSString).standardizingPath
    }
}

/// Typed reads of the vars file with one-line errors naming the file and the key.
struct VarsReader {
    let vars: MigrationVars?

    func error(_ key: String, _ problem: String) -> ConfigError {
        ConfigError("vars file \(vars?.path ?? "(none)"): \(key): \(problem)")
    }

    /// nil for absent, null, "" (Ansible's omit in practice).
    private func raw(_ key: String) -> JSONValue? {
        guard let v = vars?[key] else { return nil }
        if case .null = v { return nil }
        if case .string(let s) = v, s.trimmingCharacters(in: .whitespaces).isEmpty { return nil }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let v = raw(key) else { return nil }
        switch v {
        case .string(let s): return s.trimmingCharacters(in: .whitespaces)
        case .int(let i): return String(i)
        default: throw error(key, "expected a string, got \(Self.describe(v))")
        }
    }

    /// A resource name (no control characters).
    func name(_ key: String) throws -> String? {
        guard let s = try string(key) else { return nil }
        if s.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) {
            throw error(key, "contains control characters")
        }
        return s
    }

    func path(_ key: String) throws -> String? {
        guard let s = try name(key) else { return nil }
        return s
    }

    /// A host name or address (what `ssh` accepts as a host: no spaces, no user@).
    func host(_ key: String) throws -> String? {
        guard let s = try string(key) else { return nil }
        guard !s.contains(" "), !s.contains("@"), !s.hasPrefix("-"), !s.contains("/") else {
            throw error(key, "'\(s)' is not a host name or address")
        }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = raw(key) else { return nil }
        switch v {
        case .bool(let b): return b
        case .int(let i) where i == 0 || i == 1: return i == 1
        case .string(let s):
            switch s.lowercased() {
            case "true", "yes", "on", "1": return true
            case "false", "no", "off", "0": return false
            default: break
            }
        default: break
        }
        throw error(key, "expected true or false, got \(Self.describe(v))")
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = raw(key) else { return nil }
        var n: Int?
        switch v {
        case .int(let i): n = i
        case .string(let s): n = Int(s.trimmingCharacters(in: .whitespaces))
        default: n = nil
        }
        guard let n else { throw error(key, "expected a number, got \(Self.describe(v))") }
        guard range.contains(n) else { throw error(key, "\(n) is out of range (\(range.lowerBound)–\(range.upperBound))") }
        return n
    }

    func stringList(_ key: String) throws -> [String]? {
        guard let v = raw(key) else { return nil }
        switch v {
        case .string(let s): return [s]
        case .array(let a):
            return try a.enumerated().map { i, x in
                switch x {
                case .string(let s) where !s.isEmpty: return s
                case .int(let n): return String(n)
                default: throw error(key, "item \(i) is not a string (\(Self.describe(x)))")
                }
            }
        default: throw error(key, "expected a list of strings, got \(Self.describe(v))")
        }
    }

    func ipv4(_ key: String) throws -> String? {
        guard let s = try string(key) else { return nil }
        guard IPv4.parse(s) != nil else { throw error(key, "'\(s)' is not an IPv4 address") }
        return s
    }

    /// An address, or `false` (the reference's "no address given").
    func ipv4OrFalse(_ key: String) throws -> String? {
        if case .bool(false) = raw(key) ?? .null { return nil }
        return try ipv4(key)
    }

    func ipv4List(_ key: String) throws -> [String]? {
        guard let list = try stringList(key) else { return nil }
        for s in list where IPv4.parse(s) == nil { throw error(key, "'\(s)' is not an IPv4 address") }
        return list
    }

    func cidr(_ key: String) throws -> String? {
        guard let s = try string(key) else { return nil }
        guard IPv4.parseCIDR(s) != nil else { throw error(key, "'\(s)' is not an IPv4 CIDR (like 192.168.10.0/24)") }
        return s
    }

    static func describe(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return "'\(s)'"
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .array: return "a list"
        case .object: return "a mapping"
        case .null: return "null"
        default: return "\(v)"
        }
    }
}

/// IPv4 helpers (pure).
public enum IPv4 {
    public static func parse(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }

    public static func parseCIDR(_ s: String) -> (network: UInt32, prefix: Int)? {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let addr = parse(String(parts[0])), let prefix = Int(parts[1]), (0...32).contains(prefix) else { return nil }
        return (addr & mask(prefix), prefix)
    }

    public static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : UInt32.max << (32 - prefix) }

    public static func cidr(_ cidr: String, contains ip: String) -> Bool {
        guard let (net, prefix) = parseCIDR(cidr), let a = parse(ip) else { return false }
        return a & mask(prefix) == net
    }

    /// A public unicast address: not private (RFC 1918), shared (RFC 6598), loopback, link-local,
    /// documentation, multicast or reserved.
    public static func isGlobalUnicast(_ ip: String) -> Bool {
        guard parse(ip) != nil else { return false }
        let special = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                       "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
                       "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"]
        return !special.contains { cidr($0, contains: ip) }
    }
}
