import Foundation
import OpenStack
import Testing
import TestSupport

@testable import Engine
@testable import Resources

/// The volume-types kind on fixtures: registry, validation, renames. The lab test
/// (`VolumeTypeTests`) exports and imports real types.
@Suite("Volume types on fixtures")
struct VolumeTypeKindTests {
    static func type(_ name: String, _ params: JSONObject = [:]) -> ResourceRecord {
        ResourceRecord(type: VolumeTypeKind.typeName, params: ["name": .string(name)].merging(params) { _, b in b })
    }

    static func check(_ records: [ResourceRecord]) -> [String] {
        Validator.check([KindFile(kind: VolumeTypeKind.self, file: ResourceFile(path: "/d/volume_types.yml", records: records))])
    }

    @Test("found by its CLI name (singular too), its type string and its file; imported after projects")
    func registry() {
        #expect(ResourceRegistry.kind(named: "volume-types")?.name == "volume-types")
        #expect(ResourceRegistry.kind(named: "volume_type")?.name == "volume-types")
        #expect(ResourceRegistry.kind(forType: "openstack.block_storage.VolumeType")?.name == "volume-types")
        #expect(ResourceRegistry.kind(forFile: "volume_types.yml")?.name == "volume-types")
        let order = ResourceRegistry.kinds.map { $0.name }
        #expect(order.firstIndex(of: "projects")! < order.firstIndex(of: "volume-types")!)
        #expect(order.firstIndex(of: "volume-types")! < order.firstIndex(of: "detached-volumes")!)
        #expect(VolumeTypeKind.adminOnly && VolumeTypeKind.refType == .volumeType)
    }

    @Test("a well-formed private type passes; every wrong value is one line naming the field")
    func validation() {
        let good = Self.type("gold", [
            "description": "fast disks", "is_public": false, "extra_specs": ["volume_backend_name": "lvm"],
            "access_project_refs": [Reference(name: "p", domainName: "Default").json],
        ])
        #expect(Self.check([good]).isEmpty)
        let at = "/d/volume_types.yml: resources[0] (volume type 'bad')"
        let bad = Self.type("bad", [
            "is_public": "no", "description": .string(String(repeating: "d", count: 256)),
            "extra_specs": ["n": 1, .init(stringLiteral: String(repeating: "k", count: 256)): "v", "long": .string(String(repeating: "v", count: 256))],
            "access_project_refs": ["p"],
        ])
        #expect(Self.check([bad]) == [
            "\(at): params.description has 256 characters (at most 255)",
            "\(at): params.is_public is not a boolean (true or false): \"no\"",
            "\(at): params.extra_specs has a key of 256 characters (at most 255)",
            "\(at): params.extra_specs.long has 256 characters (at most 255)",
            "\(at): params.extra_specs.n is not a string",
            "\(at): params.access_project_refs[0] is not a reference (a mapping with name, project_name, domain_name)",
        ])
        #expect(Self.check([Self.type("x", ["extra_specs": ["a", "b"]])]) == ["/d/volume_types.yml: resources[0] (volume type 'x'): params.extra_specs is not a mapping"])
        #expect(Self.check([Self.type("x", ["is_public": true, "access_project_refs": [Reference(name: "p").json]])])
            == ["/d/volume_types.yml: resources[0] (volume type 'x'): params.access_project_refs is set but the volume type is public"])
        #expect(Self.check([Self.type("a"), Self.type("a")]).count == 1)
    }

    @Test("--map-name volume-types renames the type and the volume_type of the volumes that use it; access follows project renames")
    func renames() throws {
        var m = NameMapping()
        try m.add(spec: "volume-types:fast=gold")
        try m.add(spec: "projects:p=p2")
        let t = Self.type("fast", ["is_public": false, "access_project_refs": [Reference(name: "p", domainName: "Default").json]])
        let out = m.apply(t, kind: VolumeTypeKind.self)
        #expect(out.params["name"] == "gold")
        #expect(out.params["access_project_refs"] == [Reference(name: "p2", domainName: "Default").json])
        let v = ResourceRecord(type: DetachedVolumeKind.typeName, params: ["name": "v", "volume_type": "fast"])
        #expect(m.apply(v, kind: DetachedVolumeKind.self).params["volume_type"] == "gold")
        #expect(m.volumeTypes == ["fast": "gold"])
    }

    @Test("--rename-prefix volume-types=PREFIX takes the names from volume_types.yml")
    func prefix() throws {
        let dir = NSTemporaryDirectory() + "osm-vt-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ResourceFile(path: dir + "/volume_types.yml", records: [Self.type("fast"), Self.type("slow")]).write()
        var m = NameMapping()
        try m.add(prefixSpec: "volume-types=dst_", dataDir: dir)
        #expect(m.renames(.volumeType) == ["fast": "dst_fast", "slow": "dst_slow"])
        let v = ResourceRecord(type: DetachedVolumeKind.typeName, params: ["name": "v", "volume_type": "slow"])
        #expect(m.apply(v, kind: DetachedVolumeKind.self).params["volume_type"] == "dst_slow")
    }

    @Test("null and empty descriptions compare equal")
    func comparable() {
        #expect(VolumeTypeKind.comparable(Self.type("a", ["description": ""])).params["description"] == .null)
        #expect(VolumeTypeKind.comparable(Self.type("a", ["description": "x"])).params["description"] == "x")
    }
}
