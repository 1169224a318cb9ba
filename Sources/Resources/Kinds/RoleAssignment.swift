import OpenStack

/// A user's role on a project (`user_project_role_assignments.yml`,
/// `openstack.identity.UserProjectRoleAssignment`; admin). Direct assignments of users on
/// projects only (not groups, domains, the system, or inherited ones). Import grants what is
/// missing and reports `ok` for what exists; it never revokes.
public enum RoleAssignmentKind: ResourceKind {
    public static let name = "user-project-role-assignments"
    public static let fileName = "user_project_role_assignments.yml"
    public static let typeName = "openstack.identity.UserProjectRoleAssignment"
    public static let dependencies = ["projects", "users"]
    public static let requiredParams = ["project_ref", "role_ref", "user_ref"]
    public static let isNamed = false
    public static let filterVariable = "os_migrate_user_filter"
    public static let filterPath = "user_ref.name"
    public static let adminOnly = true

    static let fieldMap = FieldMap([
        .ref("project_ref", "project_id", .project),
        .ref("role_ref", "role_id", .role),
        .ref("user_ref", "user_id", .user),
    ], info: [InfoField("project_id"), InfoField("role_id"), InfoField("user_id")])

    public static func references(_ record: ResourceRecord) -> [FieldReference] { fieldMap.references(record) }

    public static func label(_ record: ResourceRecord) -> String {
        let n = { (k: String) in record.value(at: "\(k).name")?.stringValue ?? "?" }
        return "\(n("user_ref")) \(n("role_ref")) on \(n("project_ref"))"
    }

    /// The reference tool's identity: the source ids of the triple.
    public static func exportIdentity(_ record: ResourceRecord) -> String? {
        let ids = ["project_id", "role_id", "user_id"].map { record.info[$0]?.stringValue }
        guard ids.allSatisfy({ $0 != nil }) else { return nil }
        return "\(record.type):" + ids.map { $0! }.joined(separator: ":")
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let all = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.identity, .GET, "/role_assignments"),
                                             key: "role_assignments").collect()
        let direct = all.filter { a in
            a["user"]?["id"]?.stringValue != nil && a["scope"]?["project"]?["id"]?.stringValue != nil
                && a["scope"]?["OS-INHERIT:inherited_to"] == nil
        }
        return try await boundedMap(direct, limit: 8) { a in
            let user = a["user"]?["id"]?.stringValue
            let project = a["scope"]?["project"]?["id"]?.stringValue
            let role = a["role"]?["id"]?.stringValue
            return try await KindSupport.unlessGone("role assignment \(user ?? "?") \(role ?? "?") on \(project ?? "?")", ctx.logger) {
                ResourceRecord(type: typeName, params: [
                    "project_ref": try await ctx.refs.ref(.project, id: project),
                    "role_ref": try await ctx.refs.ref(.role, id: role),
                    "user_ref": try await ctx.refs.userRef(id: user),
                ], info: ["project_id": project.map(JSONValue.string) ?? .null, "role_id": role.map(JSONValue.string) ?? .null,
                          "user_id": user.map(JSONValue.string) ?? .null])
            }
        }.compactMap { $0 }
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let project = try await ctx.resolve(.project, record, "project_ref"),
              let role = try await ctx.resolve(.role, record, "role_ref"),
              let user = try await ctx.resolve(.user, record, "user_ref")
        else { return .fail(reason: "params.project_ref, role_ref and user_ref must not be null") }
        let id = "\(project):\(user):\(role)"
        let grant: ImportStep = .create(detail: "") {
            try await ctx.session.grantProjectRole(project: project, user: user, role: role)
            return id
        }
        if [project, role, user].contains(where: KindSupport.isPlaceholder) { return grant }
        // The project's assignments, listed once for all the records on it.
        let existing = try await ctx.cache.value("role_assignments:" + project) {
            .array(try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.identity, .GET, "/role_assignments",
                                                                         query: [QueryItem("scope.project.id", project)]),
                                              key: "role_assignments").collect())
        }.arrayValue ?? []
        let present = existing.contains { a in
            a["user"]?["id"]?.stringValue == user && a["role"]?["id"]?.stringValue == role
                && a["scope"]?["OS-INHERIT:inherited_to"] == nil
        }
        return present ? .ok(id: id) : grant
    }
}
