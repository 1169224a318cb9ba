import Foundation

/// One cloud's connection settings, wherever they came from (clouds.yaml, OS_* variables,
/// the reference tool's vars file).
public struct CloudProfile: Sendable, Equatable {
    public enum AuthMethod: String, Sendable, Equatable {
        case password
        case applicationCredential = "v3applicationcredential"
        case token
    }

    /// The cloud's name as the user chose it (`osmlab-src`, `envvars`, `src`).
    public var name: String
    /// Where the settings came from, for error messages ("clouds.yaml /etc/openstack/clouds.yaml").
    public var origin: String
    public var authMethod: AuthMethod
    /// The keystoneauth `auth` dict: auth_url, username, password, project_name, ...
    public var auth: [String: String]
    public var regionName: String?
    /// public (default), internal or admin.
    public var interface: String
    public var verifyTLS: Bool
    public var caCertFile: String?
    public var clientCertFile: String?
    public var clientKeyFile: String?
    /// Service type -> URL, e.g. ["compute": "https://nova.example/v2.1"].
    public var endpointOverrides: [String: String]
    /// Service type -> requested API (micro)version, e.g. ["compute": "2.79", "block-storage": "3.59"].
    public var apiVersions: [String: String]
    /// clouds.yaml `api_timeout`: seconds to wait for each answer (token requests included);
    /// nil = the session's default.
    public var apiTimeout: Double?
    /// clouds.yaml `connect_retries` (as openstacksdk reads it): how many more times a connection
    /// that is refused or never made is tried; nil = the defaults (once more for the first token
    /// of a run, so a wrong auth_url fails in a second; five more, backing off over about 15 s,
    /// once the cloud has answered, to ride out a restarting service).
    public var connectRetries: Int?

    public init(name: String, origin: String, authMethod: AuthMethod = .password, auth: [String: String],
                regionName: String? = nil, interface: String = "public", verifyTLS: Bool = true,
                caCertFile: String? = nil, clientCertFile: String? = nil, clientKeyFile: String? = nil,
                endpointOverrides: [String: String] = [:], apiVersions: [String: String] = [:])
    {
        self.name = name
        self.origin = origin
        self.authMethod = authMethod
        self.auth = auth
        self.regionName = regionName
        self.interface = interface
        self.verifyTLS = verifyTLS
        self.caCertFile = caCertFile
        self.clientCertFile = clientCertFile
        self.clientKeyFile = clientKeyFile
        self.endpointOverrides = endpointOverrides
        self.apiVersions = apiVersions
    }

    public var authURL: String { auth["auth_url"] ?? "" }

    /// Check that the settings can be used to authenticate; the error names the missing key and where.
    public func validate() throws {
        func need(_ key: String) throws {
            guard let v = auth[key], !v.isEmpty else {
                throw ConfigError("\(origin): cloud '\(name)': auth.\(key) is missing")
            }
        }
        try need("auth_url")
        guard URL(string: authURL)?.scheme != nil else {
            throw ConfigError("\(origin): cloud '\(name)': auth.auth_url '\(authURL)' is not a URL")
        }
        switch authMethod {
        case .password:
            if (auth["username"] ?? "").isEmpty && (auth["user_id"] ?? "").isEmpty {
                throw ConfigError("\(origin): cloud '\(name)': auth.username (or auth.user_id) is missing")
            }
            try need("password")
            if (auth["project_name"] ?? "").isEmpty && (auth["project_id"] ?? "").isEmpty {
                throw ConfigError("\(origin): cloud '\(name)': auth.project_name (or auth.project_id) is missing")
            }
        case .applicationCredential:
            if (auth["application_credential_id"] ?? "").isEmpty {
                try need("application_credential_name")
                if (auth["username"] ?? "").isEmpty && (auth["user_id"] ?? "").isEmpty {
                    throw ConfigError(
                        "\(origin): cloud '\(name)': auth.username (or auth.user_id) is missing (needed with application_credential_name)")
                }
            }
            try need("application_credential_secret")
        case .token:
            try need("token")
        }
        for (key, value) in [("cacert", caCertFile), ("cert", clientCertFile), ("key", clientKeyFile)] {
            if let path = value, !FileManager.default.isReadableFile(atPath: path) {
                throw ConfigError("\(origin): cloud '\(name)': \(key) file '\(path)' is not readable")
            }
        }
        if !["public", "internal", "admin"].contains(interface) {
            throw ConfigError("\(origin): cloud '\(name)': interface '\(interface)' is not one of public, internal, admin")
        }
    }

    static func authMethod(from raw: String?, origin: String, cloud: String) throws -> AuthMethod {
        switch (raw ?? "password").lowercased() {
        case "password", "v3password": return .password
        case "v3applicationcredential", "applicationcredential", "application_credential": return .applicationCredential
        case "token", "v3token": return .token
        case let other:
            throw ConfigError("\(origin): cloud '\(cloud)': auth_type '\(other)' is not supported (use password, v3applicationcredential or token)")
        }
    }
}

/// Reads clouds.yaml (+ secure.yaml) and OS_* variables the way the `openstack` CLI does.
public struct CloudConfigLoader: Sendable {
    public var environment: [String: String]
    public var currentDirectory: String
    public var homeDirectory: String

    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                currentDirectory: String = FileManager.default.currentDirectoryPath,
                homeDirectory: String = NSHomeDirectory())
    {
        self.environment = environment
        self.currentDirectory = currentDirectory
        self.homeDirectory = homeDirectory
    }

    /// The name openstacksdk gives the cloud made of OS_* variables.
    public static let environmentCloudName = "envvars"

    /// clouds.yaml search order: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack, /etc/openstack.
    public var cloudsFileCandidates: [String] { candidates("clouds.yaml", override: "OS_CLIENT_CONFIG_FILE") }

    /// secure.yaml search order: OS_CLIENT_SECURE_FILE, then the same places.
    public var secureFileCandidates: [String] { candidates("secure.yaml", override: "OS_CLIENT_SECURE_FILE") }

    /// `$override` when set, then `file` in the current directory, ~/.config/openstack, /etc/openstack.
    private func candidates(_ file: String, override: String) -> [String] {
        var c: [String] = []
        if let f = environment[override], !f.isEmpty { c.append(f) }
        return c + [currentDirectory + "/" + file, homeDirectory + "/.config/openstack/" + file, "/etc/openstack/" + file]
    }

    /// The cloud to use when none was named: OS_CLOUD, else the OS_* variables, else nil.
    public func defaultCloudName() -> String? {
        if let c = environment["OS_CLOUD"], !c.isEmpty { return c }
        if let u = environment["OS_AUTH_URL"], !u.isEmpty { return Self.environmentCloudName }
        return nil
    }

    /// Load a named cloud. `envvars` means the OS_* variables.
    public func load(cloud name: String) throws -> CloudProfile {
        if name == Self.environmentCloudName, let p = try environmentProfile() { return p }
        guard let path = cloudsFileCandidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ConfigError("cloud '\(name)': no clouds.yaml found (looked in \(cloudsFileCandidates.joined(separator: ", ")))")
        }
        let clouds = try readClouds(path)
        guard var entry = clouds[name]?.objectValue else {
            let known = clouds.keys.sorted().joined(separator: ", ")
            throw ConfigError("clouds.yaml \(path): cloud '\(name)' not found (known: \(known.isEmpty ? "none" : known))")
        }
        var origin = "clouds.yaml \(path)"
        if let securePath = secureFileCandidates.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            let secure = try readClouds(securePath)
            if let s = secure[name]?.objectValue {
                entry = Self.deepMerge(entry, s)
                origin += " + \(securePath)"
            }
        }
        return applyEnvironmentOverrides(to: try Self.profile(fromCloudEntry: entry, name: name, origin: origin))
    }

    /// OS_* variable -> keystoneauth `auth` key, as the `openstack` CLI maps them.
    static let authVariables: [(String, String)] = [
        ("OS_AUTH_URL", "auth_url"), ("OS_USERNAME", "username"), ("OS_USER_ID", "user_id"),
        ("OS_PASSWORD", "password"), ("OS_PROJECT_NAME", "project_name"), ("OS_TENANT_NAME", "project_name"),
        ("OS_PROJECT_ID", "project_id"), ("OS_TENANT_ID", "project_id"),
        ("OS_USER_DOMAIN_NAME", "user_domain_name"), ("OS_USER_DOMAIN_ID", "user_domain_id"),
        ("OS_PROJECT_DOMAIN_NAME", "project_domain_name"), ("OS_PROJECT_DOMAIN_ID", "project_domain_id"),
        ("OS_DOMAIN_NAME", "domain_name"), ("OS_DOMAIN_ID", "domain_id"),
        ("OS_APPLICATION_CREDENTIAL_ID", "application_credential_id"),
        ("OS_APPLICATION_CREDENTIAL_NAME", "application_credential_name"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "application_credential_secret"),
        ("OS_TOKEN", "token"),
    ]

    /// The OS_* variables over a named cloud fill in what its entry leaves out: `OS_PASSWORD`
    /// completes a Horizon clouds.yaml that has none, as `openstack --os-cloud NAME` does. Unlike
    /// that single-cloud CLI they never replace a value the entry sets: this tool talks to two
    /// clouds at once, and an openrc sourced for one of them must not turn the other's import
    /// towards it. `OS_INSECURE` and `OS_AUTH_TYPE` do not apply over a named cloud (TLS stays
    /// verified unless the entry says otherwise). The origin names the variables used, never
    /// their values, so an error says where a value came from.
    public func applyEnvironmentOverrides(to profile: CloudProfile) -> CloudProfile {
        var p = profile
        var used: [String] = []
        func value(_ key: String) -> String? {
            guard let v = environment[key], !v.isEmpty else { return nil }
            return v
        }
        for (envKey, authKey) in Self.authVariables where (p.auth[authKey] ?? "").isEmpty {
            guard let v = value(envKey) else { continue }
            p.auth[authKey] = v
            used.append(envKey)
        }
        for (envKey, setting) in Self.settingVariables where p[keyPath: setting] == nil {
            guard let v = value(envKey) else { continue }
            p[keyPath: setting] = v
            used.append(envKey)
        }
        for (envKey, service) in Self.apiVersionVariables where p.apiVersions[service] == nil
        {
            guard let v = value(envKey) else { continue }
            p.apiVersions[service] = v
            used.append(envKey)
        }
        if !used.isEmpty { p.origin += " + " + used.joined(separator: ", ") }
        return p
    }

    /// OS_* variable -> optional profile setting.
    static let settingVariables: [(String, any WritableKeyPath<CloudProfile, String?> & Sendable)] = [
        ("OS_REGION_NAME", \.regionName), ("OS_CACERT", \.caCertFile), ("OS_CERT", \.clientCertFile), ("OS_KEY", \.clientKeyFile),
    ]
    /// OS_* variable -> service whose microversion it pins.
    static let apiVersionVariables = [("OS_COMPUTE_API_VERSION", "compute"), ("OS_VOLUME_API_VERSION", "block-storage")]

    func readClouds(_ path: String) throws -> JSONObject {
        let text: String
        do {
            text = try YAMLValue.readFile(path)
        } catch {
            throw ConfigError("clouds.yaml \(path): \(error)")
        }
        let doc: JSONValue?
        do {
            doc = try YAMLValue.parse(text)
        } catch {
            throw ConfigError("clouds.yaml \(path): \(error)")
        }
        guard let top = doc?.objectValue else { throw ConfigError("clouds.yaml \(path): file is empty or not a mapping") }
        guard let clouds = top["clouds"]?.objectValue else { throw ConfigError("clouds.yaml \(path): key 'clouds' is missing") }
        return clouds
    }

    static func deepMerge(_ a: JSONObject, _ b: JSONObject) -> JSONObject {
        var out = a
        for (k, v) in b {
            if case .object(let bo) = v, case .object(let ao)? = out[k] {
                out[k] = .object(deepMerge(ao, bo))
            } else {
                out[k] = v
            }
        }
        return out
    }

    static func scalarString(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return b ? "true" : "false"
        default: return nil
        }
    }

    /// Build a profile from one entry of `clouds:` (or an equivalent dict).
    public static func profile(fromCloudEntry entry: JSONObject, name: String, origin: String) throws -> CloudProfile {
        if entry["profile"] != nil {
            throw ConfigError("\(origin): cloud '\(name)': vendor 'profile' is not supported; put auth_url and region in the entry")
        }
        var auth: [String: String] = [:]
        if let a = entry["auth"] {
            guard let ao = a.objectValue else { throw ConfigError("\(origin): cloud '\(name)': 'auth' is not a mapping") }
            for (k, v) in ao { if let s = scalarString(v) { auth[k] = s } }
        }
        let method = try CloudProfile.authMethod(from: entry["auth_type"].flatMap(scalarString), origin: origin, cloud: name)
        var verify = true
        if let v = entry["verify"] {
            if case .bool(let b) = v { verify = b } else if let s = scalarString(v) { verify = !["false", "no", "0"].contains(s.lowercased()) }
        }
        if let v = entry["insecure"], case .bool(let b) = v { verify = !b }
        var cacert = entry["cacert"].flatMap(scalarString)
        if let v = entry["verify"], case .string(let path) = v, path.hasPrefix("/") { cacert = path }
        var overrides: [String: String] = [:]
        var versions: [String: String] = [:]
        for (k, v) in entry {
            guard let s = scalarString(v) else { continue }
            if k.hasSuffix("_endpoint_override") {
                overrides[ServiceType.canonical(String(k.dropLast("_endpoint_override".count)))] = s
            } else if k.hasSuffix("_api_version"), k != "identity_api_version" {
                versions[ServiceType.canonical(String(k.dropLast("_api_version".count)))] = s
            }
        }
        var apiTimeout: Double?
        if let t = entry["api_timeout"], !t.isNull {
            guard let v = t.doubleValue ?? t.stringValue.flatMap(Double.init), v.isFinite, v > 0, v <= 86400 else {
                throw ConfigError("\(origin): cloud '\(name)': api_timeout \(t.jsonString()) is not a number of seconds (more than 0)")
            }
            apiTimeout = v
        }
        var connectRetries: Int?
        if let r = entry["connect_retries"], !r.isNull {
            guard let v = r.intValue ?? r.stringValue.flatMap({ Int($0) }), (0...100).contains(v) else {
                throw ConfigError("\(origin): cloud '\(name)': connect_retries \(r.jsonString()) is not a whole number from 0 to 100")
            }
            connectRetries = v
        }
        var profile = CloudProfile(
            name: name, origin: origin, authMethod: method, auth: auth,
            regionName: entry["region_name"].flatMap(scalarString),
            interface: (entry["interface"].flatMap(scalarString) ?? entry["endpoint_type"].flatMap(scalarString))
                .map { $0.replacingOccurrences(of: "URL", with: "") } ?? "public",
            verifyTLS: verify, caCertFile: cacert,
            clientCertFile: entry["cert"].flatMap(scalarString), clientKeyFile: entry["key"].flatMap(scalarString),
            endpointOverrides: overrides, apiVersions: versions)
        profile.apiTimeout = apiTimeout
        profile.connectRetries = connectRetries
        if let idv = entry["identity_api_version"].flatMap(scalarString), idv.hasPrefix("2") {
            throw ConfigError("\(origin): cloud '\(name)': identity_api_version 2 is not supported; Keystone v3 is required")
        }
        return profile
    }

    /// The OS_* variables as a profile, or nil when OS_AUTH_URL is not set.
    public func environmentProfile() throws -> CloudProfile? {
        let env = environment
        guard let url = env["OS_AUTH_URL"], !url.isEmpty else { return nil }
        let mapping = Self.authVariables
        var auth: [String: String] = [:]
        for (envKey, authKey) in mapping where auth[authKey] == nil {
            if let v = env[envKey], !v.isEmpty { auth[authKey] = v }
        }
        let origin = "OS_* environment variables"
        let method = try CloudProfile.authMethod(from: env["OS_AUTH_TYPE"], origin: origin, cloud: Self.environmentCloudName)
        var verify = true
        if let v = env["OS_INSECURE"] { verify = !["true", "1", "yes"].contains(v.lowercased()) }
        if let idv = env["OS_IDENTITY_API_VERSION"], idv.hasPrefix("2") {
            throw ConfigError("\(origin): OS_IDENTITY_API_VERSION 2 is not supported; Keystone v3 is required")
        }
        var versions: [String: String] = [:]
        for (envKey, service) in Self.apiVersionVariables { if let v = env[envKey] { versions[service] = v } }
        return CloudProfile(
            name: Self.environmentCloudName, origin: origin, authMethod: method, auth: auth,
            regionName: env["OS_REGION_NAME"].flatMap { $0.isEmpty ? nil : $0 },
            interface: env["OS_INTERFACE"] ?? env["OS_ENDPOINT_TYPE"].map { $0.replacingOccurrences(of: "URL", with: "") } ?? "public",
            verifyTLS: verify, caCertFile: env["OS_CACERT"], clientCertFile: env["OS_CERT"], clientKeyFile: env["OS_KEY"],
            apiVersions: versions)
    }
}

/// OpenStack service types and their historical aliases (service-types-authority).
public enum ServiceType {
    public static let identity = "identity"
    public static let compute = "compute"
    public static let network = "network"
    public static let image = "image"
    public static let blockStorage = "block-storage"

    public static let all = [identity, compute, network, image, blockStorage]

    /// Catalog types that stand for a service type, best first.
    public static func catalogAliases(_ type: String) -> [String] {
        switch type {
        case blockStorage: return ["block-storage", "volumev3", "volume", "block-store"]
        case compute: return ["compute"]
        case network: return ["network"]
        case image: return ["image"]
        case identity: return ["identity"]
        default: return [type]
        }
    }

    /// `volume`, `block_storage`, `volumev3` -> `block-storage`; `networking` -> `network`.
    public static func canonical(_ raw: String) -> String {
        let t = raw.replacingOccurrences(of: "_", with: "-").lowercased()
        switch t {
        case "volume", "volumev3", "volumev2", "block-store", "block-storage": return blockStorage
        case "networking", "network": return network
        default: return t
        }
    }
}
