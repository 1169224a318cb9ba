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
public final class HTTPTransport: Sendable {
    public let client: HTTPClient

    public init(maxConnectionsPerHost: Int = 16) {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(15), read: .seconds(300))
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnectionsPerHost)
        config.redirectConfiguration = .disallow
        config.decompression = .enabled(limit: .none)
        config.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
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

/// A request before it is sent: everything needed to send it again.
public struct HTTPRequestSpec: Sendable {
    public var method: HTTPMethod
    public var url: String
    public var headers: HTTPHeaders
    public var body: Data?

    public init(method: HTTPMethod, url: String, headers: HTTPHeaders = [:], body: Data? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
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

    public init(maxAttempts: Int = 6, baseDelay: Double = 0.5, maxDelay: Double = 20, maxRetryAfter: Double = 120) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
    }

    public static let none = RetryPolicy(maxAttempts: 1)

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

/// How a failure without a response happened: before the request left (safe to resend
/// anything) or after (resend only what is idempotent).
enum TransportFailure {
    case beforeSend
    case afterSend
    case timeout

    static func classify(_ error: any Error) -> TransportFailure {
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
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return .beforeSend }
        if let e = error as? ChannelError, case .connectTimeout = e { return .beforeSend }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return .beforeSend }
        return .afterSend
    }
}
