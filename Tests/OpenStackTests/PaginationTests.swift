import Foundation
import Testing
import TestSupport

@testable import OpenStack

@Suite struct PaginationTests {
    // MARK: next links, from pages recorded from the lab

    @Test func neutronLinksIgnorePrevious() throws {
        let doc = try Fixture.json("pages/neutron-networks.json")
        #expect(Pagination.nextLink(in: doc, key: "networks")
            == "http://127.0.0.1:9696/v2.0/networks?limit=1&marker=7514f513-fb41-422b-ae67-b183a4efd58b")
    }

    @Test func novaLinks() throws {
        let doc = try Fixture.json("pages/nova-flavors.json")
        #expect(Pagination.nextLink(in: doc, key: "flavors") == "http://127.0.0.1:8774/v2.1/flavors/detail?limit=1&marker=1")
        // the key matters: the servers of a flavors page have no next link
        #expect(Pagination.nextLink(in: doc, key: "servers") == nil)
    }

    @Test func glanceNext() throws {
        let doc = try Fixture.json("pages/glance-images.json")
        #expect(Pagination.nextLink(in: doc, key: "images") == "/v2/images?limit=1&marker=942f48ec-7e15-4e39-9519-11c1e2b7da1a")
    }

    @Test func keystoneLinksNext() throws {
        // Recorded: Keystone says "next": null when there is no next page.
        #expect(Pagination.nextLink(in: try Fixture.json("pages/keystone-projects.json"), key: "projects") == nil)
        let doc: JSONValue = ["projects": [], "links": ["self": "http://k/v3/projects", "previous": nil,
                                                        "next": "http://k/v3/projects?marker=p2&limit=2"]]
        #expect(Pagination.nextLink(in: doc, key: "projects") == "http://k/v3/projects?marker=p2&limit=2")
    }

    @Test func noNextLink() {
        #expect(Pagination.nextLink(in: ["networks": [], "networks_links": []], key: "networks") == nil)
        #expect(Pagination.nextLink(in: ["networks": [], "networks_links": [["rel": "previous", "href": "x"]]], key: "networks") == nil)
        #expect(Pagination.nextLink(in: ["images": [], "next": ""], key: "images") == nil)
        #expect(Pagination.nextLink(in: ["images": []], key: "images") == nil)
    }

    // MARK: relative next links

    @Test func relativeToTheEndpointWeUse() {
        let marker = "7514f513-fb41-422b-ae67-b183a4efd58b"
        // Neutron, straight.
        #expect(Pagination.relativeNext(href: "http://127.0.0.1:9696/v2.0/networks?limit=1&marker=\(marker)",
                                        endpoint: "http://127.0.0.1:9696/v2.0") == "/networks?limit=1&marker=\(marker)")
        // Neutron advertising its own address while we go through a proxy on another port.
        #expect(Pagination.relativeNext(href: "http://127.0.0.1:9696/v2.0/networks?limit=2&marker=m",
                                        endpoint: "http://127.0.0.1:41234/v2.0") == "/networks?limit=2&marker=m")
        // Glance: a path without the endpoint's prefix.
        #expect(Pagination.relativeNext(href: "/v2/images?marker=x", endpoint: "https://cloud/image/v2") == "/images?marker=x")
        #expect(Pagination.relativeNext(href: "/v2/images?limit=1&marker=942f", endpoint: "http://127.0.0.1:9292/v2")
            == "/images?limit=1&marker=942f")
        // Nova behind a path-prefixed proxy, next link naming the backend.
        #expect(Pagination.relativeNext(href: "http://nova-backend:8774/v2.1/servers/detail?marker=z",
                                        endpoint: "https://cloud.example/compute/v2.1") == "/servers/detail?marker=z")
        #expect(Pagination.relativeNext(href: "https://cloud.example/compute/v2.1/flavors/detail?limit=1&marker=1",
                                        endpoint: "https://cloud.example/compute/v2.1") == "/flavors/detail?limit=1&marker=1")
        // Cinder, with the project in the endpoint.
        #expect(Pagination.relativeNext(href: "http://127.0.0.1:8776/v3/pid/volumes/detail?limit=2&marker=v",
                                        endpoint: "http://127.0.0.1:8776/v3/pid") == "/volumes/detail?limit=2&marker=v")
        // Keystone.
        #expect(Pagination.relativeNext(href: "http://k:5000/v3/projects?marker=p2", endpoint: "http://k:5000/v3") == "/projects?marker=p2")
        // Percent-encoding in the query survives.
        #expect(Pagination.relativeNext(href: "http://h/v2.0/ports?marker=a%3Ab&name=x%20y", endpoint: "http://h/v2.0")
            == "/ports?marker=a%3Ab&name=x%20y")
    }

    @Test func joinedURLs() {
        #expect(CloudSession.join("http://h/v2.0", "/networks", []) == "http://h/v2.0/networks")
        #expect(CloudSession.join("http://h/v2.0", "networks", []) == "http://h/v2.0/networks")
        #expect(CloudSession.join("http://h/v2.0", "/networks?limit=2&marker=x", [QueryItem("fields", "id")])
            == "http://h/v2.0/networks?limit=2&marker=x&fields=id")
        #expect(CloudSession.join("http://h/v2.0", "/networks", [QueryItem("name", "a b&c=d/e"), QueryItem("limit", "2")])
            == "http://h/v2.0/networks?name=a%20b%26c%3Dd%2Fe&limit=2")
        #expect(CloudSession.join("http://h/v2.0", "http://other/v2.0/networks", [QueryItem("a", "1")]) == "http://other/v2.0/networks?a=1")
        #expect(CloudSession.join("http://h/v2.1", "/servers/detail", [QueryItem("changes-since", "2026-01-01T00:00:00+00:00")])
            == "http://h/v2.1/servers/detail?changes-since=2026-01-01T00:00:00%2B00:00")
        #expect(APIPath.escape("key pair/1?x#") == "key%20pair%2F1%3Fx%23")
    }

    // MARK: page decoding

    struct Named: Decodable, Sendable { var id: String; var name: String }

    @Test func decodesAPageAndItsLink() throws {
        let body = try Fixture.data("pages/neutron-networks.json")
        let page = try Pagination.decodePage(Named.self, body, key: "networks",
                                             request: APIRequest("network", .GET, "/networks"), requestID: nil)
        #expect(page.items.count == 1)
        #expect(page.items.first?.id == "7514f513-fb41-422b-ae67-b183a4efd58b")
        #expect(page.next?.hasSuffix("marker=7514f513-fb41-422b-ae67-b183a4efd58b") == true)
    }

    @Test func aPageThatIsNotAListIsADecodingError() {
        let body = Data(#"{"NeutronError": {"message": "boom"}}"#.utf8)
        #expect(errorText {
            _ = try Pagination.decodePage(Named.self, body, key: "networks", request: APIRequest("network", .GET, "/networks"),
                                          requestID: "req-1")
        }?.hasPrefix("network GET /networks: unexpected response: cannot decode page of networks: ") == true)
    }
}
