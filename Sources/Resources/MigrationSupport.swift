import Foundation
import OpenStack

/// Progress of a long step of one item (an image's data): bytes done of a total.
public struct ProgressEvent: Sendable, Equatable {
    public var kind: String
    public var name: String
    /// "download", "upload", "transfer", "verify".
    public var phase: String
    public var done: Int64
    public var total: Int64?
    /// Bytes per second since the phase started.
    public var rate: Double?

    public init(kind: String, name: String, phase: String, done: Int64, total: Int64?, rate: Double? = nil) {
        self.kind = kind
        self.name = name
        self.phase = phase
        self.done = done
        self.total = total
        self.rate = rate
    }
}

public typealias ProgressHandler = @Sendable (ProgressEvent) -> Void

/// Export options that change behaviour.
public struct ExportOptions: Sendable {
    /// Also download image data into this directory (`<id>-<name>`), for moves without a path
    /// between the clouds (the reference tool's `image_blobs` mode).
    public var imageBlobsDir: String?
    /// Names never exported, by the filter variable that selects their kind (the source
    /// conversion host's server, network, subnet, router, security group and keypair; rules and
    /// router interfaces follow their group and router).
    public var excludedNames: [String: Set<String>] = [:]

    public func excludes(_ record: ResourceRecord, kind: any ResourceKind.Type) -> Bool {
        guard let names = excludedNames[kind.filterVariable], let value = record.value(at: kind.filterPath)?.stringValue else { return false }
        return names.contains(value)
    }

    public init(imageBlobsDir: String? = nil) {
        self.imageBlobsDir = imageBlobsDir
    }
}

/// Initial passwords for users created by import, by user name. Never printed: its
/// description only counts the entries.
public struct UserPasswords: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let byName: [String: String]

    public init(_ byName: [String: String] = [:]) { self.byName = byName }

    public var isEmpty: Bool { byName.isEmpty }
    public var count: Int { byName.count }
    public var names: [String] { byName.keys.sorted() }
    public func password(for user: String) -> String? { byName[user] }

    /// The same passwords, also reachable under other names (a renamed user's destination name).
    public func adding(aliases: [String: String]) -> UserPasswords {
        var out = byName
        for (from, to) in aliases { if let p = byName[from], out[to] == nil { out[to] = p } }
        return UserPasswords(out)
    }

    public var description: String { "\(byName.count) password(s)" }
    public var debugDescription: String { description }

    /// Read a YAML or JSON mapping of user name to password. Errors name the file, never a value.
    public static func load(_ path: String) throws -> UserPasswords {
        let text: String
        do { text = try YAMLValue.readFile(path) } catch {
            throw ConfigError("--user-password-file \(path): \(error)")
        }
        let doc: JSONValue?
        do { doc = try YAMLValue.parse(text) } catch {
            throw ConfigError("--user-password-file \(path): not valid YAML or JSON")
        }
        guard let map = doc?.objectValue else {
            throw ConfigError("--user-password-file \(path): expected a mapping of user name to password")
        }
        var out: [String: String] = [:]
        for (name, value) in map {
            guard let p = value.stringValue else {
                throw ConfigError("--user-password-file \(path): the password of user '\(name)' is not a string (quote it)")
            }
            guard !p.isEmpty else { throw ConfigError("--user-password-file \(path): the password of user '\(name)' is empty") }
            out[name] = p
        }
        return UserPasswords(out)
    }
}
