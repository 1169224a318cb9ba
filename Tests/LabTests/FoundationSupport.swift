import Foundation
import Logging
import OpenStack
import Synchronization
import TestSupport

/// A directory under /tmp for one test; `remove()` it when done.
struct FoundationTempDir: Sendable {
    let path: String

    static func make(_ tag: String = "lab") throws -> FoundationTempDir {
        let p = NSTemporaryDirectory() + "osmt-\(tag)-" + Lab.randomHex(8)
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return FoundationTempDir(path: p)
    }

    @discardableResult
    func write(_ relative: String, _ text: String) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func withFoundationTempDir<T>(_ tag: String = "lab", _ body: (FoundationTempDir) async throws -> T) async throws -> T {
    let d = try FoundationTempDir.make(tag)
    defer { d.remove() }
    return try await body(d)
}

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
