import Foundation
import OpenStack
import Testing

@testable import Resources

/// The generic field handling the Neutron kinds share: field diffs.
@Suite struct FieldMapTests {
    func record(_ params: JSONObject) -> ResourceRecord { ResourceRecord(type: NetworkKind.typeName, params: params, info: [:]) }

    static let tenantView: JSONObject = [
        "name": "net", "description": "d", "mtu": 1450, "provider_network_type": .null,
        "provider_physical_network": .null, "provider_segmentation_id": .null, "segments": .null,
    ]

    @Test func updatesCarryOldAndNewValues() {
        let long = String(repeating: "x", count: 100)
        var desired = Self.tenantView
        desired["description"] = .string(long)
        desired["mtu"] = 1400
        desired["tags"] = ["b", "a"]
        guard case .update(_, let fields, let changes, _, _) = NetworkKind.fieldMap.step(
            id: "n1", desired: record(desired), current: Self.tenantView.merging(["tags": ["a"]]) { $1 },
            update: { _ in })
        else {
            Issue.record("expected update")
            return
        }
        #expect(fields == ["description", "mtu", "tags"])
        #expect(changes.map(\.field) == fields)
        #expect(changes[0].from == "\"d\"")
        #expect(changes[0].to.count == FieldChange.limit)
        #expect(changes[0].to.hasSuffix("…"))
        #expect(changes[1].text == "mtu: 1450 → 1400")
        #expect(changes[2].text == #"tags: ["a"] → ["b","a"]"#)
        #expect(FieldChange.describe(Array(changes[1...])) == #"mtu: 1450 → 1400, tags: ["a"] → ["b","a"]"#)
    }

    @Test func secretsAreNeverShown() {
        for name in ["password", "admin_password", "application_credential_secret", "token", "auth_token"] {
            let c = FieldChange(field: name, from: "old-secret", to: "new-secret")
            #expect(c.text == "\(name): *** → ***")
        }
        #expect(FieldChange(field: "description", from: "a", to: "b").text == #"description: "a" → "b""#)
    }
}
