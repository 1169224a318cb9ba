import Foundation
import Synchronization
import Testing

@testable import OpenStack

/// Waiter against scripted status sequences (no network).
@Suite struct WaiterTests {
    struct Thing: Sendable { var status: String; var fault: String? }

    /// Returns the statuses in order, then repeats the last one; nil means "gone".
    final class Script: Sendable {
        let steps: [String?]
        let calls = Mutex(0)
        init(_ steps: [String?]) { self.steps = steps }
        func next() -> Thing? {
            let i = calls.withLock { c in
                defer { c += 1 }
                return c
            }
            return steps[min(i, steps.count - 1)].map { Thing(status: $0, fault: "disk on fire") }
        }
    }

    @Test func reachesTheTarget() async throws {
        let s = Script(["BUILD", "build", "ACTIVE"])
        let t = try await Waiter.wait("server x", service: "compute", timeout: 10, interval: 0.01, until: ["active"],
                                      fetch: { s.next() }, status: { $0.status })
        #expect(t.status == "ACTIVE")
        #expect(s.calls.withLock { $0 } == 3)
    }

    @Test func failsFastOnAnErrorStatusWithItsDetail() async throws {
        let s = Script(["creating", "error", "available"])
        let start = ContinuousClock.now
        do {
            _ = try await Waiter.wait("volume v", service: "block-storage", timeout: 30, interval: 0.01, until: ["available"],
                                      fetch: { s.next() }, status: { $0.status }, detail: { $0.fault })
            Issue.record("no error")
        } catch let e as OpenStackError {
            #expect(e.kind == .waitFailed)
            #expect(e.description == "block-storage: volume v went to status error: disk on fire")
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(s.calls.withLock { $0 } == 2)
    }

    @Test func timesOutSayingWhereItStands() async throws {
        let s = Script(["queued"])
        do {
            _ = try await Waiter.wait("image i", service: "image", timeout: 0.5, interval: 0.05, until: ["active", "saving"],
                                      fetch: { s.next() }, status: { $0.status })
            Issue.record("no timeout")
        } catch let e as OpenStackError {
            #expect(e.description == "image: image i still queued after 0 s (waiting for active/saving)")
        }
    }

    @Test func disappearing() async throws {
        let s = Script(["BUILD", nil])
        do {
            _ = try await Waiter.wait("server x", service: "compute", timeout: 10, interval: 0.01, until: ["ACTIVE"],
                                      fetch: { s.next() }, status: { $0.status })
            Issue.record("no error")
        } catch let e as OpenStackError {
            #expect(e.description == "compute: server x disappeared while waiting for ACTIVE")
        }
    }

    @Test func waitGoneTreatsA404AsGone() async throws {
        let n = Mutex(0)
        try await Waiter.waitGone("network n", service: "network", timeout: 10, interval: 0.01) {
            let i = n.withLock { c in
                defer { c += 1 }
                return c
            }
            if i < 2 { return "ACTIVE" }
            throw OpenStackError(kind: .http(status: 404), service: "network", message: "gone")
        }
        #expect(n.withLock { $0 } == 3)

        await #expect(throws: OpenStackError.self) {
            try await Waiter.waitGone("volume v", service: "block-storage", timeout: 10, interval: 0.01) { "error_deleting" }
        }
        do {
            try await Waiter.waitGone("volume v", service: "block-storage", timeout: 0.3, interval: 0.05) { "deleting" }
            Issue.record("no timeout")
        } catch let e as OpenStackError {
            #expect(e.description == "block-storage: volume v still deleting after 0 s (waiting for deletion)")
        }
        // Other errors are not swallowed.
        await #expect(throws: OpenStackError.self) {
            try await Waiter.waitGone("volume v", service: "block-storage", timeout: 10, interval: 0.01) {
                throw OpenStackError(kind: .http(status: 500), service: "block-storage", message: "boom")
            }
        }
    }
}

@Suite struct PollCadenceTests {
    @Test func briskAtFirstThenPatient() {
        let c = PollCadence()
        let s = c.schedule(upTo: 40)
        #expect(Array(s.prefix(4)) == [0.25, 0.4, 0.5, 0.5])
        // Within the first 15 s nothing waits more than half a second; after that it grows to 2 s.
        var t = 0.0
        for d in s {
            if t < 15 { #expect(d <= 0.5) } else { #expect(d >= 0.5 && d <= 2) }
            t += d
        }
        #expect(s.last == 2)
        // An operation that ends at 2.4 s is seen by 2.65 s (a 2 s step saw it at 3.9 s).
        #expect(c.schedule(upTo: 2.4).reduce(0, +) < 2.7)
    }

    @Test func theIntervalCapsEverything() {
        let c = PollCadence(interval: 0.3)
        #expect(c.schedule(upTo: 20).allSatisfy { $0 <= 0.3 })
        #expect(c.next(after: nil, elapsed: 0) == 0.25)
    }
}
