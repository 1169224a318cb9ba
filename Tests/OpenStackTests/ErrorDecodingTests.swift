import Foundation
import Testing

@testable import OpenStack

/// Each service's error body, recorded from the lab, gives the service's own message.
@Suite struct ErrorDecodingTests {
    static let recorded: [(file: String, message: String)] = [
        ("nova-400.json", "Invalid input for field/attribute server. Value: {}. 'name' is a required property"),
        ("nova-404.json", "Instance nonexistent could not be found."),
        ("neutron-400.json", "Unrecognized attribute(s) 'bogus'"),
        ("neutron-404.json", "Network nonexistent could not be found."),
        ("neutron-409.json", "Security group rule already exists. Rule id is 785307fa-6460-4768-a0ec-37f03ca5e767."),
        ("cinder-400.json", "Invalid input for field/attribute size. Value: -1. -1 is less than the minimum of 1"),
        ("cinder-404.json", "Volume nonexistent could not be found."),
        ("keystone-401.json", "The request you have made requires authentication."),
        ("keystone-403.json", "You are not authorized to perform the requested action: identity:get_project."),
        ("glance-404.txt", "No image found with ID 00000000-0000-0000-0000-000000000000"),
        // What Glance says to a client that accepts JSON: webob's text, <br />s and all, in "message".
        ("glance-404.json", "No image found with ID 00000000-0000-0000-0000-000000000000"),
        ("glance-400.json", "Provided object does not match schema 'image': {} is not of type 'null', 'string' "
            + "Failed validating 'type' in schema['properties']['name']: {'description': 'Descriptive name for the image', "
            + "'maxLength': 255, 'type': ['null', 'string']} On instance['name']: {}"),
        ("glance-415.txt", "Provided object does not match schema 'image': {} is not of type 'string' "
            + "Failed validating 'type' in schema['additionalProperties']: {'type': 'string'} On instance['image']: {}"),
    ]

    @Test(arguments: recorded.map(\.file))
    func serviceMessage(file: String) throws {
        let expected = Self.recorded.first { $0.file == file }!.message
        #expect(OpenStackError.serviceMessage(from: try Fixture.data("errors/" + file)) == expected)
    }

    @Test func otherShapes() {
        func msg(_ s: String) -> String { OpenStackError.serviceMessage(from: Data(s.utf8)) }
        #expect(msg(#"{"errors": [{"status": 409, "title": "Conflict", "detail": "placement says no"}]}"#) == "placement says no")
        #expect(msg(#"{"errors": [{"title": "Only a title"}]}"#) == "Only a title")
        #expect(msg(#"{"message": "m", "detail": "d"}"#) == "m d")
        #expect(msg(#"{"message": "same", "detail": "same"}"#) == "same")
        #expect(msg(#"{"faultstring": "soap-ish"}"#) == "soap-ish")
        #expect(msg(#"{"overLimit": {"code": 413, "message": "Quota exceeded"}}"#) == "Quota exceeded")
        #expect(msg(#""just a string""#) == "just a string")
        #expect(msg("plain text error\n") == "plain text error")
        #expect(msg("") == "")
        #expect(msg("<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>") == "No server is available.")
    }

    @Test func descriptionCarriesEverything() {
        let e = OpenStackError(kind: .http(status: 404), service: "network", method: "GET",
                               url: "http://127.0.0.1:9696/v2.0/networks/abc", requestID: "req-1",
                               message: "Network abc could not be found.")
        #expect(e.description == "network GET http://127.0.0.1:9696/v2.0/networks/abc returned 404: Network abc could not be found. (request req-1)")
        #expect(e.status == 404)
        #expect(e.isNotFound)
        #expect(!e.isConflict)

        let c = OpenStackError(kind: .http(status: 409), service: "network", method: "POST", url: "http://h/v2.0/security-group-rules",
                               message: "exists")
        #expect(c.isConflict)
        #expect(!c.isNotFound)
        #expect(c.description == "network POST http://h/v2.0/security-group-rules returned 409: exists")

        #expect(OpenStackError(kind: .notFound, service: "image", message: "no image 'x'").isNotFound)
        #expect(OpenStackError(kind: .notFound, service: "image", message: "no image 'x'").description == "image: no image 'x'")
        #expect(OpenStackError(kind: .http(status: 401), service: "identity", message: "").isUnauthorized)
        #expect(OpenStackError(kind: .http(status: 403), service: "identity", message: "").isForbidden)
        #expect(OpenStackError(kind: .http(status: 400), service: "identity", message: "").isBadRequest)
        #expect(OpenStackError(kind: .transport, service: "compute", method: "POST", url: "http://h/v2.1/servers", message: "reset")
            .description == "compute POST http://h/v2.1/servers failed: reset")
        #expect(OpenStackError(kind: .timeout, service: "compute", method: "GET", url: "http://h/v2.1/servers", message: "slow")
            .description == "compute GET http://h/v2.1/servers timed out: slow")
        #expect(OpenStackError(kind: .timeout, service: "compute", message: "x").status == nil)
    }

    @Test func urlInAnErrorHasNoCredentials() {
        let e = OpenStackError(kind: .http(status: 500), service: "image", method: "GET",
                               url: "https://user:hunter2@glance.example/v2/images?marker=m&password=hunter2&token=abc",
                               message: "boom")
        #expect(e.url == "https://glance.example/v2/images?marker=m&password=***&token=***")
        #expect(!e.description.contains("hunter2"))
    }
}
