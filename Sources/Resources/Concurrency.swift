import Foundation
import OpenStack

/// Map with at most `limit` tasks at once, keeping the input order.
public func boundedMap<T: Sendable, R: Sendable>(_ items: [T], limit: Int, _ transform: @escaping @Sendable (T) async throws -> R)
    async throws -> [R]
{
    guard !items.isEmpty else { return [] }
    return try await withThrowingTaskGroup(of: (Int, R).self) { group in
        var results = [R?](repeating: nil, count: items.count)
        var next = 0
        for _ in 0..<min(max(limit, 1), items.count) {
            let i = next
            group.addTask { (i, try await transform(items[i])) }
            next += 1
        }
        while let (i, r) = try await group.next() {
            results[i] = r
            if next < items.count {
                let j = next
                group.addTask { (j, try await transform(items[j])) }
                next += 1
            }
        }
        return results.map { $0! }
    }
}

/// At most `limit` bodies at once across tasks (e.g. the copies of a workload's volumes, each
/// volume's pipeline running on its own).
public actor Limiter {
    private var available: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(_ limit: Int) { available = max(1, limit) }

    private func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty { available += 1 } else { waiting.removeFirst().resume() }
    }

    public nonisolated func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        do {
            let r = try await body()
            await release()
            return r
        } catch {
            await release()
            throw error
        }
    }
}

/// Memoized async values shared by the concurrent steps of one run (e.g. the rules of a
/// security group, listed once however many rules are imported into it).
public actor RunCache {
    private var values: [String: JSONValue] = [:]
    private var loading: [String: Task<JSONValue, any Error>] = [:]

    public init() {}

    public func value(_ key: String, load: @escaping @Sendable () async throws -> JSONValue) async throws -> JSONValue {
        if let v = values[key] { return v }
        if let t = loading[key] { return try await t.value }
        let t = Task { try await load() }
        loading[key] = t
        defer { loading[key] = nil }
        let v = try await t.value
        values[key] = v
        return v
    }

    public func invalidate(_ key: String) {
        values[key] = nil
    }

    private var claimed: Set<String> = []

    /// True for the first caller with this key in the run, false for every later one (a
    /// resource listed twice in a file is made once).
    public func claim(_ key: String) -> Bool {
        claimed.insert(key).inserted
    }
}

/// Ids of resources an import run created, by kind.
public actor CreatedResources {
    private var ids: [String: Set<String>] = [:]
    public init() {}
    public func add(_ kind: String, _ id: String) { ids[kind, default: []].insert(id) }
    public func ids(_ kind: String) -> Set<String> { ids[kind] ?? [] }
}
