import Logging
import OpenStack

/// Keystone users (`users.yml`, `openstack.user.User`; admin).
///
/// Found by name in their domain. No password is ever exported or written; import can give the
/// users it creates an initial password from `--user-password-file` (a user that exists keeps
/// its own). The domain cannot change once created.
public enum UserKind: ResourceKind {
    public static let name = "users"
    public static let fileName = "users.yml"
    public static let typeName = "openstack.user.User"
    public static let refType: RefType? = .user
    public static let dependencies = ["projects"]
    public static let requiredParams = ["name", "domain_ref"]
    public static let filterVariable = "os_migrate_users_filter"
    public static let adminOnly = true

    static let fieldMap = FieldMap([
        .ref("default_project_ref", "default_project_id", .project),
        Field("description"),
        .ref("domain_ref", "domain_id", .domain, update: .immutable),
        Field("email"),
        Field("is_enabled", "enabled"),
        Field("name"),
    ], info: [InfoField("default_project_id"), InfoField("domain_id"), InfoField("id")])

    public static func references(_ record: ResourceRecord) -> [FieldReference] { fieldMap.references(record) }

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        for key in ["password", "original_password"] where record.params[key] != nil {
            out.append("params.\(key) is not allowed: passwords never go in data files (use import --user-password-file)")
        }
        if let e = record.params["email"], !e.isNull, e.stringValue == nil { out.append("params.email is not a string") }
        return out
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let users = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.identity, .GET, "/users"), key: "users")
            .collect().compactMap(\.objectValue)
        return try await boundedMap(users, limit: 8) { u in
            ResourceRecord(type: typeName, params: try await params(u, refs: ctx.refs, ctx.logger), info: fieldMap.infoValues(from: u))
        }
    }

    /// Keystone keeps a user's default project id after the project is deleted: such a user has
    /// no default project (`default_project_ref: null`).
    static func params(_ u: JSONObject, refs: ReferenceBuilder, _ logger: Logger) async throws -> JSONObject {
        do {
            return try await fieldMap.params(from: u, refs: refs)
        } catch let e as ReferenceError {
            guard u["default_project_id"]?.stringValue != nil else { throw e }
            logger.warning("user \(u["name"]?.stringValue ?? "?"): default project \(u["default_project_id"]?.stringValue ?? "") is gone: \(e.description)")
            var v = u
            v["default_project_id"] = .null
            return try await fieldMap.params(from: v, refs: refs)
        }
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name else { return .fail(reason: "params.name is missing") }
        guard let domain = try await ctx.resolve(.domain, record, "domain_ref") else { return .fail(reason: "params.domain_ref is null") }
        // Resolve now: a missing default project fails the user, not a later call.
        _ = try await ctx.resolve(.project, record, "default_project_ref")
        let all = try await KindSupport.cachedList(ctx, "users:all", APIRequest(ServiceType.identity, .GET, "/users"), "users")
        guard let current = all.first(where: { $0["name"]?.stringValue == name && $0["domain_id"]?.stringValue == domain }),
              let id = current["id"]?.stringValue
        else {
            let password = ctx.options.userPasswords.password(for: name)
            return .create(detail: password == nil ? "no password" : "initial password from --user-password-file") {
                var body = try await fieldMap.createBody(record, ctx)
                body["domain_id"] = .string(domain)
                if let password { body["password"] = .string(password) }
                return try await ctx.session.create(Keystone.users, body).id
            }
        }
        let currentParams = try await params(current, refs: ctx.current, ctx.logger)
        return fieldMap.step(id: id, desired: record, current: currentParams) { diffs in
            _ = try await ctx.session.update(Keystone.users, id, try await fieldMap.updateBody(diffs, record, ctx))
        }
    }
}
