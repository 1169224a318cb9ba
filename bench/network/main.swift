// Network resources benchmark (issue 3): seed a source tenant with the scale topology, then
// time export, import into an empty destination, and re-import, against the floor: the same
// creates issued directly to Neutron, 8 at a time (router interfaces one after another),
// measured in the same run as the seeding of the source.
//
//   swift run -c release network-bench [N]      (N = 30 by default; the lab's quotas allow 100)
import Foundation
import OpenStack
import TestSupport

@main
struct NetworkBench {
    static func main() async throws {
        let n = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 30 : 30
        print("network benchmark, N = \(n): \(n) networks with a /24 subnet, \(n) security groups x 7 rules, 1 router with a gateway and 10 interfaces")
        let src = try await LabTenant.create("bench-src")
        let dst = try await LabTenant.create("bench-dst")
        do {
            try await run(n: n, src: src, dst: dst)
        } catch {
            print("benchmark failed: \(error)")
        }
        try? await src.purge()
        try? await dst.purge()
        await Lab.transport.shutdown()
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func run(n: Int, src: LabTenant, dst: LabTenant) async throws {
        let s = try src.session()
        let clock = ContinuousClock()
        let public_ = try await s.named(Neutron.networks, "public").first!

        // The floor: every create, 8 at a time, in dependency waves.
        var creates = 0
        let t0 = clock.now
        let nets = try await concurrently(Array(0..<n)) { i in
            try await s.create(Neutron.networks, ["name": .string(String(format: "bench-net-%03d", i))])
        }
        creates += nets.count
        let subnets = try await concurrently(Array(nets.enumerated())) { i, net in
            try await s.create(Neutron.subnets, ["name": .string(String(format: "bench-subnet-%03d", i)), "network_id": .string(net.id),
                                                 "ip_version": 4, "cidr": .string("10.\(100 + i / 200).\(i % 200).0/24")])
        }
        creates += subnets.count
        let sgs = try await concurrently(Array(0..<n)) { i in
            try await s.create(Neutron.securityGroups, ["name": .string(String(format: "bench-sg-%03d", i))])
        }
        creates += sgs.count
        let ruleSpecs: [(String, JSONObject)] = sgs.flatMap { sg in
            [22, 80, 443, 5432, 8080].map { port in
                (sg.id, ["direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": .int(port),
                         "port_range_max": .int(port), "remote_ip_prefix": "10.0.0.0/8"] as JSONObject)
            } + [(sg.id, ["direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"] as JSONObject),
                 (sg.id, ["direction": "ingress", "ethertype": "IPv4", "protocol": "udp", "port_range_min": 53, "port_range_max": 53] as JSONObject)]
        }
        _ = try await concurrently(ruleSpecs) { sg, spec in
            var b = spec
            b["security_group_id"] = .string(sg)
            return try await s.create(Neutron.securityGroupRules, b)
        }
        creates += ruleSpecs.count
        let router = try await s.create(Neutron.routers, ["name": "bench-router", "external_gateway_info": ["network_id": .string(public_.id)]])
        creates += 1
        for sub in subnets.prefix(10) {
            try await s.addRouterInterface(router: router.id, subnetID: sub.id)
            creates += 1
        }
        let floor = seconds(clock.now - t0)

        let dir = try LabClouds.tempDir("bench")
        let clouds = try LabClouds.write(["src": src.profile, "dst": dst.profile], in: dir)
        func cli(_ args: [String]) async throws -> (Double, JSONValue?) {
            let t = clock.now
            let r = try await CLIRunner.run(args + ["--data-dir", dir + "/data", "--json"], env: ["OS_CLIENT_CONFIG_FILE": clouds], timeout: 3600)
            let d = seconds(clock.now - t)
            guard r.exitCode == 0 else { throw BenchError("os-migrate \(args.joined(separator: " ")) failed: \(r.stderr)\(r.stdout.suffix(2000))") }
            let last = r.stdout.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            return (d, last)
        }
        let kinds = ["networks", "subnets", "routers", "router-interfaces", "security-groups", "security-group-rules"]
        let (exportTime, _) = try await cli(["export"] + kinds + ["--src-cloud", "src"])
        let (importTime, importRecap) = try await cli(["import"] + kinds + ["--dst-cloud", "dst"])
        let (reimportTime, reimportRecap) = try await cli(["import"] + kinds + ["--dst-cloud", "dst"])
        let resources = (importRecap?["ok"]?.intValue ?? 0) + (importRecap?["changed"]?.intValue ?? 0)
        func row(_ name: String, _ t: Double, _ recap: JSONValue?) -> String {
            let calls = recap?["api_calls"]?.intValue
            let perRes = calls.map { String(format: "%.2f", Double($0) / Double(max(resources, 1))) } ?? "-"
            return String(format: "%-10@ %8.2f s %8.1f res/s   API calls/resource %@   writes %@", name, t, Double(resources) / t, perRes,
                          recap?["api_writes"]?.intValue.map(String.init) ?? "-")
        }
        print("resources in the files: \(resources) (floor created \(creates) directly)")
        print(String(format: "floor      %8.2f s  (direct creates, 8 at a time, interfaces serial)", floor))
        print(row("export", exportTime, nil))
        print(row("import", importTime, importRecap))
        print(row("re-import", reimportTime, reimportRecap))
        print(String(format: "import / floor = %.2f   (goal <= 1.2)", importTime / floor))
        print(String(format: "export %.2f s (goal <= 3 s at N=30), re-import %.2f s with %d writes (goal <= 3 s, 0 writes)", exportTime, reimportTime,
                     reimportRecap?["api_writes"]?.intValue ?? -1))
        if n == 30 {
            print(String(format: "vs the Ansible os-migrate measured on this lab (issue 3): export 156 s (%.0fx), import 305 s (%.0fx), re-import 276 s (%.0fx)",
                         156 / exportTime, 305 / importTime, 276 / reimportTime))
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func concurrently<T: Sendable, R: Sendable>(_ items: [T], _ f: @escaping @Sendable (T) async throws -> R) async throws -> [R] {
        try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var out = [R?](repeating: nil, count: items.count)
            var next = 0
            for _ in 0..<min(8, items.count) {
                let i = next
                group.addTask { (i, try await f(items[i])) }
                next += 1
            }
            while let (i, r) = try await group.next() {
                out[i] = r
                if next < items.count {
                    let j = next
                    group.addTask { (j, try await f(items[j])) }
                    next += 1
                }
            }
            return out.map { $0! }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
