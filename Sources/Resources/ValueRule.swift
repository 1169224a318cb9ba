import Foundation
import OpenStack

#if canImport(Glibc)
    import Glibc
#endif

/// The type and range a param must have before anything is sent: checked in validation (so
/// `validate`, `import --dry-run` and `import` refuse it before the first write), with the limits
/// the services document. A null is always allowed here (required params are checked apart).
public indirect enum ValueRule: Sendable {
    /// A string of at most `max` characters, without control characters when `line`.
    case string(max: Int, line: Bool)
    case bool
    case int(ClosedRange<Int>)
    /// One of these whole numbers.
    case intIn([Int])
    /// A number (ints included) in a range.
    case number(ClosedRange<Double>)
    /// One of these strings.
    case oneOf([String])
    /// An IPv4 or IPv6 address.
    case ipAddress
    /// An IPv4 or IPv6 network in CIDR notation.
    case cidr
    /// An Ethernet MAC address, six colon-separated hex pairs.
    case macAddress
    case list(ValueRule, max: Int)
    /// A mapping whose listed keys follow their rules (`required` must be present).
    case object([String: ValueRule], required: [String])
    /// Anything (the service checks it).
    case any

    /// A name: Neutron, Nova, Cinder, Glance and Keystone all take at most 255 characters. Any
    /// character a cloud holds is kept (output escapes them).
    public static let name = ValueRule.string(max: 255, line: false)
    public static let description = ValueRule.string(max: 255, line: false)
    public static let tags = ValueRule.list(.string(max: 60, line: true), max: 50)
    /// Neutron's host routes and router routes.
    public static let routes = ValueRule.list(.object(["destination": .cidr, "nexthop": .ipAddress], required: ["destination", "nexthop"]),
                                              max: 1000)

    /// The rules every kind's params follow by their name: a name, a description, tags, and
    /// `is_*` flags that are booleans.
    public static func byName(_ key: String, named: Bool) -> ValueRule? {
        switch key {
        case "name": return named ? .name : nil
        case "description": return .description
        case "tags": return .tags
        default: return key.hasPrefix("is_") ? .bool : nil
        }
    }

    /// What is wrong with `v`, said after the field's name ("is not a boolean"), or nil.
    public func problem(_ v: JSONValue) -> String? {
        if v.isNull { return nil }
        switch self {
        case .any: return nil
        case .string(let max, let line):
            guard let s = v.stringValue else { return "is not a string (\(Self.shape(v)))" }
            if s.count > max { return "has \(s.count) characters (at most \(max))" }
            if line, s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "holds control characters" }
            return nil
        case .bool:
            guard case .bool = v else { return "is not a boolean (true or false): \(Self.show(v))" }
            return nil
        case .int(let range):
            guard case .int(let i) = v else { return "is not a whole number: \(Self.show(v))" }
            return range.contains(i) ? nil : "is \(i), out of range (\(range.lowerBound) to \(range.upperBound))"
        case .intIn(let values):
            guard case .int(let i) = v, values.contains(i) else {
                return "is \(Self.show(v)), not one of \(values.map(String.init).joined(separator: ", "))"
            }
            return nil
        case .number(let range):
            guard let d = v.doubleValue, d.isFinite else { return "is not a number: \(Self.show(v))" }
            return range.contains(d) ? nil : "is \(Self.show(v)), out of range (\(Self.num(range.lowerBound)) to \(Self.num(range.upperBound)))"
        case .oneOf(let values):
            guard let s = v.stringValue, values.contains(s) else {
                return "is \(Self.show(v)), not one of \(values.joined(separator: ", "))"
            }
            return nil
        case .ipAddress:
            guard let s = v.stringValue, IPAddress(s) != nil else { return "is not an IP address: \(Self.show(v))" }
            return nil
        case .cidr:
            guard let s = v.stringValue, CIDR(s) != nil else { return "is not a network in CIDR notation (like 10.0.0.0/24): \(Self.show(v))" }
            return nil
        case .macAddress:
            guard let s = v.stringValue, s.utf8.count == 17,
                  s.split(separator: ":", omittingEmptySubsequences: false).allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil })
            else { return "is not a MAC address (like fa:16:3e:00:00:01): \(Self.show(v))" }
            return nil
        case .list(let rule, let max):
            guard let a = v.arrayValue else { return "is not a list (\(Self.shape(v)))" }
            if a.count > max { return "has \(a.count) entries (at most \(max))" }
            for (i, e) in a.enumerated() {
                if e.isNull { return "[\(i)] is null" }
                if let p = rule.problem(e) { return "[\(i)] \(p)" }
            }
            return nil
        case .object(let rules, let required):
            guard let o = v.objectValue else { return "is not a mapping (\(Self.shape(v)))" }
            for k in required where o[k] == nil || o[k]!.isNull { return "has no \(k)" }
            for (k, rule) in rules.sorted(by: { $0.key < $1.key }) {
                if let e = o[k], let p = rule.problem(e) { return ".\(k) \(p)" }
            }
            return nil
        }
    }

    static func shape(_ v: JSONValue) -> String {
        switch v {
        case .object: return "a mapping"
        case .array: return "a list"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .null: return "null"
        }
    }

    /// The value, short enough for one line.
    static func show(_ v: JSONValue) -> String {
        let s = v.jsonString()
        return s.count > 40 ? String(s.prefix(40)) + "…" : s
    }

    static func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
}

/// An IPv4 or IPv6 address, parsed by the C library.
public struct IPAddress: Sendable, Equatable {
    public let bytes: [UInt8]
    public var isV4: Bool { bytes.count == 4 }

    public init?(_ s: String) {
        guard !s.isEmpty, s.count <= 45, !s.contains("/") else { return nil }
        var b4 = in_addr(), b6 = in6_addr()
        if inet_pton(AF_INET, s, &b4) == 1 {
            bytes = withUnsafeBytes(of: &b4) { Array($0) }
        } else if inet_pton(AF_INET6, s, &b6) == 1 {
            bytes = withUnsafeBytes(of: &b6) { Array($0) }
        } else {
            return nil
        }
    }
}

/// A network in CIDR notation (`10.0.0.0/24`, `fd00::/64`).
public struct CIDR: Sendable, Equatable {
    public let address: IPAddress
    public let prefix: Int

    public init?(_ s: String) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPAddress(String(parts[0])), let p = Int(parts[1]), parts[1].allSatisfy(\.isNumber),
              p >= 0, p <= a.bytes.count * 8
        else { return nil }
        address = a
        prefix = p
    }

    /// Is `ip` inside this network (same family, same leading `prefix` bits)?
    public func contains(_ ip: IPAddress) -> Bool {
        guard ip.bytes.count == address.bytes.count else { return false }
        var bits = prefix
        for i in 0..<ip.bytes.count where bits > 0 {
            let n = min(8, bits)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - n))
            if ip.bytes[i] & mask != address.bytes[i] & mask { return false }
            bits -= n
        }
        return true
    }
}
