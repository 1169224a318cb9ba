import Foundation

/// A paginated OpenStack collection, followed page by page as it is consumed.
///
/// One mechanism for every service: Neutron, Nova and Cinder put a `rel: next` link in
/// `<key>_links`; Glance puts a relative `next`; Keystone a `links.next`.
public struct PagedList<Element: Decodable & Sendable>: AsyncSequence, Sendable {
    let session: CloudSession
    let request: APIRequest
    let key: String
    let pageSize: Int?

    public func makeAsyncIterator() -> Iterator {
        Iterator(list: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let list: PagedList
        var buffer: [Element] = []
        var index = 0
        var next: APIRequest?
        var seen: Set<String> = []
        var endpointURL: String?

        init(list: PagedList) {
            self.list = list
            var first = list.request
            if let n = list.pageSize, !first.query.contains(where: { $0.name == "limit" }) {
                first.query.append(QueryItem("limit", String(n)))
            }
            next = first
        }

        public mutating func next() async throws -> Element? {
            while index >= buffer.count {
                guard let req = next else { return nil }
                next = nil
                let result = try await list.session.send(req)
                let page = try Pagination.decodePage(Element.self, result.body, key: list.key, request: req,
                                                     requestID: result.requestID)
                buffer = page.items
                index = 0
                if endpointURL == nil { endpointURL = try await list.session.endpoint(req.service).url }
                if let href = page.next, !page.items.isEmpty {
                    let rel = Pagination.relativeNext(href: href, endpoint: endpointURL ?? "")
                    if !seen.contains(rel) {
                        seen.insert(rel)
                        var r = req
                        r.path = rel
                        r.query = []
                        next = r
                    }
                }
            }
            defer { index += 1 }
            return buffer[index]
        }
    }

    /// All elements in one array.
    public func collect() async throws -> [Element] {
        var out: [Element] = []
        for try await e in self { out.append(e) }
        return out
    }
}

public enum Pagination {
    struct Page<T: Decodable>: Decodable {
        var items: [T]
    }

    static func decodePage<T: Decodable>(_ type: T.Type, _ body: Data, key: String, request: APIRequest,
                                         requestID: String?) throws -> (items: [T], next: String?)
    {
        do {
            let decoder = JSONDecoder()
            decoder.userInfo[Keyed<[T]>.keyInfo] = key
            let items = try decoder.decode(Keyed<[T]>.self, from: body).value
            let doc = try JSONDecoder().decode(JSONValue.self, from: body)
            return (items, nextLink(in: doc, key: key))
        } catch {
            throw OpenStackError(kind: .decoding, service: request.service, method: request.method.rawValue,
                                 url: request.path, requestID: requestID, message: "cannot decode page of \(key): \(error)")
        }
    }

    /// The next-page link of a list response, whichever convention the service uses.
    public static func nextLink(in doc: JSONValue, key: String) -> String? {
        if let links = doc["\(key)_links"]?.arrayValue {
            for l in links where l["rel"]?.stringValue == "next" {
                if let h = l["href"]?.stringValue { return h }
            }
        }
        if let n = doc["next"]?.stringValue, !n.isEmpty { return n }
        if let n = doc["links"]?["next"]?.stringValue, !n.isEmpty { return n }
        return nil
    }

    /// A next link made relative to the endpoint we use, so a service that advertises another
    /// host name (behind a proxy) or an unprefixed path (Glance's "/v2/images?marker=") still works.
    public static func relativeNext(href: String, endpoint: String) -> String {
        let linkComps = URLComponents(string: href)
        let path = linkComps?.percentEncodedPath ?? href
        let query = linkComps?.percentEncodedQuery
        let endpointPath = URLComponents(string: endpoint)?.percentEncodedPath ?? ""
        var rel = path
        let segs = endpointPath.split(separator: "/").map(String.init)
        for i in 0..<max(segs.count, 1) where !segs.isEmpty {
            let suffix = "/" + segs[i...].joined(separator: "/")
            if path == suffix || path.hasPrefix(suffix + "/") {
                rel = String(path.dropFirst(suffix.count))
                break
            }
        }
        if let query, !query.isEmpty { rel += "?" + query }
        return rel
    }
}
