import Foundation
import OpenStack
import Resources

/// Renames applied at import, without touching the data files: a resource of a mapped kind gets
/// its destination name, and so does every reference to it (a user's `default_project_ref`, a
/// role assignment's refs, a keypair's `user_ref`, a flavor's access list, the `project_name` and
/// `domain_name` of any reference). Names that are not mapped stay as they are, so references to
/// what already exists in the destination (the `public` network, the `member` role) still resolve.
///
/// `--map-name KIND:SRC=DST` maps one name; `--rename-prefix PREFIX` prefixes every project, user
/// and flavor the data directory's files hold (the cloud-wide names that collide when source and
/// destination are one cloud); `--rename-prefix KIND=PREFIX` does it for another kind. Volume
/// types and availability zones (`--map-name volume-type:SRC=DST`, `availability-zone:...`) map
/// the `volume_type` and `availability_zone` params of what is created (a kind's `nameParams`).
public struct NameMapping: Sendable, Equatable {
    public private(set) var names: [RefType: [String: String]] = [:]
    /// Names mapped explicitly (`--map-name`): a prefix does not override them.
    private var explicit: Set<String> = []

    public init() {}

    public var isEmpty: Bool { names.values.allSatisfy(\.isEmpty) }

    /// `--map-name volume-type:SRC=DST` (and `--map-volume-type`).
    public var volumeTypes: [String: String] { renames(.volumeType) }
    /// `--map-name availability-zone:SRC=DST` (and `--map-az`).
    public var availabilityZones: [String: String] { renames(.availabilityZone) }

    /// The kinds `--rename-prefix PREFIX` applies to.
    public static let defaultPrefixKinds = ["projects", "users", "flavors"]

    /// The type a `--map-name` word names: a kind's (`networks`), or a type the kinds refer to,
    /// singular or plural, with dashes for spaces (`domain`, `volume-types`, `az`).
    static func target(_ word: String) -> RefType? {
        let w = word.lowercased().replacingOccurrences(of: "_", with: "-")
        if let k = ResourceRegistry.kind(named: w), let t = k.refType { return t }
        let singular = w.hasSuffix("s") ? String(w.dropLast()) : w
        return known.first { t in
            t.rawValue.replacingOccurrences(of: " ", with: "-") == singular || t.aliases.contains(w) || t.aliases.contains(singular)
        }
    }

    /// Every type a name can be mapped for: the kinds' and those they refer to.
    static var known: [RefType] {
        var out = RefType.referenced
        for kind in ResourceRegistry.kinds { if let t = kind.refType, !out.contains(t) { out.append(t) } }
        return out
    }

    static var renamable: [String] { ResourceRegistry.kinds.filter { $0.refType != nil }.map { $0.name } }

    static var mappable: String {
        (renamable + ["domains", "roles", "volume-types", "availability-zones"].filter { !renamable.contains($0) })
            .joined(separator: ", ")
    }

    /// `KIND:SRC=DST`.
    public mutating func add(spec: String) throws {
        guard let colon = spec.firstIndex(of: ":"), let eq = spec[colon...].firstIndex(of: "=") else {
            throw ConfigError("--map-name \(spec): expected KIND:SOURCE_NAME=DESTINATION_NAME")
        }
        let word = String(spec[..<colon])
        let from = String(spec[spec.index(after: colon)..<eq])
        let to = String(spec[spec.index(after: eq)...])
        guard let t = Self.target(word) else {
            throw ConfigError("--map-name \(spec): cannot map names of '\(word)' (mappable: \(Self.mappable))")
        }
        guard !from.isEmpty, !to.isEmpty else { throw ConfigError("--map-name \(spec): empty name") }
        guard to.count <= 255 else { throw ConfigError("--map-name \(word):\(from)=…: the new name has \(to.count) characters (at most 255)") }
        guard !to.unicodeScalars.contains(where: { TerminalText.needsEscape($0.value) }) else {
            throw ConfigError("--map-name \(TerminalText.escaped(spec)): the new name holds control characters")
        }
        if let earlier = names[t]?[from], earlier != to {
            throw ConfigError("--map-name \(spec): '\(from)' is already mapped to '\(earlier)'")
        }
        names[t, default: [:]][from] = to
        explicit.insert("\(t.rawValue)\u{0}\(from)")
    }

    /// Map `from` to `to` for a reference type, unless `--map-name` already said otherwise.
    public mutating func add(_ type: RefType, from: String, to: String) {
        guard !explicit.contains("\(type.rawValue)\u{0}\(from)") else { return }
        names[type, default: [:]][from] = to
    }

    /// `PREFIX` (projects, users, flavors) or `KIND=PREFIX`: every name in the kinds' data files
    /// gets the prefix.
    public mutating func add(prefixSpec spec: String, dataDir: String) throws {
        var kinds = Self.defaultPrefixKinds
        var prefix = spec
        if let eq = spec.firstIndex(of: "=") {
            kinds = [String(spec[..<eq])]
            prefix = String(spec[spec.index(after: eq)...])
        }
        guard !prefix.isEmpty else { throw ConfigError("--rename-prefix \(spec): empty prefix") }
        for word in kinds {
            guard let kind = ResourceRegistry.kind(named: word), let t = kind.refType else {
                throw ConfigError("--rename-prefix \(spec): cannot rename '\(word)' (renamable: \(Self.renamable.joined(separator: ", ")))")
            }
            let path = (dataDir as NSString).appendingPathComponent(kind.fileName)
            guard FileManager.default.fileExists(atPath: path) else { continue }
            for r in try ResourceFile.load(path).records {
                if let n = r.name, !n.isEmpty { add(t, from: n, to: prefix + n) }
            }
        }
    }

    public func name(_ type: RefType, _ name: String) -> String {
        if name == Reference.auth { return name }
        return names[type]?[name] ?? name
    }

    /// Source name to destination name, for one reference type.
    public func renames(_ type: RefType) -> [String: String] { names[type] ?? [:] }

    /// The record as it is to be imported.
    public func apply(_ record: ResourceRecord, kind: any ResourceKind.Type) -> ResourceRecord {
        guard !isEmpty else { return record }
        var out = record
        if let t = kind.refType, let n = record.name {
            let m = name(t, n)
            if m != n { out.params["name"] = .string(m) }
        }
        for ref in kind.references(record) {
            guard ref.field.hasPrefix("params.") else { continue }
            let path = Self.path(String(ref.field.dropFirst("params.".count)))
            guard var object = Self.get(.object(out.params), path)?.objectValue else { continue }
            object["name"] = .string(name(ref.type, ref.ref.name))
            if let p = ref.ref.projectName { object["project_name"] = .string(name(.project, p)) }
            if let d = ref.ref.domainName { object["domain_name"] = .string(name(.domain, d)) }
            if let v = Self.set(.object(out.params), path, .object(object))?.objectValue { out.params = v }
        }
        for (param, t) in kind.nameParams {
            if let n = record.params[param]?.stringValue, let m = names[t]?[n] { out.params[param] = .string(m) }
        }
        return out
    }

    // MARK: paths like "fixed_ips_refs[0].subnet_ref"

    enum Step: Equatable {
        case key(String)
        case index(Int)
    }

    static func path(_ s: String) -> [Step] {
        var steps: [Step] = []
        for part in s.split(separator: ".") {
            var p = Substring(part)
            if let b = p.firstIndex(of: "[") {
                if b > p.startIndex { steps.append(.key(String(p[..<b]))) }
                p = p[b...]
                while p.hasPrefix("["), let e = p.firstIndex(of: "]") {
                    if let i = Int(p[p.index(after: p.startIndex)..<e]) { steps.append(.index(i)) }
                    p = p[p.index(after: e)...]
                }
            } else {
                steps.append(.key(String(p)))
            }
        }
        return steps
    }

    static func get(_ v: JSONValue, _ path: [Step]) -> JSONValue? {
        guard let first = path.first else { return v }
        switch first {
        case .key(let k): return v[k].flatMap { get($0, Array(path.dropFirst())) }
        case .index(let i):
            guard let a = v.arrayValue, a.indices.contains(i) else { return nil }
            return get(a[i], Array(path.dropFirst()))
        }
    }

    static func set(_ v: JSONValue, _ path: [Step], _ value: JSONValue) -> JSONValue? {
        guard let first = path.first else { return value }
        switch first {
        case .key(let k):
            guard var o = v.objectValue, let inner = o[k], let new = set(inner, Array(path.dropFirst()), value) else { return nil }
            o[k] = new
            return .object(o)
        case .index(let i):
            guard var a = v.arrayValue, a.indices.contains(i), let new = set(a[i], Array(path.dropFirst()), value) else { return nil }
            a[i] = new
            return .array(a)
        }
    }
}
