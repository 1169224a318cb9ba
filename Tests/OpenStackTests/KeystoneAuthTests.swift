import Foundation
import Testing
import TestSupport

@testable import OpenStack

@Suite struct KeystoneAuthTests {
    func profile(_ method: CloudProfile.AuthMethod = .password, _ auth: [String: String]) -> CloudProfile {
        CloudProfile(name: "t", origin: "test", authMethod: method, auth: ["auth_url": "http://k:5000/v3"].merging(auth) { $1 })
    }

    // MARK: request bodies

    @Test func passwordWithNamesAndDomains() {
        let body = KeystoneAuth.requestBody(for: profile(.password, [
            "username": "alice", "password": "pw", "user_domain_name": "Users",
            "project_name": "proj", "project_domain_name": "Projects",
        ]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["password"], "password": ["user": [
                "name": "alice", "domain": ["name": "Users"], "password": "pw",
            ]]],
            "scope": ["project": ["name": "proj", "domain": ["name": "Projects"]]],
        ]]
        #expect(body == expected)
    }

    @Test func passwordDomainIDsWinOverNamesAndFallBackToDomainThenDefault() {
        let withIDs = KeystoneAuth.requestBody(for: profile(.password, [
            "username": "alice", "password": "pw", "user_domain_id": "ud", "user_domain_name": "ignored",
            "project_name": "proj", "project_domain_id": "pd",
        ]))
        #expect(withIDs["auth"]?["identity"]?["password"]?["user"]?["domain"] == ["id": "ud"])
        #expect(withIDs["auth"]?["scope"]?["project"]?["domain"] == ["id": "pd"])

        let shared = KeystoneAuth.requestBody(for: profile(.password, [
            "username": "alice", "password": "pw", "domain_name": "Shared", "project_name": "proj",
        ]))
        #expect(shared["auth"]?["identity"]?["password"]?["user"]?["domain"] == ["name": "Shared"])
        #expect(shared["auth"]?["scope"]?["project"]?["domain"] == ["name": "Shared"])

        let bare = KeystoneAuth.requestBody(for: profile(.password, ["username": "alice", "password": "pw", "project_name": "proj"]))
        #expect(bare["auth"]?["identity"]?["password"]?["user"]?["domain"] == ["id": "default"])
        #expect(bare["auth"]?["scope"]?["project"]?["domain"] == ["id": "default"])
    }

    @Test func passwordWithIDs() {
        let body = KeystoneAuth.requestBody(for: profile(.password, [
            "user_id": "u-1", "username": "ignored", "password": "pw", "project_id": "p-1", "project_name": "ignored",
        ]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["password"], "password": ["user": ["id": "u-1", "password": "pw"]]],
            "scope": ["project": ["id": "p-1"]],
        ]]
        #expect(body == expected)
    }

    @Test func applicationCredentialByID() {
        let body = KeystoneAuth.requestBody(for: profile(.applicationCredential, [
            "application_credential_id": "ac-1", "application_credential_secret": "shh", "project_name": "not-sent",
        ]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["application_credential"], "application_credential": ["id": "ac-1", "secret": "shh"]],
        ]]
        #expect(body == expected)
    }

    @Test func applicationCredentialByNameAndUser() {
        let body = KeystoneAuth.requestBody(for: profile(.applicationCredential, [
            "application_credential_name": "migrate", "application_credential_secret": "shh",
            "username": "alice", "user_domain_name": "Default",
        ]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["application_credential"], "application_credential": [
                "name": "migrate", "secret": "shh", "user": ["name": "alice", "domain": ["name": "Default"]],
            ]],
        ]]
        #expect(body == expected)
    }

    @Test func tokenScopedToAProject() {
        let body = KeystoneAuth.requestBody(for: profile(.token, ["token": "tok", "project_id": "p-1"]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["token"], "token": ["id": "tok"]],
            "scope": ["project": ["id": "p-1"]],
        ]]
        #expect(body == expected)
        let unscoped = KeystoneAuth.requestBody(for: profile(.token, ["token": "tok"]))
        #expect(unscoped == ["auth": ["identity": ["methods": ["token"], "token": ["id": "tok"]]]])
    }

    // MARK: token lifetime

    func token(issued: Date, expires: Date) -> AuthToken {
        AuthToken(value: "x", issuedAt: issued, expiresAt: expires, projectID: "p", userID: "u", userName: "u",
                  roles: [], catalog: [])
    }

    @Test func refreshFiveMinutesBeforeExpiryOfALongToken() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let t = token(issued: t0, expires: t0 + 3600)
        #expect(t.needsRefresh(now: t0) == false)
        #expect(t.needsRefresh(now: t0 + 3600 - 301) == false)
        #expect(t.needsRefresh(now: t0 + 3600 - 299) == true)
        #expect(t.needsRefresh(now: t0 + 3600) == true)
        #expect(t.needsRefresh(now: t0 + 7200) == true)
    }

    @Test func refreshATenthBeforeExpiryOfAShortToken() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let t = token(issued: t0, expires: t0 + 600)  // margin 60 s
        #expect(t.needsRefresh(now: t0 + 539) == false)
        #expect(t.needsRefresh(now: t0 + 541) == true)
        let tiny = token(issued: t0, expires: t0 + 20)  // margin floors at 5 s
        #expect(tiny.needsRefresh(now: t0 + 14) == false)
        #expect(tiny.needsRefresh(now: t0 + 16) == true)
    }

    // MARK: token body recorded from the lab (src-user, project src)

    @Test func parsesTheLabsTokenBody() throws {
        let body = try Fixture.data("tokens/password-project-src.json")
        let t = try KeystoneAuth.parseToken(value: "the-token", body: body)
        #expect(t.value == "the-token")
        #expect(t.projectID == "cb4a8376b7d2401ea678c6be3bcb31da")
        #expect(t.projectName == "src")
        #expect(t.projectDomainID == "default")
        #expect(t.projectDomainName == "Default")
        #expect(t.userID == "2dea602750e84985b49c5954f8872e83")
        #expect(t.userName == "src-user")
        #expect(t.userDomainName == "Default")
        #expect(t.roles == ["member", "reader"])
        #expect(t.isAdmin == false)
        #expect(t.catalog.map(\.type) == ["identity", "compute", "network", "volumev3", "placement", "image"])
        #expect(t.expiresAt == Date(timeIntervalSince1970: 1_795_729_644))  // 2026-11-26T21:47:24Z
        #expect(t.issuedAt == Date(timeIntervalSince1970: 1_795_715_244))  // 2026-11-26T17:47:24Z
        #expect(t.expiresAt.timeIntervalSince(t.issuedAt) == 4 * 3600)

        let find = { (s: String, i: String, r: String?) in Catalog.find(service: s, in: t.catalog, interface: i, region: r) }
        #expect(find("compute", "public", "RegionOne") == "http://127.0.0.1:8774/v2.1")
        #expect(find("network", "public", nil) == "http://127.0.0.1:9696")
        #expect(find("image", "internal", "RegionOne") == "http://127.0.0.1:9292")
        #expect(find("block-storage", "public", "RegionOne") == "http://127.0.0.1:8776/v3/cb4a8376b7d2401ea678c6be3bcb31da")
        #expect(find("identity", "public", "RegionOne") == "http://127.0.0.1:5000/v3/")
        #expect(find("compute", "admin", "RegionOne") == nil)
        #expect(find("compute", "public", "RegionTwo") == nil)
        #expect(find("object-store", "public", nil) == nil)
    }

    @Test func tokenBodyWithoutDatesOrProject() throws {
        let body = Data(#"{"token": {"expires_at": "2030-01-01T00:00:00Z", "user": {"id": "u1"}, "extra": [1, 2]}}"#.utf8)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let t = try KeystoneAuth.parseToken(value: "v", body: body, now: now)
        #expect(t.projectID == nil)
        #expect(t.userName == "u1")
        #expect(t.issuedAt == now)
        #expect(t.roles == [])
        #expect(t.catalog.isEmpty)
        let bad = Data(#"{"token": {"expires_at": "tomorrow", "user": {"id": "u1"}}}"#.utf8)
        #expect(errorText { _ = try KeystoneAuth.parseToken(value: "v", body: bad) }
            == "identity: unexpected response: token expires_at 'tomorrow' is not a date")
    }

    @Test func parseDateForms() {
        let d = Date(timeIntervalSince1970: 1_795_729_644)
        #expect(KeystoneAuth.parseDate("2026-11-26T21:47:24.000000Z") == d)
        #expect(KeystoneAuth.parseDate("2026-11-26T21:47:24Z") == d)
        #expect(KeystoneAuth.parseDate("2026-11-26T21:47:24") == d)
        #expect(KeystoneAuth.parseDate("2026-11-26T22:47:24+01:00") == d)
        #expect(KeystoneAuth.parseDate("never") == nil)
    }

    @Test func identityBaseNormalisation() {
        #expect(KeystoneAuth.identityBase(from: "http://k:5000") == "http://k:5000/v3")
        #expect(KeystoneAuth.identityBase(from: "http://k:5000/") == "http://k:5000/v3")
        #expect(KeystoneAuth.identityBase(from: "http://k:5000/v3") == "http://k:5000/v3")
        #expect(KeystoneAuth.identityBase(from: "http://k:5000/v3/") == "http://k:5000/v3")
        #expect(KeystoneAuth.identityBase(from: "http://k:5000/v2.0") == "http://k:5000/v3")
        #expect(KeystoneAuth.identityBase(from: "https://cloud/identity") == "https://cloud/identity/v3")
        #expect(KeystoneAuth.identityBase(from: "https://cloud/identity/v3/") == "https://cloud/identity/v3")
        #expect(KeystoneAuth.identityBase(from: "https://cloud/identity/v3/auth/tokens") == "https://cloud/identity/v3")
    }
}
