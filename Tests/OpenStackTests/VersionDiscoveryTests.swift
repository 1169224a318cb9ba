import Foundation
import Testing

@testable import OpenStack

/// Version documents recorded from the lab (`curl http://127.0.0.1:{8774,8776,9292,9696,5000}/`).
@Suite struct VersionDiscoveryTests {
    typealias V = VersionDiscovery.Version

    @Test func split() {
        func s(_ u: String) -> [String?] {
            let r = VersionDiscovery.split(u)
            return [r.root, r.version]
        }
        #expect(s("http://127.0.0.1:8776/v3/abc") == ["http://127.0.0.1:8776", "v3"])
        #expect(s("http://127.0.0.1:8774/v2.1") == ["http://127.0.0.1:8774", "v2.1"])
        #expect(s("http://127.0.0.1:9696") == ["http://127.0.0.1:9696", nil])
        #expect(s("http://127.0.0.1:9292/") == ["http://127.0.0.1:9292/", nil])
        #expect(s("http://127.0.0.1:5000/v3/") == ["http://127.0.0.1:5000", "v3"])
        #expect(s("https://cloud.example/image/v2") == ["https://cloud.example/image", "v2"])
        #expect(s("https://cloud.example/compute/v2.1/servers") == ["https://cloud.example/compute", "v2.1"])
        #expect(s("https://cloud.example/volume/v3/pid?x=1") == ["https://cloud.example/volume", "v3"])
        #expect(s("https://cloud.example/vendor-v2/api") == ["https://cloud.example/vendor-v2/api", nil])
    }

    @Test func parseNova() throws {
        let v = VersionDiscovery.parse(try Fixture.data("versions/nova.json"))
        #expect(v == [V(id: "v2.0", status: "SUPPORTED", version: "", minVersion: ""),
                      V(id: "v2.1", status: "CURRENT", version: "2.93", minVersion: "2.1")])
    }

    @Test func parseCinder() throws {
        #expect(VersionDiscovery.parse(try Fixture.data("versions/cinder.json"))
            == [V(id: "v3.0", status: "CURRENT", version: "3.70", minVersion: "3.0")])
    }

    @Test func parseGlance() throws {
        let v = VersionDiscovery.parse(try Fixture.data("versions/glance.json"))
        #expect(v.count == 15)
        #expect(v.first == V(id: "v2.15", status: "CURRENT", version: nil, minVersion: nil))
        #expect(v.last?.id == "v2.0")
    }

    @Test func parseNeutronAndKeystone() throws {
        #expect(VersionDiscovery.parse(try Fixture.data("versions/neutron.json")) == [V(id: "v2.0", status: "CURRENT")])
        // Keystone wraps its list: {"versions": {"values": [...]}}
        #expect(VersionDiscovery.parse(try Fixture.data("versions/keystone.json")) == [V(id: "v3.14", status: "stable")])
        #expect(VersionDiscovery.parse(Data(#"{"version": {"id": "v2.1", "version": "2.93", "min_version": "2.1"}}"#.utf8))
            == [V(id: "v2.1", version: "2.93", minVersion: "2.1")])
        #expect(VersionDiscovery.parse(Data("<html>".utf8)) == [])
    }

    @Test func versionedURLsForTheLabsUnversionedCatalogEntries() throws {
        let glance = VersionDiscovery.parse(try Fixture.data("versions/glance.json"))
        let neutron = VersionDiscovery.parse(try Fixture.data("versions/neutron.json"))
        let nova = VersionDiscovery.parse(try Fixture.data("versions/nova.json"))
        let cinder = VersionDiscovery.parse(try Fixture.data("versions/cinder.json"))
        #expect(VersionDiscovery.versionedURL(root: "http://127.0.0.1:9292", service: "image", versions: glance, projectID: "p")
            == "http://127.0.0.1:9292/v2")
        #expect(VersionDiscovery.versionedURL(root: "http://127.0.0.1:9696", service: "network", versions: neutron, projectID: "p")
            == "http://127.0.0.1:9696/v2.0")
        #expect(VersionDiscovery.versionedURL(root: "http://127.0.0.1:8774", service: "compute", versions: nova, projectID: "p")
            == "http://127.0.0.1:8774/v2.1")
        #expect(VersionDiscovery.versionedURL(root: "http://127.0.0.1:8776", service: "block-storage", versions: cinder, projectID: "pid")
            == "http://127.0.0.1:8776/v3/pid")
        // No document (discovery failed): the preferred version anyway.
        #expect(VersionDiscovery.versionedURL(root: "http://h:9696", service: "network", versions: [], projectID: nil) == "http://h:9696/v2.0")
        #expect(VersionDiscovery.versionedURL(root: "http://h:8776", service: "block-storage", versions: [], projectID: nil) == "http://h:8776/v3")
        #expect(VersionDiscovery.versionedURL(root: "http://h:1234", service: "placement", versions: [], projectID: nil) == "http://h:1234")
    }

    @Test func sameMajor() {
        #expect(VersionDiscovery.sameMajor("v2.1", "v2.1"))
        #expect(VersionDiscovery.sameMajor("v2.0", "v2"))
        #expect(VersionDiscovery.sameMajor("v2.15", "v2"))
        #expect(VersionDiscovery.sameMajor("v3.0", "v3"))
        #expect(!VersionDiscovery.sameMajor("v2.0", "v2.1"))
        #expect(!VersionDiscovery.sameMajor("v21.0", "v2"))
        #expect(!VersionDiscovery.sameMajor("v3.0", "v2"))
    }

    @Test func negotiate() {
        #expect(VersionDiscovery.negotiate(wanted: "2.79", max: "2.93", min: "2.1") == "2.79")
        #expect(VersionDiscovery.negotiate(wanted: "3.59", max: "3.70", min: "3.0") == "3.59")
        #expect(VersionDiscovery.negotiate(wanted: "2.100", max: "2.93", min: "2.1") == "2.93")
        #expect(VersionDiscovery.negotiate(wanted: "3.0", max: "3.70", min: "3.27") == "3.27")
        #expect(VersionDiscovery.negotiate(wanted: "2.79", max: "", min: "") == "2.79")
        #expect(VersionDiscovery.negotiate(wanted: "2.79", max: nil, min: nil) == "2.79")
        #expect(VersionDiscovery.less("2.9", "2.10"))
        #expect(!VersionDiscovery.less("2.10", "2.9"))
        #expect(!VersionDiscovery.less("3.0", "3"))
        #expect(VersionDiscovery.less("2", "2.1"))
    }
}
