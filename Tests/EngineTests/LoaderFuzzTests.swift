import Engine
import Foundation
import OpenStack
import Resources
import Testing
import TestSupport

/// Random mutations of valid data files through the loader and validation (issue 13): never a
/// crash, never a hang, and every refusal is one line naming the file. Nothing here can write to
/// a cloud; the lab suites prove that refusals come before the first write.
@Suite("Data file loader under random mutations")
struct LoaderFuzzTests {
    static let valid: [(file: String, kind: any ResourceKind.Type, text: String)] = [
        ("networks.yml", NetworkKind.self, """
            os_migrate_version: 1.0.5
            resources:
            - _info: {id: n1, project_id: p}
              _migration_params: {}
              params: {name: net-a, description: 'the a net', is_admin_state_up: true, mtu: 1450, tags: [x, y]}
              type: openstack.network.Network
            - params: {name: net-b, dns_domain: example.org., availability_zone_hints: []}
              type: openstack.network.Network
            """),
        ("subnets.yml", SubnetKind.self, """
            os_migrate_version: 1.0.5
            resources:
            - params:
                name: sub-a
                network_ref: {name: net-a, project_name: p, domain_name: Default}
                cidr: 10.1.0.0/24
                ip_version: 4
                gateway_ip: 10.1.0.1
                allocation_pools: [{start: 10.1.0.10, end: 10.1.0.99}]
                dns_nameservers: [8.8.8.8]
                host_routes: [{destination: 10.2.0.0/16, nexthop: 10.1.0.5}]
              type: openstack.subnet.Subnet
            """),
        ("security_group_rules.yml", SecurityGroupRuleKind.self, """
            os_migrate_version: 1.0.5
            resources:
            - params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 10.0.0.0/8}
              type: openstack.network.SecurityGroupRule
            - params: {security_group_ref: {name: g}, direction: egress, ether_type: IPv6, protocol: null, remote_group_ref: {name: g}}
              type: openstack.network.SecurityGroupRule
            """),
        ("flavors.yml", FlavorKind.self, """
            os_migrate_version: 1.0.5
            resources:
            - params: {name: f1, vcpus: 2, ram: 2048, disk: 20, ephemeral: 0, swap: 0, is_public: true, extra_specs: {'hw:cpu_policy': dedicated}}
              type: openstack.compute.Flavor
            """),
        ("routers.yml", RouterKind.self, """
            os_migrate_version: 1.0.5
            resources:
            - params: {name: r1, is_admin_state_up: true, routes: [{destination: 10.9.0.0/16, nexthop: 10.1.0.7}]}
              type: openstack.network.Router
            """),
    ]

    /// xorshift64*: the same seed, the same mutations.
    struct RNG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
        mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    }

    static let pieces = [":", "-", "[", "]", "{", "}", "&a", "*a", "!!str", "|", ">", "'", "\"", "#", "%", "@", "\n", "\t", "\0",
                         "\u{1B}[2J", "  ", "\n  - ", "1e999", "-99999999999999999999", "~", "null", "yes", "0x1F", "<<: *a", "é", "\u{FEFF}"]

    static func mutate(_ text: String, _ rng: inout RNG) -> String {
        var s = Array(text.unicodeScalars)
        for _ in 0...rng.below(3) {
            guard !s.isEmpty else { break }
            let at = rng.below(s.count)
            switch rng.below(6) {
            case 0: s.removeSubrange(at..<min(s.count, at + 1 + rng.below(12)))
            case 1: s.insert(contentsOf: pieces[rng.below(pieces.count)].unicodeScalars, at: at)
            case 2: s[at] = Unicode.Scalar(UInt8(rng.below(128)))
            case 3:
                let end = min(s.count, at + rng.below(80))
                s.insert(contentsOf: s[at..<end], at: end)
            case 4: s = Array(s[..<at])
            default:
                let b = rng.below(s.count)
                s.swapAt(at, b)
            }
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: s)
        return String(out)
    }

    @Test("3,000 mutants: each loads and validates or is refused in one line naming the file; all within a minute")
    func mutants() throws {
        let dir = try TempDir.make("fuzz")
        defer { dir.remove() }
        var rng = RNG(state: 0x9E37_79B9_7F4A_7C15)
        let start = ContinuousClock.now
        var refused = 0, loaded = 0
        for i in 0..<3000 {
            let base = Self.valid[i % Self.valid.count]
            let text = Self.mutate(base.text, &rng)
            let path = dir.path + "/" + base.file
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let t0 = ContinuousClock.now
            do {
                let file = try ResourceFile.load(path)
                let problems = Validator.check([KindFile(kind: base.kind, file: file)])
                for p in problems {
                    #expect(p.hasPrefix(path), "mutant \(i): \(p)")
                }
                loaded += 1
            } catch let e as DataFileError {
                let line = e.description
                #expect(line.hasPrefix(path + ": "), "mutant \(i): \(line)")
                #expect(!line.contains("\n"), "mutant \(i): more than one line: \(line)\n--- text:\n\(text)")
                refused += 1
            }
            #expect(ContinuousClock.now - t0 < .seconds(2), "mutant \(i) took \(ContinuousClock.now - t0)")
        }
        #expect(ContinuousClock.now - start < .seconds(60))
        #expect(refused > 300 && loaded > 300, "refused \(refused), loaded \(loaded): the mutations should hit both")
    }

    @Test("params a kind does not know are warned about, one line naming file, resource and param; valid files have none")
    func unknownParams() throws {
        try withTempDir("unknown") { dir in
            var files: [KindFile] = []
            for v in Self.valid {
                files.append(KindFile(kind: v.kind, file: try ResourceFile.load(try dir.write(v.file, v.text))))
            }
            #expect(Validator.check(files) == [])
            #expect(Validator.unknownParams(files) == [])
            let typo = try dir.write("networks.yml", Self.valid[0].text.replacingOccurrences(of: "mtu: 1450", with: "mut: 1450"))
            let warned = Validator.unknownParams([KindFile(kind: NetworkKind.self, file: try ResourceFile.load(typo))])
            #expect(warned == ["\(typo): resources[0] (net-a): params.mut is not a field of networks that os-migrate knows: it is ignored"])
        }
    }

    @Test("keys the data file format does not have, at the top or in a resource, are warned about; valid files have none")
    func unknownKeys() throws {
        try withTempDir("keys") { dir in
            var files: [KindFile] = []
            for v in Self.valid {
                files.append(KindFile(kind: v.kind, file: try ResourceFile.load(try dir.write(v.file, v.text))))
            }
            #expect(Validator.warnings(files) == [])
            let text = "os_migrate_versoin: x\n" + Self.valid[0].text.replacingOccurrences(of: "  _migration_params: {}", with: "  _migration_params: {}\n  prams: {}")
            let odd = try dir.write("networks.yml", text)
            let warned = Validator.warnings([KindFile(kind: NetworkKind.self, file: try ResourceFile.load(odd))])
            #expect(warned == ["\(odd): os_migrate_versoin is not a key of a data file that os-migrate knows: it is ignored",
                               "\(odd): resources[0].prams is not a key of a data file that os-migrate knows: it is ignored"])
        }
    }
}
