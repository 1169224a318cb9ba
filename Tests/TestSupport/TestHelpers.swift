import Foundation

/// A fresh directory under /tmp for one test; `remove()` it when done (or use `withTempDir`).
public struct TempDir: Sendable {
    public let path: String

    public static func make(_ tag: String = "unit") throws -> TempDir {
        let p = NSTemporaryDirectory() + "osmt-\(tag)-" + Lab.randomHex(8)
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return TempDir(path: p)
    }

    /// Writes `text` to `relative` under the directory (making its folders); returns the full path.
    @discardableResult
    public func write(_ relative: String, _ text: String) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs `body` with a fresh `TempDir`, removed afterwards.
public func withTempDir<T>(_ tag: String = "unit", _ body: (TempDir) throws -> T) throws -> T {
    let d = try TempDir.make(tag)
    defer { d.remove() }
    return try body(d)
}

/// Runs `body` with a fresh `TempDir`, removed afterwards.
public func withTempDir<T>(_ tag: String = "unit", _ body: (TempDir) async throws -> T) async throws -> T {
    let d = try TempDir.make(tag)
    defer { d.remove() }
    return try await body(d)
}

/// What the error `body` throws says (its description), or nil when it throws none: for exact
/// comparisons of error text.
public func errorText(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}

/// A test's own failure, with what went wrong.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
