import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The process's one HTTP client. Every cloud session sends through it; TLS settings travel
/// with each request, so clouds with different CA bundles share the connection pools safely.
/// Requests beyond `maxConnectionsPerHost` wait in `gate` for a free connection, for as long as
/// their own timeout allows (not the connect timeout: waiting in line is not "cannot reach").
public final class HTTPTransport: Sendable {
    public let client: HTTPClient
    public let gate: ConnectionGate
    let waiting: WaitingNotice?

    /// Said while a request goes unanswered (a terminal wants to know what it waits for).
    public struct WaitingNotice: Sendable {
        /// Seconds before the first notice; then every three times as long.
        public var after: Double
        public var report: @Sendable (String) -> Void

        public init(after: Double = 5, report: @escaping @Sendable (String) -> Void) {
            self.after = after
            self.report = report
        }
    }

    public init(maxConnectionsPerHost: Int = 16, connectTimeout: Double = 15, waiting: WaitingNotice? = nil) {
        gate = ConnectionGate(limit: maxConnectionsPerHost)
        self.waiting = waiting
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .milliseconds(Int64(connectTimeout * 1000)), read: .seconds(300))
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnectionsPerHost)
        // One connection attempt per try: a refused port or a TLS handshake with a plain-http
        // server fails at once, and RetryState (connect_retries) decides about trying again. Left
        // on, the client would retry by itself for its whole connect timeout first.
        config.connectionPool.retryConnectionEstablishment = false
        config.redirectConfiguration = .disallow
        config.decompression = .enabled(limit: .none)
        config.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Send `request` once a connection to its host is free (waiting at most `timeout`), with
    /// `timeout` for the answer. The lease holds the connection's place until it is released
    /// (or goes away): release it once the body is read.
    public func execute(_ request: HTTPClientRequest, timeout: Double) async throws -> (HTTPClientResponse, ConnectionLease) {
        let notice = waiting.map { w in
            Task { [method = request.method.rawValue, url = URLRedaction.redact(request.url)] in
                let start = ContinuousClock.now
                var next = w.after
                while true {
                    try await Task.sleep(for: .seconds(next))
                    let waited = Int((ContinuousClock.now - start) / .seconds(1))
                    w.report("still waiting for \(url) to answer (\(method), \(waited) s so far; it is given \(Int(timeout)) s: api_timeout)")
                    next = w.after * 3
                }
            }
        }
        defer { notice?.cancel() }
        let lease = try await gate.enter(request.url, timeout: timeout)
        let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        return (response, lease)
    }

    /// Shut the client down; call once when the process is done with every session.
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// TLS settings for one cloud: verification on unless `insecure`, optional CA bundle and client cert.
    public static func tlsConfiguration(for profile: CloudProfile) throws -> TLSConfiguration? {
        if profile.verifyTLS && profile.caCertFile == nil && profile.clientCertFile == nil { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        if !profile.verifyTLS { tls.certificateVerification = .none }
        do {
            if let ca = profile.caCertFile {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            }
            if let cert = profile.clientCertFile {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                guard let key = profile.clientKeyFile else {
                    throw ConfigError("\(profile.origin): cloud '\(profile.name)': cert is set but key is missing")
                }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError("\(profile.origin): cloud '\(profile.name)': cannot load TLS files: \(error)")
        }
        return tls
    }
}

/// A fully received response.
public struct HTTPResult: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: Data

    public init(status: Int, headers: HTTPHeaders, body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var requestID: String? {
        headers.first(name: "x-openstack-request-id") ?? headers.first(name: "x-compute-request-id")
    }

    public func json() throws -> JSONValue {
        if body.isEmpty { return .null }
        return try JSONDecoder().decode(JSONValue.self, from: body)
    }
}

/// Which failures may be retried, how often, and how long to wait.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// Longest `Retry-After` we honour before giving up on waiting.
    public var maxRetryAfter: Double

    /// How many times a request that timed out is sent again (each costs a whole timeout).
    public var maxTimeoutRetries: Int

    /// How many times a request whose connection was refused or never made is sent again (with
    /// the backoff; each connection attempt is one try: the HTTP client does not retry on its own).
    public var connectRetries: Int

    public init(maxAttempts: Int = 6, baseDelay: Double = 0.5, maxDelay: Double = 20, maxRetryAfter: Double = 120,
                maxTimeoutRetries: Int = 1, connectRetries: Int = 5)
    {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
        self.maxTimeoutRetries = maxTimeoutRetries
        self.connectRetries = connectRetries
    }

    public static let none = RetryPolicy(maxAttempts: 1, connectRetries: 0)

    /// Exponential backoff with jitter: uniform in [cap/2, cap], cap = min(max, base * 2^attempt).
    public func delay(afterAttempt attempt: Int) -> Double {
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt)))
        return Double.random(in: (cap / 2)...max(cap, cap / 2 + 0.001))
    }

    /// Seconds from a `Retry-After` header: delta-seconds or an HTTP date.
    public static func retryAfterSeconds(_ value: String?, now: Date = Date()) -> Double? {
        guard let v = value?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        if let s = Double(v) { return max(0, s) }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let d = f.date(from: v) { return max(0, d.timeIntervalSince(now)) }
        return nil
    }

    /// Statuses worth another try: the service or a proxy in front of it was briefly unavailable.
    public static func isRetryableStatus(_ status: Int) -> Bool {
        status == 429 || status == 502 || status == 503 || status == 504
    }
}

/// The one set of rules for resending a request (API calls, token requests, downloads): feed it
/// each failure, it says how long to wait before the next try, or nil to give up.
///
/// - no connection (refused, or not made within the connect timeout): `connectRetries` times,
///   backing off (a restarting service comes back; a wrong address fails as fast as is wanted);
/// - a whole timeout waiting for a free connection of our own: once more;
/// - a timeout: only what is idempotent, `maxTimeoutRetries` times (default once: each costs a
///   whole timeout);
/// - no answer after the request left: again while attempts last, only what is idempotent;
/// - a TLS handshake failure: never (the same server fails it the same way);
/// - an answer of 429, 502, 503 or 504: again while attempts last, only what is idempotent
///   (429 always), after `Retry-After` when it says so and it is not longer than we wait.
public struct RetryState: Sendable {
    public let policy: RetryPolicy
    public private(set) var attempt = 0
    private var connectFailures = 0
    private var queued = 0
    private var timeouts = 0

    public init(_ policy: RetryPolicy) { self.policy = policy }

    /// After a failure without an answer: the delay before the next attempt, or nil.
    public mutating func next(after failure: TransportFailure, idempotent: Bool) -> Double? {
        switch failure {
        case .tls: return nil
        case .beforeSend:
            // Counted on their own: nothing reached the server.
            connectFailures += 1
            guard connectFailures <= policy.connectRetries else { return nil }
            return policy.delay(afterAttempt: connectFailures - 1)
        case .queued:
            queued += 1
            guard queued <= 1 else { return nil }
        case .timeout:
            timeouts += 1
            guard idempotent, timeouts <= policy.maxTimeoutRetries else { return nil }
        case .afterSend:
            guard idempotent else { return nil }
        }
        guard attempt + 1 < policy.maxAttempts else { return nil }
        attempt += 1
        return policy.delay(afterAttempt: attempt - 1)
    }

    /// After an answer with `status`: the delay before the next attempt, or nil (take the answer).
    public mutating func next(afterStatus status: Int, retryAfter: String?, idempotent: Bool) -> Double? {
        guard RetryPolicy.isRetryableStatus(status), idempotent || status == 429, attempt + 1 < policy.maxAttempts else { return nil }
        let after = RetryPolicy.retryAfterSeconds(retryAfter)
        if let after, after > policy.maxRetryAfter { return nil }
        attempt += 1
        return max(policy.delay(afterAttempt: attempt - 1), after ?? 0)
    }
}

/// How a failure without a response happened: before the request left (safe to resend
/// anything), after (resend only what is idempotent), a timeout, or a TLS handshake that
/// failed (the same server will fail it again: never resent).
public enum TransportFailure: Sendable, Equatable {
    case beforeSend
    /// Waited a whole timeout for one of our own connections to the host to be free: nothing
    /// was sent (retried once: waiting is not a connection failure).
    case queued
    case afterSend
    case timeout
    case tls

    /// What to tell the user about a TLS failure.
    static func tlsMessage(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("wrong version number") || text.contains("HTTP_REQUEST") {
            return "the server did not speak TLS (is the URL https:// on a plain http port?): \(text)"
        }
        if text.contains("EOF during handshake") || text.contains("uncleanShutdown") {
            return "the server closed the connection during the TLS handshake (is the URL https:// on a plain http port, "
                + "or does the server refuse our TLS version or client certificate?): \(text)"
        }
        return "the TLS handshake failed: \(text)"
    }

    /// The server's host refused the connection (nothing listens on that port).
    static func isRefused(_ error: any Error) -> Bool {
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return true }
        let text = String(describing: error)
        return text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("ECONNREFUSED")
    }

    static func classify(_ error: any Error) -> TransportFailure {
        let described = String(describing: error)
        // Nothing was sent: the whole wait for a free connection is over, one more round is fair.
        if error is ConnectionPoolBusy { return .queued }
        if error is NIOSSLError || described.contains("handshakeFailed") || described.contains("WRONG_VERSION_NUMBER") {
            return .tls
        }
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout, .tlsHandshakeTimeout, .getConnectionFromPoolTimeout, .httpProxyHandshakeTimeout,
                 .socksHandshakeTimeout:
                return .beforeSend
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return .timeout
            default:
                return .afterSend
            }
        }
        if error is NIOConnectionError { return .beforeSend }
        if let e = error as? ChannelError, case .connectTimeout = e { return .beforeSend }
        return isRefused(error) ? .beforeSend : .afterSend
    }
}
