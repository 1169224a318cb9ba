import Foundation
import OpenStack
import Resources

/// A data file: `os_migrate_version` and its resources.
public struct ResourceFile: Sendable {
    public static let formatVersion = "1.0.5"

    public var path: String
    public var records: [ResourceRecord]
    /// Keys the format does not have, at the top ("colour") and in resources ("resources[2].prams"):
    /// ignored, and said so by `Validator.warnings`.
    public var unknownKeys: [String] = []

    static let topKeys: Set<String> = ["os_migrate_version", "resources"]
    static let recordKeys: Set<String> = ["type", "params", "_info", "_migration_params"]

    public init(path: String, records: [ResourceRecord] = []) {
        self.path = path
        self.records = records
    }

    public var fileName: String { (path as NSString).lastPathComponent }

    /// Read and check the file's structure. Every problem is one line naming the file.
    public static func load(_ path: String) throws -> ResourceFile {
        let text: String
        do { text = try YAMLValue.readFile(path) } catch {
            throw DataFileError(path, "\(error)")
        }
        let doc: JSONValue?
        do { doc = try YAMLValue.parse(text) } catch {
            throw DataFileError(path, "\(error)")
        }
        guard let doc else { throw DataFileError(path, "the file is empty") }
        guard let top = doc.objectValue else {
            throw DataFileError(path, "expected a mapping with os_migrate_version and resources")
        }
        guard let version = top["os_migrate_version"] else { throw DataFileError(path, "os_migrate_version is missing") }
        let v = version.stringValue ?? version.doubleValue.map { String($0) } ?? version.jsonString()
        guard v == formatVersion else {
            throw DataFileError(path, "os_migrate_version is '\(v)' but this tool reads \(formatVersion) (data is not guaranteed compatible across versions: export again)")
        }
        guard let list = top["resources"] else { throw DataFileError(path, "resources is missing") }
        guard let items = list.arrayValue else { throw DataFileError(path, "resources is not a list") }
        var records: [ResourceRecord] = []
        var unknown = top.keys.filter { !topKeys.contains($0) }.sorted()
        for (i, item) in items.enumerated() {
            guard let o = item.objectValue else { throw DataFileError(path, "resources[\(i)] is not a mapping") }
            for key in ["params", "_info", "_migration_params"] {
                if let v = o[key], v.objectValue == nil, !v.isNull {
                    throw DataFileError(path, "resources[\(i)]: \(key) is not a mapping")
                }
            }
            guard let type = o["type"] else { throw DataFileError(path, "resources[\(i)]: type is missing") }
            guard type.stringValue != nil else { throw DataFileError(path, "resources[\(i)]: type is not a string") }
            unknown += o.keys.filter { !recordKeys.contains($0) }.sorted().map { "resources[\(i)].\($0)" }
            records.append(ResourceRecord(json: o))
        }
        var file = ResourceFile(path: path, records: records)
        file.unknownKeys = unknown
        return file
    }

    /// The file, or an empty one when it does not exist yet.
    public static func loadOrEmpty(_ path: String) throws -> ResourceFile {
        FileManager.default.fileExists(atPath: path) ? try load(path) : ResourceFile(path: path)
    }

    public func render() throws -> String {
        try YAMLWriter.render([
            "os_migrate_version": .string(Self.formatVersion),
            "resources": .array(records.map(\.json)),
        ])
    }

    /// Write atomically (a temporary file renamed over the old one), creating the directory.
    public func write() throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let tmp = "\(path).tmp-\(ProcessInfo.processInfo.processIdentifier)"
        try Data(render().utf8).write(to: URL(fileURLWithPath: tmp))
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw DataFileError(path, "cannot be written: \(String(cString: strerror(e)))")
        }
    }
}

/// A problem with a data file, in one line that names it.
public struct DataFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ path: String, _ message: String) { description = "\(path): \(message)" }
    public init(message: String) { description = message }
}
