import Foundation
import OpenStack
import Testing
import TestSupport

/// The test support itself: a LabTenant is what it says, and purge leaves nothing behind.
@Suite struct LabTenantTests {
    @Test func createdTenantIsAMemberWithRaisedQuotas() async throws {
        try await LabTenant.with("tenant") { tenant in
            #expect(tenant.projectName.range(of: "^osmt-tenant-[0-9a-f]{6}$", options: .regularExpression) != nil)
            #expect(tenant.userName == tenant.projectName)
            #expect(tenant.profile.regionName == "RegionOne")
            let token = try await tenant.session().authenticate()
            #expect(token.projectID == tenant.projectID)
            #expect(token.projectName == tenant.projectName)
            #expect(token.userID == tenant.userID)
            #expect(token.roles.sorted() == ["member", "reader"])

            let admin = try Lab.admin()
            let net = try await admin.json(APIRequest(ServiceType.network, .GET, "/quotas/\(tenant.projectID)"), key: "quota")
            #expect(net["network"] == 500 && net["subnet"] == 1000 && net["port"] == 2000 && net["router"] == 50)
            #expect(net["security_group"] == 500 && net["security_group_rule"] == 5000 && net["floatingip"] == 100)
            let nova = try await admin.json(APIRequest(ServiceType.compute, .GET, "/os-quota-sets/\(tenant.projectID)"), key: "quota_set")
            #expect(nova["instances"] == 50)
            let cinder = try await admin.json(APIRequest(ServiceType.blockStorage, .GET, "/os-quota-sets/\(tenant.projectID)"),
                                              key: "quota_set")
            #expect(cinder["volumes"] == 100 && cinder["snapshots"] == 100 && cinder["gigabytes"] == 2000)
        }
    }

    @Test func purgeRemovesEverythingAndIsIdempotent() async throws {
        let tenant = try await LabTenant.create("purge")
        let s = try tenant.session()
        let admin = try Lab.admin()
        do {
            // A small but complete tenant: network, subnet, router with gateway and interface, a
            // port, a floating IP, a security group with a rule, a keypair, a server, a volume with a
            // snapshot, an image.
            let net = try await s.create(Neutron.networks, ["name": "n"])
            let subnet = try await s.create(Neutron.subnets, ["name": "sn", "network_id": .string(net.id), "ip_version": 4,
                                                              "cidr": "10.77.0.0/24"])
            let publicNet = try #require(try await s.named(Neutron.networks, "public").first)
            let router = try await s.create(Neutron.routers, ["name": "r", "external_gateway_info": ["network_id": .string(publicNet.id)]])
            try await s.addRouterInterface(router: router.id, subnetID: subnet.id)
            let port = try await s.create(Neutron.ports, ["name": "p", "network_id": .string(net.id)])
            _ = try await s.create(Neutron.floatingIPs, ["floating_network_id": .string(publicNet.id), "port_id": .string(port.id)])
            let sg = try await s.create(Neutron.securityGroups, ["name": "sg"])
            _ = try await s.create(Neutron.securityGroupRules, ["security_group_id": .string(sg.id), "direction": "ingress",
                                                                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22])
            _ = try await s.json(APIRequest(ServiceType.compute, .POST, "/os-keypairs", body: ["keypair": ["name": "k"]]), key: "keypair")
            let flavor = try #require(try await s.named(Nova.flavors, "m1.tiny").first)
            let image = try #require(try await s.list(Glance.images, query: [QueryItem("name", "osmlab-image")]).collect().first)
            _ = try await s.json(APIRequest(ServiceType.compute, .POST, "/servers", body: ["server": [
                "name": "vm", "flavorRef": .string(flavor.id), "imageRef": .string(image.id), "networks": [["uuid": .string(net.id)]],
            ]]), key: "server")
            let vol = try await s.create(Cinder.volumes, ["name": "v", "size": 1])
            _ = try await Waiter.wait("volume", service: "block-storage", timeout: 180, interval: 1, until: ["available"],
                                      fetch: { try await s.find(Cinder.volumes, id: vol.id) }, status: { $0.status })
            let snap = try await s.create(Cinder.snapshots, ["volume_id": .string(vol.id), "name": "snap"])
            _ = try await Waiter.wait("snapshot", service: "block-storage", timeout: 180, interval: 1, until: ["available"],
                                      fetch: { try await s.find(Cinder.snapshots, id: snap.id) }, status: { $0.status })
            _ = try await s.createImage(["name": "img", "disk_format": "raw", "container_format": "bare"])
        } catch {
            try? await tenant.purge()
            throw error
        }

        try await tenant.purge()
        try await tenant.purge()  // again: nothing left to do, no error

        let mine = [QueryItem("project_id", tenant.projectID)]
        let all = [QueryItem("all_tenants", "1")] + mine
        #expect(try await admin.list(Neutron.networks, query: mine).collect().isEmpty)
        #expect(try await admin.list(Neutron.subnets, query: mine).collect().isEmpty)
        #expect(try await admin.list(Neutron.routers, query: mine).collect().isEmpty)
        #expect(try await admin.list(Neutron.ports, query: mine).collect().isEmpty)
        #expect(try await admin.list(Neutron.floatingIPs, query: mine).collect().isEmpty)
        // (not filtered by project: that would make Neutron create the project's default group again)
        #expect(try await admin.list(Neutron.securityGroups, query: LabTenant.securityGroupFields).collect()
            .filter { $0.projectID == tenant.projectID }.isEmpty)
        #expect(try await admin.list(Nova.servers, query: all).collect().isEmpty)
        #expect(try await admin.keypairs(userID: tenant.userID).isEmpty)
        #expect(try await admin.list(Cinder.volumes, query: all).collect().isEmpty)
        #expect(try await admin.list(Cinder.snapshots, query: all).collect().isEmpty)
        #expect(try await admin.list(Glance.images, query: [QueryItem("owner", tenant.projectID)]).collect().isEmpty)
        #expect(try await admin.find(Keystone.projects, id: tenant.projectID) == nil)
        #expect(try await admin.find(Keystone.users, id: tenant.userID) == nil)
    }
}
