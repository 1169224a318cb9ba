import Foundation
import Testing

@testable import OpenStack

@Suite struct RedactionTests {
    func profile(_ method: CloudProfile.AuthMethod, _ auth: [String: String]) -> CloudProfile {
        CloudProfile(name: "t", origin: "test", authMethod: method, auth: ["auth_url": "http://k:5000/v3"].merging(auth) { $1 })
    }

    @Test func passwordAuthBody() {
        let body = KeystoneAuth.requestBody(for: profile(.password, [
            "username": "alice", "password": "hunter2", "user_domain_name": "Default", "project_name": "p",
            "project_domain_name": "Default",
        ]))
        let redacted = Redaction.redact(body)
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["password"], "password": "***"],
            "scope": ["project": ["name": "p", "domain": ["name": "Default"]]],
        ]]
        // The "password" method object is a secret as a whole: it holds the user's password.
        #expect(redacted == expected)
        #expect(!redacted.jsonString().contains("hunter2"))
    }

    @Test func userObjectWithPasswordKeepsTheName() {
        let v: JSONValue = ["user": ["name": "alice", "password": "hunter2", "domain": ["id": "default"]]]
        #expect(Redaction.redact(v) == ["user": ["name": "alice", "password": "***", "domain": ["id": "default"]]])
    }

    @Test func applicationCredentialBody() {
        let body = KeystoneAuth.requestBody(for: profile(.applicationCredential, [
            "application_credential_id": "ac-1", "application_credential_secret": "s3cr3t-value",
        ]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["application_credential"], "application_credential": ["id": "ac-1", "secret": "***"]],
        ]]
        #expect(Redaction.redact(body) == expected)
        #expect(!Redaction.redact(body).jsonString().contains("s3cr3t-value"))
    }

    @Test func tokenBody() {
        let body = KeystoneAuth.requestBody(for: profile(.token, ["token": "gAAAAABsecret", "project_id": "p-1"]))
        let expected: JSONValue = ["auth": [
            "identity": ["methods": ["token"], "token": ["id": "***"]],
            "scope": ["project": ["id": "p-1"]],
        ]]
        #expect(Redaction.redact(body) == expected)
    }

    @Test func nestedArraysAndOtherSecretKeys() {
        let v: JSONValue = [
            "items": [["name": "a", "admin_password": "x"], ["name": "b", "key_data": "y"]],
            "access_token": "z", "refresh_token": "w", "keep": "me", "token_type": "bearer-is-not-secret",
        ]
        #expect(Redaction.redact(v) == [
            "items": [["name": "a", "admin_password": "***"], ["name": "b", "key_data": "***"]],
            "access_token": "***", "refresh_token": "***", "keep": "me", "token_type": "bearer-is-not-secret",
        ])
    }

    @Test func secretKeysAndHeaders() {
        for k in ["password", "Password", "application_credential_secret", "token", "id_token", "auth_token", "passcode", "totp",
                  "key_data", "access_token", "client_key_data", "os_password"]
        {
            #expect(Redaction.isSecretKey(k), "\(k)")
        }
        for k in ["name", "id", "token_type", "tokens", "project_id", "user", "expires_at"] {
            #expect(!Redaction.isSecretKey(k), "\(k)")
        }
        #expect(Redaction.secretHeaderNames.isSuperset(of: ["x-auth-token", "x-subject-token", "authorization"]))
    }

    @Test func urlUserinfoAndSecretQueryValues() {
        #expect(URLRedaction.redact("https://admin:hunter2@keystone.example:5000/v3/auth/tokens")
            == "https://keystone.example:5000/v3/auth/tokens")
        #expect(URLRedaction.redact("https://user@h/v2.0/networks?limit=2") == "https://h/v2.0/networks?limit=2")
        #expect(URLRedaction.redact("http://h/x?password=a&marker=b&os_token=c") == "http://h/x?password=***&marker=b&os_token=***")
        #expect(URLRedaction.redact("http://127.0.0.1:9696/v2.0/networks?limit=2&marker=m") == "http://127.0.0.1:9696/v2.0/networks?limit=2&marker=m")
        #expect(URLRedaction.redact("not a url ::") == "not a url ::")
    }
}
