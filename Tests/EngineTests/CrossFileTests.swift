import Engine
import Foundation
import Resources
import Testing
import TestSupport

/// Checks across data files, before any write: what one file says must fit what another says.
@Suite("Validation across data files")
struct CrossFileTests {
    @Test("a router interface's address outside its subnet's cidr is refused, naming both files' facts; inside, it passes")
    func interfaceInsideSubnet() throws {
        try withTempDir("cross") { dir in
            let subnets = try dir.write("subnets.yml", """
                os_migrate_version: 1.0.5
                resources:
                - params: {name: sub-a, network_ref: {name: net-a}, cidr: 10.1.0.0/24, ip_version: 4}
                  type: openstack.subnet.Subnet
                """)
            func interface(_ ip: String) throws -> String {
                try dir.write("router_interfaces.yml", """
                    os_migrate_version: 1.0.5
                    resources:
                    - params: {device_ref: {name: r1}, network_ref: {name: net-a}, fixed_ips_refs: [{ip_address: \(ip), subnet_ref: {name: sub-a}}]}
                      type: openstack.network.RouterInterface
                    """)
            }
            let outside = try interface("10.9.0.1")
            let files = [KindFile(kind: SubnetKind.self, file: try ResourceFile.load(subnets)),
                         KindFile(kind: RouterInterfaceKind.self, file: try ResourceFile.load(outside))]
            #expect(Validator.check(files) == [
                "\(outside): resources[0] (router interface 'r1 10.9.0.1'): params.fixed_ips_refs[0].ip_address 10.9.0.1 is not inside subnet 'sub-a' (10.1.0.0/24 in subnets.yml)",
            ])
            let inside = try interface("10.1.0.1")
            #expect(Validator.check([files[0], KindFile(kind: RouterInterfaceKind.self, file: try ResourceFile.load(inside))]) == [])
            // Without subnets.yml in the run there is nothing to compare with (the cloud is checked at import).
            #expect(Validator.check([KindFile(kind: RouterInterfaceKind.self, file: try ResourceFile.load(outside))]) == [])
        }
    }
}
