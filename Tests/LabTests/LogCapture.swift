import Foundation
import Logging
import OpenStack
import Synchronization
import TestSupport

/// Collects everything logged through its loggers (every level, message and metadata).
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
    var count: Int { lines.withLock { $0.count } }

    func logger(_ label: String = "os-migrate.test") -> Logger {
        Logger(label: label) { label in Handler(capture: self, label: label) }
    }

    func append(_ s: String) { lines.withLock { $0.append(s) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        let label: String
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let meta = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(label): \(event.message)\(meta)")
        }
    }
}

/// A random UUID in OpenStack's lowercase form.
func randomUUID() -> String { UUID().uuidString.lowercased() }

/// Run `body`, then `cleanup`, whether `body` threw or not; `cleanup` errors surface only when
/// `body` succeeded.
func withCleanup<T>(_ body: () async throws -> T, cleanup: () async throws -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        try? await cleanup()
        throw error
    }
    try await cleanup()
    return result
}

/// Token requests a session made: counted under "AUTH" where the client counts them apart,
/// else as POSTs (then only meaningful for sessions that made no other POST).
func authRequests(_ counter: RequestCounter) -> Int {
    let s = counter.snapshot
    return s["AUTH"] ?? s["POST"] ?? 0
}
