import Foundation
import OpenStack
import Resources

/// The reference tool's name filters: per vars key (`os_migrate_networks_filter`) a list of exact
/// names and `{regex: ...}` entries; a name passes if any entry matches (regex: unanchored search).
public struct NameFilters: Sendable {
    public enum Entry: Sendable, CustomStringConvertible {
        case exact(String)
        case regex(String)

        public var description: String {
            switch self {
            case .exact(let s): return s
            case .regex(let r): return "/\(r)/"
            }
        }
    }

    public private(set) var byVariable: [String: [Entry]] = [:]

    public init() {}

    /// `--filter KIND=NAME` or `--filter KIND=/REGEX/`, then the vars file's keys.
    public init(cli: [String], vars: MigrationVars?) throws {
        if let vars {
            for (key, value) in vars.values where key.hasSuffix("_filter") && key.hasPrefix("os_migrate_") {
                guard let list = value.arrayValue else {
                    throw ConfigError("vars file \(vars.path): \(key) is not a list")
                }
                byVariable[key] = try list.enumerated().map { i, v in
                    if let s = v.stringValue { return .exact(s) }
                    if let r = v["regex"]?.stringValue {
                        try Self.checkRegex(r, where: "vars file \(vars.path): \(key)[\(i)]")
                        return .regex(r)
                    }
                    throw ConfigError("vars file \(vars.path): \(key)[\(i)] is neither a name nor {regex: ...}")
                }
            }
        }
        var fromCLI: [String: [Entry]] = [:]
        for f in cli {
            guard let eq = f.firstIndex(of: "=") else { throw ConfigError("--filter \(f): expected KIND=NAME or KIND=/REGEX/") }
            let kindName = String(f[..<eq])
            let pattern = String(f[f.index(after: eq)...])
            guard let kind = ResourceRegistry.kind(named: kindName) else {
                throw ConfigError("--filter \(f): unknown kind '\(kindName)'")
            }
            if pattern.count >= 2, pattern.hasPrefix("/"), pattern.hasSuffix("/") {
                let r = String(pattern.dropFirst().dropLast())
                try Self.checkRegex(r, where: "--filter \(f)")
                for v in Set([kind.filterVariable, kind.exportFilterVariable]) { fromCLI[v, default: []].append(.regex(r)) }
            } else {
                for v in Set([kind.filterVariable, kind.exportFilterVariable]) { fromCLI[v, default: []].append(.exact(pattern)) }
            }
        }
        for (k, v) in fromCLI { byVariable[k] = v }
    }

    static func checkRegex(_ r: String, where: String) throws {
        do { _ = try NSRegularExpression(pattern: r) } catch {
            throw ConfigError("\(`where`): '\(r)' is not a valid regular expression")
        }
    }

    public func entries(for kind: any ResourceKind.Type) -> [Entry]? { byVariable[kind.filterVariable] }

    /// Does a record of `kind` pass? No filter means everything passes. At export, the kind's
    /// export filter applies (the reference tool filters detached volumes on another key there).
    public func admits(_ record: ResourceRecord, kind: any ResourceKind.Type, export: Bool = false) -> Bool {
        guard let entries = export ? byVariable[kind.exportFilterVariable] : entries(for: kind) else { return true }
        let value = record.value(at: kind.filterPath)?.stringValue ?? ""
        return Self.matches(value, entries)
    }

    public static func matches(_ value: String, _ entries: [Entry]) -> Bool {
        entries.contains { e in
            switch e {
            case .exact(let s): return s == value
            case .regex(let r):
                guard let re = try? NSRegularExpression(pattern: r) else { return false }
                return re.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) != nil
            }
        }
    }
}
