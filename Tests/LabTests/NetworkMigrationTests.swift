import Foundation
import OpenStack
import Testing
import TestSupport

/// Issue 3 end to end on the lab: seed a source tenant, export, validate, import into a
/// destination tenant, compare through the API, re-import, re-export, edit, dry-run.
@Suite("Network resources migration", .serialized)
struct NetworkMigrationTests {
    static let kinds = ["networks", "subnets", "routers", "router-interfaces", "security-groups", "security-group-rules"]

    struct Env {
        var dir: String
        var data: String
        var clouds: String
        func run(_ args: [String]) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
            try await CLIRunner.run(args + ["--data-dir", data], env: ["OS_CLIENT_CONFIG_FILE": clouds])
        }
        func file(_ name: String) throws -> String {
            try String(contentsOfFile: (data as NSString).appendingPathComponent(name), encoding: .utf8)
        }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: (data as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
    }

    /// JSON lines printed with --json.
    static func events(_ stdout: String) -> [JSONValue] {
        stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
    }

    static func recap(_ stdout: String) -> JSONValue? { events(stdout).last { $0["event"]?.stringValue == "recap" } }

    static func items(_ stdout: String, status: String) -> [String] {
        events(stdout).filter { $0["event"]?.stringValue == "item" && $0["status"]?.stringValue == status }
            .map { "\($0["kind"]?.stringValue ?? ""): \($0["name"]?.stringValue ?? "")" }.sorted()
    }

    @Test("export, validate, import, compare, re-import, re-export, edit, dry-run")
    func fullCycle() async throws {
        try await LabTenant.with("netsrc") { src in
            try await LabTenant.with("netdst") { dst in
                let srcSession = try src.session()
                try await NetworkTopology.seed(srcSession)
                let dir = try LabClouds.tempDir("net")
                let env = Env(dir: dir, data: dir + "/data",
                              clouds: try LabClouds.write(["src": src.profile, "dst": dst.profile], in: dir))

                // Export.
                let exp = try await env.run(["export"] + Self.kinds + ["--src-cloud", "src"])
                #expect(exp.exitCode == 0, "\(exp.stderr)")
                let networksYAML = try env.file("networks.yml")
                #expect(networksYAML.hasPrefix("os_migrate_version: 1.0.5\nresources:\n- _info:\n"))
                #expect(networksYAML.contains("  type: openstack.network.Network\n"))
                let subnetsYAML = try env.file("subnets.yml")
                #expect(subnetsYAML.contains("    gateway_ip: null\n"))
                let routersYAML = try env.file("routers.yml")
                #expect(routersYAML.contains("destination: 172.16.0.0/16"))

                // Validate against the destination.
                let val = try await env.run(["validate", "--dst-cloud", "dst"])
                #expect(val.exitCode == 0, "\(val.stderr)")
                #expect(val.stdout.contains("valid: 6 file(s)"))

                // Import and compare field by field.
                let imp = try await env.run(["import", "--dst-cloud", "dst", "--json"])
                #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
                #expect(Self.recap(imp.stdout)?["failed"]?.intValue == 0)
                let dstSession = try dst.session()
                let srcSnap = try await NetworkTopology.snapshot(srcSession)
                let dstSnap = try await NetworkTopology.snapshot(dstSession)
                for key in (srcSnap.objectValue ?? [:]).keys.sorted() {
                    #expect(srcSnap[key] == dstSnap[key], "\(key) differs:\nsrc \(srcSnap[key]!.jsonString())\ndst \(dstSnap[key]?.jsonString() ?? "nil")")
                }

                // Import again: every item ok, not one write.
                let again = try await env.run(["import", "--dst-cloud", "dst", "--json"])
                #expect(again.exitCode == 0)
                let r = Self.recap(again.stdout)
                #expect(r?["changed"]?.intValue == 0 && r?["failed"]?.intValue == 0, "\(again.stdout)")
                #expect(r?["api_writes"]?.intValue == 0)
                #expect(Self.items(again.stdout, status: "changed").isEmpty)

                // Export again: byte-identical files.
                let before = try Self.kinds.map { try env.file(fileName($0)) }
                let exp2 = try await env.run(["export", "all", "--src-cloud", "src"])
                #expect(exp2.exitCode == 0)
                let after = try Self.kinds.map { try env.file(fileName($0)) }
                #expect(before == after)

                // Edit a network's description and a rule's port: only those change.
                try env.write("networks.yml", try env.file("networks.yml").replacingOccurrences(
                    of: "description: front network", with: "description: front network (edited)"))
                let rules = try env.file("security_group_rules.yml")
                #expect(rules.contains("port_range_max: 443"))
                try env.write("security_group_rules.yml", rules.replacingOccurrences(of: "port_range_max: 443", with: "port_range_max: 444"))
                let dry = try await env.run(["import", "--dst-cloud", "dst", "--json", "--dry-run"])
                #expect(dry.exitCode == 0)
                #expect(Self.recap(dry.stdout)?["api_writes"]?.intValue == 0)
                let expected = ["networks: net-a", "security-group-rules: web ingress IPv4 tcp 443-444 0.0.0.0/0"]
                #expect(Self.items(dry.stdout, status: "changed") == expected)
                let real = try await env.run(["import", "--dst-cloud", "dst", "--json"])
                #expect(Self.items(real.stdout, status: "changed") == expected)
                let net = try await dstSession.named(Neutron.networks, "net-a").first
                #expect(net?.description == "front network (edited)")
                try? FileManager.default.removeItem(atPath: dir)
            }
        }
    }

    func fileName(_ kind: String) -> String { kind.replacingOccurrences(of: "-", with: "_") + ".yml" }
}
