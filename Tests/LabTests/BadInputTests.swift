import Foundation
import OpenStack
import Testing
import TestSupport

/// Broken data files: each gives one exact error line, exit code 1, and no change in the cloud.
@Suite("Bad input is refused before any write")
struct BadInputTests {
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var file: String
        var text: String
        /// The expected error, with DATA standing for the data directory.
        var error: String
        var description: String { name }
    }

    static let net = """
        - _info: {id: n1}
          _migration_params: {}
          params: {name: net-x, description: '', is_admin_state_up: true, tags: []}
          type: openstack.network.Network
        """

    static func doc(_ resources: String) -> String { "os_migrate_version: 1.0.5\nresources:\n" + resources + "\n" }

    static let cases: [Case] = [
        Case(name: "old version", file: "networks.yml", text: "os_migrate_version: 1.0.1\nresources:\n" + net + "\n",
             error: "DATA/networks.yml: os_migrate_version is '1.0.1' but this tool reads 1.0.5 (data is not guaranteed compatible across versions: export again)"),
        Case(name: "empty file", file: "networks.yml", text: "", error: "DATA/networks.yml: the file is empty"),
        Case(name: "malformed YAML", file: "networks.yml", text: "os_migrate_version: 1.0.5\nresources: [\n",
             error: "DATA/networks.yml: malformed YAML"),
        Case(name: "a list at the top", file: "networks.yml", text: "- a\n- b\n",
             error: "DATA/networks.yml: expected a mapping with os_migrate_version and resources"),
        Case(name: "no version", file: "networks.yml", text: "resources: []\n", error: "DATA/networks.yml: os_migrate_version is missing"),
        Case(name: "no resources", file: "networks.yml", text: "os_migrate_version: 1.0.5\n", error: "DATA/networks.yml: resources is missing"),
        Case(name: "resources not a list", file: "networks.yml", text: "os_migrate_version: 1.0.5\nresources: {a: 1}\n",
             error: "DATA/networks.yml: resources is not a list"),
        Case(name: "resource not a mapping", file: "networks.yml", text: doc("- just a string"),
             error: "DATA/networks.yml: resources[0] is not a mapping"),
        Case(name: "params not a mapping", file: "networks.yml", text: doc("- {type: openstack.network.Network, params: [1]}"),
             error: "DATA/networks.yml: resources[0]: params is not a mapping"),
        Case(name: "no type", file: "networks.yml", text: doc("- params: {name: x}"), error: "DATA/networks.yml: resources[0]: type is missing"),
        Case(name: "unknown type", file: "networks.yml", text: doc("- {type: openstack.network.Nettwork, params: {name: x}}"),
             error: "DATA/networks.yml: resources[0]: unknown type 'openstack.network.Nettwork'"),
        Case(name: "type in the wrong file", file: "networks.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: x, cidr: 10.0.0.0/24, ip_version: 4, network_ref: {name: n}}}"),
             error: "DATA/networks.yml: resources[0]: type 'openstack.subnet.Subnet' does not belong in networks.yml (expected openstack.network.Network)"),
        Case(name: "no name", file: "networks.yml", text: doc("- {type: openstack.network.Network, params: {description: x}}"),
             error: "DATA/networks.yml: resources[0] (network): params.name is missing"),
        Case(name: "empty name", file: "networks.yml", text: doc("- {type: openstack.network.Network, params: {name: ''}}"),
             error: "DATA/networks.yml: resources[0] (network): params.name is empty"),
        Case(name: "name not a string", file: "networks.yml", text: doc("- {type: openstack.network.Network, params: {name: [a]}}"),
             error: "DATA/networks.yml: resources[0] (network): params.name is not a string"),
        Case(name: "duplicate names", file: "networks.yml", text: doc(net + "\n" + net.replacingOccurrences(of: "id: n1", with: "id: n2")),
             error: "DATA/networks.yml: 'net-x' is defined 2 times (networks.yml resources[0], networks.yml resources[1]); names must be unique per kind"),
        Case(name: "tags not strings", file: "networks.yml", text: doc("- {type: openstack.network.Network, params: {name: n, tags: [1, 2]}}"),
             error: "DATA/networks.yml: resources[0] (network 'n'): params.tags is not a list of strings"),
        Case(name: "subnet without cidr", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, ip_version: 4, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.cidr is missing"),
        Case(name: "reference not a mapping", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, cidr: 10.0.0.0/24, ip_version: 4, network_ref: net-a}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.network_ref is not a reference (a mapping with name, project_name, domain_name)"),
        Case(name: "reference without a name", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, cidr: 10.0.0.0/24, ip_version: 4, network_ref: {project_name: x}}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.network_ref has no name"),
        Case(name: "interface without addresses", file: "router_interfaces.yml",
             text: doc("- {type: openstack.network.RouterInterface, params: {device_ref: {name: r}, network_ref: {name: n}, fixed_ips_refs: []}}"),
             error: "DATA/router_interfaces.yml: resources[0] (router interface 'r'): params.fixed_ips_refs is empty"),
        Case(name: "rule direction", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: sideways, ether_type: IPv4}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g sideways IPv4 any'): params.direction is \"sideways\", not one of ingress, egress"),
        Case(name: "rule ethertype", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv5}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv5 any'): params.ether_type is \"IPv5\", not one of IPv4, IPv6"),
        Case(name: "rule port range", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcp, port_range_min: 90, port_range_max: 80}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv4 tcp 90-80'): params.port_range_min 90 is greater than params.port_range_max 80"),
        Case(name: "network neither in files nor destination", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, cidr: 10.0.0.0/24, ip_version: 4, network_ref: {name: nowhere, project_name: '%auth%', domain_name: '%auth%'}}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.network_ref: network 'nowhere' is neither in the files nor in the destination"),
        Case(name: "network in a domain that does not exist", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, cidr: 10.0.0.0/24, ip_version: 4, network_ref: {name: n, project_name: p, domain_name: NoSuchDomain}}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.network_ref: its domain 'NoSuchDomain' is not the credentials' domain ('Default') and they may not look other domains up"),
        Case(name: "our own project in another domain", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, cidr: 10.0.0.0/24, ip_version: 4, network_ref: {name: n, project_name: '%auth%', domain_name: NoSuchDomain}}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.network_ref: its domain 'NoSuchDomain' is not the credentials' domain ('Default') and they may not look other domains up"),
        Case(name: "rule in an unknown group", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: ghost, project_name: '%auth%', domain_name: '%auth%'}, direction: ingress, ether_type: IPv4, remote_group_ref: null}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'ghost ingress IPv4 any'): params.security_group_ref: security group 'ghost' is neither in the files nor in the destination"),
        Case(name: "router gateway on a missing network", file: "routers.yml",
             text: doc("- {type: openstack.network.Router, params: {name: r, external_gateway_refinfo: {network_ref: {name: no-such-external}}}}"),
             error: "DATA/routers.yml: resources[0] (router 'r'): params.external_gateway_refinfo.network_ref: network 'no-such-external' is neither in the files nor in the destination"),
        Case(name: "cidr not a cidr", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: not-a-cidr, ip_version: 4}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.cidr is not a network in CIDR notation (like 10.0.0.0/24): \"not-a-cidr\""),
        Case(name: "ip_version 5", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 10.0.0.0/24, ip_version: 5}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.ip_version is 5, not one of 4, 6"),
        Case(name: "ip_version four", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 10.0.0.0/24, ip_version: four}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.ip_version is \"four\", not one of 4, 6"),
        Case(name: "ip_version 4.5", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 10.0.0.0/24, ip_version: 4.5}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.ip_version is 4.5, not one of 4, 6"),
        Case(name: "cidr of the other family", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 'fd00::/64', ip_version: 4}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.cidr fd00::/64 is not an IPv4 network (params.ip_version 4)"),
        Case(name: "pool outside the cidr", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 10.0.0.0/24, ip_version: 4, allocation_pools: [{start: 10.0.1.10, end: 10.0.1.20}]}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.allocation_pools[0] 10.0.1.10-10.0.1.20 is outside params.cidr 10.0.0.0/24"),
        Case(name: "bad dns server", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 10.0.0.0/24, ip_version: 4, dns_nameservers: [8.8.8.8, dns.example]}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.dns_nameservers [1] is not an IP address: \"dns.example\""),
        Case(name: "garbage host routes", file: "subnets.yml",
             text: doc("- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: '%auth%', domain_name: '%auth%'}, cidr: 10.0.0.0/24, ip_version: 4, host_routes: [{destination: nowhere, nexthop: 10.0.0.1}]}}"),
             error: "DATA/subnets.yml: resources[0] (subnet 's'): params.host_routes [0] .destination is not a network in CIDR notation (like 10.0.0.0/24): \"nowhere\""),
        Case(name: "name over 255 characters", file: "networks.yml",
             text: doc("- {type: openstack.network.Network, params: {name: " + String(repeating: "n", count: 256) + "}}"),
             error: "DATA/networks.yml: resources[0] (network '" + String(repeating: "n", count: 256) + "'): params.name has 256 characters (at most 255)"),
        Case(name: "mtu abc", file: "networks.yml",
             text: doc("- {type: openstack.network.Network, params: {name: n, mtu: abc}}"),
             error: "DATA/networks.yml: resources[0] (network 'n'): params.mtu is not a whole number: \"abc\""),
        Case(name: "mtu -5", file: "networks.yml",
             text: doc("- {type: openstack.network.Network, params: {name: n, mtu: -5}}"),
             error: "DATA/networks.yml: resources[0] (network 'n'): params.mtu is -5, out of range (68 to 65535)"),
        Case(name: "mtu 1e23", file: "networks.yml",
             text: doc("- {type: openstack.network.Network, params: {name: n, mtu: 1e23}}"),
             error: "DATA/networks.yml: resources[0] (network 'n'): params.mtu is not a whole number: 1e+23"),
        Case(name: "boolean yes please", file: "networks.yml",
             text: doc("- {type: openstack.network.Network, params: {name: n, is_admin_state_up: yes please}}"),
             error: "DATA/networks.yml: resources[0] (network 'n'): params.is_admin_state_up is not a boolean (true or false): \"yes please\""),
        Case(name: "description a mapping", file: "networks.yml",
             text: doc("- {type: openstack.network.Network, params: {name: n, description: {a: 1}}}"),
             error: "DATA/networks.yml: resources[0] (network 'n'): params.description is not a string (a mapping)"),
        Case(name: "rule port 70000", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcp, port_range_min: 22, port_range_max: 70000}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv4 tcp 22-70000'): params.port_range_max is 70000, out of range (0 to 65535)"),
        Case(name: "rule port eighty", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcp, port_range_min: eighty, port_range_max: 80}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv4 tcp'): params.port_range_min is not a whole number: \"eighty\""),
        Case(name: "rule protocol tcpx", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcpx}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv4 tcpx'): params.protocol \"tcpx\" is not a protocol name (tcp, udp, icmp…) or number 0 to 255"),
        Case(name: "rule bad prefix", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcp, remote_ip_prefix: 300.1.2.0/24}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv4 tcp 300.1.2.0/24'): params.remote_ip_prefix is not a network in CIDR notation (like 10.0.0.0/24): \"300.1.2.0/24\""),
        Case(name: "rule prefix and group", file: "security_group_rules.yml",
             text: doc("- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, direction: ingress, ether_type: IPv4, protocol: tcp, remote_ip_prefix: 10.0.0.0/8, remote_group_ref: {name: g}}}"),
             error: "DATA/security_group_rules.yml: resources[0] (security group rule 'g ingress IPv4 tcp group g'): params.remote_ip_prefix 10.0.0.0/8 and params.remote_group_ref are both set (a rule has one remote)"),
        Case(name: "garbage router routes", file: "routers.yml",
             text: doc("- {type: openstack.network.Router, params: {name: r, routes: [garbage]}}"),
             error: "DATA/routers.yml: resources[0] (router 'r'): params.routes [0] is not a mapping (a string)"),
    ]

    @Test("a broken file is refused with one exact line and changes nothing", arguments: cases)
    func refused(_ c: Case) async throws {
        try await Self.tenant.run { dst in
            let dir = try LabClouds.tempDir("bad")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try c.text.write(toFile: data + "/" + c.file, atomically: true, encoding: .utf8)
            // Neutron through a counting proxy: the writes are counted as they are sent.
            let proxy = try await FaultProxy(upstream: "http://127.0.0.1:9696", faults: .none)
            let clouds = try LabClouds.write(["dst": dst.profile(endpointOverrides: ["network": proxy.url + "/v2.0"])], in: dir)
            let session = try dst.session()
            let before = try await Self.inventory(session)
            let kind = c.file.replacingOccurrences(of: ".yml", with: "").replacingOccurrences(of: "_", with: "-")
            for command in [["validate", kind], ["import", kind, "--dry-run"], ["import", kind]] {
                let r = try await CLIRunner.run(command + ["--dst-cloud", "dst", "--data-dir", data], env: ["OS_CLIENT_CONFIG_FILE": clouds])
                #expect(r.exitCode == 1, "\(command)")
                let expected = "os-migrate: error: " + c.error.replacingOccurrences(of: "DATA", with: data)
                let lines = r.stderr.split(separator: "\n").map(String.init)
                #expect(lines.first?.hasPrefix(expected) == true, "\(command) got: \(r.stderr)")
                #expect(lines.count == 1, "\(command): one line expected, got: \(r.stderr)")
                #expect(r.stdout.isEmpty)
            }
            let writes = proxy.stats.requests.filter { $0.key != "GET" && $0.key != "HEAD" }
            try await proxy.shutdown()
            #expect(writes.isEmpty, "write requests reached Neutron: \(writes)")
            #expect(try await Self.inventory(session) == before)
        }
    }

    @Test("names from a file cannot forge an output line or reach the terminal as control characters")
    func forgedNames() async throws {
        try await Self.tenant.run { dst in
            let dir = try LabClouds.tempDir("forge")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let name = "x\nok       networks: FAKE  (created)\u{1B}[2J\u{0}"
            let yamlName = "\"x\\nok       networks: FAKE  (created)\\e[2J\\0\""
            try Self.doc("- {type: openstack.network.Network, params: {name: \(yamlName)}}")
                .write(toFile: data + "/networks.yml", atomically: true, encoding: .utf8)
            let clouds = try LabClouds.write(["dst": dst.profile], in: dir)
            let text = try await CLIRunner.run(["import", "networks", "--dst-cloud", "dst", "--data-dir", data, "--dry-run"],
                                               env: ["OS_CLIENT_CONFIG_FILE": clouds])
            #expect(text.exitCode == 0, "\(text.stderr)")
            let lines = text.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            #expect(lines.contains("changed  networks: x\\nok       networks: FAKE  (created)\\u{1B}[2J\\u{0}  (would create)"), "\(text.stdout)")
            #expect(!lines.contains { $0.hasPrefix("ok       networks: FAKE") })
            #expect(!text.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0 })
            let json = try await CLIRunner.run(["import", "networks", "--dst-cloud", "dst", "--data-dir", data, "--dry-run", "--json"],
                                               env: ["OS_CLIENT_CONFIG_FILE": clouds])
            let item = json.stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
                .first { $0["event"]?.stringValue == "item" }
            #expect(item?["name"]?.stringValue == name, "\(json.stdout)")
        }
    }

    @Test("command-line and directory mistakes: one exact line, exit 1, the same from validate and import")
    func commandLineMistakes() async throws {
        try await Self.tenant.run { dst in
            let dir = try LabClouds.tempDir("badcli")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var bogus = dst.profile
            bogus.regionName = "Nowhere"
            let clouds = try LabClouds.write(["dst": dst.profile, "bogus": bogus], in: dir)
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try Self.doc(Self.net).write(toFile: data + "/networks.yml", atomically: true, encoding: .utf8)
            try "os_migrate_networks_filter:\n  - regex: '('\n".write(toFile: dir + "/vars.yml", atomically: true, encoding: .utf8)
            let loop = dir + "/loop"
            try FileManager.default.createDirectory(atPath: loop, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: loop + "/networks.yml", withDestinationPath: "networks.yml")
            try Self.doc("").write(toFile: loop + "/subnets.yml", atomically: true, encoding: .utf8)
            let session = try dst.session()
            let before = try await Self.inventory(session)
            let cases: [(args: [String], error: String)] = [
                (["--data-dir", ""], "--data-dir is empty: give the data directory's path"),
                (["--data-dir", dir + "/none"], "\(dir)/none: no such data directory (run `os-migrate export` first, or pass --data-dir DIR)"),
                (["--data-dir", data + "/networks.yml"], "\(data)/networks.yml: not a directory (--data-dir names the data directory)"),
                (["--data-dir", data, "--vars", dir + "/vars.yml"],
                 "vars file \(dir)/vars.yml: os_migrate_networks_filter[0]: '(' is not a valid regular expression"),
                (["--data-dir", loop], "\(loop)/networks.yml: cannot be read: a symbolic link that loops"),
                (["--data-dir", data, "--dst-cloud", "bogus"], "cloud 'bogus': region 'Nowhere' is not in its catalog (regions there: RegionOne)"),
            ]
            for c in cases {
                for command in [["validate"], ["import", "--dry-run"], ["import"]] {
                    var args = command + c.args
                    if !args.contains("--dst-cloud") { args += ["--dst-cloud", "dst"] }
                    let r = try await CLIRunner.run(args, env: ["OS_CLIENT_CONFIG_FILE": clouds])
                    #expect(r.exitCode == 1, "\(args)")
                    #expect(r.stderr == "os-migrate: error: \(c.error)\n", "\(args): \(r.stderr)")
                    #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
                }
            }
            #expect(try await Self.inventory(session) == before)
        }
    }

    @Test("a rule listed twice is one rule: created once, the other ok; the rerun writes nothing")
    func ruleListedTwice() async throws {
        try await LabTenant.with("duprule") { dst in
            let dir = try LabClouds.tempDir("duprule")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let session = try dst.session()
            _ = try await session.create(Neutron.securityGroups, ["name": "dup-g", "description": ""])
            let rule = "- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: dup-g}, direction: ingress, ether_type: IPv4, protocol: tcp, port_range_min: 22, port_range_max: 22, remote_ip_prefix: 10.0.0.0/8}}"
            try Self.doc(rule + "\n" + rule + "\n" + rule).write(toFile: data + "/security_group_rules.yml", atomically: true, encoding: .utf8)
            let clouds = try LabClouds.write(["dst": dst.profile], in: dir)
            let validated = try await CLIRunner.run(["validate", "--data-dir", data, "security-group-rules"], env: ["OS_CLIENT_CONFIG_FILE": clouds])
            #expect(validated.exitCode == 0, "\(validated.stderr)")
            let same = { (a: Int, b: Int) in
                "\(data)/security_group_rules.yml: resources[\(a)] and resources[\(b)] are the same security group rule 'dup-g ingress IPv4 tcp 22 10.0.0.0/8': it is imported once"
            }
            #expect(validated.stderr.contains(same(0, 1)) && validated.stderr.contains(same(0, 2)), "\(validated.stderr)")
            let args = ["import", "security-group-rules", "--dst-cloud", "dst", "--data-dir", data, "--keep-unlisted-rules", "--json"]
            for (i, attempt) in [args + ["--dry-run"], args, args].enumerated() {
                let r = try await CLIRunner.run(attempt, env: ["OS_CLIENT_CONFIG_FILE": clouds])
                #expect(r.exitCode == 0, "\(r.stderr)\n\(r.stdout)")
                #expect(r.stdout.contains(same(0, 1)) || r.stderr.contains(same(0, 1)), "\(r.stderr)\n\(r.stdout)")
                let recap = CLIEvents.recap(r.stdout)
                // The recap counts resources: the three lines are one rule.
                #expect(CLIEvents.items(r.stdout, "changed").count == (i < 2 ? 1 : 0), "\(r.stdout)")
                if i < 2 {
                    #expect(CLIEvents.all(r.stdout).filter { $0["message"]?.stringValue == "listed more than once in the file: one rule" }.count == 2,
                            "\(r.stdout)")
                    #expect(CLIEvents.count(recap, "changed") == 1 && CLIEvents.count(recap, "api_writes") == (i == 0 ? 0 : 1), "\(r.stdout)")
                } else {
                    #expect(CLIEvents.count(recap, "ok") == 1 && CLIEvents.count(recap, "api_writes") == 0, "\(r.stdout)")
                }
            }
            let rules = try await session.list(Neutron.securityGroupRules).collect().filter { $0.remoteIPPrefix == "10.0.0.0/8" }
            #expect(rules.count == 1, "\(rules.count) rules")
        }
    }

    /// Every network-side resource the tenant has, by id.
    static func inventory(_ s: CloudSession) async throws -> [String] {
        let pid = try await s.currentProjectID
        var ids: [String] = []
        for (path, key) in [("/networks", "networks"), ("/subnets", "subnets"), ("/routers", "routers"), ("/ports", "ports"),
                            ("/security-groups", "security_groups"), ("/security-group-rules", "security_group_rules")]
        {
            ids += try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, path, query: [QueryItem("project_id", pid)]),
                                    key: key).collect().compactMap { $0["id"]?.stringValue }
        }
        return ids.sorted()
    }

    /// One destination tenant shared by all cases (they only read from it).
    static let tenant = SharedTenant(tag: "bad")
}
