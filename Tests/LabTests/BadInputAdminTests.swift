import Foundation
import OpenStack
import Testing
import TestSupport

/// Broken data files and options for the identity, compute, image and volume kinds: each gives
/// one exact error line, exit code 1, and no change in the cloud.
@Suite("Bad input is refused before any write (identity, compute, images, volumes)")
struct BadInputAdminTests {
    /// Names unique to this test process: nothing named so may exist afterwards.
    static let tag = "osmt-badadm-\(Lab.randomHex())"

    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var file: String
        var text: String
        /// The expected first line (a prefix of it), with DATA for the data directory, TESTDIR for
        /// the test's directory and TAG for `tag`.
        var error: String
        var admin = false
        var args: [String] = []
        /// Other files to write into TESTDIR.
        var files: [String: String] = [:]
        var description: String { name }
    }

    static func doc(_ resources: String) -> String {
        "os_migrate_version: 1.0.5\nresources:\n" + resources.replacingOccurrences(of: "TAG", with: tag) + "\n"
    }

    static let project = "{type: openstack.identity.Project, params: {name: TAG-p, domain_ref: {name: Default}}}"
    static let user = "{type: openstack.user.User, params: {name: TAG-u, domain_ref: {name: Default}}}"
    static let image = "{type: openstack.image.Image, _info: {id: i1, status: active, size: 1, checksum: abc}, params: {name: i, disk_format: raw, container_format: bare}}"
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICJZ2sN9LmkdSqGz1x70AhqEyxHbQ9KT5MXMbrZ+jQXN t"

    static let cases: [Case] = [
        // projects
        Case(name: "project without domain", file: "projects.yml", text: doc("- {type: openstack.identity.Project, params: {name: TAG-p}}"),
             error: "DATA/projects.yml: resources[0] (project 'TAG-p'): params.domain_ref is missing", admin: true),
        Case(name: "project tags not strings", file: "projects.yml",
             text: doc("- {type: openstack.identity.Project, params: {name: TAG-p, domain_ref: {name: Default}, tags: [1]}}"),
             error: "DATA/projects.yml: resources[0] (project 'TAG-p'): params.tags is not a list of strings", admin: true),
        Case(name: "project in a missing domain", file: "projects.yml",
             text: doc("- {type: openstack.identity.Project, params: {name: TAG-p, domain_ref: {name: TAG-domain}}}"),
             error: "DATA/projects.yml: resources[0] (project 'TAG-p'): params.domain_ref: domain 'TAG-domain' is neither in the files nor in the destination",
             admin: true),
        Case(name: "project under a missing parent", file: "projects.yml",
             text: doc("- {type: openstack.identity.Project, params: {name: TAG-p, domain_ref: {name: Default}, parent_ref: {name: TAG-ghost, domain_name: Default}}}"),
             error: "DATA/projects.yml: resources[0] (project 'TAG-p'): params.parent_ref: project 'TAG-ghost' is neither in the files nor in the destination",
             admin: true),
        // users
        Case(name: "user with a password", file: "users.yml",
             text: doc("- {type: openstack.user.User, params: {name: TAG-u, domain_ref: {name: Default}, password: hunter2}}"),
             error: "DATA/users.yml: resources[0] (user 'TAG-u'): params.password is not allowed: passwords never go in data files (use import --user-password-file)",
             admin: true),
        Case(name: "user with a missing default project", file: "users.yml",
             text: doc("- {type: openstack.user.User, params: {name: TAG-u, domain_ref: {name: Default}, default_project_ref: {name: TAG-nowhere, domain_name: Default}}}"),
             error: "DATA/users.yml: resources[0] (user 'TAG-u'): params.default_project_ref: project 'TAG-nowhere' is neither in the files nor in the destination",
             admin: true),
        Case(name: "user's default project in a domain that does not exist", file: "users.yml",
             text: doc("- {type: openstack.user.User, params: {name: TAG-u, domain_ref: {name: Default}, default_project_ref: {name: admin, domain_name: TAG-nodomain}}}"),
             error: "DATA/users.yml: resources[0] (user 'TAG-u'): params.default_project_ref: its domain 'TAG-nodomain' does not exist in the destination",
             admin: true),
        Case(name: "user twice", file: "users.yml", text: doc("- \(user)\n- \(user)"),
             error: "DATA/users.yml: 'TAG-u' is defined 2 times (users.yml resources[0], users.yml resources[1]); names must be unique per kind",
             admin: true),
        Case(name: "password file not a mapping", file: "users.yml", text: doc("- \(user)"),
             error: "--user-password-file TESTDIR/pw.yml: expected a mapping of user name to password", admin: true,
             args: ["--user-password-file", "TESTDIR/pw.yml"], files: ["pw.yml": "- a\n- b\n"]),
        Case(name: "password not a string", file: "users.yml", text: doc("- \(user)"),
             error: "--user-password-file TESTDIR/pw.yml: the password of user 'TAG-u' is not a string (quote it)", admin: true,
             args: ["--user-password-file", "TESTDIR/pw.yml"], files: ["pw.yml": "\(tag)-u: 12345\n"]),
        // role assignments
        Case(name: "assignment without role", file: "user_project_role_assignments.yml",
             text: doc("- {type: openstack.identity.UserProjectRoleAssignment, params: {project_ref: {name: admin, domain_name: Default}, user_ref: {name: admin, domain_name: Default}}}"),
             error: "DATA/user_project_role_assignments.yml: resources[0] (user project role assignment 'admin ? on admin'): params.role_ref is missing",
             admin: true),
        Case(name: "assignment of a missing role", file: "user_project_role_assignments.yml",
             text: doc("- {type: openstack.identity.UserProjectRoleAssignment, params: {project_ref: {name: admin, domain_name: Default}, role_ref: {name: TAG-role}, user_ref: {name: admin, domain_name: Default}}}"),
             error: "DATA/user_project_role_assignments.yml: resources[0] (user project role assignment 'admin TAG-role on admin'): params.role_ref: role 'TAG-role' is neither in the files nor in the destination",
             admin: true),
        Case(name: "assignment user not a reference", file: "user_project_role_assignments.yml",
             text: doc("- {type: openstack.identity.UserProjectRoleAssignment, params: {project_ref: {name: admin, domain_name: Default}, role_ref: {name: member}, user_ref: admin}}"),
             error: "DATA/user_project_role_assignments.yml: resources[0] (user project role assignment '? member on admin'): params.user_ref is not a reference (a mapping with name, project_name, domain_name)",
             admin: true),
        // flavors
        Case(name: "flavor with negative ram", file: "flavors.yml",
             text: doc("- {type: openstack.compute.Flavor, params: {name: TAG-f, vcpus: 1, ram: -5, disk: 0}}"),
             error: "DATA/flavors.yml: resources[0] (flavor 'TAG-f'): params.ram is -5, out of range (1 to 2147483647)", admin: true),
        Case(name: "flavor extra spec not a string", file: "flavors.yml",
             text: doc("- {type: openstack.compute.Flavor, params: {name: TAG-f, vcpus: 1, ram: 64, disk: 0, extra_specs: {'hw:x': [1]}}}"),
             error: "DATA/flavors.yml: resources[0] (flavor 'TAG-f'): params.extra_specs.hw:x is not a string or a number", admin: true),
        Case(name: "flavor without vcpus", file: "flavors.yml",
             text: doc("- {type: openstack.compute.Flavor, params: {name: TAG-f, ram: 64, disk: 0}}"),
             error: "DATA/flavors.yml: resources[0] (flavor 'TAG-f'): params.vcpus is missing", admin: true),
        Case(name: "flavor access for a missing project", file: "flavors.yml",
             text: doc("- {type: openstack.compute.Flavor, params: {name: TAG-f, vcpus: 1, ram: 64, disk: 0, is_public: false, access_project_refs: [{name: TAG-ghost, domain_name: Default}]}}"),
             error: "DATA/flavors.yml: resources[0] (flavor 'TAG-f'): params.access_project_refs[0]: project 'TAG-ghost' is neither in the files nor in the destination",
             admin: true),
        // keypairs
        Case(name: "keypair with a private key", file: "keypairs.yml",
             text: doc("- {type: openstack.compute.Keypair, params: {name: k, public_key: \"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbg==\\n-----END OPENSSH PRIVATE KEY-----\"}}"),
             error: "DATA/keypairs.yml: resources[0] (keypair 'k'): params.public_key holds a private key: only public keys may be in data files"),
        Case(name: "keypair without public key", file: "keypairs.yml", text: doc("- {type: openstack.compute.Keypair, params: {name: k}}"),
             error: "DATA/keypairs.yml: resources[0] (keypair 'k'): params.public_key is missing"),
        Case(name: "keypair of an unknown type", file: "keypairs.yml",
             text: doc("- {type: openstack.compute.Keypair, params: {name: k, public_key: '\(key)', type: rsa}}"),
             error: "DATA/keypairs.yml: resources[0] (keypair 'k'): params.type 'rsa' is not ssh or x509"),
        // users' keypairs
        Case(name: "keypair of a missing user", file: "users_keypairs.yml",
             text: doc("- {type: openstack.compute.Keypair, params: {name: k, public_key: '\(key)', user_ref: {name: TAG-ghost, domain_name: Default}}}"),
             error: "DATA/users_keypairs.yml: resources[0] (users keypair 'TAG-ghost: k'): params.user_ref: user 'TAG-ghost' is neither in the files nor in the destination",
             admin: true),
        Case(name: "user keypair without user", file: "users_keypairs.yml",
             text: doc("- {type: openstack.compute.Keypair, params: {name: k, public_key: '\(key)'}}"),
             error: "DATA/users_keypairs.yml: resources[0] (users keypair '?: k'): params.user_ref is missing", admin: true),
        Case(name: "user keypair twice", file: "users_keypairs.yml",
             text: doc(String(repeating: "- {type: openstack.compute.Keypair, params: {name: k, public_key: '\(key)', user_ref: {name: TAG-u, domain_name: Default}}}\n", count: 2)),
             error: "DATA/users_keypairs.yml: 'k:TAG-u:Default' is defined 2 times (users_keypairs.yml resources[0], users_keypairs.yml resources[1]); names must be unique per kind",
             admin: true),
        Case(name: "a user in the users' keypairs file", file: "users_keypairs.yml", text: doc("- \(user)"),
             error: "DATA/users_keypairs.yml: resources[0]: type 'openstack.user.User' does not belong in users_keypairs.yml (expected openstack.compute.Keypair)",
             admin: true),
        // images
        Case(name: "image visibility", file: "images.yml", text: doc("- " + image.replacingOccurrences(of: "name: i,", with: "name: i, visibility: everyone,")),
             error: "DATA/images.yml: resources[0] (image 'i'): params.visibility 'everyone' is not public, private, shared or community",
             args: ["--src-cloud", "dst"]),
        Case(name: "image with a reserved property", file: "images.yml",
             text: doc("- " + image.replacingOccurrences(of: "name: i,", with: "name: i, properties: {os_glance_import_task: x},")),
             error: "DATA/images.yml: resources[0] (image 'i'): params.properties.os_glance_import_task is reserved by Glance", args: ["--src-cloud", "dst"]),
        Case(name: "image without disk format", file: "images.yml",
             text: doc("- {type: openstack.image.Image, _info: {id: i1}, params: {name: i, container_format: bare}}"),
             error: "DATA/images.yml: resources[0] (image 'i'): params.disk_format is missing", args: ["--src-cloud", "dst"]),
        Case(name: "image of an unknown disk format", file: "images.yml",
             text: doc("- " + image.replacingOccurrences(of: "disk_format: raw", with: "disk_format: qcow3")),
             error: "DATA/images.yml: resources[0] (image 'i'): params.disk_format is \"qcow3\", not one of ami, ari, aki, vhd, vhdx, vmdk, raw, qcow2, vdi, iso, ploop",
             args: ["--src-cloud", "dst"]),
        Case(name: "flavor without a CPU", file: "flavors.yml",
             text: doc("- {type: openstack.compute.Flavor, params: {name: TAG-f, vcpus: 0, ram: 64, disk: 0}}"),
             error: "DATA/flavors.yml: resources[0] (flavor 'TAG-f'): params.vcpus is 0, out of range (1 to 2147483647)", admin: true),
        Case(name: "image with data but no container format", file: "images.yml",
             text: doc("- " + image.replacingOccurrences(of: "container_format: bare", with: "container_format: null")),
             error: "DATA/images.yml: resources[0] (image 'i'): params.container_format is null", args: ["--src-cloud", "dst"]),
        Case(name: "image with a missing kernel", file: "images.yml",
             text: doc("- " + image.replacingOccurrences(of: "name: i,", with: "name: i, kernel_ref: {name: no-kernel, project_name: '%auth%', domain_name: '%auth%'},")),
             error: "DATA/images.yml: resources[0] (image 'i'): params.kernel_ref: image 'no-kernel' is neither in the files nor in the destination",
             args: ["--src-cloud", "dst"]),
        Case(name: "images without a source for the data", file: "images.yml", text: doc("- \(image)"),
             error: "images: no source for the image data: pass --src-cloud NAME to stream it from the source cloud, or --image-blobs-dir DIR"),
        Case(name: "images from a missing blobs directory", file: "images.yml", text: doc("- \(image)"),
             error: "--image-blobs-dir TESTDIR/nope: not a directory", args: ["--image-blobs-dir", "TESTDIR/nope"]),
        // detached volumes
        Case(name: "volume without size", file: "detached_volumes.yml",
             text: doc("- {type: openstack.network.ServerVolume, _info: {id: v1}, params: {name: v}}"),
             error: "DATA/detached_volumes.yml: resources[0] (detached volume 'v'): _info.size is missing or not a positive integer",
             args: ["--no-data"]),
        Case(name: "volume image metadata not a mapping", file: "detached_volumes.yml",
             text: doc("- {type: openstack.network.ServerVolume, _info: {id: v1, size: 1}, params: {name: v, volume_image_metadata: [a]}}"),
             error: "DATA/detached_volumes.yml: resources[0] (detached volume 'v'): params.volume_image_metadata is not a mapping",
             args: ["--no-data"]),
        Case(name: "volume twice", file: "detached_volumes.yml",
             text: doc(String(repeating: "- {type: openstack.network.ServerVolume, _info: {id: v1, size: 1}, params: {name: v}}\n", count: 2)),
             error: "DATA/detached_volumes.yml: 'v' is defined 2 times (detached_volumes.yml resources[0], detached_volumes.yml resources[1]); names must be unique per kind",
             args: ["--no-data"]),
        // name mapping
        Case(name: "map-name without a kind", file: "projects.yml", text: doc("- \(project)"),
             error: "--map-name projects=x: expected KIND:SOURCE_NAME=DESTINATION_NAME", admin: true, args: ["--map-name", "projects=x"]),
        Case(name: "map-name of an unmappable kind", file: "projects.yml", text: doc("- \(project)"),
             error: "--map-name keypairs:a=b: cannot map names of 'keypairs' (mappable: projects, users, flavors", admin: true,
             args: ["--map-name", "keypairs:a=b"]),
        Case(name: "rename-prefix of an unrenamable kind", file: "projects.yml", text: doc("- \(project)"),
             error: "--rename-prefix keypairs=x: cannot rename 'keypairs' (renamable: projects, users, flavors", admin: true,
             args: ["--rename-prefix", "keypairs=x"]),
    ]

    static var adminCases: [Case] { cases.filter(\.admin) }
    static var tenantCases: [Case] { cases.filter { !$0.admin } }

    @Test("admin kinds: a broken file or option is refused with one exact line and changes nothing", arguments: adminCases)
    func refusedAdmin(_ c: Case) async throws {
        let before = try await Self.adminInventory()
        try await check(c, clouds: ["admin": try Lab.profile("osmlab-admin")], dst: "admin")
        #expect(try await Self.adminInventory() == before)
    }

    /// One tenant for these cases, one case after the other (a tenant per case made dozens of
    /// tenants at once and starved the lab's Keystone).
    @Test("tenant kinds: each broken file or option is refused with one exact line and changes nothing")
    func refusedTenant() async throws {
        try await LabTenant.with("badadm") { dst in
            let session = try dst.session()
            let before = try await Self.tenantInventory(session)
            for c in Self.tenantCases { try await check(c, clouds: ["dst": dst.profile], dst: "dst") }
            #expect(try await Self.tenantInventory(session) == before)
        }
    }

    /// Every service but token issuing reached through a counting proxy: writes are counted as
    /// they are sent, not inferred from a listing afterwards.
    static let services: [(service: String, upstream: String, path: String)] = [
        ("identity", "http://127.0.0.1:5000", "/v3"), ("compute", "http://127.0.0.1:8774", "/v2.1"),
        ("image", "http://127.0.0.1:9292", ""), ("block-storage", "http://127.0.0.1:8776", "/v3/%(project_id)s"),
        ("network", "http://127.0.0.1:9696", ""),
    ]

    func check(_ c: Case, clouds: [String: CloudProfile], dst: String) async throws {
        var proxies: [FaultProxy] = []
        var counted = clouds
        var overrides: [String: String] = [:]
        for s in Self.services {
            let proxy = try await FaultProxy(upstream: s.upstream, faults: .none)
            proxies.append(proxy)
            overrides[s.service] = proxy.url + s.path
        }
        for (name, profile) in clouds {
            var p = profile
            // Keystone hands out Cinder's URL with the project id filled in: so must the override.
            let project = try await Lab.session(profile).currentProjectID
            p.endpointOverrides = overrides.mapValues { $0.replacingOccurrences(of: "%(project_id)s", with: project) }
            counted[name] = p
        }
        defer { for p in proxies { Task { try? await p.shutdown() } } }
        try await check(c, clouds: counted, dst: dst, proxies: proxies)
    }

    func check(_ c: Case, clouds: [String: CloudProfile], dst: String, proxies: [FaultProxy]) async throws {
        let env = try MigrationEnv("badadm", clouds: clouds)
        defer { env.remove() }
        try env.write(c.file, c.text)
        for (name, text) in c.files { try text.write(toFile: env.dir + "/" + name, atomically: true, encoding: .utf8) }
        let kind = c.file.replacingOccurrences(of: ".yml", with: "").replacingOccurrences(of: "_", with: "-")
        let args = ["import", kind, "--dst-cloud", dst] + c.args.map { $0.replacingOccurrences(of: "TESTDIR", with: env.dir) }
        let r = try await env.run(args)
        #expect(r.exitCode == 1, "\(c.name)")
        let expected = "os-migrate: error: " + c.error.replacingOccurrences(of: "DATA", with: env.data)
            .replacingOccurrences(of: "TESTDIR", with: env.dir).replacingOccurrences(of: "TAG", with: Self.tag)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix(expected) == true, "\(c.name): got: \(r.stderr)")
        #expect(lines.count == 1, "\(c.name): one line expected, got: \(r.stderr)")
        #expect(r.stdout.isEmpty, "\(c.name)")
        let writes = proxies.flatMap { $0.stats.requests.filter { $0.key != "GET" && $0.key != "HEAD" } }
        #expect(writes.isEmpty, "\(c.name): write requests were sent: \(writes)")
        if c.error.contains("in the destination") {
            // It asked the cloud: through the proxies (else the count above proves nothing).
            #expect(proxies.reduce(0) { $0 + $1.stats.totalRequests } > 0, "\(c.name): no request went through the proxies")
        }
    }

    /// What this test's names could have created as admin.
    static func adminInventory() async throws -> [String] {
        let admin = try Lab.admin()
        var names = try await admin.list(Keystone.projects).collect().map(\.name)
        names += try await admin.list(Keystone.users).collect().map(\.name)
        names += try await admin.list(Nova.flavors, query: [QueryItem("is_public", "None")]).collect().map(\.name)
        return names.filter { $0.hasPrefix(tag) }.sorted()
    }

    /// Everything of the kinds at stake the tenant has, by id or name.
    static func tenantInventory(_ s: CloudSession) async throws -> [String] {
        let project = try await s.currentProjectID
        var out = try await s.keypairs().map { "keypair \($0.name)" }
        out += try await s.list(Glance.images, query: [QueryItem("owner", project)]).collect().map { "image \($0.id)" }
        out += try await s.list(Cinder.volumes).collect().map { "volume \($0.id)" }
        return out.sorted()
    }

}
