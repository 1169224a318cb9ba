import Foundation
import OpenStack
import Testing

@testable import Resources

/// The generic field handling the Neutron kinds share: admin-only fields and field diffs.
@Suite struct FieldMapTests {
    func record(_ params: JSONObject) -> ResourceRecord { ResourceRecord(type: NetworkKind.typeName, params: params, info: [:]) }

    /// A network as an admin exports it (ours or the Ansible tool's), as a tenant sees it in the
    /// destination (Neutron hides `provider:*` and `segments` from non-admins).
    static let adminExport: JSONObject = [
        "name": "net", "description": "d", "mtu": 1450, "provider_network_type": "geneve",
        "provider_physical_network": .null, "provider_segmentation_id": 1234, "segments": .null,
    ]
    static let tenantView: JSONObject = [
        "name": "net", "description": "d", "mtu": 1450, "provider_network_type": .null,
        "provider_physical_network": .null, "provider_segmentation_id": .null, "segments": .null,
    ]

    @Test func adminOnlyFieldsAreNotComparedWithoutAdmin() {
        let map = NetworkKind.fieldMap
        #expect(map.differences(desired: Self.adminExport, current: Self.tenantView, isAdmin: false) == [])
        #expect(map.differences(desired: Self.adminExport, current: Self.tenantView, isAdmin: true)
            == ["provider_network_type", "provider_segmentation_id"])
        let routers = RouterKind.fieldMap
        #expect(routers.differences(desired: ["name": "r", "is_ha": true, "is_distributed": false],
                                    current: ["name": "r", "is_ha": .null, "is_distributed": .null], isAdmin: false) == [])
    }

    @Test func theItemSaysWhatWasNotApplied() {
        let map = NetworkKind.fieldMap
        #expect(map.adminOnlyNote(record(Self.adminExport), isAdmin: false)
            == "provider_network_type, provider_segmentation_id not applied: Neutron reserves them to admins")
        #expect(map.adminOnlyNote(record(Self.adminExport), isAdmin: true) == nil)
        #expect(map.adminOnlyNote(record(Self.tenantView), isAdmin: false) == nil)
        // false is Neutron's default: nothing is lost.
        #expect(RouterKind.fieldMap.adminOnlyNote(record(["is_ha": false, "is_distributed": true]), isAdmin: false)
            == "is_distributed not applied: Neutron reserves it to admins")

        // An existing network as described apart from admin-only fields: ok, with the note.
        guard case .ok(_, let note) = map.step(id: "n1", desired: record(Self.adminExport), current: Self.tenantView,
                                               isAdmin: false, update: { _ in })
        else {
            Issue.record("expected ok")
            return
        }
        #expect(note == "provider_network_type, provider_segmentation_id not applied: Neutron reserves them to admins")
        // With admin credentials the same difference is a fixed field: a failure that says so.
        guard case .fail(let reason) = map.step(id: "n1", desired: record(Self.adminExport), current: Self.tenantView,
                                                isAdmin: true, update: { _ in })
        else {
            Issue.record("expected fail")
            return
        }
        #expect(reason.hasPrefix("differs in fields that cannot change after creation: provider_network_type (destination null, file \"geneve\")"))
    }

    @Test func updatesCarryOldAndNewValues() {
        let long = String(repeating: "x", count: 100)
        var desired = Self.tenantView
        desired["description"] = .string(long)
        desired["mtu"] = 1400
        desired["tags"] = ["b", "a"]
        guard case .update(_, let fields, let changes, _, _) = NetworkKind.fieldMap.step(
            id: "n1", desired: record(desired), current: Self.tenantView.merging(["tags": ["a"]]) { $1 }, isAdmin: false,
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

    /// A tenant cannot read the admin project: its view of the `public` network is name-only.
    @Test func aNameOnlyReferenceMatchesTheSameNameWithItsOwner() {
        let full: JSONValue = ["domain_name": "Default", "name": "public", "project_name": "admin"]
        let nameOnly: JSONValue = ["domain_name": .null, "name": "public", "project_name": .null]
        #expect(FieldMap.sameReference(full, nameOnly))
        #expect(FieldMap.sameReference(nameOnly, full))
        #expect(!FieldMap.sameReference(full, ["domain_name": "Default", "name": "public", "project_name": "other"]))
        #expect(!FieldMap.sameReference(full, ["domain_name": .null, "name": "public2", "project_name": .null]))
        #expect(!FieldMap.sameReference(full, .null))
        #expect(FieldMap.sameReference(.null, .null))
        #expect(SubnetKind.fieldMap.differences(desired: ["network_ref": full], current: ["network_ref": nameOnly]) == [])
    }

    @Test func secretsAreNeverShown() {
        for name in ["password", "admin_password", "application_credential_secret", "token", "auth_token"] {
            let c = FieldChange(field: name, from: "old-secret", to: "new-secret")
            #expect(c.text == "\(name): *** → ***")
        }
        #expect(FieldChange(field: "description", from: "a", to: "b").text == #"description: "a" → "b""#)
    }

    /// A router's gateway parts only admins may set (enable_snat false, external fixed IPs) are
    /// named on create with tenant credentials, not dropped silently.
    @Test func routerGatewayAdminPartsAreNamedOnCreate() {
        let net: JSONValue = ["name": "public", "project_name": .null, "domain_name": .null]
        let full = record(["name": "r", "external_gateway_refinfo": ["network_ref": net, "enable_snat": false,
                                                                      "external_fixed_ips": [["ip_address": "172.24.4.9"]]]])
        #expect(RouterKind.createNotes(full, isAdmin: false) == ["enable_snat false not applied: Neutron reserves it to admins",
                                                                 "external_fixed_ips not applied: Neutron reserves them to admins"])
        #expect(RouterKind.createNotes(full, isAdmin: true) == [])
        let plain = record(["name": "r", "external_gateway_refinfo": ["network_ref": net, "enable_snat": true, "external_fixed_ips": []]])
        #expect(RouterKind.createNotes(plain, isAdmin: false) == [])
        #expect(RouterKind.createNotes(record(["name": "r", "external_gateway_refinfo": .null]), isAdmin: false) == [])
    }
}
