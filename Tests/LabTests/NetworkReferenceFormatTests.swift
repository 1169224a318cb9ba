import Foundation
import OpenStack
import Testing
import TestSupport

/// Files written exactly as the Ansible os-migrate 1.0.5 writes them (os-migrate-behaviour.md
/// §1.6, names and addresses adapted to a lab tenant), exported by an admin: they carry
/// `provider_*` and the routers' `is_ha` / `is_distributed`, which a tenant may neither send nor
/// read. They import with the tenant's credentials, and a second import is all `ok`.
@Suite("Network files in the reference tool's format", .serialized)
struct NetworkReferenceFormatTests {
    static func files(project p: String) -> [String: String] {
        // The reference tool writes `%auth%` for the exporting project's own resources (§2.1);
        // the public network is the admin project's.
        let ref = { (name: String) in "{domain_name: '%auth%', name: \(name), project_name: '%auth%'}" }
        return [
            "networks.yml": """
                os_migrate_version: 1.0.5
                resources:
                - _info:
                    availability_zones: [nova]
                    created_at: '2020-04-07T14:08:30Z'
                    id: a1eb31f6-2cdc-4896-b582-8950dafa34aa
                    project_id: 2f444c71265048f7a9d21f81db6f21a4
                    qos_policy_id: null
                    revision_number: 3
                    status: ACTIVE
                    subnet_ids: [a5052e10-5e00-432b-a826-29695677aca0]
                    updated_at: '2020-04-07T14:08:34Z'
                  _migration_params: {}
                  params:
                    availability_zone_hints: []
                    description: ''
                    dns_domain: null
                    is_admin_state_up: true
                    is_default: null
                    is_port_security_enabled: true
                    is_router_external: false
                    is_shared: false
                    is_vlan_transparent: null
                    mtu: 1450
                    name: osm_net
                    provider_network_type: vxlan
                    provider_physical_network: null
                    provider_segmentation_id: 4242
                    qos_policy_ref: null
                    segments: null
                    tags: []
                  type: openstack.network.Network

                """,
            "subnets.yml": """
                os_migrate_version: 1.0.5
                resources:
                - _info:
                    created_at: '2020-02-21T17:34:54Z'
                    id: a5052e10-5e00-432b-a826-29695677aca0
                    network_id: a1eb31f6-2cdc-4896-b582-8950dafa34aa
                    prefix_length: null
                    project_id: 2f444c71265048f7a9d21f81db6f21a4
                    revision_number: 0
                    segment_id: null
                    subnet_pool_id: null
                    updated_at: null
                  _migration_params: {}
                  params:
                    allocation_pools: [{end: 10.10.10.50, start: 10.10.10.10}, {end: 10.10.10.90, start: 10.10.10.80}]
                    cidr: 10.10.10.0/24
                    description: test-subnet
                    dns_nameservers: []
                    gateway_ip: 10.10.10.1
                    host_routes: [{destination: 192.168.10.0/24, nexthop: 10.10.10.254}]
                    ip_version: 4
                    ipv6_address_mode: null
                    ipv6_ra_mode: null
                    is_dhcp_enabled: true
                    name: osm_subnet
                    network_ref: \(ref("osm_net"))
                    segment_ref: null
                    service_types: []
                    subnet_pool_ref: null
                    tags: []
                    use_default_subnet_pool: null
                  type: openstack.subnet.Subnet

                """,
            "routers.yml": """
                os_migrate_version: 1.0.5
                resources:
                - _info:
                    availability_zones: [nova]
                    created_at: '2020-02-26T15:50:55Z'
                    external_gateway_info: {enable_snat: true, external_fixed_ips: [{ip_address: 172.24.4.79, subnet_id: uuid-test-external-subnet}], network_id: uuid-test-external-net}
                    flavor_id: null
                    id: 3c8c9a4e-0000-4000-8000-000000000001
                    project_id: 2f444c71265048f7a9d21f81db6f21a4
                    revision_number: 3
                    routes: []
                    status: ACTIVE
                    updated_at: '2020-02-26T15:51:00Z'
                  _migration_params: {}
                  params:
                    availability_zone_hints: []
                    description: test router
                    external_gateway_refinfo:
                      network_ref: {domain_name: Default, name: public, project_name: admin}
                    flavor_ref: null
                    is_admin_state_up: true
                    is_distributed: true
                    is_ha: true
                    name: osm_router
                    tags: []
                  type: openstack.network.Router

                """,
            "router_interfaces.yml": """
                os_migrate_version: 1.0.5
                resources:
                - _info: {id: 3c8c9a4e-0000-4000-8000-000000000002}
                  _migration_params: {}
                  params:
                    device_owner: network:router_interface
                    device_ref: \(ref("osm_router"))
                    fixed_ips_refs:
                    - ip_address: 10.10.10.1
                      subnet_ref: \(ref("osm_subnet"))
                    network_ref: \(ref("osm_net"))
                  type: openstack.network.RouterInterface

                """,
            "security_groups.yml": """
                os_migrate_version: 1.0.5
                resources:
                - _info: {created_at: '2020-01-30T14:49:06Z', id: 3c8c9a4e-0000-4000-8000-000000000003, project_id: uuid-project, revision_number: 1, updated_at: '2020-01-30T14:49:06Z'}
                  _migration_params: {}
                  params: {description: Default security group, name: default}
                  type: openstack.network.SecurityGroup
                - _info: {created_at: '2020-01-30T14:49:06Z', id: 3c8c9a4e-0000-4000-8000-000000000004, project_id: uuid-project, revision_number: 1, updated_at: '2020-01-30T14:49:06Z'}
                  _migration_params: {}
                  params: {description: osm security group, name: osm_security_group}
                  type: openstack.network.SecurityGroup

                """,
            "security_group_rules.yml": "os_migrate_version: 1.0.5\nresources:\n" + [
                // Neutron's four rules of a `default` group, as exported from the source's.
                rule(5, "default", direction: "ingress", ether: "IPv4", remoteGroup: "default", project: p),
                rule(6, "default", direction: "ingress", ether: "IPv6", remoteGroup: "default", project: p),
                rule(7, "default", direction: "egress", ether: "IPv4", project: p),
                rule(8, "default", direction: "egress", ether: "IPv6", project: p),
                rule(9, "osm_security_group", direction: "ingress", ether: "IPv4", proto: "tcp", ports: (10, 100),
                     remoteGroup: "default", project: p),
                rule(10, "osm_security_group", direction: "ingress", ether: "IPv4", proto: "tcp", ports: (22, 22),
                     prefix: "0.0.0.0/0", project: p),
                rule(11, "osm_security_group", direction: "egress", ether: "IPv4", project: p),
            ].joined(),
        ]
    }

    static func rule(_ n: Int, _ group: String, direction: String, ether: String, proto: String? = nil, ports: (Int, Int)? = nil,
                     remoteGroup: String? = nil, prefix: String? = nil, project p: String) -> String
    {
        let id = String(format: "3c8c9a4e-0000-4000-8000-%012d", n)
        let remote = remoteGroup.map { "{domain_name: '%auth%', name: \($0), project_name: '%auth%'}" } ?? "null"
        return """
            - _info: {created_at: '2020-01-30T14:49:06Z', id: \(id), project_id: uuid-project, remote_group_id: null, revision_number: 0, security_group_id: uuid-sg, updated_at: '2020-01-30T14:49:06Z'}
              _migration_params: {}
              params:
                description: null
                direction: \(direction)
                ether_type: \(ether)
                port_range_max: \(ports.map { String($0.1) } ?? "null")
                port_range_min: \(ports.map { String($0.0) } ?? "null")
                protocol: \(proto ?? "null")
                remote_group_ref: \(remote)
                remote_ip_prefix: \(prefix ?? "null")
                security_group_ref: {domain_name: '%auth%', name: \(group), project_name: '%auth%'}
              type: openstack.network.SecurityGroupRule

            """
    }

    @Test("an admin's export in the reference format imports with tenant credentials, then all ok")
    func referenceFormatWithTenantCredentials() async throws {
        try await LabTenant.with("netref") { dst in
            let dir = try LabClouds.tempDir("netref")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            for (name, text) in Self.files(project: dst.projectName) {
                try text.write(toFile: data + "/" + name, atomically: true, encoding: .utf8)
            }
            let clouds = try LabClouds.write(["dst": dst.profile], in: dir)
            func run(_ args: [String]) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
                try await CLIRunner.run(args + ["--data-dir", data], env: ["OS_CLIENT_CONFIG_FILE": clouds])
            }
            let s = try dst.session()
            let defaultGroup = try #require(try await s.named(Neutron.securityGroups, "default").first)
            let defaultRulesBefore = try await ruleKeys(s, group: defaultGroup.id)

            let val = try await run(["validate", "--dst-cloud", "dst"])
            #expect(val.exitCode == 0, "\(val.stdout)\(val.stderr)")

            let imp = try await run(["import", "--dst-cloud", "dst", "--json"])
            #expect(imp.exitCode == 0, "\(imp.stdout)\n\(imp.stderr)")
            #expect(NetworkMigrationTests.items(imp.stdout, status: "failed").isEmpty, "\(imp.stdout)")
            let net = NetworkMigrationTests.event(imp.stdout, "networks", "osm_net")
            #expect(net?["status"] == "changed")
            #expect(net?["message"]?.stringValue
                == "created (provider_network_type, provider_segmentation_id not applied: Neutron reserves them to admins)")
            let router = NetworkMigrationTests.event(imp.stdout, "routers", "osm_router")
            #expect(router?["message"]?.stringValue == "created (is_distributed, is_ha not applied: Neutron reserves them to admins)")
            #expect(NetworkMigrationTests.event(imp.stdout, "security-groups", "default")?["status"] == "ok")

            // The destination, through the API.
            let n = try #require(try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/networks",
                                                                             query: [QueryItem("name", "osm_net")]), key: "networks").collect().first)
            #expect(n["mtu"] == 1450)
            let sub = try #require(try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/subnets",
                                                                               query: [QueryItem("name", "osm_subnet")]), key: "subnets").collect().first)
            #expect(sub["network_id"] == n["id"])
            #expect(sub["gateway_ip"] == "10.10.10.1")
            #expect(sub["description"] == "test-subnet")
            // Neutron lists pools in no fixed order.
            let pools = (sub["allocation_pools"]?.arrayValue ?? []).map { "\($0["start"]?.stringValue ?? "")-\($0["end"]?.stringValue ?? "")" }.sorted()
            #expect(pools == ["10.10.10.10-10.10.10.50", "10.10.10.80-10.10.10.90"])
            #expect(sub["host_routes"] == [["destination": "192.168.10.0/24", "nexthop": "10.10.10.254"]])
            let r = try #require(try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/routers",
                                                                             query: [QueryItem("name", "osm_router")]), key: "routers").collect().first)
            let publicNet = try #require(try await s.named(Neutron.networks, "public").first)
            #expect(r["external_gateway_info"]?["network_id"]?.stringValue == publicNet.id)
            #expect(r["description"] == "test router")
            let ports = try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/ports", query: [
                QueryItem("device_id", r["id"]?.stringValue ?? ""), QueryItem("device_owner", "network:router_interface"),
            ]), key: "ports").collect()
            #expect(ports.map { $0["fixed_ips"]?.arrayValue?.first?["ip_address"]?.stringValue } == ["10.10.10.1"])
            let osmGroup = try #require(try await s.named(Neutron.securityGroups, "osm_security_group").first)
            #expect(osmGroup.description == "osm security group")
            // Exactly the file's rules: Neutron's automatic egress IPv6 rule of the new group is gone.
            #expect(try await ruleKeys(s, group: osmGroup.id) == [
                "egress IPv4 any - - -", "ingress IPv4 tcp 10 100 group:\(defaultGroup.id)", "ingress IPv4 tcp 22 22 0.0.0.0/0",
            ])
            // The destination's own `default` group was matched, never a second one; its rules are the file's.
            #expect(try await s.named(Neutron.securityGroups, "default").count == 1)
            #expect(try await ruleKeys(s, group: defaultGroup.id) == defaultRulesBefore)
            #expect(defaultRulesBefore.count == 4)

            // Again: every item ok (the notes say what was left out), not one write.
            let again = try await run(["import", "--dst-cloud", "dst", "--json"])
            #expect(again.exitCode == 0)
            let recap = NetworkMigrationTests.recap(again.stdout)
            #expect(recap?["changed"]?.intValue == 0 && recap?["failed"]?.intValue == 0 && recap?["skipped"]?.intValue == 0,
                    "\(again.stdout)")
            #expect(recap?["ok"]?.intValue == 1 + 1 + 1 + 1 + 2 + 7)
            #expect(recap?["api_writes"]?.intValue == 0)
            #expect(NetworkMigrationTests.event(again.stdout, "networks", "osm_net")?["message"]?.stringValue
                == "provider_network_type, provider_segmentation_id not applied: Neutron reserves them to admins")
            #expect(NetworkMigrationTests.event(again.stdout, "routers", "osm_router")?["message"]?.stringValue
                == "is_distributed, is_ha not applied: Neutron reserves them to admins")
        }
    }

    /// A group's rules as sortable text: "ingress IPv4 tcp 22 22 0.0.0.0/0".
    func ruleKeys(_ s: CloudSession, group: String) async throws -> [String] {
        try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/security-group-rules",
                                                    query: [QueryItem("security_group_id", group)]), key: "security_group_rules")
            .collect().map { r in
                let remote = r["remote_group_id"]?.stringValue.map { "group:\($0)" } ?? r["remote_ip_prefix"]?.stringValue ?? "-"
                return [r["direction"]?.stringValue ?? "", r["ethertype"]?.stringValue ?? "", r["protocol"]?.stringValue ?? "any",
                        r["port_range_min"]?.intValue.map(String.init) ?? "-", r["port_range_max"]?.intValue.map(String.init) ?? "-",
                        remote].joined(separator: " ")
            }.sorted()
    }
}
