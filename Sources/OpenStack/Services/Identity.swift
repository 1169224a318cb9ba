import Foundation

// Keystone (identity v3) models and calls.

public struct Project: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var enabled: Bool?
    public var domainID: String?
    public var parentID: String?
    public var isDomain: Bool?
    public var tags: [String]?

    enum CodingKeys: String, CodingKey {
        case id, name, description, enabled, tags
        case domainID = "domain_id", parentID = "parent_id", isDomain = "is_domain"
    }
}

public struct Domain: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var enabled: Bool?
}

public struct User: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var description: String?
    public var email: String?
    public var enabled: Bool?
    public var domainID: String?
    public var defaultProjectID: String?

    enum CodingKeys: String, CodingKey {
        case id, name, description, email, enabled
        case domainID = "domain_id", defaultProjectID = "default_project_id"
    }
}

public struct Role: Codable, Sendable, NamedResource {
    public var id: String
    public var name: String
    public var domainID: String?
    enum CodingKeys: String, CodingKey {
        case id, name
        case domainID = "domain_id"
    }
}

public struct RoleAssignment: Codable, Sendable {
    public struct Named: Codable, Sendable {
        public var id: String
        public var name: String?
        public var domain: NamedRef?
    }
    public struct NamedRef: Codable, Sendable {
        public var id: String?
        public var name: String?
    }
    public struct Scope: Codable, Sendable {
        public var project: Named?
        public var domain: NamedRef?
    }
    public var role: Named
    public var user: Named?
    public var group: Named?
    public var scope: Scope?
}

public enum Keystone {
    public static let projects = APICollection<Project>(service: ServiceType.identity, path: "/projects", singular: "project",
                                                        plural: "projects", updateMethod: .PATCH)
    public static let domains = APICollection<Domain>(service: ServiceType.identity, path: "/domains", singular: "domain",
                                                      plural: "domains", updateMethod: .PATCH)
    public static let users = APICollection<User>(service: ServiceType.identity, path: "/users", singular: "user", plural: "users",
                                                  updateMethod: .PATCH)
    public static let roles = APICollection<Role>(service: ServiceType.identity, path: "/roles", singular: "role", plural: "roles",
                                                  updateMethod: .PATCH)
}

extension CloudSession {
    /// Role assignments, filtered as Keystone allows (`user.id`, `scope.project.id`, `role.id`...).
    public func roleAssignments(_ filters: [QueryItem], includeNames: Bool = true) async throws -> [RoleAssignment] {
        var q = filters
        if includeNames { q.append(QueryItem("include_names", "true")) }
        return try await list(RoleAssignment.self, APIRequest(ServiceType.identity, .GET, "/role_assignments", query: q),
                              key: "role_assignments").collect()
    }

    /// Grant a role to a user on a project (PUT: repeating it is harmless).
    public func grantProjectRole(project: String, user: String, role: String) async throws {
        _ = try await send(APIRequest(ServiceType.identity, .PUT,
                                      "/projects/\(APIPath.escape(project))/users/\(APIPath.escape(user))/roles/\(APIPath.escape(role))"))
    }
}
