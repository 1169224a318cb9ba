import Foundation
import OpenStack

/// A fresh project and a member user on the lab, created as admin, so lab tests can run in
/// parallel without seeing each other's resources. Always `purge()` it (or use `with`).
public struct LabTenant: Sendable {
    public let projectName: String
    public let projectID: String
    public let userName: String
    public let userID: String
    /// Password auth as the new user, scoped to the new project. The password is random and
    /// only ever kept here: never print the profile's `auth`.
    public let profile: CloudProfile

    private static let creating = ConnectionGate(limit: 4)

    /// Create project and user "osmt-<tag>-<6 hex>", grant member and reader on the project,
    /// and (with `quotas`) raise the quotas to what the lab gives src and dst.
    public static func create(_ tag: String, quotas: Bool = true) async throws -> LabTenant {
        // Dozens of suites start at once: four tenants are made at a time, the others wait their turn
        // (the line, not Keystone's backlog, absorbs the burst).
        let turn = try await creating.enter("lab-tenant-creation", timeout: 900)
        defer { turn.release() }
        let admin = try Lab.admin()
        let name = "osmt-\(tag)-\(Lab.randomHex())"
        let password = "P" + Lab.randomHex(24) + "-x"
        let project = try await admin.create(Keystone.projects, [
            "name": .string(name), "domain_id": "default",
            "description": .string("os-migrate test tenant (\(tag)); safe to delete"),
        ])
        let user: User
        do {
            user = try await admin.create(Keystone.users, [
                "name": .string(name), "domain_id": "default", "password": .string(password),
                "default_project_id": .string(project.id),
            ])
        } catch {
            _ = try? await admin.send(APIRequest(ServiceType.identity, .DELETE, Keystone.projects.itemPath(project.id),
                                                 acceptedStatuses: [404]))
            throw error
        }
        let profile = CloudProfile(
            name: name, origin: "LabTenant \(name)",
            auth: ["auth_url": Lab.authURL, "username": name, "password": password, "project_name": name,
                   "user_domain_name": "Default", "project_domain_name": "Default"],
            regionName: "RegionOne")
        let tenant = LabTenant(projectName: name, projectID: project.id, userName: name, userID: user.id, profile: profile)
        do {
            for roleName in ["member", "reader"] {
                guard let role = try await admin.named(Keystone.roles, roleName).first else {
                    throw OpenStackError(kind: .notFound, service: "identity", message: "the lab has no role '\(roleName)'")
                }
                try await admin.grantProjectRole(project: project.id, user: user.id, role: role.id)
            }
            if quotas { try await tenant.raiseQuotas(admin) }
        } catch {
            try? await tenant.purge()
            throw error
        }
        return tenant
    }

    /// Run `body` with a fresh tenant and purge it afterwards, whether `body` failed or not.
    public static func with<T: Sendable>(_ tag: String, quotas: Bool = true,
                                         _ body: (LabTenant) async throws -> T) async throws -> T
    {
        let tenant = try await create(tag, quotas: quotas)
        let result: T
        do {
            result = try await body(tenant)
        } catch {
            do { try await tenant.purge() } catch { print("LabTenant \(tenant.projectName): purge failed: \(error)") }
            throw error
        }
        try await tenant.purge()
        return result
    }

    /// A session as the tenant's user.
    public func session(options: SessionOptions = .init()) throws -> CloudSession {
        try Lab.session(profile, options: options)
    }

    public func session() throws -> CloudSession { try session(options: .init()) }

    /// The same profile with some endpoints replaced (e.g. `["network": proxy.url + "/v2.0"]`).
    public func profile(endpointOverrides: [String: String]) -> CloudProfile {
        var p = profile
        p.endpointOverrides.merge(endpointOverrides) { _, new in new }
        return p
    }

    func raiseQuotas(_ admin: CloudSession) async throws {
        _ = try await admin.send(APIRequest(ServiceType.network, .PUT, "/quotas/\(projectID)", body: [
            "quota": ["network": 500, "subnet": 1000, "port": 2000, "router": 50, "floatingip": 100,
                      "security_group": 500, "security_group_rule": 5000],
        ]))
        _ = try await admin.send(APIRequest(ServiceType.compute, .PUT, "/os-quota-sets/\(projectID)", body: [
            "quota_set": ["instances": 50, "cores": 200, "ram": 512_000, "key_pairs": 200],
        ]))
        _ = try await admin.send(APIRequest(ServiceType.blockStorage, .PUT, "/os-quota-sets/\(projectID)", body: [
            "quota_set": ["volumes": 100, "snapshots": 100, "gigabytes": 2000],
        ]))
    }

    // MARK: purge

    /// Delete everything the project owns (servers, floating IPs, router interfaces and gateways,
    /// routers, ports, networks and subnets, security groups, the user's keypairs, snapshots,
    /// volumes, images), then the project and the user. Tolerates what is already gone; running
    /// it twice is harmless.
    public func purge() async throws {
        let admin = try Lab.admin()
        var problems: [String] = []
        func attempt(_ what: String, _ op: () async throws -> Void) async {
            do { try await op() } catch { problems.append("\(what): \(error)") }
        }

        // Compute
        await attempt("servers") {
            struct S: Decodable, Sendable { var id: String }
            let servers = try await admin.list(S.self, APIRequest(ServiceType.compute, .GET, "/servers/detail",
                                                                    query: [QueryItem("all_tenants", "1"), QueryItem("project_id", projectID)]),
                                               key: "servers").collect()
            for s in servers {
                _ = try await admin.send(APIRequest(ServiceType.compute, .DELETE, Nova.servers.itemPath(s.id), acceptedStatuses: [404]))
            }
            for s in servers {
                try await Waiter.waitGone("server \(s.id)", service: ServiceType.compute, timeout: 120, interval: 1, failOn: []) {
                    try await admin.get(Nova.servers, s.id).status
                }
            }
        }
        await attempt("keypairs") {
            for k in try await admin.keypairs(userID: userID) {
                try await admin.deleteKeypair(k.name, userID: userID)
            }
        }

        // Network
        let owned = [QueryItem("project_id", projectID)]
        await attempt("floating IPs") {
            for f in try await admin.list(Neutron.floatingIPs, query: owned).collect() {
                try await admin.delete(Neutron.floatingIPs, f.id)
            }
        }
        await attempt("routers") {
            for r in try await admin.list(Neutron.routers, query: owned).collect() {
                // Static routes pin the interfaces their next hops use: clear them first.
                if !(r.routes ?? []).isEmpty {
                    _ = try await admin.send(APIRequest(ServiceType.network, .PUT, Neutron.routers.itemPath(r.id),
                                                        body: ["router": ["routes": []]], acceptedStatuses: [404]))
                }
                if r.externalGatewayInfo != nil {
                    _ = try await admin.send(APIRequest(ServiceType.network, .PUT, Neutron.routers.itemPath(r.id),
                                                        body: ["router": ["external_gateway_info": [:]]], acceptedStatuses: [404]))
                }
                let ifaces = try await admin.list(Neutron.ports, query: [QueryItem("device_id", r.id)]).collect()
                for p in ifaces where (p.deviceOwner ?? "").hasPrefix("network:router_interface") {
                    try await admin.removeRouterInterface(router: r.id, portID: p.id)
                }
                try await admin.delete(Neutron.routers, r.id)
            }
        }
        await attempt("ports") {
            for p in try await admin.list(Neutron.ports, query: owned).collect() {
                try await admin.delete(Neutron.ports, p.id)
            }
        }
        await attempt("networks") {
            for n in try await admin.list(Neutron.networks, query: owned).collect() {
                try await admin.delete(Neutron.networks, n.id)
            }
        }
        await attempt("security groups") {
            // Listing security groups filtered by project makes Neutron create that project's
            // default group: list them all (three fields) and keep ours.
            let groups = try await admin.list(Neutron.securityGroups, query: LabTenant.securityGroupFields).collect()
                .filter { $0.projectID == projectID }
            for g in groups where g.name != "default" {
                try await admin.delete(Neutron.securityGroups, g.id)
            }
            // The project is about to go: its default group would only be an orphan.
            for g in groups where g.name == "default" {
                _ = try? await admin.send(APIRequest(ServiceType.network, .DELETE, Neutron.securityGroups.itemPath(g.id),
                                                     acceptedStatuses: [404, 409]))
            }
        }

        // Block storage
        let allOwned = [QueryItem("all_tenants", "1"), QueryItem("project_id", projectID)]
        await attempt("snapshots") {
            let snaps = try await admin.list(Cinder.snapshots, query: allOwned).collect()
            for s in snaps {
                try await admin.delete(Cinder.snapshots, s.id)
            }
            for s in snaps {
                try await Waiter.waitGone("snapshot \(s.id)", service: ServiceType.blockStorage, timeout: 120, interval: 1,
                                          failOn: ["error_deleting"]) {
                    try await admin.get(Cinder.snapshots, s.id).status
                }
            }
        }
        await attempt("volumes") {
            let volumes = try await admin.list(Cinder.volumes, query: allOwned).collect()
            for v in volumes {
                if !["available", "error", "error_restoring", "error_extending", "error_managing"].contains(v.status) {
                    // In use by a deleted server, or stuck: an admin may reset it.
                    _ = try? await admin.volumeAction(v.id, "os-reset_status", ["status": "available", "attach_status": "detached"])
                }
                _ = try await admin.send(APIRequest(ServiceType.blockStorage, .DELETE, Cinder.volumes.itemPath(v.id),
                                                    query: [QueryItem("cascade", "true")], acceptedStatuses: [404]))
            }
            for v in volumes {
                try await Waiter.waitGone("volume \(v.id)", service: ServiceType.blockStorage, timeout: 180, interval: 1,
                                          failOn: ["error_deleting"]) {
                    try await admin.get(Cinder.volumes, v.id).status
                }
            }
        }

        // Images
        await attempt("images") {
            for i in try await admin.list(Glance.images, query: [QueryItem("owner", projectID), QueryItem("visibility", "all")]).collect() {
                if i.isProtected == true {
                    _ = try await admin.patchImage(i.id, [["op": "replace", "path": "/protected", "value": false]])
                }
                try await admin.deleteImage(i.id)
            }
        }

        // Identity
        await attempt("project") {
            _ = try await admin.send(APIRequest(ServiceType.identity, .DELETE, Keystone.projects.itemPath(projectID), acceptedStatuses: [404]))
        }
        await attempt("user") {
            _ = try await admin.send(APIRequest(ServiceType.identity, .DELETE, Keystone.users.itemPath(userID), acceptedStatuses: [404]))
        }
        if !problems.isEmpty {
            throw PurgeError(tenant: projectName, problems: problems)
        }
    }

    /// `fields` for listing every project's security groups cheaply (no rules).
    public static let securityGroupFields = [QueryItem("fields", "id"), QueryItem("fields", "name"), QueryItem("fields", "project_id")]

    public struct PurgeError: Error, CustomStringConvertible {
        public var tenant: String
        public var problems: [String]
        public var description: String { "purge of \(tenant) incomplete: " + problems.joined(separator: "; ") }
    }
}
