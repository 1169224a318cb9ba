import Foundation
import Synchronization

/// At most `limit` requests in flight per host, the others waiting in line (first come, first
/// served) for as long as their own deadline allows.
///
/// The HTTP client's own queue gives a waiting request only the connect timeout and then fails it
/// as if the server could not be reached; waiting here instead, a request that finds every
/// connection busy goes on as soon as one frees, and only a server that keeps them all busy for
/// a whole `api_timeout` fails it, with an error saying so.
public final class ConnectionGate: Sendable {
    public let limit: Int

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var busy: [String: Int] = [:]
        var queues: [String: [Waiter]] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init(limit: Int) { self.limit = max(1, limit) }

    /// The gate's key for a URL: scheme, host and port.
    public static func key(_ url: String) -> String {
        guard let c = URLComponents(string: url), let host = c.host else { return url }
        let scheme = c.scheme?.lowercased() ?? "http"
        return "\(scheme)://\(host):\(c.port ?? (scheme == "https" ? 443 : 80))"
    }

    /// Wait for a free slot for `url`'s host, at most `timeout` seconds.
    /// Throws `ConnectionPoolBusy` when none freed in time, `CancellationError` when cancelled.
    public func enter(_ url: String, timeout: Double) async throws -> ConnectionLease {
        let key = Self.key(url)
        let limit = self.limit
        let id: UInt64? = state.withLock { s in
            if s.busy[key, default: 0] < limit {
                s.busy[key, default: 0] += 1
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return ConnectionLease(gate: self, key: key) }
        let start = ContinuousClock.now
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let granted: Bool? = state.withLock { s in
                    if Task.isCancelled { return nil }
                    if s.busy[key, default: 0] < limit {
                        s.busy[key, default: 0] += 1
                        return true
                    }
                    s.queues[key, default: []].append(Waiter(id: id, continuation: continuation))
                    return false
                }
                switch granted {
                case nil: continuation.resume(throwing: CancellationError())
                case true?: continuation.resume()
                case false?:
                    let timer = Task { [weak self] in
                        try? await Task.sleep(for: .seconds(timeout))
                        if Task.isCancelled { return }
                        let waited = (ContinuousClock.now - start) / .seconds(1)
                        self?.fail(id, key: key, ConnectionPoolBusy(host: key, limit: limit, waited: waited))
                    }
                    let stillWaiting = state.withLock { s in
                        guard let i = s.queues[key]?.firstIndex(where: { $0.id == id }) else { return false }
                        s.queues[key]![i].timer = timer
                        return true
                    }
                    if !stillWaiting { timer.cancel() }
                }
            }
        } onCancel: {
            fail(id, key: key, CancellationError())
        }
        return ConnectionLease(gate: self, key: key)
    }

    /// Requests in flight and waiting for `url`'s host.
    public func load(_ url: String) -> (busy: Int, waiting: Int) {
        let key = Self.key(url)
        return state.withLock { ($0.busy[key, default: 0], $0.queues[key]?.count ?? 0) }
    }

    private func fail(_ id: UInt64, key: String, _ error: any Error) {
        let waiter: Waiter? = state.withLock { s in
            guard let i = s.queues[key]?.firstIndex(where: { $0.id == id }) else { return nil }
            return s.queues[key]!.remove(at: i)
        }
        waiter?.timer?.cancel()
        waiter?.continuation.resume(throwing: error)
    }

    /// A slot is given back: handed straight to the first in line, or freed.
    fileprivate func leave(_ key: String) {
        let next: Waiter? = state.withLock { s in
            if var q = s.queues[key], !q.isEmpty {
                let w = q.removeFirst()
                s.queues[key] = q.isEmpty ? nil : q
                return w
            }
            s.busy[key, default: 1] -= 1
            if s.busy[key] == 0 { s.busy[key] = nil }
            return nil
        }
        next?.timer?.cancel()
        next?.continuation.resume()
    }
}

/// One slot of a `ConnectionGate`, given back by `release()` or when the lease goes away (a
/// download keeps it while its body streams).
public final class ConnectionLease: Sendable {
    private let gate: ConnectionGate
    private let key: String
    private let released = Atomic(false)

    fileprivate init(gate: ConnectionGate, key: String) {
        self.gate = gate
        self.key = key
    }

    public func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { gate.leave(key) }
    }

    deinit { release() }
}

/// Every connection to a host stayed busy for a whole deadline: the server answers too slowly
/// for the load, it is not unreachable.
public struct ConnectionPoolBusy: Error, CustomStringConvertible, Sendable {
    public var host: String
    public var limit: Int
    public var waited: Double

    public var description: String {
        "all \(limit) connections to \(host) stayed busy for \(Int(waited.rounded())) s, the server answering other requests slowly"
            + " (api_timeout bounds this wait; fewer parallel requests or a larger api_timeout let it finish)"
    }
}
