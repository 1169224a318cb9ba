import Foundation
import OpenStack
import Testing
import TestSupport

/// Projects, users and user-project role assignments (admin) end to end on the lab. Source and
/// destination are the same cloud, so import renames with `--rename-prefix osmdst_` and every
/// reference follows the renaming.
@Suite("Identity resources migration", .serialized)
struct IdentityResourcesTests {
    static let kinds = ["projects", "users", "user-project-role-assignments"]

    struct Seed {
        var tag: String
        var projects: [String: String] = [:]
        var users: [String: String] = [:]
    }

    /// Three projects (one a child, one disabled, with tags), two users, three role assignments.
    func seed(_ admin: CloudSession, tag: String) async throws -> Seed {
        var s = Seed(tag: tag)
        let parent = try await admin.create(Keystone.projects, [
            "name": .string("\(tag)-parent"), "domain_id": "default", "description": "parent project", "tags": ["blue", "alpha"],
        ])
        s.projects["parent"] = parent.id
        s.projects["child"] = try await admin.create(Keystone.projects, [
            "name": .string("\(tag)-child"), "domain_id": "default", "parent_id": .string(parent.id), "description": "child project",
        ]).id
        s.projects["off"] = try await admin.create(Keystone.projects, [
            "name": .string("\(tag)-off"), "domain_id": "default", "enabled": false,
        ]).id
        s.users["alice"] = try await admin.create(Keystone.users, [
            "name": .string("\(tag)-alice"), "domain_id": "default", "email": "alice@example.org", "description": "Alice",
            "default_project_id": .string(parent.id),
        ]).id
        s.users["bob"] = try await admin.create(Keystone.users, [
            "name": .string("\(tag)-bob"), "domain_id": "default", "enabled": false, "default_project_id": .string(s.projects["child"]!),
        ]).id
        let member = try await admin.named(Keystone.roles, "member").first!.id
        let reader = try await admin.named(Keystone.roles, "reader").first!.id
        try await admin.grantProjectRole(project: parent.id, user: s.users["alice"]!, role: member)
        try await admin.grantProjectRole(project: s.projects["child"]!, user: s.users["alice"]!, role: reader)
        try await admin.grantProjectRole(project: s.projects["child"]!, user: s.users["bob"]!, role: member)
        return s
    }

    /// The identity of names starting with `prefix`, ids replaced by names.
    func snapshot(_ admin: CloudSession, prefix: String) async throws -> JSONValue {
        let projects = try await admin.list(Keystone.projects).collect().filter { $0.name.hasPrefix(prefix) }
        let users = try await admin.list(Keystone.users).collect().filter { $0.name.hasPrefix(prefix) }
        let roles = try await admin.list(Keystone.roles).collect()
        var names: [String: String] = ["default": "(domain Default)"]
        for p in projects { names[p.id] = String(p.name.dropFirst(prefix.count)) }
        for u in users { names[u.id] = String(u.name.dropFirst(prefix.count)) }
        for r in roles { names[r.id] = r.name }
        func n(_ id: String?) -> JSONValue { id.map { .string(names[$0] ?? "?\($0)") } ?? .null }
        var out: JSONObject = [:]
        for p in projects {
            out["project " + (names[p.id] ?? "")] = [
                "description": p.description.map(JSONValue.string) ?? .null, "enabled": p.enabled.map(JSONValue.bool) ?? .null,
                "parent": n(p.parentID), "tags": .array((p.tags ?? []).sorted().map(JSONValue.string)),
            ]
        }
        for u in users {
            out["user " + (names[u.id] ?? "")] = [
                "email": u.email.map(JSONValue.string) ?? .null, "description": u.description.map(JSONValue.string) ?? .null,
                "enabled": u.enabled.map(JSONValue.bool) ?? .null, "default_project": n(u.defaultProjectID),
            ]
        }
        var grants: [String] = []
        for p in projects {
            for a in try await admin.roleAssignments([QueryItem("scope.project.id", p.id)], includeNames: false)
            where a.user != nil && users.contains(where: { $0.id == a.user?.id })
            {
                grants.append("\(names[a.user!.id] ?? "?") \(names[a.role.id] ?? "?") on \(names[p.id] ?? "?")")
            }
        }
        out["grants"] = .array(grants.sorted().map(JSONValue.string))
        return .object(out)
    }

    @Test("export, validate, import renamed with passwords, compare, re-import, re-export, edit, immutable parent")
    func fullCycle() async throws {
        let tag = "osmt-id-\(Lab.randomHex())"
        try await AdminSweep.with(prefixes: [tag, "osmdst_" + tag]) {
            let admin = try Lab.admin()
            _ = try await seed(admin, tag: tag)
            let env = try MigrationEnv("id", clouds: ["admin": try Lab.profile("osmlab-admin")])
            defer { env.remove() }
            let filters = ["--filter", "projects=/^\(tag)-/", "--filter", "users=/^\(tag)-/",
                           "--filter", "user-project-role-assignments=/^\(tag)-/"]

            // Export.
            let exp = try await env.run(["export"] + Self.kinds + ["--src-cloud", "admin"] + filters)
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            let projectsYAML = try env.file("projects.yml")
            #expect(projectsYAML.hasPrefix("os_migrate_version: 1.0.5\nresources:\n"))
            #expect(projectsYAML.contains("    parent_ref:\n      domain_name: Default\n      name: \(tag)-parent\n      project_name: null\n"))
            #expect(projectsYAML.contains("    parent_ref:\n      domain_name: null\n      name: Default\n      project_name: null\n"))
            #expect(projectsYAML.contains("  type: openstack.identity.Project\n"))
            let usersYAML = try env.file("users.yml")
            #expect(usersYAML.contains("  type: openstack.user.User\n"))
            #expect(!usersYAML.contains("password"))
            let grantsYAML = try env.file("user_project_role_assignments.yml")
            #expect(grantsYAML.components(separatedBy: "type: openstack.identity.UserProjectRoleAssignment").count == 4)

            // The reference tool's validator forgot role assignments: ours knows them.
            let val = try await env.run(["validate"])
            #expect(val.exitCode == 0, "\(val.stderr)")
            #expect(val.stdout.contains("valid: 3 file(s), 8 resource(s)"))

            // Import under new names, alice with an initial password.
            let password = "Pw-" + Lab.randomHex(16) + "-x"
            let pwFile = env.dir + "/passwords.yml"
            try "\(tag)-alice: '\(password)'\n".write(toFile: pwFile, atomically: true, encoding: .utf8)
            let imp = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--user-password-file", pwFile, "--json"])
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            #expect(!imp.stdout.contains(password) && !imp.stderr.contains(password))
            let r1 = CLIEvents.recap(imp.stdout)
            #expect(CLIEvents.count(r1, "changed") == 8 && CLIEvents.count(r1, "failed") == 0, "\(imp.stdout)")
            #expect(CLIEvents.item(imp.stdout, "osmdst_\(tag)-alice")?["message"]?.stringValue == "created (initial password from --user-password-file)")
            #expect(CLIEvents.item(imp.stdout, "osmdst_\(tag)-bob")?["message"]?.stringValue == "created (no password)")

            // Same identity under the new names; the password works.
            let src = try await snapshot(admin, prefix: tag + "-")
            let dst = try await snapshot(admin, prefix: "osmdst_" + tag + "-")
            #expect(src == dst, "src \(src.jsonString())\ndst \(dst.jsonString())")
            #expect((src.objectValue ?? [:]).count == 6)
            let alice = CloudProfile(name: "alice", origin: "test",
                                     auth: ["auth_url": Lab.authURL, "username": "osmdst_\(tag)-alice", "password": password,
                                            "project_name": "osmdst_\(tag)-parent", "user_domain_name": "Default",
                                            "project_domain_name": "Default"], regionName: "RegionOne")
            let token = try await Lab.session(alice).authenticate()
            #expect(token.roles.contains("member"))

            // Again: every item ok, not one write.
            let again = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            let r2 = CLIEvents.recap(again.stdout)
            #expect(again.exitCode == 0 && CLIEvents.count(r2, "ok") == 8 && CLIEvents.count(r2, "api_writes") == 0, "\(again.stdout)")

            // Export again: byte-identical files.
            let before = try Self.kinds.map { try env.file($0.replacingOccurrences(of: "-", with: "_") + ".yml") }
            let exp2 = try await env.run(["export"] + Self.kinds + ["--src-cloud", "admin"] + filters)
            #expect(exp2.exitCode == 0)
            #expect(try Self.kinds.map { try env.file($0.replacingOccurrences(of: "-", with: "_") + ".yml") } == before)

            // Edit what can change: exactly those items change.
            try env.edit("projects.yml", "description: parent project", "description: parent project (edited)")
            try env.edit("users.yml", "email: alice@example.org", "email: alice@example.net")
            let dry = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json", "--dry-run"])
            #expect(CLIEvents.count(CLIEvents.recap(dry.stdout), "api_writes") == 0)
            let expected = ["projects: osmdst_\(tag)-parent", "users: osmdst_\(tag)-alice"]
            #expect(CLIEvents.items(dry.stdout, "changed") == expected)
            let real = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            #expect(CLIEvents.items(real.stdout, "changed") == expected)
            #expect(CLIEvents.item(real.stdout, "osmdst_\(tag)-alice")?["message"]?.stringValue == "updated: email")
            let edited = try await snapshot(admin, prefix: "osmdst_" + tag + "-")
            #expect(edited["project parent"]?["description"] == "parent project (edited)")
            #expect(edited["user alice"]?["email"] == "alice@example.net")

            // A project cannot move: a different parent fails, naming the field, and changes nothing.
            try env.edit("projects.yml", "      name: \(tag)-parent\n", "      name: \(tag)-off\n")
            let moved = try await env.run(["import", "projects", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            #expect(moved.exitCode == 1)
            let failed = CLIEvents.item(moved.stdout, "osmdst_\(tag)-child")
            #expect(failed?["status"] == "failed")
            #expect(failed?["message"]?.stringValue == "differs in fields that cannot change after creation: parent_ref (destination {\"domain_name\":\"Default\",\"name\":\"osmdst_\(tag)-parent\",\"project_name\":null}, file {\"domain_name\":\"Default\",\"name\":\"osmdst_\(tag)-off\",\"project_name\":null})")
            #expect(CLIEvents.count(CLIEvents.recap(moved.stdout), "api_writes") == 0)
        }
    }

    @Test("ids Keystone and Nova keep after the project is deleted: the export leaves them out, with no failure")
    func danglingReferences() async throws {
        let tag = "osmt-iddang-\(Lab.randomHex())"
        try await AdminSweep.with(prefixes: [tag]) {
            let admin = try Lab.admin()
            let gone = try await admin.create(Keystone.projects, ["name": .string("\(tag)-gone"), "domain_id": "default"])
            let kept = try await admin.create(Keystone.projects, ["name": .string("\(tag)-kept"), "domain_id": "default"])
            _ = try await admin.create(Keystone.users, ["name": .string("\(tag)-u"), "domain_id": "default",
                                                        "default_project_id": .string(gone.id)])
            let flavor = try await admin.json(APIRequest(ServiceType.compute, .POST, "/flavors", body: ["flavor": [
                "name": .string("\(tag)-f"), "vcpus": 1, "ram": 64, "disk": 0, "os-flavor-access:is_public": false,
            ]]), key: "flavor")["id"]?.stringValue ?? ""
            try await admin.addFlavorAccess(flavor, project: gone.id)
            try await admin.addFlavorAccess(flavor, project: kept.id)
            try await admin.delete(Keystone.projects, gone.id)
            let env = try MigrationEnv("iddang", clouds: ["admin": try Lab.profile("osmlab-admin")])
            defer { env.remove() }
            let exp = try await env.run(["export", "users", "flavors", "--src-cloud", "admin", "--filter", "users=/^\(tag)-/",
                                         "--filter", "flavors=/^\(tag)-/"])
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            #expect(try env.file("users.yml").contains("    default_project_ref: null\n"))
            let flavors = try env.file("flavors.yml")
            #expect(flavors.contains("    access_project_refs:\n    - domain_name: Default\n      name: \(tag)-kept\n      project_name: null\n    description"))
        }
    }

    @Test("a name mapping renames one project and every reference to it")
    func mapName() async throws {
        let tag = "osmt-idmap-\(Lab.randomHex())"
        try await AdminSweep.with(prefixes: [tag, "osmdst_" + tag, "other-" + tag]) {
            let admin = try Lab.admin()
            _ = try await seed(admin, tag: tag)
            let env = try MigrationEnv("idmap", clouds: ["admin": try Lab.profile("osmlab-admin")])
            defer { env.remove() }
            let exp = try await env.run(["export"] + Self.kinds + ["--src-cloud", "admin", "--filter", "projects=/^\(tag)-/",
                                                                    "--filter", "users=/^\(tag)-/", "--filter", "user-project-role-assignments=/^\(tag)-/"])
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            // An explicit mapping wins over the prefix.
            let imp = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_",
                                         "--map-name", "projects:\(tag)-child=other-\(tag)-kid", "--json"])
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            let kid = try await admin.named(Keystone.projects, "other-\(tag)-kid").first
            let parent = try await admin.named(Keystone.projects, "osmdst_\(tag)-parent").first
            #expect(kid != nil && kid?.parentID == parent?.id)
            let bob = try await admin.named(Keystone.users, "osmdst_\(tag)-bob").first
            #expect(bob?.defaultProjectID == kid?.id)
            let grants = try await admin.roleAssignments([QueryItem("scope.project.id", kid?.id ?? "-")], includeNames: true)
            #expect(Set(grants.compactMap { $0.user?.name }) == ["osmdst_\(tag)-alice", "osmdst_\(tag)-bob"])
        }
    }
}
