import Foundation

/// The one error type for a failed OpenStack API call.
///
/// It carries what an operator needs to find the failure in the service's logs: the
/// service, the method, the URL (never with credentials), the HTTP status, the request id
/// and the service's own message.
public struct OpenStackError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The service answered with an HTTP error status.
        case http(status: Int)
        /// No response: connection refused/reset, TLS failure, DNS.
        case transport
        /// The request did not finish in time.
        case timeout
        /// The response could not be understood.
        case decoding
        /// A waiter saw a failure status or ran out of time.
        case waitFailed
        /// Something is missing that the caller asked for (no endpoint, no such resource by name).
        case notFound
        /// More than one resource matches where exactly one was expected.
        case ambiguous
    }

    public var kind: Kind
    public var service: String
    public var method: String
    public var url: String
    public var requestID: String?
    public var message: String

    public init(kind: Kind, service: String, method: String = "", url: String = "", requestID: String? = nil,
                message: String)
    {
        self.kind = kind
        self.service = service
        self.method = method
        self.url = URLRedaction.redact(url)
        self.requestID = requestID
        self.message = message
    }

    public var status: Int? { if case .http(let s) = kind { return s } else { return nil } }
    public var isNotFound: Bool { status == 404 || kind == .notFound }
    public var isConflict: Bool { status == 409 }
    public var isForbidden: Bool { status == 403 }
    public var isUnauthorized: Bool { status == 401 }
    public var isBadRequest: Bool { status == 400 }

    public var description: String {
        var parts: [String] = []
        // Errors raised without a request (a token body, a waiter) have no method or URL.
        let target = [service, method, url].filter { !$0.isEmpty }.joined(separator: " ")
        switch kind {
        case .http(let s): parts.append("\(target) returned \(s)")
        case .transport: parts.append("\(target) failed")
        case .timeout: parts.append("\(target) timed out")
        case .decoding: parts.append("\(target): unexpected response")
        case .waitFailed, .notFound, .ambiguous: parts.append(service)
        }
        var s = parts.joined()
        if !message.isEmpty { s += ": \(message)" }
        if let r = requestID { s += " (request \(r))" }
        return s
    }

    /// Extract the service's own message from an error body. Every service wraps it
    /// differently: Nova/Cinder `{"itemNotFound": {"message": ...}}`, Neutron
    /// `{"NeutronError": {"message": ...}}`, Keystone `{"error": {"message": ...}}`,
    /// Placement `{"errors": [{"detail": ...}]}`, Glance plain text or HTML.
    public static func serviceMessage(from body: Data) -> String {
        if let value = try? JSONDecoder().decode(JSONValue.self, from: body) {
            // Glance (webob) answers JSON whose message still carries "<br /><br />\n\n\n" and
            // multi-line schema dumps: keep one line.
            if let m = message(in: value) {
                return m.replacingOccurrences(of: "<br\\s*/?>", with: " ", options: .regularExpression)
                    .replacingOccurrences(of: "\\s+", with: " ", options: .regularExpression)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        var text = String(decoding: body.prefix(8192), as: UTF8.self)
        // Glance (webob) answers HTML: keep the body without its <h1> title, drop tags and entities.
        if let b = text.range(of: "<body>"), let e = text.range(of: "</body>", range: b.upperBound..<text.endIndex) {
            text = String(text[b.upperBound..<e.lowerBound])
        }
        text = text.replacingOccurrences(of: "<h1>[^<]*</h1>", with: " ", options: .regularExpression)
        text = text.replacingOccurrences(of: "<[^>]+>", with: " ", options: .regularExpression)
        for (entity, char) in [("&#x27;", "'"), ("&#39;", "'"), ("&quot;", "\""), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")] {
            text = text.replacingOccurrences(of: entity, with: char)
        }
        text = text.replacingOccurrences(of: "\\s+", with: " ", options: .regularExpression)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func message(in value: JSONValue) -> String? {
        guard case .object(let o) = value else {
            if case .string(let s) = value { return s }
            return nil
        }
        if let m = o["message"]?.stringValue {
            if let d = o["detail"]?.stringValue, !d.isEmpty, d != m { return "\(m) \(d)" }
            return m
        }
        if let d = o["detail"]?.stringValue, !d.isEmpty { return d }
        if let errs = o["errors"]?.arrayValue, let first = errs.first {
            if let d = first["detail"]?.stringValue { return d }
            if let t = first["title"]?.stringValue { return t }
        }
        if let f = o["faultstring"]?.stringValue { return f }
        // Single wrapping key: {"badRequest": {...}}, {"NeutronError": {...}}, {"error": {...}}
        for (_, v) in o.sorted(by: { $0.key < $1.key }) {
            if case .object = v, let m = message(in: v) { return m }
        }
        return nil
    }
}

enum URLRedaction {
    /// Drop userinfo from a URL and mask query values that look like secrets.
    static func redact(_ url: String) -> String {
        guard var comps = URLComponents(string: url) else { return url }
        if comps.user != nil || comps.password != nil {
            comps.user = nil
            comps.password = nil
        }
        if let items = comps.queryItems {
            comps.queryItems = items.map { item in
                Redaction.isSecretKey(item.name) ? URLQueryItem(name: item.name, value: "***") : item
            }
        }
        return comps.string ?? url
    }
}

/// What must never be printed: passwords, tokens, application-credential secrets.
public enum Redaction {
    public static let secretHeaderNames: Set<String> = ["x-auth-token", "x-subject-token", "authorization",
                                                        "x-service-token", "cookie", "set-cookie"]

    public static func isSecretKey(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k == "token" || k == "id_token"
            || k.hasSuffix("_token") || k == "passcode" || k == "totp" || k == "key_data"
            || k == "access_token" || k == "client_key_data"
    }

    /// Replace secret values in a JSON tree with "***". A `token` object's `id` is a secret too.
    public static func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            var out: JSONObject = [:]
            for (k, v) in o {
                if isSecretKey(k) {
                    if case .object(let inner) = v, k.lowercased() == "token" {
                        var r = redact(.object(inner)).objectValue ?? [:]
                        if r["id"] != nil { r["id"] = "***" }
                        out[k] = .object(r)
                    } else {
                        out[k] = "***"
                    }
                } else {
                    out[k] = redact(v)
                }
            }
            return .object(out)
        case .array(let a): return .array(a.map(redact))
        default: return value
        }
    }
}
