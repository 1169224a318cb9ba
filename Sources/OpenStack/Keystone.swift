import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// A Keystone v3 token with what it says about the caller.
public struct AuthToken: Sendable {
    /// The token itself: a secret, never printed.
    public var value: String
    public var issuedAt: Date
    public var expiresAt: Date
    public var projectID: String?
    public var projectName: String?
    public var projectDomainID: String?
    public var projectDomainName: String?
    public var userID: String
    public var userName: String
    public var userDomainID: String?
    public var userDomainName: String?
    public var roles: [String]
    public var catalog: [CatalogService]

    /// Refresh a little before expiry: five minutes, or a tenth of a short token's lifetime.
    public func needsRefresh(now: Date = Date()) -> Bool {
        let lifetime = expiresAt.timeIntervalSince(issuedAt)
        let margin = min(300, max(5, lifetime * 0.1))
        return expiresAt.timeIntervalSince(now) < margin
    }

    public var isAdmin: Bool { roles.contains("admin") }
}

public struct CatalogService: Codable, Sendable {
    public var type: String
    public var name: String?
    public var endpoints: [CatalogEndpoint]
}

public struct CatalogEndpoint: Codable, Sendable {
    public var interface: String
    public var region: String?
    public var region_id: String?
    public var url: String
}

/// Keystone v3 request bodies and response parsing: pure functions, tested without a server.
public enum KeystoneAuth {
    public static func requestBody(for profile: CloudProfile) -> JSONValue {
        let a = profile.auth
        func domain(_ idKey: String, _ nameKey: String) -> JSONValue {
            if let id = a[idKey], !id.isEmpty { return ["id": .string(id)] }
            if let n = a[nameKey], !n.isEmpty { return ["name": .string(n)] }
            if let id = a["domain_id"], !id.isEmpty { return ["id": .string(id)] }
            if let n = a["domain_name"], !n.isEmpty { return ["name": .string(n)] }
            return ["id": "default"]
        }
        func user() -> JSONValue {
            if let id = a["user_id"], !id.isEmpty { return ["id": .string(id)] }
            return ["name": .string(a["username"] ?? ""), "domain": domain("user_domain_id", "user_domain_name")]
        }
        var scope: JSONValue? = nil
        if let pid = a["project_id"], !pid.isEmpty {
            scope = ["project": ["id": .string(pid)]]
        } else if let pn = a["project_name"], !pn.isEmpty {
            scope = ["project": ["name": .string(pn), "domain": domain("project_domain_id", "project_domain_name")]]
        }
        var identity: JSONObject
        switch profile.authMethod {
        case .password:
            var u = user().objectValue ?? [:]
            u["password"] = .string(a["password"] ?? "")
            identity = ["methods": ["password"], "password": ["user": .object(u)]]
        case .applicationCredential:
            var cred: JSONObject = ["secret": .string(a["application_credential_secret"] ?? "")]
            if let id = a["application_credential_id"], !id.isEmpty {
                cred["id"] = .string(id)
            } else {
                cred["name"] = .string(a["application_credential_name"] ?? "")
                cred["user"] = user()
            }
            identity = ["methods": ["application_credential"], "application_credential": .object(cred)]
            scope = nil  // an application credential carries its own scope
        case .token:
            identity = ["methods": ["token"], "token": ["id": .string(a["token"] ?? "")]]
        }
        var auth: JSONObject = ["identity": .object(identity)]
        if let scope { auth["scope"] = scope }
        return ["auth": .object(auth)]
    }

    struct TokenBody: Decodable {
        struct Named: Decodable {
            var id: String
            var name: String?
            var domain: Domain?
        }
        struct Domain: Decodable {
            var id: String?
            var name: String?
        }
        struct Role: Decodable { var name: String }
        struct Token: Decodable {
            var expires_at: String
            var issued_at: String?
            var project: Named?
            var user: Named
            var roles: [Role]?
            var catalog: [CatalogService]?
        }
        var token: Token
    }

    public static func parseDate(_ s: String) -> Date? {
        let trimmed = s.replacingOccurrences(of: "\\.[0-9]+", with: "", options: .regularExpression)
        let f = ISO8601DateFormatter()
        if let d = f.date(from: trimmed) { return d }
        return f.date(from: trimmed + "Z")
    }

    public static func parseToken(value: String, body: Data, now: Date = Date()) throws -> AuthToken {
        let t = try JSONDecoder().decode(TokenBody.self, from: body).token
        guard let exp = parseDate(t.expires_at) else {
            throw OpenStackError(kind: .decoding, service: "identity", message: "token expires_at '\(t.expires_at)' is not a date")
        }
        return AuthToken(
            value: value, issuedAt: t.issued_at.flatMap(parseDate) ?? now, expiresAt: exp,
            projectID: t.project?.id, projectName: t.project?.name,
            projectDomainID: t.project?.domain?.id, projectDomainName: t.project?.domain?.name,
            userID: t.user.id, userName: t.user.name ?? t.user.id,
            userDomainID: t.user.domain?.id, userDomainName: t.user.domain?.name,
            roles: (t.roles ?? []).map(\.name), catalog: t.catalog ?? [])
    }

    /// `http://host:5000` -> `http://host:5000/v3`; a URL already ending in /v3 stays.
    public static func identityBase(from authURL: String) -> String {
        var u = authURL
        while u.hasSuffix("/") { u.removeLast() }
        if u.hasSuffix("/v3") { return u }
        if let r = u.range(of: "/v3/", options: .backwards) { return String(u[..<r.lowerBound]) + "/v3" }
        if u.hasSuffix("/v2.0") { u.removeLast(5) }
        return u + "/v3"
    }
}

/// Holds one cloud's token: obtains it once, reuses it until it nears expiry, and
/// re-obtains it (once, shared by all waiting callers) when a service rejects it.
actor Authenticator {
    let profile: CloudProfile
    let transport: HTTPTransport
    let tls: TLSConfiguration?
    let logger: Logger
    let timeout: Double
    let counter: RequestCounter
    let retry: RetryPolicy
    private var current: AuthToken?
    private var inflight: Task<AuthToken, any Error>?

    /// `retry`: the session's rules. The first token of a session is the first contact with the
    /// cloud: a refused connection there is tried once more only (a wrong auth_url or a cloud that
    /// is down says so in a second), unless clouds.yaml sets `connect_retries`.
    init(profile: CloudProfile, transport: HTTPTransport, tls: TLSConfiguration?, logger: Logger, timeout: Double,
         counter: RequestCounter, retry: RetryPolicy = RetryPolicy())
    {
        self.profile = profile
        self.transport = transport
        self.tls = tls
        self.logger = logger
        self.timeout = timeout
        self.counter = counter
        self.retry = retry
    }

    /// A valid token. `rejected`: the token a service just answered 401 to.
    func token(rejected: String? = nil) async throws -> AuthToken {
        if let c = current, !c.needsRefresh(), c.value != rejected { return c }
        if let t = inflight { return try await t.value }
        let task = Task { try await self.obtain() }
        inflight = task
        defer { inflight = nil }
        let t = try await task.value
        current = t
        return t
    }

    var cached: AuthToken? { current }

    private func obtain() async throws -> AuthToken {
        let url = KeystoneAuth.identityBase(from: profile.authURL) + "/auth/tokens"
        let body = try KeystoneAuth.requestBody(for: profile).jsonData()
        var policy = retry
        if current == nil && profile.connectRetries == nil { policy.connectRetries = min(policy.connectRetries, 1) }
        var retry = RetryState(policy)
        while true {
            var req = HTTPClientRequest(url: url)
            req.method = .POST
            req.headers.add(name: "Content-Type", value: "application/json")
            req.headers.add(name: "Accept", value: "application/json")
            req.headers.add(name: "User-Agent", value: CloudSession.userAgent)
            req.body = .bytes(ByteBuffer(data: body))
            req.tlsConfiguration = tls
            let start = Date()
            counter.record(method: RequestCounter.authentication)
            do {
                let (resp, lease) = try await transport.execute(req, timeout: timeout)
                defer { lease.release() }
                let data = Data(buffer: try await resp.body.collect(upTo: 32 << 20))
                let status = Int(resp.status.code)
                let reqID = resp.headers.first(name: "x-openstack-request-id")
                logger.debug("POST \(url) -> \(status) (\(Int(Date().timeIntervalSince(start) * 1000)) ms)\(reqID.map { " \($0)" } ?? "")")
                if status == 201 || status == 200, let tok = resp.headers.first(name: "X-Subject-Token") {
                    return try KeystoneAuth.parseToken(value: tok, body: data)
                }
                // A token request creates nothing that matters: it is safe to repeat.
                if let wait = retry.next(afterStatus: status, retryAfter: resp.headers.first(name: "Retry-After"), idempotent: true) {
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                var msg = OpenStackError.serviceMessage(from: data)
                if status == 401 { msg = "authentication failed for cloud '\(profile.name)' (check the credentials): " + msg }
                throw OpenStackError(kind: .http(status: status), service: "identity", method: "POST", url: url,
                                     requestID: reqID, message: msg)
            } catch let e as OpenStackError {
                throw e
            } catch {
                if error is CancellationError { throw error }
                let failure = TransportFailure.classify(error)
                if let wait = retry.next(after: failure, idempotent: true) {
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                let kind: OpenStackError.Kind = failure == .timeout ? .timeout : .transport
                if error is ConnectionPoolBusy {
                    throw OpenStackError(kind: .timeout, service: "identity", method: "POST", url: url,
                                         message: "no token for cloud '\(profile.name)' yet: \(error)")
                }
                let why = failure == .tls ? TransportFailure.tlsMessage(error)
                    : failure == .timeout ? "no answer within \(Int(timeout)) s (api_timeout): \(error)"
                    : TransportFailure.isRefused(error) ? "the connection was refused: nothing listens there (a wrong auth_url, or a cloud that is "
                        + "restarting: connect_retries in clouds.yaml makes os-migrate wait for it): \(error)"
                    : "\(error)"
                throw OpenStackError(kind: kind, service: "identity", method: "POST", url: url,
                                     message: "cannot reach \(url) for cloud '\(profile.name)': \(why)")
            }
        }
    }
}
