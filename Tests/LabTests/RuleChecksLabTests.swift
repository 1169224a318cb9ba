import Engine
import Foundation
import OpenStack
import Resources
import Testing
import TestSupport

/// Every security group rule check validation makes is one the lab's Neutron makes too (the same
/// rule, sent as is, is answered 400), and what Neutron accepts passes validation.
@Suite("Security group rule checks match what Neutron accepts")
struct RuleChecksLabTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// The rule's params beside security_group_ref, in YAML flow style.
        var params: String
        var body: JSONObject
        /// The end of our error (nil: accepted).
        var error: String?
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "protocol ip", params: "direction: ingress, ether_type: IPv4, protocol: ip", body: ["ethertype": "IPv4", "protocol": "ip"]),
        Case(name: "protocol by number", params: "direction: ingress, ether_type: IPv4, protocol: '47'", body: ["ethertype": "IPv4", "protocol": "47"]),
        Case(name: "protocol out of range", params: "direction: ingress, ether_type: IPv4, protocol: '256'", body: ["ethertype": "IPv4", "protocol": "256"],
             error: "params.protocol \"256\" is not a protocol name (tcp, udp, icmp…) or number 0 to 255"),
        Case(name: "unknown protocol name", params: "direction: ingress, ether_type: IPv4, protocol: tcpx", body: ["ethertype": "IPv4", "protocol": "tcpx"],
             error: "params.protocol \"tcpx\" is not a protocol name (tcp, udp, icmp…) or number 0 to 255"),
        Case(name: "ICMP type over 255", params: "direction: ingress, ether_type: IPv4, protocol: icmp, port_range_min: 256, port_range_max: 0",
             body: ["ethertype": "IPv4", "protocol": "icmp", "port_range_min": 256, "port_range_max": 0],
             error: "params.port_range_min 256 is not an ICMP type or code (0 to 255)"),
        Case(name: "ports the wrong way round", params: "direction: ingress, ether_type: IPv4, protocol: tcp, port_range_min: 90, port_range_max: 80",
             body: ["ethertype": "IPv4", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80],
             error: "params.port_range_min 90 is greater than params.port_range_max 80"),
        Case(name: "prefix of the other family", params: "direction: ingress, ether_type: IPv6, remote_ip_prefix: 10.0.0.0/8",
             body: ["ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"],
             error: "params.remote_ip_prefix 10.0.0.0/8 is not an IPv6 network (params.ether_type)"),
        Case(name: "two remotes", params: "direction: ingress, ether_type: IPv4, remote_ip_prefix: 10.0.0.0/8, remote_group_ref: {name: g}",
             body: ["ethertype": "IPv4", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "SELF"],
             error: "params.remote_ip_prefix 10.0.0.0/8 and params.remote_group_ref are both set (a rule has one remote)"),
    ]

    @Test("validation refuses exactly the rules Neutron refuses", arguments: cases)
    func matchesNeutron(_ c: Case) async throws {
        let text = "os_migrate_version: 1.0.5\nresources:\n- {type: openstack.network.SecurityGroupRule, params: {security_group_ref: {name: g}, \(c.params)}}\n"
        let errors = try withTempDir("rulechk") { dir in
            Validator.check([KindFile(kind: SecurityGroupRuleKind.self, file: try ResourceFile.load(try dir.write("security_group_rules.yml", text)))])
        }
        if let e = c.error {
            #expect(errors.count == 1 && errors.first?.hasSuffix("): " + e) == true, "\(errors)")
        } else {
            #expect(errors == [])
        }

        try await LabTenant.with("rulechk", quotas: false) { tenant in
            let s = try tenant.session()
            let group = try await s.create(Neutron.securityGroups, ["name": "g"])
            var body = c.body
            body["security_group_id"] = .string(group.id)
            body["direction"] = "ingress"
            if body["remote_group_id"] != nil { body["remote_group_id"] = .string(group.id) }
            var status = 201
            do { _ = try await s.create(Neutron.securityGroupRules, body) } catch let e as OpenStackError { status = e.status ?? -1 }
            #expect(status == (c.error == nil ? 201 : 400), "Neutron answered \(status)")
        }
    }
}
