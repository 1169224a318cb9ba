import Foundation
import Logging
import OpenStack
import Testing
import TestSupport

/// The OpenStack client against the real lab services: pagination, errors, token handling,
/// redaction. Each test that writes works in its own LabTenant.
@Suite struct CloudSessionLabTests {
    // MARK: pagination

    @Test func neutronNetworksPageByPage() async throws {
        try await LabTenant.with("page-net") { tenant in
            let session = try tenant.session()
            var created: [String] = []
            for i in 0..<7 {
                let n = try await session.create(Neutron.networks, ["name": .string("\(tenant.projectName)-net\(i)")])
                created.append(n.id)
            }
            let mine = [QueryItem("project_id", tenant.projectID)]
            _ = try await session.endpoint(ServiceType.network)
            session.requests.reset()
            let paged = try await session.list(Neutron.networks, query: mine, pageSize: 2).collect()
            #expect(paged.count == 7)
            #expect(Set(paged.map(\.id)) == Set(created))
            #expect(paged.map(\.id).count == Set(paged.map(\.id)).count, "no duplicates across pages")
            // 2 + 2 + 2 + 1: Neutron stops giving a next link on a short page.
            #expect(session.requests.snapshot == ["GET": 4])

            // The session's default page size applies when the call gives none.
            let small = try tenant.session(options: SessionOptions(pageSize: 3))
            _ = try await small.endpoint(ServiceType.network)
            small.requests.reset()
            #expect(try await small.list(Neutron.networks, query: mine).collect().count == 7)
            #expect(small.requests.snapshot == ["GET": 3])

            // Unpaged: one request.
            session.requests.reset()
            #expect(try await session.list(Neutron.networks, query: mine).collect().count == 7)
            #expect(session.requests.snapshot == ["GET": 1])
        }
    }

    @Test func novaFlavorsPageByPage() async throws {
        let session = try Lab.session(Lab.profile("osmlab-src"))
        let all = try await session.list(Nova.flavors).collect()
        #expect(Set(all.map(\.name)).isSuperset(of: ["m1.tiny", "m1.small"]))
        // Other suites add and delete public flavors meanwhile: a page's marker deleted between
        // two pages is answered 400 by Nova ("marker … not found"), so the listing is tried again.
        var paged: [Flavor] = []
        for attempt in 1...3 {
            session.requests.reset()
            do {
                paged = try await session.list(Nova.flavors, pageSize: 1).collect()
                break
            } catch let e as OpenStackError where e.status == 400 && e.message.contains("marker") && attempt < 3 {}
        }
        // (compare the lab's own flavors)
        let labFlavors = { (f: [Flavor]) in Set(f.filter { $0.name.hasPrefix("m1.") }.map(\.id)) }
        #expect(labFlavors(paged) == labFlavors(all))
        #expect(labFlavors(paged).count >= 2)
        // Every page is full, so Nova links one more, empty, page.
        #expect(session.requests.snapshot == ["GET": paged.count + 1])
        let tiny = try #require(paged.first { $0.name == "m1.tiny" })
        #expect(tiny.vcpus == 1 && tiny.ram == 512 && tiny.disk == 1)
    }

    @Test func glanceImagesPageByPage() async throws {
        try await LabTenant.with("page-img") { tenant in
            let session = try tenant.session()
            var created: [String] = []
            for i in 0..<3 {
                let image = try await session.createImage(["name": .string("\(tenant.projectName)-img\(i)"), "disk_format": "raw",
                                                           "container_format": "bare", "visibility": "private"])
                created.append(image.id)
            }
            _ = try await session.endpoint(ServiceType.image)
            session.requests.reset()
            let paged = try await session.list(Glance.images, query: [QueryItem("owner", tenant.projectID)], pageSize: 1).collect()
            #expect(Set(paged.map(\.id)) == Set(created))
            #expect(paged.count == 3)
            #expect(paged.allSatisfy { $0.status == "queued" && $0.owner == tenant.projectID })
            #expect(session.requests.snapshot == ["GET": 4])
        }
    }

    @Test func cinderVolumesPageByPage() async throws {
        try await LabTenant.with("page-vol") { tenant in
            let session = try tenant.session()
            var created: [String] = []
            for i in 0..<3 {
                let v = try await session.create(Cinder.volumes, ["name": .string("\(tenant.projectName)-vol\(i)"), "size": 1])
                created.append(v.id)
            }
            for id in created {
                _ = try await Waiter.wait("volume \(id)", service: ServiceType.blockStorage, timeout: 180, interval: 1,
                                          until: ["available"], fetch: { try await session.find(Cinder.volumes, id: id) },
                                          status: { $0.status })
            }
            session.requests.reset()
            let paged = try await session.list(Cinder.volumes, pageSize: 1).collect()
            #expect(Set(paged.map(\.id)) == Set(created))
            #expect(paged.count == 3)
            // Cinder links a next page after every full one: 1 + 1 + 1 + an empty one.
            #expect(session.requests.snapshot == ["GET": 4])
            #expect(paged.allSatisfy { $0.size == 1 && $0.status == "available" && !$0.bootable })
        }
    }

    // MARK: catalog, versions, microversions

    @Test func microversionsAreNegotiatedAndSent() async throws {
        let session = try Lab.session(Lab.profile("osmlab-src"))
        let compute = try await session.endpoint("compute")
        #expect(compute.service == "compute")
        #expect(compute.url == "http://127.0.0.1:8774/v2.1")
        #expect(compute.microversion == "2.79")
        #expect(compute.maxMicroversion == "2.93")
        let volume = try await session.endpoint("volume")  // an alias
        #expect(volume.url == "http://127.0.0.1:8776/v3/\(try await session.currentProjectID)")
        #expect(volume.microversion == "3.59")
        #expect(volume.maxMicroversion == "3.70")
        let flavors = try await session.send(APIRequest(ServiceType.compute, .GET, "/flavors/detail"))
        #expect(flavors.headers.first(name: "OpenStack-API-Version") == "compute 2.79")
        // 2.61+: flavors carry their extra specs
        #expect(try flavors.json()["flavors"]?.arrayValue?.first?["extra_specs"] != nil)
        let volumes = try await session.send(APIRequest(ServiceType.blockStorage, .GET, "/volumes"))
        #expect(volumes.headers.first(name: "OpenStack-API-Version") == "volume 3.59")
        // A per-request microversion wins.
        let old = try await session.send(APIRequest(ServiceType.compute, .GET, "/flavors/detail", microversion: "2.1"))
        #expect(old.headers.first(name: "OpenStack-API-Version") == "compute 2.1")
        #expect(try old.json()["flavors"]?.arrayValue?.first?["extra_specs"] == nil)

        // Asking for more than the service offers gets the service's maximum.
        var p = try Lab.profile("osmlab-src")
        p.apiVersions = ["compute": "2.200", "block-storage": "3.0"]
        let capped = try Lab.session(p)
        #expect(try await capped.endpoint("compute").microversion == "2.93")
        #expect(try await capped.endpoint("block-storage").microversion == "3.0")
        let r = try await capped.send(APIRequest(ServiceType.compute, .GET, "/flavors"))
        #expect(r.headers.first(name: "OpenStack-API-Version") == "compute 2.93")
    }

    @Test func regionInterfaceAndOverrides() async throws {
        var wrongRegion = try Lab.profile("osmlab-src")
        wrongRegion.regionName = "RegionTwo"
        let s1 = try Lab.session(wrongRegion)
        do {
            _ = try await s1.endpoint("compute")
            Issue.record("found a compute endpoint in RegionTwo")
        } catch let e as OpenStackError {
            #expect(e.isNotFound)
            #expect(e.description == "compute: no public endpoint for compute in region RegionTwo in the catalog of cloud 'osmlab-src'")
        }
        // Identity falls back on the auth URL.
        #expect(try await s1.endpoint("identity").url == "http://127.0.0.1:5000/v3")

        var viaInternal = try Lab.profile("osmlab-src")
        viaInternal.interface = "internal"
        #expect(try await Lab.session(viaInternal).endpoint("network").url == "http://127.0.0.1:9696/v2.0")
        viaInternal.interface = "admin"
        let adminIface = try Lab.session(viaInternal)
        await #expect(throws: OpenStackError.self) { _ = try await adminIface.endpoint("network") }

        // An unversioned override is discovered like a catalog entry; a versioned one is taken as is.
        var overridden = try Lab.profile("osmlab-src")
        overridden.endpointOverrides = ["image": "http://localhost:9292/", "network": "http://localhost:9696/v2.0"]
        let s2 = try Lab.session(overridden)
        #expect(try await s2.endpoint("image").url == "http://localhost:9292/v2")
        #expect(try await s2.endpoint("network").url == "http://localhost:9696/v2.0")
        #expect(try await s2.list(Neutron.networks, query: [QueryItem("name", "public")]).collect().map(\.name) == ["public"])
    }

    // MARK: errors from the real services

    @Test func notFoundFromEveryService() async throws {
        let session = try Lab.session(Lab.profile("osmlab-src"))
        let id = randomUUID()
        func failure(_ body: () async throws -> Void) async -> OpenStackError? {
            do {
                try await body()
                return nil
            } catch let e as OpenStackError {
                return e
            } catch {
                Issue.record("not an OpenStackError: \(error)")
                return nil
            }
        }
        let expectations: [(String, String, String, () async throws -> Void)] = [
            ("network", "http://127.0.0.1:9696/v2.0/networks/\(id)", "Network \(id) could not be found.",
             { _ = try await session.get(Neutron.networks, id) }),
            ("compute", "http://127.0.0.1:8774/v2.1/servers/\(id)", "Instance \(id) could not be found.",
             { _ = try await session.get(Nova.servers, id) }),
            ("block-storage", "http://127.0.0.1:8776/v3/\(try await session.currentProjectID)/volumes/\(id)",
             "Volume \(id) could not be found.", { _ = try await session.get(Cinder.volumes, id) }),
            // Glance's JSON message ends in "<br /><br />\n\n\n": not ours to show.
            ("image", "http://127.0.0.1:9292/v2/images/\(id)", "No image found with ID \(id)",
             { _ = try await session.image(id) }),
        ]
        for (service, url, message, call) in expectations {
            let e = try #require(await failure(call), "\(service)")
            #expect(e.kind == .http(status: 404))
            #expect(e.isNotFound)
            #expect(!e.isConflict)
            #expect(e.service == service)
            #expect(e.method == "GET")
            #expect(e.url == url)
            #expect(e.message == message)
            let rid = try #require(e.requestID, "\(service) request id")
            #expect(rid.range(of: "^req-[0-9a-f-]{36}$", options: .regularExpression) != nil, "\(rid)")
            #expect(e.description == "\(service) GET \(url) returned 404: \(message) (request \(rid))")
        }
        // find() turns the 404 into nil
        #expect(try await session.find(Neutron.networks, id: id) == nil)
        #expect(try await session.findImage(id: id) == nil)
        // Keystone, as admin
        let admin = try Lab.admin()
        let k = try #require(await failure { _ = try await admin.get(Keystone.projects, id) })
        #expect(k.isNotFound)
        #expect(k.message == "Could not find project: \(id).")
        #expect(k.url == "http://127.0.0.1:5000/v3/projects/\(id)")
        #expect(k.requestID?.hasPrefix("req-") == true)
    }

    @Test func conflictFromNeutron() async throws {
        try await LabTenant.with("conflict") { tenant in
            let session = try tenant.session()
            let sg = try await session.create(Neutron.securityGroups, ["name": .string(tenant.projectName + "-sg")])
            let rule: JSONObject = ["security_group_id": .string(sg.id), "direction": "ingress", "ethertype": "IPv4",
                                    "protocol": "tcp", "port_range_min": 22, "port_range_max": 22]
            let first = try await session.create(Neutron.securityGroupRules, rule)
            do {
                _ = try await session.create(Neutron.securityGroupRules, rule)
                Issue.record("the second rule was accepted")
            } catch let e as OpenStackError {
                #expect(e.kind == .http(status: 409))
                #expect(e.isConflict)
                #expect(!e.isNotFound)
                #expect(e.service == "network")
                #expect(e.method == "POST")
                #expect(e.url == "http://127.0.0.1:9696/v2.0/security-group-rules")
                #expect(e.message == "Security group rule already exists. Rule id is \(first.id).")
                #expect(e.requestID?.hasPrefix("req-") == true)
            }
            // Deleting something already gone is fine by default, and a 404 when asked.
            try await session.delete(Neutron.securityGroupRules, first.id)
            try await session.delete(Neutron.securityGroupRules, first.id)
            await #expect(throws: OpenStackError.self) { try await session.delete(Neutron.securityGroupRules, first.id, ignoreMissing: false) }
        }
    }

    // MARK: token

    @Test func tokenIsReusedAndReobtainedOnceAfterA401() async throws {
        try await LabTenant.with("token", quotas: false) { tenant in
            let session = try tenant.session()
            let first = try await session.authenticate()
            #expect(first.projectID == tenant.projectID)
            #expect(first.userID == tenant.userID)
            #expect(try await session.currentProjectID == tenant.projectID)
            #expect(try await session.currentUserID == tenant.userID)
            #expect(Set(first.roles) == ["member", "reader"])
            _ = try await session.list(Neutron.networks).collect()
            _ = try await session.list(Neutron.networks).collect()
            #expect(authRequests(session.requests) == 1, "one token for all calls: \(session.requests.snapshot)")

            // Revoke it behind the session's back: the next call gets a 401, authenticates again, succeeds.
            // (Keystone itself: the services' token cache in memcached would still take the token
            // for up to token_cache_time, as a production cloud's does.)
            let admin = try Lab.admin()
            _ = try await admin.send(APIRequest(ServiceType.identity, .DELETE, "/auth/tokens", headers: ["X-Subject-Token": first.value]))
            session.requests.reset()
            _ = try await session.send(APIRequest(ServiceType.identity, .GET, "/auth/projects"))
            #expect(authRequests(session.requests) == 1, "\(session.requests.snapshot)")
            // the rejected call + the call again
            #expect(session.requests.snapshot["GET"] == 2, "\(session.requests.snapshot)")
            let second = try await session.authenticate()
            #expect(second.value != first.value)
            #expect(second.projectID == tenant.projectID)
        }
    }

    // MARK: redaction in a real session's log

    @Test func debugLogHasRequestsButNoSecrets() async throws {
        let capture = LogCapture()
        try await LabTenant.with("redact", quotas: false) { tenant in
            let session = try Lab.session(tenant.profile, logger: capture.logger())
            let token = try await session.authenticate()
            _ = try await session.list(Neutron.networks, pageSize: 1).collect()
            _ = try await session.list(Nova.flavors).collect()
            _ = try await session.list(Glance.images).collect()
            _ = try await session.list(Cinder.volumes).collect()
            _ = try? await session.get(Neutron.networks, randomUUID())
            _ = try await session.create(Neutron.networks, ["name": .string(tenant.projectName + "-n")])

            let log = capture.text
            #expect(log.contains("POST http://127.0.0.1:5000/v3/auth/tokens -> 201"))
            #expect(log.contains("GET http://127.0.0.1:9696/v2.0/networks?limit=1 -> 200"))
            #expect(log.contains("GET http://127.0.0.1:8774/v2.1/flavors/detail -> 200"))
            #expect(log.contains("POST http://127.0.0.1:9696/v2.0/networks -> 201"))
            #expect(log.contains(" -> 404 "))
            #expect(log.contains("endpoint compute: http://127.0.0.1:8774/v2.1 microversion 2.79"))
            let password = try #require(tenant.profile.auth["password"])
            #expect(!log.contains(password))
            #expect(!log.contains(token.value))
            #expect(!log.contains(String(token.value.prefix(40))))
            #expect(!log.contains("gAAAAA"))
        }
        #expect(capture.count >= 8)
    }
}
