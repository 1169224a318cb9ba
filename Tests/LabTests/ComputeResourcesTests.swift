import Foundation
import OpenStack
import Testing
import TestSupport

/// Flavors (admin), keypairs (a tenant's own) and users' keypairs (admin) end to end on the lab.
@Suite("Compute resources migration", .serialized)
struct ComputeResourcesTests {
    static let key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICJZ2sN9LmkdSqGz1x70AhqEyxHbQ9KT5MXMbrZ+jQXN osm-test-1"
    static let key2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA8sLUskBAWFE3QFBEF/+Ky443OStEAqBKLfFYjgEn6W osm-test-2"

    func createFlavor(_ admin: CloudSession, _ body: JSONObject) async throws -> String {
        try await admin.json(APIRequest(ServiceType.compute, .POST, "/flavors", body: ["flavor": .object(body)]), key: "flavor")["id"]?
            .stringValue ?? ""
    }

    /// A flavor as the API shows it, without its id, access by project name.
    func describe(_ admin: CloudSession, name: String, projectPrefix: String) async throws -> JSONValue {
        guard let f = try await admin.list(Nova.flavors, query: [QueryItem("is_public", "None")]).collect().first(where: { $0.name == name })
        else { return .null }
        var access: [String] = []
        if !f.isPublic {
            for p in try await admin.flavorAccess(f.id) {
                access.append(String((try await admin.get(Keystone.projects, p).name).dropFirst(projectPrefix.count)))
            }
        }
        return [
            "vcpus": .int(f.vcpus), "ram": .int(f.ram), "disk": .int(f.disk), "ephemeral": .int(f.ephemeral), "swap": .int(f.swap),
            "rxtx_factor": f.rxtxFactor.map(JSONValue.double) ?? .null, "is_public": .bool(f.isPublic),
            "description": f.description.map(JSONValue.string) ?? .null,
            "extra_specs": .object(try await admin.flavorExtraSpecs(f.id).mapValues(JSONValue.string)),
            "access": .array(access.sorted().map(JSONValue.string)),
        ]
    }

    @Test("flavors: export, import renamed, compare, re-import, edit specs and description, immutable ram fails")
    func flavors() async throws {
        let tag = "osmt-flv-\(Lab.randomHex())"
        try await AdminSweep.with(prefixes: [tag, "osmdst_" + tag]) {
            let admin = try Lab.admin()
            let project = try await admin.create(Keystone.projects, ["name": .string("\(tag)-p1"), "domain_id": "default"])
            let pub = try await createFlavor(admin, [
                "name": .string("\(tag)-pub"), "vcpus": 2, "ram": 256, "disk": 1, "OS-FLV-EXT-DATA:ephemeral": 1, "swap": 128,
                "rxtx_factor": 2.0, "description": "public one",
            ])
            try await admin.setFlavorExtraSpecs(pub, ["hw:cpu_policy": "dedicated", "quota:disk_read_iops_sec": "500"])
            let priv = try await createFlavor(admin, [
                "name": .string("\(tag)-priv"), "vcpus": 1, "ram": 128, "disk": 0, "os-flavor-access:is_public": false,
            ])
            try await admin.addFlavorAccess(priv, project: project.id)

            let env = try MigrationEnv("flv", clouds: ["admin": try Lab.profile("osmlab-admin")])
            defer { env.remove() }
            let filters = ["--filter", "projects=/^\(tag)-/", "--filter", "flavors=/^\(tag)-/"]
            let exp = try await env.run(["export", "projects", "flavors", "--src-cloud", "admin"] + filters)
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            let yaml = try env.file("flavors.yml")
            #expect(yaml.contains("  type: openstack.compute.Flavor\n"))
            #expect(yaml.contains("    rxtx_factor: 2.0\n"))
            #expect(yaml.contains("    access_project_refs:\n    - domain_name: Default\n      name: \(tag)-p1\n      project_name: null\n"))
            #expect(yaml.contains("    id: \(pub)\n"))

            let imp = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            #expect(CLIEvents.count(CLIEvents.recap(imp.stdout), "changed") == 3)
            // Same cloud: the source still holds the id, so Nova picks another and the item says so.
            #expect(CLIEvents.item(imp.stdout, "osmdst_\(tag)-pub")?["message"]?.stringValue
                == "created (id \(pub) is taken by flavor '\(tag)-pub': new id)")
            for name in ["pub", "priv"] {
                let s = try await describe(admin, name: "\(tag)-\(name)", projectPrefix: tag)
                let d = try await describe(admin, name: "osmdst_\(tag)-\(name)", projectPrefix: "osmdst_" + tag)
                #expect(s == d, "\(name): src \(s.jsonString())\ndst \(d.jsonString())")
                #expect(s != .null)
            }

            let again = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            let r = CLIEvents.recap(again.stdout)
            #expect(again.exitCode == 0 && CLIEvents.count(r, "ok") == 3 && CLIEvents.count(r, "api_writes") == 0, "\(again.stdout)")

            // Mutable: description and extra specs (one changed, one added, one removed).
            try env.edit("flavors.yml", "description: public one", "description: public one (edited)")
            try env.edit("flavors.yml", "hw:cpu_policy: dedicated\n      quota:disk_read_iops_sec: '500'",
                         "hw:cpu_policy: shared\n      hw:mem_page_size: large")
            let edit = try await env.run(["import", "flavors", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            #expect(edit.exitCode == 0, "\(edit.stdout)")
            #expect(CLIEvents.items(edit.stdout, "changed") == ["flavors: osmdst_\(tag)-pub"])
            #expect(CLIEvents.item(edit.stdout, "osmdst_\(tag)-pub")?["message"]?.stringValue == "updated: description, extra_specs")
            let d = try await describe(admin, name: "osmdst_\(tag)-pub", projectPrefix: "osmdst_" + tag)
            #expect(d["description"] == "public one (edited)")
            #expect(d["extra_specs"] == ["hw:cpu_policy": "shared", "hw:mem_page_size": "large"])

            // Immutable: a different ram is a failure naming the field, and nothing is written.
            try env.edit("flavors.yml", "    ram: 256\n", "    ram: 512\n")
            let fixed = try await env.run(["import", "flavors", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            #expect(fixed.exitCode == 1)
            #expect(CLIEvents.item(fixed.stdout, "osmdst_\(tag)-pub")?["message"]?.stringValue
                == "differs in fields a flavor cannot change: ram (destination 256, file 512)")
            #expect(CLIEvents.count(CLIEvents.recap(fixed.stdout), "api_writes") == 0)
        }
    }

    @Test("a flavor keeps its id when the destination does not have it")
    func flavorIDKept() async throws {
        let tag = "osmt-flvid-\(Lab.randomHex())"
        try await AdminSweep.with(prefixes: [tag]) {
            let admin = try Lab.admin()
            let id = "\(tag)-id"
            _ = try await createFlavor(admin, ["name": .string("\(tag)-keep"), "vcpus": 1, "ram": 64, "disk": 0, "id": .string(id)])
            let env = try MigrationEnv("flvid", clouds: ["admin": try Lab.profile("osmlab-admin")])
            defer { env.remove() }
            let exp = try await env.run(["export", "flavors", "--src-cloud", "admin", "--filter", "flavors=\(tag)-keep"])
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            // The "source" flavor goes away: the destination (the same cloud) does not have the id.
            try await admin.delete(Nova.flavors, id)
            let imp = try await env.run(["import", "flavors", "--dst-cloud", "admin", "--json"])
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            #expect(CLIEvents.item(imp.stdout, "\(tag)-keep")?["message"]?.stringValue == "created (id \(id) kept)")
            #expect(try await admin.get(Nova.flavors, id).name == "\(tag)-keep")
        }
    }

    @Test("keypairs: the user's own keys, re-import ok, a different key under the same name is a conflict")
    func keypairs() async throws {
        try await LabTenant.with("kpsrc") { src in
            try await LabTenant.with("kpdst") { dst in
                let s = try src.session()
                _ = try await s.createKeypair(name: "k1", publicKey: Self.key1, type: "ssh", userID: nil)
                _ = try await s.createKeypair(name: "k2", publicKey: Self.key2, type: "ssh", userID: nil)
                let env = try MigrationEnv("kp", clouds: ["src": src.profile, "dst": dst.profile])
                defer { env.remove() }
                let exp = try await env.run(["export", "keypairs", "--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")
                let yaml = try env.file("keypairs.yml")
                #expect(yaml.contains("    user_ref:\n      domain_name: '%auth%'\n      name: '%auth%'\n      project_name: null\n"))
                #expect(yaml.contains("  type: openstack.compute.Keypair\n"))
                #expect(!yaml.contains("PRIVATE"))

                // k2 exists in the destination with another key: a conflict, k1 is created anyway.
                let d = try dst.session()
                _ = try await d.createKeypair(name: "k2", publicKey: Self.key1, type: "ssh", userID: nil)
                let imp = try await env.run(["import", "keypairs", "--dst-cloud", "dst", "--json"])
                #expect(imp.exitCode == 1)
                #expect(CLIEvents.items(imp.stdout, "changed") == ["keypairs: k1"])
                #expect(CLIEvents.item(imp.stdout, "k2")?["message"]?.stringValue?.hasPrefix(
                    "conflict: the destination already has a keypair 'k2' with a different public key (fingerprint ") == true)
                #expect(try await d.keypair("k1")?.publicKey == Self.key1)
                #expect(try await d.keypair("k2")?.publicKey == Self.key1)

                try await d.deleteKeypair("k2")
                let fix = try await env.run(["import", "keypairs", "--dst-cloud", "dst", "--json"])
                #expect(fix.exitCode == 0)
                #expect(CLIEvents.items(fix.stdout, "changed") == ["keypairs: k2"])
                #expect(try await d.keypair("k2")?.publicKey == Self.key2)
                #expect(try await d.keypair("k2")?.type == "ssh")

                let again = try await env.run(["import", "keypairs", "--dst-cloud", "dst", "--json"])
                let r = CLIEvents.recap(again.stdout)
                #expect(CLIEvents.count(r, "ok") == 2 && CLIEvents.count(r, "api_writes") == 0, "\(again.stdout)")
            }
        }
    }

    @Test("users' keypairs (admin): created for the renamed user, re-import ok")
    func usersKeypairs() async throws {
        let tag = "osmt-ukp-\(Lab.randomHex())"
        try await AdminSweep.with(prefixes: [tag, "osmdst_" + tag]) {
            let admin = try Lab.admin()
            let user = try await admin.create(Keystone.users, ["name": .string("\(tag)-carol"), "domain_id": "default"])
            _ = try await admin.createKeypair(name: "carol-key", publicKey: Self.key1, type: "ssh", userID: user.id)
            _ = try await admin.createKeypair(name: "carol-other", publicKey: Self.key2, type: "ssh", userID: user.id)
            let env = try MigrationEnv("ukp", clouds: ["admin": try Lab.profile("osmlab-admin")])
            defer { env.remove() }
            let exp = try await env.run(["export", "users", "users-keypairs", "--src-cloud", "admin", "--filter", "users=/^\(tag)-/"])
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            let yaml = try env.file("users_keypairs.yml")
            #expect(yaml.contains("    user_ref:\n      domain_name: Default\n      name: \(tag)-carol\n      project_name: null\n"))
            #expect(yaml.components(separatedBy: "type: openstack.compute.Keypair").count == 3)

            let imp = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            #expect(CLIEvents.items(imp.stdout, "changed") == ["users-keypairs: osmdst_\(tag)-carol: carol-key",
                                                               "users-keypairs: osmdst_\(tag)-carol: carol-other",
                                                               "users: osmdst_\(tag)-carol"])
            let dstUser = try await admin.named(Keystone.users, "osmdst_\(tag)-carol").first!
            let keys = try await admin.keypairs(userID: dstUser.id)
            #expect(Set(keys.map(\.name)) == ["carol-key", "carol-other"])
            #expect(try await admin.keypair("carol-key", userID: dstUser.id)?.publicKey == Self.key1)

            let again = try await env.run(["import", "--dst-cloud", "admin", "--rename-prefix", "osmdst_", "--json"])
            let r = CLIEvents.recap(again.stdout)
            #expect(again.exitCode == 0 && CLIEvents.count(r, "ok") == 3 && CLIEvents.count(r, "api_writes") == 0, "\(again.stdout)")
        }
    }
}
