import Foundation
import NIOHTTP1

/// A REST collection of one resource type: where it lives and how its bodies are wrapped.
/// The generic calls below serve every service that follows the common conventions
/// (`{"network": {...}}` singular bodies, `{"networks": [...]}` lists).
public struct APICollection<Element: Decodable & Sendable>: Sendable {
    public let service: String
    /// Collection path below the endpoint: "/networks".
    public let path: String
    /// Path to list with details: "/servers/detail" (defaults to `path`).
    public let listPath: String
    public let singular: String
    public let plural: String
    /// How updates are sent: PUT for most services, PATCH for Keystone.
    public let updateMethod: HTTPMethod
    /// Whether the list call accepts a `name` filter (Nova's flavors answer 400 to one).
    public let filtersByName: Bool
    /// Whether that filter is a regular expression (Nova's servers): the name is then anchored and escaped.
    public let nameFilterIsRegex: Bool

    public init(service: String, path: String, listPath: String? = nil, singular: String, plural: String,
                updateMethod: HTTPMethod = .PUT, filtersByName: Bool = true, nameFilterIsRegex: Bool = false)
    {
        self.service = service
        self.path = path
        self.listPath = listPath ?? path
        self.singular = singular
        self.plural = plural
        self.updateMethod = updateMethod
        self.filtersByName = filtersByName
        self.nameFilterIsRegex = nameFilterIsRegex
    }

    public func itemPath(_ id: String) -> String { path + "/" + APIPath.escape(id) }
}

public enum APIPath {
    /// Percent-encode one path segment (ids are usually safe, keypair names are not).
    public static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }
}

extension CloudSession {
    public func list<T>(_ c: APICollection<T>, query: [QueryItem] = [], pageSize: Int? = nil) -> PagedList<T> {
        list(T.self, APIRequest(c.service, .GET, c.listPath, query: query), key: c.plural, pageSize: pageSize)
    }

    public func get<T>(_ c: APICollection<T>, _ id: String) async throws -> T {
        try await decode(T.self, APIRequest(c.service, .GET, c.itemPath(id)), key: c.singular)
    }

    /// The resource, or nil when the service answers 404.
    public func find<T>(_ c: APICollection<T>, id: String) async throws -> T? {
        do { return try await get(c, id) } catch let e as OpenStackError where e.isNotFound { return nil }
    }

    public func create<T>(_ c: APICollection<T>, _ attributes: JSONObject) async throws -> T {
        try await decode(T.self, APIRequest(c.service, .POST, c.path, body: [c.singular: .object(attributes)]), key: c.singular)
    }

    public func update<T>(_ c: APICollection<T>, _ id: String, _ attributes: JSONObject) async throws -> T {
        try await decode(T.self, APIRequest(c.service, c.updateMethod, c.itemPath(id), body: [c.singular: .object(attributes)]),
                         key: c.singular)
    }

    /// Delete; a resource that is already gone is not an error unless `ignoreMissing` is false.
    public func delete<T>(_ c: APICollection<T>, _ id: String, ignoreMissing: Bool = true) async throws {
        _ = try await send(APIRequest(c.service, .DELETE, c.itemPath(id), acceptedStatuses: ignoreMissing ? [404] : []))
    }

    /// Elements whose `name` equals `name` exactly, server-side filtered where the service can.
    public func named<T>(_ c: APICollection<T>, _ name: String, query: [QueryItem] = []) async throws -> [T]
    where T: NamedResource {
        let filter = c.nameFilterIsRegex ? "^\(NSRegularExpression.escapedPattern(for: name))$" : name
        return try await list(c, query: (c.filtersByName ? [QueryItem("name", filter)] : []) + query).collect().filter { $0.name == name }
    }
}

/// Anything with an id and a name.
public protocol NamedResource: Sendable {
    var id: String { get }
    var name: String { get }
}
