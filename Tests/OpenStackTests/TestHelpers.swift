import Foundation
import OpenStack

/// Files recorded from the lab, under Fixtures/ (copied as a resource directory).
enum Fixture {
    static var root: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    }

    static func data(_ relativePath: String) throws -> Data {
        try Data(contentsOf: root.appendingPathComponent(relativePath))
    }

    static func json(_ relativePath: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: data(relativePath))
    }
}

/// A directory under /tmp removed when the value is released by `withTempDir`.
struct TempDir {
    let path: String

    static func make() throws -> TempDir {
        let p = NSTemporaryDirectory() + "osmt-unit-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return TempDir(path: p)
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

func withTempDir<T>(_ body: (TempDir) throws -> T) throws -> T {
    let d = try TempDir.make()
    defer { d.remove() }
    return try body(d)
}

/// What a ConfigError or other error says, for exact comparisons.
func errorText(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}
