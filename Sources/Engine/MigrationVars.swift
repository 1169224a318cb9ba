import Foundation
import OpenStack

/// The Ansible os-migrate vars file (`os-migrate-vars.yml`), read as it is.
///
/// Values may use the two Jinja forms such files use in practice: `{{ other_var }}` and
/// `{{ lookup('env', 'NAME') }}`. Anything else is refused with the key that uses it.
public struct MigrationVars: Sendable {
    public let path: String
    public let values: JSONObject

    public init(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError("vars file \(path): file not found")
        }
        let text: String
        do { text = try YAMLValue.readFile(path) } catch {
            throw ConfigError("vars file \(path): \(error)")
        }
        let doc: JSONValue?
        do { doc = try YAMLValue.parse(text) } catch {
            throw ConfigError("vars file \(path): \(error)")
        }
        guard let top = doc?.objectValue else { throw ConfigError("vars file \(path): file is empty or not a mapping") }
        self.values = try Self.render(top, path: path, environment: environment)
    }

    init(path: String, values: JSONObject) {
        self.path = path
        self.values = values
    }

    public subscript(key: String) -> JSONValue? { values[key] }

    public func string(_ key: String) -> String? {
        guard let v = values[key] else { return nil }
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        default: return nil
        }
    }

    public func bool(_ key: String) -> Bool? {
        guard let v = values[key] else { return nil }
        switch v {
        case .bool(let b): return b
        case .string(let s): return ["true", "yes", "1", "on"].contains(s.lowercased())
        case .int(let i): return i != 0
        default: return nil
        }
    }

    public var dataDir: String? { string("os_migrate_data_dir") }

    public enum Side: String, Sendable { case src, dst }

    /// The keystoneauth settings for one side, or nil when the file has no `os_migrate_<side>_auth`.
    public func cloudProfile(_ side: Side) throws -> CloudProfile? {
        let prefix = "os_migrate_\(side.rawValue)_"
        guard let authValue = values[prefix + "auth"] else { return nil }
        let origin = "vars file \(path)"
        guard let authObj = authValue.objectValue else {
            throw ConfigError("\(origin): \(prefix)auth is not a mapping")
        }
        var auth: [String: String] = [:]
        for (k, v) in authObj {
            switch v {
            case .string(let s): auth[k] = s
            case .int(let i): auth[k] = String(i)
            case .bool(let b): auth[k] = b ? "true" : "false"
            case .null: continue
            default: throw ConfigError("\(origin): \(prefix)auth.\(k) is not a scalar")
            }
        }
        let method = try CloudProfile.authMethod(fromVars: string(prefix + "auth_type"), origin: origin, key: prefix + "auth_type")
        var apiVersions: [String: String] = [:]
        if let v = string(prefix + "block_storage_api_version"), v.contains(".") { apiVersions["block-storage"] = v }
        let profile = CloudProfile(
            name: side.rawValue, origin: origin, authMethod: method, auth: auth,
            regionName: string(prefix + "region_name"), interface: string(prefix + "interface") ?? "public",
            verifyTLS: bool(prefix + "validate_certs") ?? true, caCertFile: string(prefix + "ca_cert"),
            clientCertFile: string(prefix + "client_cert"), clientKeyFile: string(prefix + "client_key"),
            apiVersions: apiVersions)
        do {
            try profile.validate()
        } catch let e as ConfigError {
            // Say it in the file's own words: os_migrate_src_auth.password, not auth.password
            // (every mention: "auth.username (or auth.user_id)").
            let head = "\(origin): cloud '\(side.rawValue)': "
            guard e.description.hasPrefix(head) else { throw e }
            let rest = String(e.description.dropFirst(head.count))
                .replacingOccurrences(of: "(?<![A-Za-z0-9_])auth\\.", with: "\(prefix)auth.", options: .regularExpression)
            throw ConfigError("\(origin): " + rest)
        }
        return profile
    }

    // MARK: templating

    static func render(_ top: JSONObject, path: String, environment: [String: String]) throws -> JSONObject {
        var out: JSONObject = [:]
        var resolving: Set<String> = []
        func resolve(_ key: String) throws -> JSONValue {
            if let done = out[key] { return done }
            guard let raw = top[key] else {
                throw ConfigError("vars file \(path): undefined variable '\(key)'")
            }
            guard !resolving.contains(key) else { throw ConfigError("vars file \(path): variable '\(key)' refers to itself") }
            resolving.insert(key)
            defer { resolving.remove(key) }
            let v = try renderValue(raw, keyPath: key)
            out[key] = v
            return v
        }
        func renderValue(_ v: JSONValue, keyPath: String) throws -> JSONValue {
            switch v {
            case .string(let s) where s.contains("{{"):
                return try renderString(s, keyPath: keyPath)
            case .object(let o):
                var r: JSONObject = [:]
                for (k, x) in o { r[k] = try renderValue(x, keyPath: keyPath + "." + k) }
                return .object(r)
            case .array(let a):
                return .array(try a.enumerated().map { try renderValue($0.element, keyPath: "\(keyPath)[\($0.offset)]") })
            default:
                return v
            }
        }
        func renderString(_ s: String, keyPath: String) throws -> JSONValue {
            let regex = try NSRegularExpression(pattern: "\\{\\{\\s*(.*?)\\s*\\}\\}")
            let ns = s as NSString
            let matches = regex.matches(in: s, range: NSRange(location: 0, length: ns.length))
            var result = ""
            var last = 0
            for m in matches {
                result += ns.substring(with: NSRange(location: last, length: m.range.location - last))
                let expr = ns.substring(with: m.range(at: 1))
                let value = try evaluate(expr, keyPath: keyPath)
                // A whole-string expression keeps the referenced value's type (lists, dicts, numbers).
                if matches.count == 1 && m.range.location == 0 && m.range.length == ns.length { return value }
                guard let text = value.stringValue ?? value.intValue.map(String.init) ?? value.boolValue.map({ $0 ? "True" : "False" }) else {
                    throw ConfigError("vars file \(path): \(keyPath): '{{ \(expr) }}' is not a scalar")
                }
                result += text
                last = m.range.location + m.range.length
            }
            result += ns.substring(from: last)
            return .string(result)
        }
        func evaluate(_ expr: String, keyPath: String) throws -> JSONValue {
            let lookup = try NSRegularExpression(pattern: "^lookup\\(\\s*['\"]env['\"]\\s*,\\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\\s*\\)$")
            let ns = expr as NSString
            if let m = lookup.firstMatch(in: expr, range: NSRange(location: 0, length: ns.length)) {
                let name = ns.substring(with: m.range(at: 1))
                return .string(environment[name] ?? "")
            }
            if expr.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil {
                return try resolve(expr)
            }
            throw ConfigError("vars file \(path): \(keyPath): cannot evaluate '{{ \(expr) }}' (only {{ variable }} and {{ lookup('env', 'NAME') }} are supported)")
        }
        for key in top.keys.sorted() { _ = try resolve(key) }
        return out
    }
}

extension CloudProfile {
    static func authMethod(fromVars raw: String?, origin: String, key: String) throws -> AuthMethod {
        switch (raw ?? "password").lowercased() {
        case "password", "v3password": return .password
        case "v3applicationcredential", "applicationcredential", "application_credential": return .applicationCredential
        case "token", "v3token": return .token
        case let other:
            throw ConfigError("\(origin): \(key) '\(other)' is not supported (use password, v3applicationcredential or token)")
        }
    }
}
