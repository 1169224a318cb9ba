import Foundation
import OpenStack
import Testing
import TestSupport

/// The client's retries and its refusal to repeat writes, through a fault-injecting proxy in
/// front of the lab's Neutron.
@Suite struct FaultInjectionTests {
    static let neutron = "http://127.0.0.1:9696"

    func proxied(_ tenant: LabTenant, _ proxy: FaultProxy, options: SessionOptions = Lab.fastRetryOptions) throws -> CloudSession {
        try Lab.session(tenant.profile(endpointOverrides: ["network": proxy.url + "/v2.0"]), options: options)
    }

    func withProxy<T>(_ plan: FaultPlan, _ body: (FaultProxy) async throws -> T) async throws -> T {
        let proxy = try await FaultProxy(upstream: Self.neutron, faults: plan)
        return try await withCleanup({ try await body(proxy) }, cleanup: { try await proxy.shutdown() })
    }

    @Test func withoutFaultsTheProxyIsTransparent() async throws {
        try await LabTenant.with("fault-none", quotas: false) { tenant in
            try await withProxy(.none) { proxy in
                // No fault to ride out: the normal timeout (a loaded two-core lab can take 5 s).
                let session = try proxied(tenant, proxy, options: SessionOptions())
                let n = try await session.create(Neutron.networks, ["name": .string(tenant.projectName + "-t")])
                #expect(try await session.get(Neutron.networks, n.id).name == tenant.projectName + "-t")
                let missing = randomUUID()
                do {
                    _ = try await session.get(Neutron.networks, missing)
                    Issue.record("found \(missing)")
                } catch let e as OpenStackError {
                    #expect(e.kind == .http(status: 404))
                    #expect(e.message == "Network \(missing) could not be found.")
                    #expect(e.url == "\(proxy.url)/v2.0/networks/\(missing)")
                    #expect(e.requestID?.hasPrefix("req-") == true)
                }
                try await session.delete(Neutron.networks, n.id)
                let s = proxy.stats
                #expect(s.requests == ["POST": 1, "GET": 2, "DELETE": 1])
                #expect(s.forwarded == s.requests)
                #expect(s.totalFaults == 0)
                #expect(s.log == ["POST /v2.0/networks", "GET /v2.0/networks/\(n.id)", "GET /v2.0/networks/\(missing)",
                                  "DELETE /v2.0/networks/\(n.id)"])
            }
        }
    }

    @Test func hundredListingsAtTwentyPercentFaults() async throws {
        try await LabTenant.with("fault-list") { tenant in
            let direct = try tenant.session()
            for i in 0..<3 { _ = try await direct.create(Neutron.networks, ["name": .string("\(tenant.projectName)-\(i)")]) }
            let mine = [QueryItem("project_id", tenant.projectID)]
            let expected = try await direct.list(Neutron.networks, query: mine).collect().map(\.id).sorted()
            #expect(expected.count == 3)

            let plan = FaultPlan(rate: 0.2, kinds: [.status503, .status429(retryAfter: 1), .reset, .stall(6)], seed: 2024)
            try await withProxy(plan) { proxy in
                let session = try proxied(tenant, proxy)
                _ = try await session.authenticate()
                let start = ContinuousClock.now
                // 4 callers x 25 listings of 2 pages each, concurrently (as the engine lists).
                let results = try await withThrowingTaskGroup(of: [[String]].self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            var out: [[String]] = []
                            for _ in 0..<25 {
                                out.append(try await session.list(Neutron.networks, query: mine, pageSize: 2).collect().map(\.id).sorted())
                            }
                            return out
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                let elapsed = ContinuousClock.now - start
                #expect(results.count == 100)
                for (i, got) in results.enumerated() { #expect(got == expected, "listing \(i)") }
                let s = proxy.stats
                print("FaultInjection: 100 listings in \(elapsed): \(s)")
                // Two pages per listing reached Neutron (more only if a slow answer timed out).
                #expect(s.forwarded["GET", default: 0] >= 200)
                // Every request was either answered by Neutron or faulted, and every fault was retried.
                #expect(s.requests["GET", default: 0] == s.forwarded["GET", default: 0] + s.totalFaults)
                #expect(s.upstreamErrors == 0)
                let rate = Double(s.totalFaults) / Double(s.requests["GET", default: 1])
                #expect(rate > 0.1 && rate < 0.3, "fault rate \(rate)")
                for kind in ["503", "429", "reset", "stall"] {
                    #expect(s.faults[kind, default: 0] > 0, "no \(kind) injected: \(s)")
                }
                #expect(session.requests.snapshot["GET", default: 0] == s.requests["GET", default: 0])
            }
        }
    }

    @Test func aPostResetAfterForwardingIsNotRepeated() async throws {
        try await LabTenant.with("fault-post") { tenant in
            let plan = FaultPlan(resetAfterForwarding: ["POST"])
            try await withProxy(plan) { proxy in
                // A long timeout: Neutron must answer the proxy before the client gives up.
                let session = try proxied(tenant, proxy, options: SessionOptions(
                    retry: RetryPolicy(maxAttempts: 8, baseDelay: 0.05, maxDelay: 0.5), requestTimeout: 60))
                // The token first: a loaded Keystone may need a retry of its own, which is not what is counted here.
                _ = try await session.authenticate()
                let before = session.requests.snapshot
                let name = tenant.projectName + "-once"
                do {
                    let n = try await session.create(Neutron.networks, ["name": .string(name)])
                    Issue.record("the create returned \(n.id) although the connection was reset")
                } catch let e as OpenStackError {
                    #expect(e.kind == .transport)
                    #expect(e.service == "network")
                    #expect(e.method == "POST")
                    #expect(e.url == proxy.url + "/v2.0/networks")
                    #expect(e.message.hasSuffix(" (not retried: the request may have been applied)"), "\(e.message)")
                    #expect(e.description.hasPrefix("network POST \(proxy.url)/v2.0/networks failed: "))
                }
                let s = proxy.stats
                #expect(s.requests["POST"] == 1)
                #expect(s.postsForwarded == 1)
                #expect(s.resetsAfterForwarding == 1)
                let sent = session.requests.snapshot
                #expect(sent["POST", default: 0] - before["POST", default: 0] == 1, "one create: \(before) → \(sent)")
                #expect(sent["AUTH", default: 0] == before["AUTH", default: 0], "the token reused: \(before) → \(sent)")
                // The network exists, once.
                let found = try await tenant.session().named(Neutron.networks, name)
                #expect(found.count == 1)
                // Reads through the same proxy still work (and a GET is not reset after forwarding).
                #expect(try await session.named(Neutron.networks, name).count == 1)
            }
        }
    }

    @Test func writesAreNotRetriedOn503OrAResetButAre429() async throws {
        try await LabTenant.with("fault-write", quotas: false) { tenant in
            let name = tenant.projectName + "-w"
            // What is asserted is the error of one faulted POST. On a loaded lab the token request and
            // the proxy may each take seconds: a timeout of 60 s, and the token taken first, keep a slow
            // answer from passing for the fault (a POST that times out is reported as a timeout).
            func session(_ proxy: FaultProxy, attempts: Int = 8) async throws -> CloudSession {
                let s = try proxied(tenant, proxy, options: SessionOptions(
                    retry: RetryPolicy(maxAttempts: attempts, baseDelay: 0.01, maxDelay: 0.05), requestTimeout: 60))
                _ = try await s.authenticate()
                return s
            }
            // 503 on a POST: the service's answer, not repeated.
            try await withProxy(FaultPlan(rate: 1, kinds: [.status503], methods: ["POST"])) { proxy in
                let session = try await session(proxy)
                let e = await #expect(throws: OpenStackError.self) {
                    try await session.create(Neutron.networks, ["name": .string(name)])
                }
                #expect(e?.kind == .http(status: 503))
                #expect(e?.message == "FaultProxy: injected 503 Service Unavailable")
                #expect(proxy.stats.requests["POST"] == 1)
                #expect(proxy.stats.postsForwarded == 0)
            }
            // Reset before forwarding: the client cannot tell, so it does not repeat it either.
            try await withProxy(FaultPlan(rate: 1, kinds: [.reset], methods: ["POST"])) { proxy in
                let session = try await session(proxy)
                let e = await #expect(throws: OpenStackError.self) {
                    try await session.create(Neutron.networks, ["name": .string(name)])
                }
                #expect(e?.kind == .transport)
                #expect(e?.message.hasSuffix("(not retried: the request may have been applied)") == true)
                #expect(proxy.stats.requests["POST"] == 1)
            }
            // 429 means "not processed": retried, with Retry-After honoured, until the attempts run out.
            try await withProxy(FaultPlan(rate: 1, kinds: [.status429(retryAfter: 0)], methods: ["POST"])) { proxy in
                let session = try await session(proxy, attempts: 3)
                let e = await #expect(throws: OpenStackError.self) {
                    try await session.create(Neutron.networks, ["name": .string(name)])
                }
                #expect(e?.kind == .http(status: 429))
                #expect(proxy.stats.requests["POST"] == 3)
                #expect(proxy.stats.postsForwarded == 0)
            }
            // Nothing was created by any of it.
            #expect(try await tenant.session().named(Neutron.networks, name).isEmpty)
        }
    }

    @Test func aStalledReadTimesOutAfterItsAttempts() async throws {
        try await LabTenant.with("fault-stall", quotas: false) { tenant in
            try await withProxy(FaultPlan(rate: 1, kinds: [.stall(8)])) { proxy in
                let session = try proxied(tenant, proxy, options: SessionOptions(
                    retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.05), requestTimeout: 3))
                _ = try await session.authenticate()
                let start = ContinuousClock.now
                let e = await #expect(throws: OpenStackError.self) {
                    _ = try await session.list(Neutron.networks).collect()
                }
                #expect(e?.kind == .timeout)
                #expect(e?.description.hasPrefix("network GET \(proxy.url)/v2.0/networks timed out: ") == true, "\(String(describing: e))")
                #expect(proxy.stats.requests["GET"] == 2)
                // two 3 s timeouts, not the 8 s stalls
                let elapsed = ContinuousClock.now - start
                #expect(elapsed >= .seconds(6) && elapsed < .seconds(14), "\(elapsed)")
            }
        }
    }

    @Test func retryAfterIsHonoured() async throws {
        try await LabTenant.with("fault-ra", quotas: false) { tenant in
            // Every GET gets a 429 with Retry-After: 1 the first time; two attempts take at least a second.
            try await withProxy(FaultPlan(rate: 1, kinds: [.status429(retryAfter: 1)])) { proxy in
                let session = try proxied(tenant, proxy, options: SessionOptions(
                    retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.05), requestTimeout: 5))
                let start = ContinuousClock.now
                let e = await #expect(throws: OpenStackError.self) {
                    _ = try await session.list(Neutron.networks).collect()
                }
                let elapsed = ContinuousClock.now - start
                #expect(e?.kind == .http(status: 429))
                #expect(e?.message == "FaultProxy: injected 429 Too Many Requests")
                #expect(proxy.stats.requests["GET"] == 2)
                #expect(elapsed >= .seconds(1))
            }
            // A Retry-After beyond what the policy accepts to wait: the 429 is reported at once.
            try await withProxy(FaultPlan(rate: 1, kinds: [.status429(retryAfter: 600)])) { proxy in
                let session = try proxied(tenant, proxy)
                // Timed from the listing on: a loaded Keystone's token time is not what is measured.
                _ = try await session.authenticate()
                let start = ContinuousClock.now
                let e = await #expect(throws: OpenStackError.self) {
                    _ = try await session.list(Neutron.networks).collect()
                }
                #expect(e?.kind == .http(status: 429))
                #expect(proxy.stats.requests["GET"] == 1)
                #expect(ContinuousClock.now - start < .seconds(10))
            }
        }
    }
}
