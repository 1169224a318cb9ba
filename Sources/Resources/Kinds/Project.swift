import OpenStack

/// Keystone projects (`projects.yml`, `openstack.identity.Project`; admin).
///
/// Found by name in their domain. A top-level project's parent is its domain, written as the
/// reference tool writes it (`parent_ref: {name: Default, project_name: null, domain_name: null}`).
/// Parents are created before their children (one after another); domain and parent cannot
/// change once created, so a difference there fails. Beyond the reference tool: `tags`.
public enum ProjectKind: ResourceKind {
    public static let name = "projects"
    public static let fileName = "projects.yml"
    public static let typeName = "openstack.identity.Project"
    public static let refType: RefType? = .project
    public static let requiredParams = ["name", "domain_ref"]
    public static let filterVariable = "os_migrate_projects_filter"
    public static let adminOnly = true

    static let fieldMap = FieldMap([
        Field("description"),
        .ref("domain_ref", "domain_id", .domain, update: .immutable),
        Field("is_domain", "is_domain", create: .skipDefault(false), update: .immutable),
        Field("is_enabled", "enabled"),
        Field("name"),
        // Exported with the field map; resolved by hand (its target may be a domain).
        .ref("parent_ref", "parent_id", .project, create: .never, update: .immutable),
        .list("tags"),
    ], info: [InfoField("domain_id"), InfoField("id"), InfoField("parent_id")])

    /// A parent reference without a domain names a domain (the project is top-level).
    static func parentIsDomain(_ v: JSONValue?) -> Bool {
        guard let r = Reference(v) else { return false }
        return r.domainName == nil && r.projectName == nil
    }

    public static func references(_ record: ResourceRecord) -> [FieldReference] {
        fieldMap.references(record).map { f in
            var f = f
            if f.field == "params.parent_ref" && parentIsDomain(record.params["parent_ref"]) { f.type = .domain }
            return f
        }
    }

    /// All of a tree's projects go one after another, parents first.
    public static func serialKey(_ record: ResourceRecord) -> String? { "projects" }

    public static func importOrder(_ records: [ResourceRecord]) -> [ResourceRecord] {
        KindSupport.parentsFirst(records, name: \.name) { r in
            parentIsDomain(r.params["parent_ref"]) ? nil : Reference(r.params["parent_ref"])?.name
        }
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let projects = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.identity, .GET, "/projects"), key: "projects")
            .collect().compactMap(\.objectValue).filter { $0["is_domain"]?.boolValue != true }
        return try await boundedMap(projects, limit: 8) { p in
            try await KindSupport.unlessGone("project \(p["name"]?.stringValue ?? "?")", ctx.logger) {
                ResourceRecord(type: typeName, params: try await fieldMap.params(from: p, refs: ctx.refs), info: fieldMap.infoValues(from: p))
            }
        }.compactMap { $0 }
    }

    // MARK: import

    static func parentID(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> String? {
        let t: RefType = parentIsDomain(record.params["parent_ref"]) ? .domain : .project
        return try await ctx.resolve(t, record, "parent_ref")
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name else { return .fail(reason: "params.name is missing") }
        guard let domain = try await ctx.resolve(.domain, record, "domain_ref") else { return .fail(reason: "params.domain_ref is null") }
        let all = try await KindSupport.cachedList(ctx, "projects:all", APIRequest(ServiceType.identity, .GET, "/projects"), "projects")
        let found = all.filter { $0["name"]?.stringValue == name && $0["domain_id"]?.stringValue == domain }
        guard let current = found.first, let id = current["id"]?.stringValue else {
            return .create(detail: "") { try await create(record, domain: domain, ctx) }
        }
        let currentParams = try await fieldMap.params(from: current, refs: ctx.current)
        return fieldMap.step(id: id, desired: record, current: currentParams) { diffs in
            _ = try await ctx.session.update(Keystone.projects, id, try await fieldMap.updateBody(diffs, record, ctx))
        }
    }

    static func create(_ record: ResourceRecord, domain: String, _ ctx: ImportContext) async throws -> String {
        var body = try await fieldMap.createBody(record, ctx)
        body["domain_id"] = .string(domain)
        if let parent = try await parentID(record, ctx), parent != domain { body["parent_id"] = .string(parent) }
        return try await ctx.session.create(Keystone.projects, body).id
    }
}
