import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import Synchronization

/// One query parameter.
public struct QueryItem: Sendable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An OpenStack API call, relative to a service endpoint.
public struct APIRequest: Sendable {
    public var service: String
    public var method: HTTPMethod
    /// Path below the service endpoint ("/networks"), may carry a query ("/images?marker=x").
    public var path: String
    public var query: [QueryItem]
    public var body: JSONValue?
    public var headers: [String: String]
    /// Overrides the session's negotiated microversion for this call.
    public var microversion: String?
    /// nil: GET, HEAD, PUT, DELETE are idempotent; POST and PATCH are not.
    public var idempotent: Bool?
    public var timeout: Double?
    /// Statuses returned as results instead of thrown (e.g. 404 when probing).
    public var acceptedStatuses: Set<Int>

    public init(_ service: String, _ method: HTTPMethod, _ path: String, query: [QueryItem] = [], body: JSONValue? = nil,
                headers: [String: String] = [:], microversion: String? = nil, idempotent: Bool? = nil,
                timeout: Double? = nil, acceptedStatuses: Set<Int> = [])
    {
        self.service = service
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.headers = headers
        self.microversion = microversion
        self.idempotent = idempotent
        self.timeout = timeout
        self.acceptedStatuses = acceptedStatuses
    }

    var isIdempotent: Bool {
        if let idempotent { return idempotent }
        switch method {
        case .GET, .HEAD, .PUT, .DELETE, .OPTIONS: return true
        default: return false
        }
    }
}

/// Counts the requests a session sent, by method: tests assert "zero writes", benchmarks
/// report "API calls per resource".
public final class RequestCounter: Sendable {
    /// Token requests are counted apart: they read, whatever their method.
    public static let authentication = "AUTH"
    private let counts = Mutex<[String: Int]>([:])
    public init() {}
    public func record(method: String) { counts.withLock { $0[method, default: 0] += 1 } }
    public var snapshot: [String: Int] { counts.withLock { $0 } }
    public var total: Int { snapshot.values.reduce(0, +) }
    /// Requests that may change something: everything but GET, HEAD and authentication.
    public var writes: Int {
        snapshot.filter { !["GET", "HEAD", Self.authentication].contains($0.key) }.values.reduce(0, +)
    }
    public func reset() { counts.withLock { $0 = [:] } }
}

/// A service endpoint after catalog lookup and version discovery.
public struct ServiceEndpoint: Sendable, Equatable {
    public var service: String
    /// Versioned base URL without a trailing slash (".../v2.1", ".../v2.0", ".../v3/<project>").
    public var url: String
    /// Negotiated microversion for compute and block-storage.
    public var microversion: String?
    public var maxMicroversion: String?
}

/// Session settings that are not cloud configuration.
public struct SessionOptions: Sendable {
    public var retry: RetryPolicy
    /// Per-request timeout in seconds.
    public var requestTimeout: Double
    /// Page size for list calls; nil = the service's default.
    public var pageSize: Int?

    public init(retry: RetryPolicy = RetryPolicy(), requestTimeout: Double = 120, pageSize: Int? = nil) {
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.pageSize = pageSize
    }
}

/// One authenticated connection to one cloud: token, catalog, endpoints, retries, logging.
/// Create one per cloud per process and share it; it is safe to use concurrently.
public final class CloudSession: Sendable {
    public static let userAgent = "os-migrate-swift/0.1"
    public static let defaultMicroversions = ["compute": "2.79", "block-storage": "3.59"]

    public let profile: CloudProfile
    public let options: SessionOptions
    public let logger: Logger
    public let requests = RequestCounter()
    let transport: HTTPTransport
    let tls: TLSConfiguration?
    let authenticator: Authenticator
    private let endpointCache = Mutex<[String: ServiceEndpoint]>([:])

    public init(profile: CloudProfile, transport: HTTPTransport, options: SessionOptions = SessionOptions(),
                logger: Logger = Logger(label: "os-migrate.http")) throws
    {
        try profile.validate()
        self.profile = profile
        var options = options
        if let t = profile.apiTimeout { options.requestTimeout = t }
        if let r = profile.connectRetries { options.retry.connectRetries = r }
        self.options = options
        self.transport = transport
        self.logger = logger
        self.tls = try HTTPTransport.tlsConfiguration(for: profile)
        // A token request waits 60 s (or api_timeout) per try, with one retry after a timeout: a
        // Keystone that accepts and never answers fails in two minutes instead of hanging, and a
        // loaded one (every service validates tokens there) still gets its time (seen: > 30 s on
        // the two-core lab under the full test suite).
        self.authenticator = Authenticator(profile: profile, transport: transport, tls: tls, logger: logger,
                                           timeout: profile.apiTimeout ?? 60, counter: requests, retry: options.retry)
    }

    // MARK: identity of the caller

    /// Authenticate now (or reuse the token) and return it.
    @discardableResult
    public func authenticate() async throws -> AuthToken { try await authenticator.token() }

    public var currentProjectID: String {
        get async throws {
            guard let p = try await authenticate().projectID else {
                throw OpenStackError(kind: .notFound, service: "identity", message: "the token for cloud '\(profile.name)' is not project-scoped")
            }
            return p
        }
    }

    public var currentUserID: String { get async throws { try await authenticate().userID } }

    // MARK: endpoints

    /// Fails up front, with one error, when the profile names a region the catalog does not have
    /// (instead of every later call failing on its own).
    public func checkRegion() async throws {
        guard let region = profile.regionName else { return }
        let catalog = try await authenticate().catalog
        let regions = Set(catalog.flatMap(\.endpoints).compactMap { $0.region_id ?? $0.region })
        guard !regions.isEmpty, !regions.contains(region) else { return }
        throw ConfigError("cloud '\(profile.name)': region '\(region)' is not in its catalog (regions there: \(regions.sorted().joined(separator: ", ")))")
    }

    /// The endpoint for a service type, from the override or the catalog, with its version discovered.
    public func endpoint(_ service: String) async throws -> ServiceEndpoint {
        let service = ServiceType.canonical(service)
        if let e = endpointCache.withLock({ $0[service] }) { return e }
        let token = try await authenticate()
        let raw: String
        if let o = profile.endpointOverrides[service] {
            raw = o
        } else if let u = Catalog.find(service: service, in: token.catalog, interface: profile.interface, region: profile.regionName) {
            raw = u
        } else if service == ServiceType.identity {
            raw = KeystoneAuth.identityBase(from: profile.authURL)
        } else {
            let region = profile.regionName.map { " in region \($0)" } ?? ""
            throw OpenStackError(kind: .notFound, service: service,
                                 message: "no \(profile.interface) endpoint for \(service)\(region) in the catalog of cloud '\(profile.name)'")
        }
        let e = try await discover(service: service, catalogURL: raw, projectID: token.projectID)
        endpointCache.withLock { $0[service] = e }
        return e
    }

    private func discover(service: String, catalogURL: String, projectID: String?) async throws -> ServiceEndpoint {
        var url = catalogURL
        while url.hasSuffix("/") { url.removeLast() }
        let split = VersionDiscovery.split(url)
        var versions: [VersionDiscovery.Version] = []
        var failure: String?
        let needsDoc = split.version == nil || service == ServiceType.compute || service == ServiceType.blockStorage
        if needsDoc, service != ServiceType.identity {
            // Through the same retrying path as every call: a 503 or a reset while the service
            // restarts must not silently cost us the microversion.
            (versions, failure) = await fetchVersions(root: split.root, version: split.version, service: service)
        }
        if split.version == nil {
            url = VersionDiscovery.versionedURL(root: split.root, service: service, versions: versions, projectID: projectID)
            if let failure { logger.warning("\(service): version discovery failed (\(failure)); using \(url)") }
        }
        var ep = ServiceEndpoint(service: service, url: url)
        let configured = profile.apiVersions[service]
        if let wanted = configured ?? Self.defaultMicroversions[service] {
            let major = VersionDiscovery.split(url).version ?? ""
            let doc = versions.first { VersionDiscovery.sameMajor($0.id, major) && $0.version != nil && !($0.version ?? "").isEmpty }
            ep.maxMicroversion = doc?.version
            if doc == nil, let failure {
                // Without the service's range, our default could be one it rejects (an older
                // cloud): send no microversion (the service's minimum) unless the user chose one.
                ep.microversion = configured
                let what = configured.map { "sending the configured microversion \($0)" }
                    ?? "sending no microversion header (the service's minimum); set \(service.replacingOccurrences(of: "-", with: "_"))_api_version in clouds.yaml to choose one"
                logger.warning("\(service): version discovery failed (\(failure)); \(what)")
            } else {
                ep.microversion = VersionDiscovery.negotiate(wanted: wanted, max: doc?.version, min: doc?.minVersion)
            }
        }
        logger.debug("endpoint \(service): \(ep.url)\(ep.microversion.map { " microversion \($0)" } ?? "")")
        return ep
    }

    /// The service's version documents: from its root, else (a root that is not routed, as
    /// behind some proxies) from the versioned URL itself. Never throws: returns what it found
    /// and, when that is nothing, why.
    func fetchVersions(root: String, version: String?, service: String) async -> ([VersionDiscovery.Version], String?) {
        var tried: [String] = []
        var candidates = [root]
        if let version { candidates.append(root + "/" + version) }
        for base in candidates {
            do {
                // Keystone and Glance answer their root with 300 Multiple Choices.
                let r = try await perform(APIRequest(service, .GET, "/", timeout: min(30, options.requestTimeout),
                                                     acceptedStatuses: [300]), url: base + "/",
                                          endpoint: ServiceEndpoint(service: service, url: base))
                let v = VersionDiscovery.parse(r.body)
                if !v.isEmpty { return (v, nil) }
                tried.append("\(URLRedaction.redact(base + "/")): no version document")
            } catch {
                tried.append("\(error)")
            }
        }
        return ([], tried.joined(separator: "; "))
    }

    // MARK: sending

    /// Send a request; non-2xx answers (other than `acceptedStatuses`) throw `OpenStackError`.
    public func send(_ request: APIRequest) async throws -> HTTPResult {
        let ep = try await endpoint(request.service)
        return try await perform(request, url: Self.join(ep.url, request.path, request.query), endpoint: ep)
    }

    /// Send to a full URL with the retry, re-authentication and error rules of every call.
    func perform(_ request: APIRequest, url: String, endpoint ep: ServiceEndpoint) async throws -> HTTPResult {
        let bodyData = try request.body.map { try $0.jsonData() }
        var retry = RetryState(options.retry)
        var reauthenticated = false
        while true {
            let token = try await authenticator.token()
            var req = httpRequest(request, url: url, endpoint: ep, token: token)
            if let bodyData {
                req.headers.replaceOrAdd(name: "Content-Type", value: request.headers["Content-Type"] ?? "application/json")
                req.body = .bytes(ByteBuffer(data: bodyData))
            }
            let start = ContinuousClock.now
            requests.record(method: request.method.rawValue)
            let timeout = request.timeout ?? options.requestTimeout
            let result: HTTPResult
            do {
                let (resp, lease) = try await transport.execute(req, timeout: timeout)
                defer { lease.release() }
                let data = Data(buffer: try await resp.body.collect(upTo: 512 << 20))
                result = HTTPResult(status: Int(resp.status.code), headers: resp.headers, body: data)
            } catch {
                if error is CancellationError { throw error }
                let failure = TransportFailure.classify(error)
                let safe = failure == .beforeSend || failure == .queued || request.isIdempotent
                logger.debug("\(request.method.rawValue) \(URLRedaction.redact(url)) failed after \(Self.ms(since: start)) ms: \(error)")
                if let wait = retry.next(after: failure, idempotent: request.isIdempotent) {
                    logger.notice("\(ep.service) \(request.method.rawValue) \(URLRedaction.redact(url)): \(error); retrying in \(String(format: "%.1f", wait)) s")
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                let kind: OpenStackError.Kind = failure == .timeout ? .timeout : .transport
                var msg = failure == .tls ? TransportFailure.tlsMessage(error) : "\(error)"
                if !safe { msg += " (not retried: the request may have been applied)" }
                throw OpenStackError(kind: kind, service: ep.service, method: request.method.rawValue, url: url, message: msg)
            }
            logger.debug("\(request.method.rawValue) \(URLRedaction.redact(url)) -> \(result.status) (\(Self.ms(since: start)) ms)\(result.requestID.map { " \($0)" } ?? "")")
            if result.status == 401 && !reauthenticated {
                reauthenticated = true
                _ = try await authenticator.token(rejected: token.value)
                continue
            }
            // Waiting longer than a Retry-After we allow: the service's answer is reported.
            if let wait = retry.next(afterStatus: result.status, retryAfter: result.headers.first(name: "Retry-After"),
                                     idempotent: request.isIdempotent)
            {
                logger.notice("\(ep.service) \(request.method.rawValue) \(URLRedaction.redact(url)) -> \(result.status); retrying in \(String(format: "%.1f", wait)) s")
                try await Task.sleep(for: .seconds(wait))
                continue
            }
            if (200..<300).contains(result.status) || request.acceptedStatuses.contains(result.status) {
                return result
            }
            throw OpenStackError(kind: .http(status: result.status), service: ep.service, method: request.method.rawValue,
                                 url: url, requestID: result.requestID,
                                 message: OpenStackError.serviceMessage(from: result.body))
        }
    }

    /// The HTTP request for an API call: token, headers, microversion, the caller's headers, TLS.
    func httpRequest(_ request: APIRequest, url: String, endpoint ep: ServiceEndpoint, token: AuthToken) -> HTTPClientRequest {
        var req = HTTPClientRequest(url: url)
        req.method = request.method
        req.headers.add(name: "X-Auth-Token", value: token.value)
        req.headers.add(name: "Accept", value: "application/json")
        req.headers.add(name: "User-Agent", value: Self.userAgent)
        if let mv = request.microversion ?? ep.microversion {
            Self.addMicroversion(service: ep.service, version: mv, to: &req.headers)
        }
        for (k, v) in request.headers { req.headers.replaceOrAdd(name: k, value: v) }
        req.tlsConfiguration = tls
        return req
    }

    /// Send and decode the JSON body (optionally the value under `key`).
    public func json(_ request: APIRequest, key: String? = nil) async throws -> JSONValue {
        let r = try await send(request)
        let v: JSONValue
        do { v = try r.json() } catch {
            throw OpenStackError(kind: .decoding, service: request.service, method: request.method.rawValue,
                                 url: request.path, requestID: r.requestID, message: "response is not JSON")
        }
        guard let key else { return v }
        guard let inner = v[key] else {
            throw OpenStackError(kind: .decoding, service: request.service, method: request.method.rawValue,
                                 url: request.path, requestID: r.requestID, message: "response has no '\(key)'")
        }
        return inner
    }

    /// Send and decode into `T` (optionally the value under `key`).
    public func decode<T: Decodable>(_ type: T.Type, _ request: APIRequest, key: String? = nil) async throws -> T {
        let r = try await send(request)
        do {
            if let key {
                let decoder = JSONDecoder()
                decoder.userInfo[Keyed<T>.keyInfo] = key
                return try decoder.decode(Keyed<T>.self, from: r.body).value
            }
            return try JSONDecoder().decode(T.self, from: r.body)
        } catch {
            throw OpenStackError(kind: .decoding, service: request.service, method: request.method.rawValue,
                                 url: request.path, requestID: r.requestID, message: "cannot decode \(T.self): \(error)")
        }
    }

    /// A paginated collection as an async sequence of elements.
    public func list<T: Decodable & Sendable>(_ type: T.Type, _ request: APIRequest, key: String,
                                              pageSize: Int? = nil) -> PagedList<T>
    {
        PagedList(session: self, request: request, key: key, pageSize: pageSize ?? options.pageSize)
    }

    // MARK: helpers

    static func addMicroversion(service: String, version: String, to headers: inout HTTPHeaders) {
        switch service {
        case ServiceType.compute:
            headers.replaceOrAdd(name: "OpenStack-API-Version", value: "compute \(version)")
            headers.replaceOrAdd(name: "X-OpenStack-Nova-API-Version", value: version)
        case ServiceType.blockStorage:
            headers.replaceOrAdd(name: "OpenStack-API-Version", value: "volume \(version)")
        default:
            break
        }
    }

    static func ms(since start: ContinuousClock.Instant) -> Int {
        let d = ContinuousClock.now - start
        return Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Endpoint + path (which may already carry a query) + extra query items, percent-encoded.
    public static func join(_ base: String, _ path: String, _ query: [QueryItem]) -> String {
        if path.hasPrefix("http://") || path.hasPrefix("https://") { return appendQuery(path, query) }
        var url = base
        if !path.isEmpty {
            if !path.hasPrefix("/") && !path.hasPrefix("?") { url += "/" }
            url += path
        }
        return appendQuery(url, query)
    }

    static func appendQuery(_ url: String, _ query: [QueryItem]) -> String {
        guard !query.isEmpty else { return url }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+;#?/")
        let q = query.map { item in
            let n = item.name.addingPercentEncoding(withAllowedCharacters: allowed) ?? item.name
            let v = item.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? item.value
            return "\(n)=\(v)"
        }.joined(separator: "&")
        return url + (url.contains("?") ? "&" : "?") + q
    }
}

/// Decodes the value under a key chosen at run time: `{"network": {...}}` -> Network.
struct Keyed<T: Decodable>: Decodable {
    static var keyInfo: CodingUserInfoKey { CodingUserInfoKey(rawValue: "os-migrate.key")! }
    var value: T
    init(from decoder: any Decoder) throws {
        let key = decoder.userInfo[Self.keyInfo] as? String ?? ""
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        value = try c.decode(T.self, forKey: AnyCodingKey(key))
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// Choosing an endpoint from the catalog.
public enum Catalog {
    public static func find(service: String, in catalog: [CatalogService], interface: String, region: String?) -> String? {
        for type in ServiceType.catalogAliases(service) {
            for entry in catalog where entry.type == type {
                let matches = entry.endpoints.filter { ep in
                    ep.interface == interface
                        && (region == nil || ep.region_id == region || ep.region == region)
                }
                if let e = matches.first { return e.url }
            }
        }
        return nil
    }
}

/// Version documents and microversion negotiation.
public enum VersionDiscovery {
    public struct Version: Sendable, Equatable {
        public var id: String
        public var status: String?
        public var version: String?
        public var minVersion: String?
    }

    /// Split `http://h:8776/v3/abc` into root `http://h:8776` and version `v3`.
    public static func split(_ url: String) -> (root: String, version: String?) {
        guard let comps = URLComponents(string: url) else { return (url, nil) }
        let parts = comps.path.split(separator: "/").map(String.init)
        guard let idx = parts.firstIndex(where: { $0.range(of: "^v[0-9]+(\\.[0-9]+)?$", options: .regularExpression) != nil }) else {
            return (url, nil)
        }
        var rootComps = comps
        rootComps.path = parts[..<idx].isEmpty ? "" : "/" + parts[..<idx].joined(separator: "/")
        rootComps.query = nil
        return (rootComps.string ?? url, parts[idx])
    }

    public static func parse(_ data: Data) -> [Version] {
        guard let v = try? JSONDecoder().decode(JSONValue.self, from: data) else { return [] }
        var list: [JSONValue] = []
        if let arr = v["versions"]?.arrayValue {
            list = arr
        } else if let values = v["versions"]?["values"]?.arrayValue {
            list = values
        } else if let one = v["version"] {
            list = [one]
        }
        return list.compactMap { e in
            guard let id = e["id"]?.stringValue else { return nil }
            return Version(id: id, status: e["status"]?.stringValue, version: e["version"]?.stringValue,
                           minVersion: e["min_version"]?.stringValue)
        }
    }

    static let preferred: [String: [String]] = [
        ServiceType.compute: ["v2.1", "v2.0", "v2"],
        ServiceType.network: ["v2.0", "v2"],
        ServiceType.image: ["v2"],
        ServiceType.blockStorage: ["v3"],
        ServiceType.identity: ["v3"],
    ]

    /// Does a version document id ("v3.0", "v2.1", "v2.16") belong to a URL segment ("v3", "v2.1", "v2")?
    public static func sameMajor(_ docID: String, _ segment: String) -> Bool {
        if docID == segment { return true }
        if segment.contains(".") { return false }
        return docID.hasPrefix(segment + ".")
    }

    /// The versioned URL for an unversioned catalog entry.
    public static func versionedURL(root: String, service: String, versions: [Version], projectID: String?) -> String {
        let wanted = preferred[service] ?? []
        var segment = wanted.first ?? ""
        for w in wanted {
            if versions.contains(where: { sameMajor($0.id, w) }) {
                segment = w
                break
            }
        }
        if segment.isEmpty { return root }
        var url = root + "/" + segment
        if service == ServiceType.blockStorage, let projectID { url += "/" + projectID }
        return url
    }

    static func parts(_ v: String) -> [Int] { v.split(separator: ".").compactMap { Int($0) } }

    public static func less(_ a: String, _ b: String) -> Bool {
        let x = parts(a), y = parts(b)
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0, r = i < y.count ? y[i] : 0
            if l != r { return l < r }
        }
        return false
    }

    /// The microversion to send: what we want, lowered to what the service offers.
    public static func negotiate(wanted: String, max: String?, min: String?) -> String {
        guard let max, !max.isEmpty else { return wanted }
        if less(max, wanted) { return max }
        if let min, !min.isEmpty, less(wanted, min) { return min }
        return wanted
    }
}
