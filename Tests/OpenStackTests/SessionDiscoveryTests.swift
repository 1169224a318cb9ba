import Foundation
import Logging
import Synchronization
import Testing

@testable import OpenStack

/// Version discovery through a real session against a scripted server: it is retried like
/// every call, and when it fails for good the session says so and sends no microversion it
/// has not agreed with the service (instead of silently pinning its default).
@Suite struct SessionDiscoveryTests {
    static let novaDoc = #"{"versions": [{"id": "v2.1", "status": "CURRENT", "version": "2.60", "min_version": "2.1"}]}"#

    /// Collects log messages at warning level and above.
    final class Warnings: LogHandler, @unchecked Sendable {
        let messages = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            messages.withLock { $0.append("\(event.message)") }
        }
    }

    struct Run {
        var microversion: String?
        var maxMicroversion: String?
        var sentHeader: String?
        var warnings: [String]
        var rootCalls: Int
    }

    /// A session on a fake cloud whose compute catalog entry is `<fake>/compute/v2.1`; `answer`
    /// answers the discovery calls (`/compute/` and `/compute/v2.1/`), given how many came before.
    func run(apiVersion: String? = nil, _ answer: @escaping @Sendable (String, Int) -> FakeCloud.Response) async throws -> Run {
        let count = Mutex(0)
        let cloud = try await FakeCloud(catalog: { [("compute", $0 + "/compute/v2.1")] }) { req in
            if req.path == "/compute/" || req.path == "/compute/v2.1/" {
                let n = count.withLock { c -> Int in
                    c += 1
                    return c - 1
                }
                return answer(req.path, n)
            }
            return .json(200, #"{"flavors": []}"#)
        }
        let transport = HTTPTransport()
        let warnings = Warnings()
        do {
            var profile = CloudProfile(name: "fake", origin: "test", auth: [
                "auth_url": cloud.url + "/v3", "username": "alice", "password": "pw", "project_name": "proj",
            ])
            if let apiVersion { profile.apiVersions["compute"] = apiVersion }
            let session = try CloudSession(profile: profile, transport: transport,
                                           options: SessionOptions(retry: RetryPolicy(maxAttempts: 4, baseDelay: 0.01, maxDelay: 0.02)),
                                           logger: Logger(label: "test") { _ in warnings })
            let ep = try await session.endpoint("compute")
            _ = try await session.send(APIRequest("compute", .GET, "/flavors"))
            let sent = cloud.requests.last { $0.path == "/compute/v2.1/flavors" }?.headers["openstack-api-version"]
            await cloud.shutdown()
            await transport.shutdown()
            return Run(microversion: ep.microversion, maxMicroversion: ep.maxMicroversion, sentHeader: sent,
                       warnings: warnings.messages.withLock { $0 }, rootCalls: count.withLock { $0 })
        } catch {
            await cloud.shutdown()
            await transport.shutdown()
            throw error
        }
    }

    @Test func aDiscoveryThatMeetsA503IsRetriedAndNegotiates() async throws {
        let r = try await run { _, n in n < 2 ? .json(503, #"{"message": "restarting"}"#) : .json(200, Self.novaDoc) }
        // The cloud offers up to 2.60: our default 2.79 is lowered to it.
        #expect(r.rootCalls == 3)
        #expect(r.microversion == "2.60")
        #expect(r.maxMicroversion == "2.60")
        #expect(r.sentHeader == "compute 2.60")
        #expect(r.warnings.isEmpty)
    }

    @Test func aRootThatIsNotRoutedFallsBackToTheVersionedURL() async throws {
        let r = try await run { path, _ in
            path == "/compute/" ? .json(404, #"{"message": "not here"}"#)
                : .json(200, #"{"version": {"id": "v2.1", "status": "CURRENT", "version": "2.65", "min_version": "2.1"}}"#)
        }
        #expect(r.microversion == "2.65")
        #expect(r.sentHeader == "compute 2.65")
    }

    @Test func aFailedDiscoverySendsNoMicroversionAndWarns() async throws {
        let r = try await run { _, _ in .json(503, #"{"message": "down"}"#) }
        #expect(r.microversion == nil)
        #expect(r.sentHeader == nil)
        // Retried (4 attempts on each of the two URLs), then one warning that says what it does.
        #expect(r.rootCalls == 8)
        #expect(r.warnings.count == 1)
        #expect(r.warnings.first?.contains("compute: version discovery failed") == true)
        #expect(r.warnings.first?.contains("sending no microversion header") == true)
    }

    @Test func aFailedDiscoveryKeepsAConfiguredMicroversion() async throws {
        let r = try await run(apiVersion: "2.50") { _, _ in .json(500, "oops") }
        #expect(r.microversion == "2.50")
        #expect(r.sentHeader == "compute 2.50")
        #expect(r.warnings.first?.contains("sending the configured microversion 2.50") == true)
    }

    @Test func aVersionDocumentThatIsNotJSONIsAFailure() async throws {
        let r = try await run { _, _ in .json(200, "<html>welcome</html>") }
        #expect(r.microversion == nil)
        #expect(r.warnings.first?.contains("no version document") == true)
    }
}
