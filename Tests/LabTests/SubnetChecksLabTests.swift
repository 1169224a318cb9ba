import Engine
import Foundation
import OpenStack
import Resources
import Testing
import TestSupport

/// Every subnet check validation refuses is one Neutron refuses too (sent to the lab's Neutron
/// as is, it answers 400); what Neutron accepts (an on-link gateway outside the cidr) passes
/// validation with a warning, and Neutron creates it.
@Suite("Subnet checks match what Neutron accepts")
struct SubnetChecksLabTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var params: String
        var body: JSONObject
        /// Our error (nil: accepted, with `warning`).
        var error: String?
        var warning: String?
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "pool outside the cidr", params: "cidr: 10.77.2.0/24, ip_version: 4, allocation_pools: [{start: 10.77.3.10, end: 10.77.3.20}]",
             body: ["cidr": "10.77.2.0/24", "ip_version": 4, "allocation_pools": [["start": "10.77.3.10", "end": "10.77.3.20"]]],
             error: "params.allocation_pools[0] 10.77.3.10-10.77.3.20 is outside params.cidr 10.77.2.0/24"),
        Case(name: "pool that starts after it ends", params: "cidr: 10.77.4.0/24, ip_version: 4, allocation_pools: [{start: 10.77.4.20, end: 10.77.4.10}]",
             body: ["cidr": "10.77.4.0/24", "ip_version": 4, "allocation_pools": [["start": "10.77.4.20", "end": "10.77.4.10"]]],
             error: "params.allocation_pools[0] starts after it ends"),
        Case(name: "cidr of the other family", params: "cidr: 10.77.5.0/24, ip_version: 6",
             body: ["cidr": "10.77.5.0/24", "ip_version": 6],
             error: "params.cidr 10.77.5.0/24 is not an IPv6 network (params.ip_version 6)"),
        Case(name: "on-link gateway outside the cidr", params: "cidr: 10.77.1.0/24, ip_version: 4, gateway_ip: 192.168.9.1",
             body: ["cidr": "10.77.1.0/24", "ip_version": 4, "gateway_ip": "192.168.9.1"],
             warning: "params.gateway_ip 192.168.9.1 is outside params.cidr 10.77.1.0/24 (an on-link gateway: Neutron accepts it, imported as is)"),
    ]

    @Test("validation refuses exactly what Neutron refuses, and warns about what it accepts", arguments: cases)
    func matchesNeutron(_ c: Case) async throws {
        let text = "os_migrate_version: 1.0.5\nresources:\n- {type: openstack.subnet.Subnet, params: {name: s, network_ref: {name: n, project_name: p, domain_name: Default}, \(c.params)}}\n"
        let (errors, warnings, path) = try withTempDir("subnetchk") { dir in
            let path = try dir.write("subnets.yml", text)
            let files = [KindFile(kind: SubnetKind.self, file: try ResourceFile.load(path))]
            return (Validator.check(files), Validator.warnings(files), path)
        }
        let at = "\(path): resources[0] (subnet 's'): "
        #expect(errors == (c.error.map { [at + $0] } ?? []))
        #expect(warnings == (c.warning.map { [at + $0] } ?? []))

        try await LabTenant.with("subnetchk", quotas: false) { tenant in
            let s = try tenant.session()
            let net = try await s.create(Neutron.networks, ["name": "n"])
            var body = c.body
            body["network_id"] = .string(net.id)
            body["name"] = "s"
            var status = 201
            do {
                let sub = try await s.create(Neutron.subnets, body)
                if c.warning != nil {
                    let back = try await s.json(APIRequest(ServiceType.network, .GET, "/subnets/\(sub.id)"), key: "subnet")
                    #expect(back["gateway_ip"]?.stringValue == "192.168.9.1")
                }
            } catch let e as OpenStackError {
                status = e.status ?? -1
            }
            #expect(status == (c.error == nil ? 201 : 400), "Neutron answered \(status)")
        }
    }
}
