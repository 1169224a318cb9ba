import Engine
import Foundation
import OpenStack
import Resources
import Testing
import TestSupport

/// Every flavor extra-spec check validation makes matches what the lab's Nova does with the same
/// extra spec (at the microversion os-migrate asks for): refused there too (400), or accepted
/// and stored as a string (a number).
@Suite("Flavor checks match what Nova accepts")
struct FlavorChecksLabTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// The extra_specs mapping, in YAML flow style.
        var specs: String
        var body: JSONObject
        /// Our error (nil: accepted, and Nova stores `stored`).
        var error: String?
        var stored: [String: String] = [:]
        var description: String { name }
    }

    static let long = String(repeating: "x", count: 256)

    static let cases: [Case] = [
        Case(name: "a number", specs: "{'hw:cpu_cores': 2, 'quota:cpu_shares': 1.5}", body: ["hw:cpu_cores": 2, "quota:cpu_shares": 1.5],
             stored: ["hw:cpu_cores": "2", "quota:cpu_shares": "1.5"]),
        Case(name: "a boolean", specs: "{'hw:x': true}", body: ["hw:x": true],
             error: "params.extra_specs.hw:x is not a string or a number"),
        Case(name: "a key with a slash", specs: "{'hw/x': '1'}", body: ["hw/x": "1"],
             error: "params.extra_specs has the key 'hw/x', which Nova refuses (letters, digits and - _ : . or space; 1 to 255 of them)"),
        Case(name: "a value over 255 characters", specs: "{'hw:x': \(long)}", body: ["hw:x": .string(long)],
             error: "params.extra_specs.hw:x has 256 characters (at most 255)"),
    ]

    @Test("validation refuses exactly the extra specs Nova refuses", arguments: cases)
    func matchesNova(_ c: Case) async throws {
        let text = "os_migrate_version: 1.0.5\nresources:\n- {type: openstack.compute.Flavor, params: {name: f, vcpus: 1, ram: 64, disk: 0, extra_specs: \(c.specs)}}\n"
        let (errors, path) = try withTempDir("flavorchk") { dir in
            let path = try dir.write("flavors.yml", text)
            return (Validator.check([KindFile(kind: FlavorKind.self, file: try ResourceFile.load(path))]), path)
        }
        #expect(errors == (c.error.map { ["\(path): resources[0] (flavor 'f'): " + $0] } ?? []))

        // Private: the tenants of other suites, which list public flavors page by page, never see it.
        let admin = try Lab.admin()
        let name = "osmt-flavorchk-\(Lab.randomHex())"
        let flavor = try await admin.json(APIRequest(ServiceType.compute, .POST, "/flavors",
                                                     body: ["flavor": ["name": .string(name), "vcpus": 1, "ram": 64, "disk": 0,
                                                                      "os-flavor-access:is_public": false]]), key: "flavor")
        let id = try #require(flavor["id"]?.stringValue)
        var status = 200
        do {
            _ = try await admin.json(APIRequest(ServiceType.compute, .POST, "/flavors/\(id)/os-extra_specs", body: ["extra_specs": .object(c.body)]))
        } catch let e as OpenStackError {
            status = e.status ?? -1
        }
        let stored = try await admin.flavorExtraSpecs(id)
        _ = try await admin.send(APIRequest(ServiceType.compute, .DELETE, "/flavors/\(id)"))
        #expect(status == (c.error == nil ? 200 : 400), "Nova answered \(status)")
        if c.error == nil { #expect(stored == c.stored) }
    }
}
