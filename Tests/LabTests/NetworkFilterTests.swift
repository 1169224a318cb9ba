import Foundation
import OpenStack
import Testing
import TestSupport

/// The reference tool's name filters on the network kinds: `--filter KIND=NAME`,
/// `--filter KIND=/REGEX/`, a vars file's `os_migrate_*_filter` (which `--filter` replaces for
/// its kind); router interfaces follow the routers filter and rules the security groups filter;
/// import reports what a filter leaves out as `skipped`, with the reason.
@Suite("Network kinds: filters", .serialized)
struct NetworkFilterTests {
    static let kinds = ["networks", "subnets", "routers", "router-interfaces", "security-groups", "security-group-rules"]

    static func names(_ yaml: String, _ path: [String]) throws -> [String] {
        let doc = try #require(try YAMLValue.parse(yaml))
        return (doc["resources"]?.arrayValue ?? []).compactMap { r in
            var v: JSONValue? = r["params"]
            for p in path { v = v?[p] }
            return v?.stringValue
        }
    }

    @Test("export and import filters")
    func filters() async throws {
        try await LabTenant.with("netflt") { src in
            let s = try src.session()
            try await NetworkTopology.seed(s)
            // A second router with an interface, for the routers filter to leave out.
            let netB = try #require(try await s.named(Neutron.networks, "net-b").first)
            let subnetB = try #require(try await s.named(Neutron.subnets, "subnet-b-nogw").first)
            let r2 = try await NetworkTopology.post(s, "/routers", "router", ["name": "r2"])
            let port = try await NetworkTopology.post(s, "/ports", "port", [
                "network_id": .string(netB.id), "fixed_ips": [["subnet_id": .string(subnetB.id), "ip_address": "10.20.0.6"]],
            ])
            _ = try await s.addRouterInterface(router: NetworkTopology.id(r2), portID: NetworkTopology.id(port))

            let dir = try LabClouds.tempDir("netflt")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let clouds = try LabClouds.write(["src": src.profile], in: dir)
            func run(_ args: [String], data: String) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
                try await CLIRunner.run(args + ["--data-dir", dir + "/" + data], env: ["OS_CLIENT_CONFIG_FILE": clouds])
            }
            func file(_ data: String, _ name: String) throws -> String {
                try String(contentsOfFile: "\(dir)/\(data)/\(name)", encoding: .utf8)
            }

            // --filter on the command line: a name, a regex; interfaces and rules follow their parents.
            let exp = try await run(["export"] + Self.kinds + ["--src-cloud", "src", "--json", "--filter", "networks=net-b",
                                                               "--filter", "security-groups=/^(web|db)$/", "--filter", "routers=r2"],
                                    data: "cli")
            #expect(exp.exitCode == 0, "\(exp.stderr)")
            #expect(try Self.names(file("cli", "networks.yml"), ["name"]) == ["net-b"])
            #expect(try Self.names(file("cli", "subnets.yml"), ["name"]).sorted() == ["subnet-a4", "subnet-a6", "subnet-b-nogw"])
            #expect(try Self.names(file("cli", "routers.yml"), ["name"]) == ["r2"])
            #expect(try Self.names(file("cli", "router_interfaces.yml"), ["device_ref", "name"]) == ["r2"])
            #expect(try Self.names(file("cli", "security_groups.yml"), ["name"]).sorted() == ["db", "web"])
            let ruleGroups = try Self.names(file("cli", "security_group_rules.yml"), ["security_group_ref", "name"])
            #expect(Set(ruleGroups) == ["db", "web"])
            #expect(ruleGroups.filter { $0 == "web" }.count == 4, "80, 443 and Neutron's two egress rules")
            let skipped = NetworkMigrationTests.events(exp.stdout).filter { $0["status"] == "skipped" }
            #expect(skipped.contains { $0["kind"] == "networks" && $0["name"] == "net-a" && $0["message"] == "filtered out by os_migrate_networks_filter" })
            #expect(skipped.contains { $0["kind"] == "router-interfaces" && $0["message"] == "filtered out by os_migrate_routers_filter" })
            #expect(skipped.contains { $0["kind"] == "security-group-rules" && $0["message"] == "filtered out by os_migrate_security_groups_filter" })

            // A vars file's filter; --filter replaces it for its kind (and only its kind).
            let vars = dir + "/vars.yml"
            try """
                os_migrate_networks_filter:
                  - regex: '^net-a$'
                os_migrate_security_groups_filter:
                  - app

                """.write(toFile: vars, atomically: true, encoding: .utf8)
            let fromVars = try await run(["export", "networks", "security-groups", "--src-cloud", "src", "--vars", vars], data: "vars")
            #expect(fromVars.exitCode == 0, "\(fromVars.stderr)")
            #expect(try Self.names(file("vars", "networks.yml"), ["name"]) == ["net-a"])
            #expect(try Self.names(file("vars", "security_groups.yml"), ["name"]) == ["app"])
            let replaced = try await run(["export", "networks", "security-groups", "--src-cloud", "src", "--vars", vars,
                                          "--filter", "networks=net-b"], data: "replaced")
            #expect(replaced.exitCode == 0, "\(replaced.stderr)")
            #expect(try Self.names(file("replaced", "networks.yml"), ["name"]) == ["net-b"])
            #expect(try Self.names(file("replaced", "security_groups.yml"), ["name"]) == ["app"])

            // Import with filters (into the same project: what passes is already there): what a
            // filter leaves out is `skipped`, with the filter that did it.
            let imp = try await run(["import", "networks", "subnets", "security-groups", "security-group-rules", "--dst-cloud", "src",
                                     "--json", "--filter", "subnets=subnet-b-nogw", "--filter", "security-groups=web"], data: "cli")
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            let events = NetworkMigrationTests.events(imp.stdout).filter { $0["event"] == "item" }
            let skippedNames = events.filter { $0["status"] == "skipped" }.map { "\($0["kind"]?.stringValue ?? ""): \($0["name"]?.stringValue ?? "")" }
            #expect(skippedNames.filter { $0.hasPrefix("subnets:") }.sorted() == ["subnets: subnet-a4", "subnets: subnet-a6"])
            #expect(skippedNames.contains("security-groups: db"))
            #expect(skippedNames.filter { $0.hasPrefix("security-group-rules: db ") }.count == 4)
            for e in events where e["status"] == "skipped" {
                let variable = e["kind"] == "subnets" ? "os_migrate_subnets_filter" : "os_migrate_security_groups_filter"
                #expect(e["message"]?.stringValue == "filtered out by \(variable)", "\(e.jsonString())")
            }
            #expect(events.filter { $0["status"] != "skipped" }.allSatisfy { $0["status"] == "ok" }, "\(imp.stdout)")
            #expect(NetworkMigrationTests.recap(imp.stdout)?["api_writes"]?.intValue == 0)
        }
    }
}
