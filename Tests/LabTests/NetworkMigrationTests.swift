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

                // Edit a network's description and a rule's port 443 -> 444: only those change, and
                // the 443 rule, no longer in the file, is deleted (the file is the only truth).
                try env.write("networks.yml", try env.file("networks.yml").replacingOccurrences(
                    of: "description: front network", with: "description: front network (edited)"))
                let rules = try env.file("security_group_rules.yml")
                #expect(rules.contains("port_range_max: 443") && rules.contains("port_range_min: 443"))
                try env.write("security_group_rules.yml", rules.replacingOccurrences(of: "port_range_max: 443", with: "port_range_max: 444")
                    .replacingOccurrences(of: "port_range_min: 443", with: "port_range_min: 444"))
                let rule444 = "security-group-rules: web ingress IPv4 tcp 444 0.0.0.0/0"
                let rule443 = "security-group-rules: web ingress IPv4 tcp 443 0.0.0.0/0"

                // --dry-run: the plan, values included, and not one write.
                let dry = try await env.run(["import", "--dst-cloud", "dst", "--json", "--dry-run"])
                #expect(dry.exitCode == 0)
                #expect(Self.recap(dry.stdout)?["api_writes"]?.intValue == 0)
                #expect(Self.items(dry.stdout, status: "changed") == ["networks: net-a", rule443, rule444])
                let netEvent = Self.event(dry.stdout, "networks", "net-a")
                #expect(netEvent?["fields"] == ["description"])
                #expect(netEvent?["diff"] == [["field": "description", "from": #""front network""#, "to": #""front network (edited)""#]])
                #expect(netEvent?["message"]?.stringValue == "would update: description")
                let planned = Self.event(dry.stdout, "security-group-rules", "web ingress IPv4 tcp 443 0.0.0.0/0")
                #expect(planned?["action"] == "deleted")
                #expect(planned?["message"]?.stringValue?.hasPrefix("would delete: not in the file (rule ") == true)
                #expect(try await webPorts(dstSession) == [80, 443])
                let dryText = try await env.run(["import", "--dst-cloud", "dst", "--dry-run"])
                #expect(dryText.stdout.contains(#"changed  networks: net-a  (would update: description)  description: "front network" → "front network (edited)""#),
                        "\(dryText.stdout)")
                #expect(dryText.stdout.contains("changed  security-group-rules: web ingress IPv4 tcp 443 0.0.0.0/0  (would delete: not in the file"))

                // --keep-unlisted-rules: the 444 rule is added, the 443 rule stays.
                let keep = try await env.run(["import", "--dst-cloud", "dst", "--json", "--keep-unlisted-rules"])
                #expect(keep.exitCode == 0, "\(keep.stdout)")
                #expect(Self.items(keep.stdout, status: "changed") == ["networks: net-a", rule444])
                #expect(try await webPorts(dstSession) == [80, 443, 444])
                let net = try await dstSession.named(Neutron.networks, "net-a").first
                #expect(net?.description == "front network (edited)")

                // The default: the 443 rule goes, reported as a change that names the group and rule.
                let real = try await env.run(["import", "--dst-cloud", "dst", "--json"])
                #expect(real.exitCode == 0, "\(real.stdout)")
                #expect(Self.items(real.stdout, status: "changed") == [rule443])
                let deleted = Self.event(real.stdout, "security-group-rules", "web ingress IPv4 tcp 443 0.0.0.0/0")
                #expect(deleted?["action"] == "deleted")
                #expect(deleted?["message"]?.stringValue?.hasPrefix("deleted: not in the file (rule ") == true)
                #expect(try await webPorts(dstSession) == [80, 444])
                // The old flag is still accepted (deleting is the default now); nothing is left to do.
                let final = try await env.run(["import", "--dst-cloud", "dst", "--json", "--prune-rules"])
                #expect(final.exitCode == 0, "\(final.stderr)")
                #expect(Self.recap(final.stdout)?["changed"]?.intValue == 0 && Self.recap(final.stdout)?["api_writes"]?.intValue == 0)
                try? FileManager.default.removeItem(atPath: dir)
            }
        }
    }

    func fileName(_ kind: String) -> String { kind.replacingOccurrences(of: "-", with: "_") + ".yml" }

    /// The item event for one resource.
    static func event(_ stdout: String, _ kind: String, _ name: String) -> JSONValue? {
        events(stdout).first { $0["event"]?.stringValue == "item" && $0["kind"]?.stringValue == kind && $0["name"]?.stringValue == name }
    }

    /// The TCP ports of the destination's `web` group rules.
    func webPorts(_ s: CloudSession) async throws -> [Int] {
        let web = try #require(try await s.named(Neutron.securityGroups, "web").first)
        return try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/security-group-rules",
                                                           query: [QueryItem("security_group_id", web.id)]), key: "security_group_rules")
            .collect().compactMap { $0["port_range_min"]?.intValue }.sorted()
    }
}
