import Foundation
import OpenStack
import Testing
import TestSupport

/// Volume types (admin) end to end on the lab. The lab has one Cinder, so import creates the
/// types under new names (`--rename-prefix volume-types=…`, `--map-name volume-types:…`). The
/// types a run makes are deleted by name prefix afterwards, failed or not.
@Suite("Volume types migration", .serialized)
struct VolumeTypeTests {
    static func type(_ admin: CloudSession, _ body: JSONObject) async throws -> String {
        try await admin.json(APIRequest(ServiceType.blockStorage, .POST, "/types", body: ["volume_type": .object(body)]),
                             key: "volume_type")["id"]?.stringValue ?? ""
    }

    /// Name → (description, is_public, extra specs, access project ids) of the types whose name starts with `prefix`.
    static func snapshot(_ admin: CloudSession, prefix: String) async throws -> [String: JSONValue] {
        let all = try await admin.list(JSONValue.self, APIRequest(ServiceType.blockStorage, .GET, "/types", query: [QueryItem("is_public", "None")]),
                                       key: "volume_types").collect()
        var out: [String: JSONValue] = [:]
        for t in all {
            guard let name = t["name"]?.stringValue, name.hasPrefix(prefix), let id = t["id"]?.stringValue else { continue }
            let isPublic = t["os-volume-type-access:is_public"]?.boolValue ?? true
            var access: [JSONValue] = []
            if !isPublic {
                access = try await admin.json(APIRequest(ServiceType.blockStorage, .GET, "/types/\(id)/os-volume-type-access"),
                                              key: "volume_type_access").arrayValue?.compactMap { $0["project_id"] } ?? []
            }
            out[String(name.dropFirst(prefix.count))] = [
                "description": t["description"] ?? .null, "is_public": .bool(isPublic), "extra_specs": t["extra_specs"] ?? .null,
                "access": .array(access),
            ]
        }
        return out
    }

    static func sweep(_ prefixes: [String]) async {
        guard let admin = try? Lab.admin(),
              let all = try? await admin.list(JSONValue.self, APIRequest(ServiceType.blockStorage, .GET, "/types",
                                                                         query: [QueryItem("is_public", "None")]), key: "volume_types").collect()
        else { return }
        for t in all {
            guard let name = t["name"]?.stringValue, prefixes.contains(where: { name.hasPrefix($0) }), let id = t["id"]?.stringValue else { continue }
            _ = try? await admin.send(APIRequest(ServiceType.blockStorage, .DELETE, "/types/\(id)", acceptedStatuses: [404]))
        }
    }

    @Test("export, import under new names (extra specs and access equal), a rerun is all ok, an edit is applied, __DEFAULT__ is matched")
    func roundTrip() async throws {
        let tag = "osmt-vt-\(Lab.randomHex())"
        let prefixes = [tag, "osmdst_" + tag, "osmmap_" + tag]
        try await AdminSweep.with(prefixes: [tag]) {
            do {
                try await run(tag)
            } catch {
                await Self.sweep(prefixes)
                throw error
            }
            await Self.sweep(prefixes)
        }
    }

    func run(_ tag: String) async throws {
        let admin = try Lab.admin()
        let project = try await admin.create(Keystone.projects, ["name": .string("\(tag)-p"), "domain_id": "default"])
        _ = try await Self.type(admin, [
            "name": .string("\(tag)-pub"), "description": "public type",
            "extra_specs": ["volume_backend_name": .string("osm-\(tag)"), "osm:tier": "gold"],
        ])
        let priv = try await Self.type(admin, [
            "name": .string("\(tag)-priv"), "os-volume-type-access:is_public": false, "extra_specs": ["osm:tier": "silver"],
        ])
        _ = try await admin.send(APIRequest(ServiceType.blockStorage, .POST, "/types/\(priv)/action",
                                            body: ["addProjectAccess": ["project": .string(project.id)]]))

        let env = try MigrationEnv("voltypes", clouds: ["admin": try Lab.profile("osmlab-admin")])
        defer { env.remove() }
        // Every type is exported but Cinder's own __DEFAULT__.
        let exp = try await env.run(["export", "volume-types", "--src-cloud", "admin"])
        #expect(exp.exitCode == 0, "\(exp.stderr)")
        let yaml = try env.file("volume_types.yml")
        #expect(yaml.contains("  type: openstack.block_storage.VolumeType\n"))
        #expect(yaml.contains("name: \(tag)-pub\n") && yaml.contains("name: \(tag)-priv\n"))
        #expect(!yaml.contains("__DEFAULT__"))
        #expect(yaml.contains("    access_project_refs:\n    - domain_name: Default\n      name: \(tag)-p\n      project_name: null\n"))
        let val = try await env.run(["validate", "volume-types"])
        #expect(val.exitCode == 0, "\(val.stdout)\n\(val.stderr)")

        // Import under new names: a prefix for every type, an explicit name for one.
        let args = ["import", "volume-types", "--dst-cloud", "admin", "--filter", "volume-types=/^\(tag)-/",
                    "--rename-prefix", "volume-types=osmdst_", "--map-name", "volume-types:\(tag)-priv=osmmap_\(tag)-priv", "--json"]
        let imp = try await env.run(args)
        #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
        #expect(CLIEvents.items(imp.stdout, "changed") == ["volume-types: osmdst_\(tag)-pub", "volume-types: osmmap_\(tag)-priv"])
        let src = try await Self.snapshot(admin, prefix: tag)
        let dst = try await Self.snapshot(admin, prefix: "osmdst_" + tag)
        let mapped = try await Self.snapshot(admin, prefix: "osmmap_" + tag)
        #expect(src["-pub"] != nil && src["-pub"] == dst["-pub"], "\(src) \(dst)")
        #expect(src["-priv"] != nil && src["-priv"] == mapped["-priv"], "\(src) \(mapped)")
        #expect(mapped["-priv"]?["access"] == [.string(project.id)] && mapped["-priv"]?["is_public"] == false)

        // A rerun changes nothing.
        let again = try await env.run(args)
        let r2 = CLIEvents.recap(again.stdout)
        #expect(again.exitCode == 0 && CLIEvents.count(r2, "ok") == 2 && CLIEvents.count(r2, "api_writes") == 0, "\(again.stdout)")

        // An edit: --dry-run shows it and writes nothing, the import applies it.
        try env.edit("volume_types.yml", "      osm:tier: gold\n", "      osm:tier: platinum\n")
        try env.edit("volume_types.yml", "    description: public type\n", "    description: faster\n")
        let dry = try await env.run(args + ["--dry-run"])
        #expect(dry.exitCode == 0, "\(dry.stdout)")
        let planned = CLIEvents.item(dry.stdout, "osmdst_\(tag)-pub")
        #expect(planned?["status"] == "changed" && planned?["message"]?.stringValue == "would update: description, extra_specs", "\(dry.stdout)")
        #expect(CLIEvents.count(CLIEvents.recap(dry.stdout), "api_writes") == 0)
        let edited = try await env.run(args)
        #expect(edited.exitCode == 0, "\(edited.stdout)")
        #expect(CLIEvents.item(edited.stdout, "osmdst_\(tag)-pub")?["message"]?.stringValue == "updated: description, extra_specs")
        let after = try await Self.snapshot(admin, prefix: "osmdst_" + tag)
        #expect(after["-pub"]?["description"] == "faster")
        #expect(after["-pub"]?["extra_specs"] == ["volume_backend_name": .string("osm-\(tag)"), "osm:tier": "platinum"])

        // __DEFAULT__ exists in every cloud: matched, never created.
        try env.write("volume_types.yml", """
            os_migrate_version: 1.0.5
            resources:
            - _info: {}
              params:
                name: __DEFAULT__
              type: openstack.block_storage.VolumeType

            """)
        let def = try await env.run(["import", "volume-types", "--dst-cloud", "admin", "--json"])
        #expect(def.exitCode == 0 && CLIEvents.items(def.stdout, "ok") == ["volume-types: __DEFAULT__"], "\(def.stdout)")
    }
}
