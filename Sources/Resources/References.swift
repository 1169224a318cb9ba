import Foundation
import OpenStack

/// What a reference can point at, and how to list those things cheaply. The listing comes from
/// the collection's one declaration (`Neutron.networks`, `Nova.flavors`...). A kind that others
/// refer to declares its type beside it (`extension RefType { static let x = RefType(...) }`).
public struct RefType: Sendable, Hashable, CustomStringConvertible {
    /// How references name it: "network", "security group".
    public let rawValue: String
    /// How a reference of this type names its owner.
    public let scoping: Scoping
    /// Where the things of this type are listed; nil for names that nothing lists.
    public let listing: Listing?
    /// More words that name it in `--map-name` ("az").
    public let aliases: [String]

    public enum Scoping: Sendable { case project, domain, none }

    /// The API path that lists this type, the key of the list, and the query that keeps the
    /// listing short or complete.
    public struct Listing: Sendable {
        public var service: String
        public var path: String
        public var key: String
        public var query: [QueryItem]
    }

    public init(_ name: String, scoping: Scoping, listing: Listing?, aliases: [String] = []) {
        rawValue = name
        self.scoping = scoping
        self.listing = listing
        self.aliases = aliases
    }

    /// A type listed from `collection` (its service, path and plural), with `query`.
    public init<T>(_ name: String, _ collection: APICollection<T>, scoping: Scoping, query: [QueryItem] = []) {
        self.init(name, scoping: scoping, listing: Listing(service: collection.service, path: collection.path, key: collection.plural,
                                                           query: query))
    }

    /// A Neutron type: listed with just the fields a reference needs.
    static func neutron<T>(_ name: String, _ collection: APICollection<T>, scoping: Scoping = .project) -> RefType {
        RefType(name, collection, scoping: scoping,
                query: [QueryItem("fields", "id"), QueryItem("fields", "name"), QueryItem("fields", "project_id")])
    }

    public static func == (a: RefType, b: RefType) -> Bool { a.rawValue == b.rawValue }
    public func hash(into h: inout Hasher) { h.combine(rawValue) }
    public var description: String { rawValue }

    public static let network = neutron("network", Neutron.networks)
    public static let subnet = neutron("subnet", Neutron.subnets)
    public static let router = neutron("router", Neutron.routers)
    public static let securityGroup = neutron("security group", Neutron.securityGroups)
    public static let qosPolicy = neutron("QoS policy", Neutron.qosPolicies)
    public static let subnetPool = neutron("subnet pool", Neutron.subnetPools)
    public static let segment = neutron("segment", Neutron.segments)
    public static let addressGroup = neutron("address group", Neutron.addressGroups)
    public static let networkFlavor = neutron("network flavor", Neutron.flavors, scoping: .none)
    public static let flavor = RefType("flavor", Nova.flavors, scoping: .none)
    public static let image = RefType("image", Glance.images, scoping: .project, query: [QueryItem("limit", "1000")])
    public static let project = RefType("project", Keystone.projects, scoping: .domain)
    public static let domain = RefType("domain", Keystone.domains, scoping: .none)
    public static let user = RefType("user", Keystone.users, scoping: .domain)
    public static let role = RefType("role", Keystone.roles, scoping: .domain)
    /// Volume types, named by a volume's `volume_type`: every type, public and private, that
    /// the caller may see.
    public static let volumeType = RefType("volume type", Cinder.types, scoping: .none, query: [QueryItem("is_public", "None")])
    /// Availability zones, named by a volume's `availability_zone`: renamed, never listed.
    public static let availabilityZone = RefType("availability zone", scoping: .none, listing: nil, aliases: ["az"])

    /// The types declared here: what the kinds refer to (with the kinds' own `refType`s, the
    /// names `--map-name` knows).
    public static let referenced: [RefType] = [
        .network, .subnet, .router, .securityGroup, .qosPolicy, .subnetPool, .segment, .addressGroup, .networkFlavor,
        .flavor, .image, .project, .domain, .user, .role, .volumeType, .availabilityZone,
    ]
}

/// One entry of a listing: enough to turn ids into names and back.
public struct IndexEntry: Sendable, Hashable {
    public var id: String
    public var name: String
    /// project_id (Neutron), owner (Glance) or domain_id (Keystone).
    public var owner: String?

    public init(id: String, name: String, owner: String?) {
        self.id = id
        self.name = name
        self.owner = owner
    }

    init?(_ v: JSONValue) {
        guard let id = v["id"]?.stringValue else { return nil }
        self.id = id
        name = v["name"]?.stringValue ?? ""
        owner = v["project_id"]?.stringValue ?? v["tenant_id"]?.stringValue ?? v["owner"]?.stringValue
            ?? v["domain_id"]?.stringValue
    }
}

/// A reference that cannot be resolved: missing, or ambiguous.
public struct ReferenceError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Lists of one cloud's resources by type, loaded once each and shared by concurrent callers,
/// plus what was created (or planned) since.
actor CloudIndex {
    let session: CloudSession
    private var listed: [RefType: [IndexEntry]] = [:]
    private var loading: [RefType: Task<[IndexEntry], any Error>] = [:]
    private var added: [RefType: [IndexEntry]] = [:]

    init(session: CloudSession) { self.session = session }

    func entries(_ type: RefType) async throws -> [IndexEntry] {
        try await listing(type) + (added[type] ?? [])
    }

    func add(_ type: RefType, _ entry: IndexEntry) {
        added[type, default: []].append(entry)
    }

    private func listing(_ type: RefType) async throws -> [IndexEntry] {
        if let e = listed[type] { return e }
        if let t = loading[type] { return try await t.value }
        let session = self.session
        let task = Task { try await Self.load(type, session) }
        loading[type] = task
        defer { loading[type] = nil }
        let e = try await task.value
        listed[type] = e
        return e
    }

    static func load(_ type: RefType, _ session: CloudSession) async throws -> [IndexEntry] {
        guard let l = type.listing else { return [] }
        do {
            return try await session.list(JSONValue.self, APIRequest(l.service, .GET, l.path, query: l.query), key: l.key)
                .collect().compactMap(IndexEntry.init)
        } catch let e as OpenStackError where e.isNotFound || e.isForbidden {
            // An extension the cloud does not have (QoS, address groups, segments), or a
            // listing the caller may not do: nothing to resolve against.
            return []
        }
    }
}

/// Export side: ids to references, as the reference tool writes them.
public actor ReferenceBuilder {
    let session: CloudSession
    let index: CloudIndex
    public let projectID: String
    public let userID: String
    private var projects: [String: (name: String?, domain: String?)] = [:]
    private var domains: [String: String?] = [:]

    public init(session: CloudSession) async throws {
        self.session = session
        self.index = CloudIndex(session: session)
        projectID = try await session.currentProjectID
        userID = try await session.currentUserID
    }

    /// The reference for `id`, or null for no id.
    public func ref(_ type: RefType, id: String?) async throws -> JSONValue {
        guard let id, !id.isEmpty else { return .null }
        let entry = try await lookup(type, id)
        switch type.scoping {
        case .none:
            return Reference(name: entry.name).json
        case .domain:
            return Reference(name: entry.name, domainName: try await domainName(entry.owner)).json
        case .project:
            let (p, d) = try await projectNames(entry.owner)
            return Reference(name: entry.name, projectName: p, domainName: d).json
        }
    }

    /// A user reference: `%auth%` for the authenticated user.
    public func userRef(id: String?) async throws -> JSONValue {
        guard let id else { return .null }
        if id == userID { return Reference(name: Reference.auth, projectName: nil, domainName: Reference.auth).json }
        return try await ref(.user, id: id)
    }

    /// Names of `id`'s resources of `type` (listing them once).
    public func entry(_ type: RefType, id: String) async throws -> IndexEntry { try await lookup(type, id) }

    func lookup(_ type: RefType, _ id: String) async throws -> IndexEntry {
        if let e = try await index.entries(type).first(where: { $0.id == id }) { return e }
        // Not visible in the listing (another project's, or filtered): ask for it directly.
        if let l = type.listing {
            do {
                let v = try await session.json(APIRequest(l.service, .GET, l.path + "/" + APIPath.escape(id)))
                let inner = v.objectValue?.count == 1 ? (v.objectValue?.first?.value ?? v) : v
                if let e = IndexEntry(inner) {
                    await index.add(type, e)
                    return e
                }
            } catch let e as OpenStackError where e.isNotFound || e.isForbidden {}
        }
        throw ReferenceError("\(type.rawValue) \(id) is referenced but cannot be found in cloud '\(session.profile.name)'")
    }

    /// Project and domain names for an owner; `%auth%` for our own project; nil when not allowed to look.
    func projectNames(_ owner: String?) async throws -> (String?, String?) {
        guard let owner, !owner.isEmpty else { return (nil, nil) }
        if owner == projectID { return (Reference.auth, Reference.auth) }
        if let p = projects[owner] { return p }
        var result: (name: String?, domain: String?) = (nil, nil)
        do {
            let v = try await session.json(APIRequest(ServiceType.identity, .GET, "/projects/" + APIPath.escape(owner)), key: "project")
            result.name = v["name"]?.stringValue
            result.domain = try await domainName(v["domain_id"]?.stringValue)
        } catch let e as OpenStackError where e.isForbidden || e.isNotFound {
            // A tenant may not read other projects: the reference degrades to name-only.
        }
        projects[owner] = result
        return result
    }

    func domainName(_ id: String?) async throws -> String? {
        guard let id else { return nil }
        if let d = domains[id] { return d }
        var name: String? = nil
        do {
            name = try await session.json(APIRequest(ServiceType.identity, .GET, "/domains/" + APIPath.escape(id)), key: "domain")["name"]?.stringValue
        } catch let e as OpenStackError where e.isForbidden || e.isNotFound {}
        domains[id] = name
        return name
    }
}

/// Import side: references to destination ids. Resources created during the import are
/// registered so later kinds find them; in a dry run they get placeholder ids.
public actor ReferenceResolver {
    public static let placeholderPrefix = "(to be created) "

    let session: CloudSession
    let index: CloudIndex
    public let projectID: String
    public let userID: String
    private var projectIDs: [String: String?] = [:]
    private var domainIDs: [String: String] = [:]

    public init(session: CloudSession) async throws {
        self.session = session
        self.index = CloudIndex(session: session)
        projectID = try await session.currentProjectID
        userID = try await session.currentUserID
    }

    /// Tell the resolver about a resource that now exists (or will, in a dry run).
    public func register(_ type: RefType, id: String, name: String, owner: String?) async {
        // No owner: the project for project-scoped types, any domain for projects, users and roles
        // (a created project is not owned by the importing project: it was registered as such and
        // could not be resolved by its domain).
        await index.add(type, IndexEntry(id: id, name: name, owner: owner ?? (type.scoping == .project ? projectID : nil)))
    }

    public func resolve(_ type: RefType, _ ref: Reference) async throws -> String {
        let candidates = try await self.candidates(type, ref)
        if candidates.count == 1 { return candidates[0].id }
        if candidates.isEmpty {
            throw ReferenceError("\(type.rawValue) \(ref) not found in the destination")
        }
        throw ReferenceError("\(candidates.count) \(type.rawValue)s named \(ref) in the destination")
    }

    /// nil when the reference is null.
    public func resolve(_ type: RefType, _ value: JSONValue?) async throws -> String? {
        guard let value, !value.isNull else { return nil }
        guard let ref = Reference(value) else { throw ReferenceError("not a reference: \(value.jsonString())") }
        return try await resolve(type, ref)
    }

    public func exists(_ type: RefType, _ ref: Reference) async throws -> Bool {
        try await !candidates(type, ref).isEmpty
    }

    func candidates(_ type: RefType, _ ref: Reference) async throws -> [IndexEntry] {
        if type == .user && ref.name == Reference.auth { return [IndexEntry(id: userID, name: ref.name, owner: nil)] }
        let all = try await index.entries(type).filter { $0.name == ref.name }
        var owner: String?? = .none
        switch type.scoping {
        case .none: break
        case .project:
            if ref.projectName == Reference.auth {
                // Our own project: a domain named beside it must be our project's.
                if let d = ref.domainName, d != Reference.auth {
                    let token = try await session.authenticate()
                    if try await domainID(named: d) != token.projectDomainID {
                        throw ReferenceError("project_name %auth% is the credentials' project, in domain "
                            + "'\(token.projectDomainName ?? token.projectDomainID ?? "?")', not in domain '\(d)'")
                    }
                }
                owner = .some(projectID)
            } else if let p = ref.projectName {
                owner = .some(try await projectID(named: p, domain: ref.domainName))
            } else if let d = ref.domainName, d != Reference.auth {
                _ = try await domainID(named: d)
            }
        case .domain:
            if let d = ref.domainName, d != Reference.auth { owner = .some(try await domainID(named: d)) }
        }
        var matches = all
        if case .some(.some(let o)) = owner {
            matches = all.filter { $0.owner == o || $0.owner == nil }
        }
        // Deduplicate (a resource registered during the run may also be listed later).
        var seen = Set<String>()
        return matches.filter { seen.insert($0.id).inserted }
    }

    /// A project id by name; nil when we may not look (403), as the reference tool degrades.
    func projectID(named name: String, domain: String?) async throws -> String? {
        let key = "\(domain ?? "")/\(name)"
        if let p = projectIDs[key] { return p }
        var q = [QueryItem("name", name)]
        if let domain, domain != Reference.auth { q.append(QueryItem("domain_id", try await domainID(named: domain))) }
        var result: String? = nil
        do {
            let v = try await session.json(APIRequest(ServiceType.identity, .GET, "/projects", query: q), key: "projects")
            result = v.arrayValue?.first?["id"]?.stringValue
            if result == nil { throw ReferenceError("project '\(name)' not found in the destination") }
        } catch let e as OpenStackError where e.isForbidden {}
        projectIDs[key] = result
        return result
    }

    /// The id of a domain a reference names. The credentials' own domains (their project's and
    /// their user's) need no lookup; another is looked up, and one the destination does not have,
    /// or that the credentials may not look up, is an error: never silently any domain.
    func domainID(named name: String) async throws -> String {
        if let d = domainIDs[name] { return d }
        let token = try await session.authenticate()
        var result: String
        if name == token.projectDomainName, let id = token.projectDomainID {
            result = id
        } else if name == token.userDomainName, let id = token.userDomainID {
            result = id
        } else {
            do {
                let v = try await session.json(APIRequest(ServiceType.identity, .GET, "/domains", query: [QueryItem("name", name)]),
                                               key: "domains")
                guard let id = v.arrayValue?.first?["id"]?.stringValue else {
                    throw ReferenceError("its domain '\(name)' does not exist in the destination")
                }
                result = id
            } catch let e as OpenStackError where e.isForbidden {
                throw ReferenceError("its domain '\(name)' is not the credentials' domain "
                    + "('\(token.projectDomainName ?? token.projectDomainID ?? "?")') and they may not look other domains up")
            }
        }
        domainIDs[name] = result
        return result
    }
}

/// What a dry run of several kinds would create before a later kind needs it: the names in the
/// data files of the kinds imported in the same run. A reference to one of them counts as met
/// (it is in the files), as validation counts it.
public struct PlannedNames: Sendable {
    private var keys: Set<String> = []

    public init() {}

    public init(_ creatable: [(any ResourceKind.Type, [ResourceRecord])]) {
        for (kind, records) in creatable {
            for r in records {
                guard let n = r.name else { continue }
                keys.insert(Self.key(kind.name, n))
                if let t = kind.refType { keys.insert(Self.key(t.rawValue, n)) }
            }
        }
    }

    /// A reference of `type` to a resource in the files (of the project being imported into).
    public func contains(_ type: RefType, _ ref: Reference) -> Bool {
        (ref.projectName == nil || ref.isAuthProject) && keys.contains(Self.key(type.rawValue, ref.name))
    }

    /// A resource of the kind named `kind` (`keypairs`, …) called `name` is in the files.
    public func contains(kind: String, name: String) -> Bool { keys.contains(Self.key(kind, name)) }

    private static func key(_ a: String, _ b: String) -> String { a + "\u{0}" + b }
}
