import Foundation
import OpenStack
import Subprocess
import TestSupport

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Seeding and checking servers for the workload migration tests.
enum WorkloadLab {

    static func waitVolume(_ s: CloudSession, _ id: String, _ status: String = "available") async throws -> Volume {
        try await Waiter.wait("volume \(id)", service: "test", timeout: 300, until: [status],
                              fetch: { try await s.find(Cinder.volumes, id: id) }, status: { $0.status })
    }

    static func waitServer(_ s: CloudSession, _ id: String, _ status: String) async throws {
        _ = try await Waiter.wait("server \(id)", service: "test", timeout: 300, until: [status], failOn: ["ERROR"],
                                  fetch: { try await s.find(Nova.servers, id: id) }, status: { $0.status })
    }

    static func volume(_ s: CloudSession, name: String, size: Int = 1, image: String? = nil) async throws -> Volume {
        var body: JSONObject = ["name": .string(name), "size": .int(size)]
        if let image { body["imageRef"] = .string(image) }
        let v = try await s.create(Cinder.volumes, body)
        return try await waitVolume(s, v.id)
    }

    /// A server on `network`, from a boot volume or an image, with data volumes attached in order.
    static func server(_ s: CloudSession, name: String, network: String, securityGroup: String, key: String,
                       bootVolume: String?, image: String?, data: [String], flavor: String, moreNetworks: [String] = []) async throws -> String
    {
        var body: JSONObject = ["name": .string(name), "flavorRef": .string(flavor),
                                "networks": .array(([network] + moreNetworks).map { ["uuid": .string($0)] }),
                                "security_groups": [["name": .string(securityGroup)]], "key_name": .string(key),
                                "metadata": ["role": .string(name)]]
        if let bootVolume {
            body["block_device_mapping_v2"] = [["uuid": .string(bootVolume), "source_type": "volume", "destination_type": "volume",
                                                "boot_index": 0, "delete_on_termination": false]]
        } else if let image {
            body["imageRef"] = .string(image)
        }
        let id = try await s.json(APIRequest(ServiceType.compute, .POST, "/servers", body: ["server": .object(body)]), key: "server")["id"]!
            .stringValue!
        try await waitServer(s, id, "ACTIVE")
        for v in data {
            try await s.attachVolume(server: id, volume: v)
            _ = try await waitVolume(s, v, "in-use")
        }
        return id
    }

    /// Write `count` MiB of bytes derived from `seed` at `offsetMiB` into a volume's data file.
    static func fill(_ volumeID: String, seed: UInt64, offsetMiB: Int, count: Int) async throws {
        let path = try await volumePath(volumeID)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: UInt64(offsetMiB) << 20)
        var state = seed | 1
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<count {
            for i in stride(from: 0, to: chunk.count, by: 8) {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                withUnsafeBytes(of: state.littleEndian) { b in for j in 0..<8 { chunk[i + j] = b[j] } }
            }
            h.write(Data(chunk))
        }
        try h.synchronize()
    }

    /// The host path of a volume's current data (`volpath` follows snapshot overlays).
    static func volumePath(_ id: String) async throws -> String {
        let r = try await run(Lab.directory + "/volpath", [id])
        guard r.status == 0 else { throw TestFailure("volpath \(id): \(r.err)") }
        return r.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Are two volumes' contents identical? `qemu-img compare` reads raw files and qcow2 overlays alike.
    static func identical(_ a: String, _ b: String) async throws -> Bool {
        let pa = try await volumePath(a), pb = try await volumePath(b)
        return try await run("/usr/bin/qemu-img", ["compare", "-q", pa, pb]).status == 0
    }

    static func run(_ exe: String, _ args: [String]) async throws -> (status: Int32, out: String, err: String) {
        let r = try await Subprocess.run(.path(FilePath(exe)), arguments: Arguments(args), output: .string(limit: 1 << 20),
                                         error: .string(limit: 1 << 20))
        let status: Int32 = if case .exited(let c) = r.terminationStatus { c } else { -1 }
        return (status, r.standardOutput, r.standardError)
    }

    /// Everything a project holds that a migration could leak: volumes, snapshots, images it owns, ports.
    static func inventory(_ s: CloudSession) async throws -> [String] {
        let pid = try await s.currentProjectID
        var out: [String] = []
        out += try await s.list(Cinder.volumes).collect().map { "volume \($0.name) \($0.id)" }
        out += try await s.list(Cinder.snapshots).collect().map { "snapshot \($0.name) \($0.id)" }
        out += try await s.list(Glance.images, query: [QueryItem("owner", pid)]).collect().map { "image \($0.name) \($0.id)" }
        out += try await s.list(Neutron.ports, query: [QueryItem("project_id", pid)]).collect().map { "port \($0.deviceOwner ?? "") \($0.id)" }
        out += try await s.list(Nova.servers).collect().map { "server \($0.name) \($0.id)" }
        out += try await s.list(Neutron.floatingIPs, query: [QueryItem("project_id", pid)]).collect().map { "fip \($0.floatingIPAddress)" }
        return out.sorted()
    }
}
