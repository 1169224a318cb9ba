import DataPlane
import Foundation
import OpenStack
import Resources

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
