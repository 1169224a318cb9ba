import Foundation
import NIOSSL
import Testing
import TestSupport

@testable import OpenStack

/// TLS settings per cloud: verification on by default, CA bundle, insecure only when asked,
/// client certificate and key.
@Suite struct TLSConfigurationTests {
    var pem: String { Fixture.root.appendingPathComponent("tls/test-client.pem").path }
    var key: String { Fixture.root.appendingPathComponent("tls/test-client.key").path }

    func profile(verify: Bool = true, ca: String? = nil, cert: String? = nil, key: String? = nil) -> CloudProfile {
        CloudProfile(name: "c", origin: "clouds.yaml /x", auth: ["auth_url": "https://k/v3", "username": "u", "password": "p",
                                                                "project_name": "p"],
                     verifyTLS: verify, caCertFile: ca, clientCertFile: cert, clientKeyFile: key)
    }

    @Test func defaultIsTheClientsVerifyingConfiguration() throws {
        #expect(try HTTPTransport.tlsConfiguration(for: profile()) == nil)
    }

    @Test func insecureOnlyWhenAsked() throws {
        let tls = try #require(try HTTPTransport.tlsConfiguration(for: profile(verify: false)))
        #expect(tls.certificateVerification == .none)
    }

    @Test func caBundleIsTheTrustRoot() throws {
        let tls = try #require(try HTTPTransport.tlsConfiguration(for: profile(ca: pem)))
        #expect(tls.certificateVerification == .fullVerification)
        #expect(tls.trustRoots == .certificates(try NIOSSLCertificate.fromPEMFile(pem)))
    }

    @Test func clientCertificateAndKey() throws {
        let tls = try #require(try HTTPTransport.tlsConfiguration(for: profile(cert: pem, key: key)))
        #expect(tls.certificateChain.count == 1)
        #expect(tls.privateKey != nil)
        #expect(tls.certificateVerification == .fullVerification)
        #expect(errorText { _ = try HTTPTransport.tlsConfiguration(for: profile(cert: pem)) }
            == "clouds.yaml /x: cloud 'c': cert is set but key is missing")
    }

    @Test func unreadableOrBadFiles() throws {
        try withTempDir { dir in
            let bad = try dir.write("bad.pem", "not a certificate\n")
            let t = errorText { _ = try HTTPTransport.tlsConfiguration(for: profile(ca: bad)) }
            #expect(t?.hasPrefix("clouds.yaml /x: cloud 'c': cannot load TLS files: ") == true, "\(t ?? "")")
            // validate() names a file that cannot be read before any TLS code runs
            #expect(errorText { try profile(ca: dir.path + "/missing.pem").validate() }
                == "clouds.yaml /x: cloud 'c': cacert file '\(dir.path)/missing.pem' is not readable")
            #expect(errorText { try profile(cert: pem, key: dir.path + "/missing.key").validate() }
                == "clouds.yaml /x: cloud 'c': key file '\(dir.path)/missing.key' is not readable")
        }
    }
}
