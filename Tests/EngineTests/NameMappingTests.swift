import Foundation
import OpenStack
import Testing
import TestSupport

@testable import Engine
@testable import Resources

@Suite("Name mapping at import")
struct NameMappingTests {
    static func ref(_ name: String, project: String? = nil, domain: String? = nil) -> JSONValue {
        Reference(name: name, projectName: project, domainName: domain).json
    }

    static func mapping(_ specs: [String]) throws -> NameMapping {
        var m = NameMapping()
        for s in specs { try m.add(spec: s) }
        return m
    }

    @Test("a user is renamed, and so is its default project reference; the domain stays")
    func user() throws {
        let m = try Self.mapping(["users:alice=new-alice", "projects:p=new-p"])
        let r = ResourceRecord(type: UserKind.typeName, params: [
            "name": "alice", "default_project_ref": Self.ref("p", domain: "Default"), "domain_ref": Self.ref("Default"),
        ])
        let out = m.apply(r, kind: UserKind.self)
        #expect(out.params["name"] == "new-alice")
        #expect(out.params["default_project_ref"] == Self.ref("new-p", domain: "Default"))
        #expect(out.params["domain_ref"] == Self.ref("Default"))
        #expect(out.info == r.info)
    }

    @Test("role assignments, keypairs and flavor access lists follow the renaming")
    func references() throws {
        let m = try Self.mapping(["users:alice=a2", "projects:p=p2"])
        let grant = ResourceRecord(type: RoleAssignmentKind.typeName, params: [
            "project_ref": Self.ref("p", domain: "Default"), "role_ref": Self.ref("member"), "user_ref": Self.ref("alice", domain: "Default"),
        ])
        let g = m.apply(grant, kind: RoleAssignmentKind.self)
        #expect(g.params["project_ref"] == Self.ref("p2", domain: "Default"))
        #expect(g.params["role_ref"] == Self.ref("member"))
        #expect(g.params["user_ref"] == Self.ref("a2", domain: "Default"))

        let key = ResourceRecord(type: KeypairKind.typeName, params: ["name": "k", "user_ref": Self.ref("alice", domain: "Default")])
        let k = m.apply(key, kind: UsersKeypairKind.self)
        #expect(k.params["name"] == "k")
        #expect(k.params["user_ref"] == Self.ref("a2", domain: "Default"))

        let auth = ResourceRecord(type: KeypairKind.typeName, params: ["name": "k", "user_ref": Self.ref(Reference.auth, domain: Reference.auth)])
        #expect(m.apply(auth, kind: KeypairKind.self) == auth)

        let flavor = ResourceRecord(type: FlavorKind.typeName, params: [
            "name": "f", "access_project_refs": [Self.ref("x", domain: "Default"), Self.ref("p", domain: "Default")],
        ])
        #expect(m.apply(flavor, kind: FlavorKind.self).params["access_project_refs"]
            == [Self.ref("x", domain: "Default"), Self.ref("p2", domain: "Default")])
    }

    @Test("a project's name in any reference's project_name is renamed; %auth% never")
    func projectNames() throws {
        let m = try Self.mapping(["projects:p=p2", "networks:net=net2"])
        let subnet = ResourceRecord(type: SubnetKind.typeName, params: [
            "name": "s", "cidr": "10.0.0.0/24", "ip_version": 4, "network_ref": Self.ref("net", project: "p", domain: "Default"),
        ])
        #expect(m.apply(subnet, kind: SubnetKind.self).params["network_ref"] == Self.ref("net2", project: "p2", domain: "Default"))
        let mine = ResourceRecord(type: SubnetKind.typeName, params: [
            "name": "s", "network_ref": Self.ref("net", project: Reference.auth, domain: Reference.auth),
        ])
        #expect(m.apply(mine, kind: SubnetKind.self).params["network_ref"] == Self.ref("net2", project: Reference.auth, domain: Reference.auth))
        let iface = ResourceRecord(type: RouterInterfaceKind.typeName, params: [
            "device_ref": Self.ref("r"), "network_ref": Self.ref("net"),
            "fixed_ips_refs": [["ip_address": "10.0.0.1", "subnet_ref": Self.ref("s", project: "p")]],
        ])
        let i = m.apply(iface, kind: RouterInterfaceKind.self)
        #expect(i.params["fixed_ips_refs"] == [["ip_address": "10.0.0.1", "subnet_ref": Self.ref("s", project: "p2")]])
        #expect(i.params["network_ref"] == Self.ref("net2"))
    }

    @Test("a top-level project's parent (its domain) is not a project to rename")
    func parentDomain() throws {
        let m = try Self.mapping(["projects:Default=nope", "projects:parent=parent2", "projects:child=child2"])
        let top = ResourceRecord(type: ProjectKind.typeName, params: ["name": "parent", "parent_ref": Self.ref("Default"), "domain_ref": Self.ref("Default")])
        let t = m.apply(top, kind: ProjectKind.self)
        #expect(t.params["name"] == "parent2" && t.params["parent_ref"] == Self.ref("Default"))
        let child = ResourceRecord(type: ProjectKind.typeName, params: ["name": "child", "parent_ref": Self.ref("parent", domain: "Default")])
        #expect(m.apply(child, kind: ProjectKind.self).params["parent_ref"] == Self.ref("parent2", domain: "Default"))
    }

    @Test("volume types and zones map the params of what is created")
    func placement() throws {
        let m = try Self.mapping(["volume-type:fast=gold", "availability-zone:az1=nova"])
        let v = ResourceRecord(type: DetachedVolumeKind.typeName, params: ["name": "v", "volume_type": "fast", "availability_zone": "az1"])
        let out = m.apply(v, kind: DetachedVolumeKind.self)
        #expect(out.params["volume_type"] == "gold" && out.params["availability_zone"] == "nova" && out.params["name"] == "v")
    }

    @Test("volume types and zones are reference types: plural words and `az` name them too")
    func placementWords() throws {
        let m = try Self.mapping(["volume-types:fast=gold", "azs:az1=nova", "az:az2=nova2"])
        #expect(m.volumeTypes == ["fast": "gold"] && m.renames(.volumeType) == ["fast": "gold"])
        #expect(m.availabilityZones == ["az1": "nova", "az2": "nova2"])
        let flavor = ResourceRecord(type: FlavorKind.typeName, params: ["name": "fast", "volume_type": "fast"])
        #expect(m.apply(flavor, kind: FlavorKind.self) == flavor)
        var n = NameMapping()
        #expect(errorText { try n.add(spec: "keypairs:a=b") }?.hasPrefix("--map-name keypairs:a=b: cannot map names of 'keypairs' (mappable: projects, users, flavors, volume-types,") == true)
        #expect(errorText { try n.add(spec: "keypairs:a=b") }?.hasSuffix("images, domains, roles, availability-zones)") == true)
    }

    @Test("--rename-prefix takes the names from the data directory's files; --map-name wins")
    func prefix() throws {
        let dir = NSTemporaryDirectory() + "osm-map-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ResourceFile(path: dir + "/projects.yml", records: [
            ResourceRecord(type: ProjectKind.typeName, params: ["name": "p1"]), ResourceRecord(type: ProjectKind.typeName, params: ["name": "p2"]),
        ]).write()
        try ResourceFile(path: dir + "/images.yml", records: [ResourceRecord(type: ImageKind.typeName, params: ["name": "img"])]).write()
        var m = try Self.mapping(["projects:p2=special"])
        try m.add(prefixSpec: "dst_", dataDir: dir)
        #expect(m.renames(.project) == ["p1": "dst_p1", "p2": "special"])
        #expect(m.renames(.image).isEmpty)
        #expect(m.name(.project, "admin") == "admin")
        try m.add(prefixSpec: "images=i_", dataDir: dir)
        #expect(m.renames(.image) == ["img": "i_img"])
    }

    @Test("malformed options are refused with one line")
    func errors() {
        var m = NameMapping()
        #expect(throws: ConfigError("--map-name projects=x: expected KIND:SOURCE_NAME=DESTINATION_NAME")) { try m.add(spec: "projects=x") }
        #expect(throws: ConfigError("--map-name projects:=x: empty name")) { try m.add(spec: "projects:=x") }
        #expect((try? m.add(spec: "keypairs:a=b")) == nil)
        #expect((try? m.add(prefixSpec: "", dataDir: "/nonexistent")) == nil)
        #expect(m.isEmpty)
    }
}

@Suite("Kind helpers")
struct KindHelperTests {
    @Test("parents before children, others in file order")
    func parentsFirst() {
        func p(_ n: String, _ parent: String?) -> ResourceRecord {
            ResourceRecord(type: ProjectKind.typeName, params: ["name": .string(n),
                                                               "parent_ref": parent.map { Reference(name: $0, domainName: "Default").json } ?? Reference(name: "Default").json])
        }
        let records = [p("grandchild", "child"), p("x", nil), p("child", "top"), p("top", nil)]
        #expect(ProjectKind.importOrder(records).compactMap(\.name) == ["x", "top", "child", "grandchild"])
    }

    @Test("public keys compare by type and data, not comment")
    func sameKey() {
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICJZ2sN9LmkdSqGz1x70AhqEyxHbQ9KT5MXMbrZ+jQXN"
        #expect(Keypairs.sameKey(k + " alice@laptop", k + " imported-by-nova"))
        #expect(Keypairs.sameKey(k + "\n", k))
        #expect(!Keypairs.sameKey(k, k.replacingOccurrences(of: "XN", with: "XM")))
    }

    @Test("image params are typed as the reference tool types them, and sent to Glance as strings")
    func imageConversion() {
        #expect(ImageKind.typed("2", .int) == 2)
        #expect(ImageKind.typed("false", .bool) == false)
        #expect(ImageKind.typed("True", .bool) == true)
        #expect(ImageKind.typed("1.5", .float) == 1.5)
        #expect(ImageKind.typed(nil, .string) == .null)
        #expect(ImageKind.plain(true) == "true" && ImageKind.plain(2) == "2" && ImageKind.plain(1.0) == "1.0")
        let r = ResourceRecord(type: ImageKind.typeName, params: [
            "name": "i", "disk_format": "raw", "container_format": "bare", "min_disk": 1, "is_protected": true, "hw_cpu_cores": 2,
            "is_hw_vif_multiqueue_enabled": true, "hash_value": "abc", "architecture": .null,
            "properties": ["custom": "v", "n": 3], "tags": ["b", "a"],
        ])
        let body = ImageKind.createBody(r, kernel: "k1", ramdisk: nil)
        #expect(body == [
            "name": "i", "disk_format": "raw", "container_format": "bare", "min_disk": 1, "hw_cpu_cores": "2",
            "hw_vif_multiqueue_enabled": "true", "custom": "v", "n": "3", "tags": ["a", "b"], "kernel_id": "k1",
        ])
    }

    @Test("image metadata updates are JSON patches: add, replace, remove")
    func imagePatch() {
        let r = ResourceRecord(type: ImageKind.typeName, params: [
            "name": "i", "min_ram": 64, "hw_disk_bus": .null, "os_distro": "debian", "properties": ["keep": "1", "new": "x"], "tags": ["t"],
        ])
        let image: JSONObject = ["id": "x", "name": "i", "min_ram": 0, "hw_disk_bus": "scsi", "keep": "1", "old": "y", "status": "active"]
        let ops = ImageKind.patch(["hw_disk_bus", "min_ram", "os_distro", "properties", "tags"], r, image)
        #expect(ops == [
            ["op": "remove", "path": "/hw_disk_bus"],
            ["op": "replace", "path": "/min_ram", "value": 64],
            ["op": "add", "path": "/os_distro", "value": "debian"],
            ["op": "add", "path": "/new", "value": "x"],
            ["op": "remove", "path": "/old"],
            ["op": "replace", "path": "/tags", "value": ["t"]],
        ])
    }

    @Test("user passwords: a mapping of strings, never shown")
    func passwords() throws {
        let dir = NSTemporaryDirectory() + "osm-pw-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "alice: 's3cret-1'\nbob: \"p@ss\"\n".write(toFile: dir + "/pw.yml", atomically: true, encoding: .utf8)
        let p = try UserPasswords.load(dir + "/pw.yml").adding(aliases: ["alice": "new-alice"])
        #expect(p.password(for: "new-alice") == "s3cret-1" && p.password(for: "bob") == "p@ss")
        #expect("\(p)" == "3 password(s)" && !String(reflecting: p).contains("s3cret"))
        try "alice: 12345\n".write(toFile: dir + "/bad.yml", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError("--user-password-file \(dir)/bad.yml: the password of user 'alice' is not a string (quote it)")) {
            try UserPasswords.load(dir + "/bad.yml")
        }
    }

    @Test("keypairs.yml and users_keypairs.yml hold one type; each file is checked against its own kind")
    func keypairFiles() {
        let key = ResourceRecord(type: KeypairKind.typeName, params: ["name": "k", "public_key": "ssh-ed25519 AAAA x",
                                                                      "user_ref": Reference(name: "u", domainName: "Default").json])
        let own = KindFile(kind: KeypairKind.self, file: ResourceFile(path: "/d/keypairs.yml", records: [key]))
        let others = KindFile(kind: UsersKeypairKind.self, file: ResourceFile(path: "/d/users_keypairs.yml", records: [key]))
        #expect(Validator.check([own, others]) == [
            "/d/keypairs.yml: 'k:u:Default' is defined 2 times (keypairs.yml resources[0], users_keypairs.yml resources[0]); names must be unique per kind",
        ])
    }

    @Test("a name mapped twice to different names, a new name over 255 characters or with a newline: refused")
    func conflictingMaps() throws {
        var m = NameMapping()
        try m.add(spec: "networks:a=b")
        try m.add(spec: "networks:a=b")
        #expect(errorText { try m.add(spec: "networks:a=c") } == "--map-name networks:a=c: 'a' is already mapped to 'b'")
        #expect(errorText { try m.add(spec: "networks:x=" + String(repeating: "n", count: 256)) }
            == "--map-name networks:x=…: the new name has 256 characters (at most 255)")
        #expect(errorText { try m.add(spec: "networks:x=y\nok") } == "--map-name networks:x=y\\nok: the new name holds control characters")
    }

    @Test("two resources that renames would import under one name are a validation error")
    func collisionsAfterMapping() throws {
        let file = KindFile(kind: NetworkKind.self, file: ResourceFile(path: "/d/networks.yml", records: [
            ResourceRecord(type: NetworkKind.typeName, params: ["name": "a"]),
            ResourceRecord(type: NetworkKind.typeName, params: ["name": "b"]),
        ]))
        #expect(Validator.collisions([file], names: NameMapping()).isEmpty)
        var m = NameMapping()
        try m.add(spec: "networks:a=c")
        #expect(Validator.collisions([file], names: m).isEmpty)
        try m.add(spec: "networks:b=c")
        #expect(Validator.collisions([file], names: m)
            == ["/d/networks.yml: resources[0] 'a' and resources[1] 'b' would both be imported as 'c' (after --map-name / --rename-prefix)"])
        var onto = NameMapping()
        try onto.add(spec: "networks:a=b")
        #expect(Validator.collisions([file], names: onto)
            == ["/d/networks.yml: resources[0] 'a' and resources[1] 'b' would both be imported as 'b' (after --map-name / --rename-prefix)"])
    }
}
