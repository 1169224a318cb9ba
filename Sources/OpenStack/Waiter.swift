import Foundation

/// Polls a resource until it reaches a target status, failing fast on error statuses.
public enum Waiter {
    /// Run `op` until the cloud stops answering 409 Conflict (a router whose ports are still
    /// being removed, a network a port still holds): every `interval` seconds, at most `timeout`
    /// seconds; any other error, or a conflict that outlasts the timeout, is thrown.
    public static func untilNoConflict(timeout: Double = 20, interval: Double = 2, _ op: () async throws -> Void) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            do {
                try await op()
                return
            } catch let e as OpenStackError where e.isConflict && ContinuousClock.now + .milliseconds(Int(interval * 1000)) < deadline {
                try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
        }
    }

    /// Statuses that mean "this will not get better" across Nova, Cinder, Glance and Neutron.
    public static let defaultFailures: Set<String> = [
        "error", "error_deleting", "error_restoring", "error_extending", "error_backing-up", "error_managing",
        "killed", "deleted", "unrecoverable",
    ]

    /// Poll `fetch` until `status` is in `targets`. `fetch` returning nil means the resource is gone.
    public static func wait<T: Sendable>(
        _ what: String, service: String, timeout: Double, interval: Double = 2,
        until targets: Set<String>, failOn failures: Set<String> = defaultFailures,
        fetch: @Sendable () async throws -> T?, status: @Sendable (T) -> String,
        detail: (@Sendable (T) -> String?)? = nil
    ) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let wanted = Set(targets.map { $0.lowercased() })
        let bad = Set(failures.map { $0.lowercased() })
        var poll = Poll(PollCadence(interval: interval))
        var last = "unknown"
        while true {
            guard let value = try await fetch() else {
                throw OpenStackError(kind: .waitFailed, service: service, message: "\(what) disappeared while waiting for \(targets.sorted().joined(separator: "/"))")
            }
            let s = status(value)
            last = s
            if wanted.contains(s.lowercased()) { return value }
            if bad.contains(s.lowercased()) {
                let d = detail?(value).map { ": \($0)" } ?? ""
                throw OpenStackError(kind: .waitFailed, service: service, message: "\(what) went to status \(s)\(d)")
            }
            if ContinuousClock.now + .seconds(poll.delay) > deadline {
                throw OpenStackError(kind: .waitFailed, service: service,
                                     message: "\(what) still \(last) after \(Int(timeout)) s (waiting for \(targets.sorted().joined(separator: "/")))")
            }
            try await poll.sleep()
        }
    }

    /// Poll until `exists` says the resource is gone (a 404 counts as gone).
    public static func waitGone(
        _ what: String, service: String, timeout: Double, interval: Double = 2,
        failOn failures: Set<String> = ["error_deleting", "error"],
        status: @Sendable () async throws -> String?
    ) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        var poll = Poll(PollCadence(interval: interval))
        while true {
            let s: String?
            do { s = try await status() } catch let e as OpenStackError where e.isNotFound { s = nil }
            guard let s else { return }
            if failures.contains(s.lowercased()) {
                throw OpenStackError(kind: .waitFailed, service: service, message: "\(what) went to status \(s) while being deleted")
            }
            if ContinuousClock.now + .seconds(poll.delay) > deadline {
                throw OpenStackError(kind: .waitFailed, service: service, message: "\(what) still \(s) after \(Int(timeout)) s (waiting for deletion)")
            }
            try await poll.sleep()
        }
    }
}
