import Foundation
import Yams

/// YAML <-> JSONValue, with YAML 1.1 scalar resolution (what PyYAML reads and writes).
public enum YAMLValue {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Parse a YAML document. Returns nil for an empty document.
    public static func parse(_ text: String) throws -> JSONValue? {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw ParseError(description: Self.describe(e))
        }
        guard let node else { return nil }
        // Aliases share what they point at; expanded, ten anchors of ten aliases are 10^10
        // values. A document may expand to a few values per byte of its text, no more.
        var budget = text.utf8.count * 4 + 10_000
        return try json(from: node, budget: &budget)
    }


    /// Where, what was expected (libyaml's problem), in what (its context) and what was found
    /// there, on one line: "malformed YAML at line 3, column 1: did not find expected key (while
    /// parsing a block mapping that starts at line 1, column 1); found `- b`".
    static func describe(_ e: YamlError) -> String {
        switch e {
        case let .scanner(context, problem, mark, yaml), let .parser(context, problem, mark, yaml), let .composer(context, problem, mark, yaml):
            var out = "malformed YAML at line \(mark.line), column \(mark.column): \(problem)"
            if let c = context { out += " (\(c.text) that starts at line \(c.mark.line), column \(c.mark.column))" }
            return out + "; " + found(in: yaml, at: mark)
        default:
            // Yams' other descriptions span several lines (the offending line echoed); keep the first.
            let text = "\(e)"
            let first = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? text
            return "malformed YAML: \(first)"
        }
    }

    /// What the text holds at a mark (1-based line and column, in unicode scalars), up to the end
    /// of that line and at most 40 characters.
    static func found(in yaml: String, at mark: Mark) -> String {
        var line = 1
        var rest = Substring(yaml).unicodeScalars[...]
        while line < mark.line, let nl = rest.firstIndex(of: "\n") {
            rest = rest[rest.index(after: nl)...]
            line += 1
        }
        guard line == mark.line else { return "found the end of the file" }
        let text = String(String.UnicodeScalarView(rest.prefix { $0 != "\n" && $0 != "\r" }.dropFirst(max(mark.column - 1, 0))))
        if text.trimmingCharacters(in: .whitespaces).isEmpty {
            return line == yaml.split(separator: "\n", omittingEmptySubsequences: false).count ? "found the end of the file" : "found the end of the line"
        }
        let shown = text.unicodeScalars.count > 40 ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(40))) + "…" : text
        return "found `\(shown)`"
    }

    public static func json(from node: Node) throws -> JSONValue {
        var budget = Int.max
        return try json(from: node, budget: &budget)
    }

    static func json(from node: Node, budget: inout Int) throws -> JSONValue {
        budget -= 1
        if budget < 0 {
            throw ParseError(description: "the YAML expands to too many values (aliases repeated within aliases?): refused")
        }
        switch node {
        case .scalar(let s):
            if s.style == .singleQuoted || s.style == .doubleQuoted || s.style == .literal || s.style == .folded {
                return .string(s.string)
            }
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(s.string)
            case .int: return node.int.map(JSONValue.int) ?? .string(s.string)
            case .float: return node.float.map(JSONValue.double) ?? .string(s.string)
            default: return .string(s.string)
            }
        case .mapping(let m):
            var o: JSONObject = [:]
            for (k, v) in m {
                guard let key = k.string else {
                    throw ParseError(description: "malformed YAML: a mapping key is not a string")
                }
                o[key] = try json(from: v, budget: &budget)
            }
            return .object(o)
        case .sequence(let seq):
            var a: [JSONValue] = []
            a.reserveCapacity(seq.count)
            for v in seq { a.append(try json(from: v, budget: &budget)) }
            return .array(a)
        case .alias:
            throw ParseError(description: "malformed YAML: aliases are not supported")
        }
    }
}

extension YAMLValue {
    /// Data files, vars files and clouds.yaml larger than this are refused (the largest tenant
    /// export seen is a few MiB).
    public static let maximumFileBytes = 64 << 20

    /// Why a file could not be read, in words a user can act on (without the path: callers name
    /// the file their way).
    public struct ReadError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The text of a YAML (or JSON) file: a regular file, at most `maximumFileBytes`, UTF-8.
    public static func readFile(_ path: String) throws -> String {
        var st = stat()
        if lstat(path, &st) != 0 || ((st.st_mode & S_IFMT) == S_IFLNK && stat(path, &st) != 0) {
            let e = errno
            switch e {
            case ENOENT: throw ReadError(description: "file not found")
            case EACCES: throw ReadError(description: "cannot be read: permission denied")
            case ELOOP: throw ReadError(description: "cannot be read: a symbolic link that loops")
            default: throw ReadError(description: "cannot be read: \(String(cString: strerror(e)))")
            }
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw ReadError(description: "is a directory, not a file") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ReadError(description: "is not a regular file") }
        guard Int(st.st_size) <= maximumFileBytes else {
            throw ReadError(description: "is \(Int(st.st_size) >> 20) MiB: files over \(maximumFileBytes >> 20) MiB are refused")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ReadError(description: access(path, R_OK) != 0 && errno == EACCES ? "cannot be read: permission denied" : "cannot be read")
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: maximumFileBytes + 1)) ?? Data()
        guard data.count <= maximumFileBytes else { throw ReadError(description: "is over \(maximumFileBytes >> 20) MiB: refused") }
        if data.starts(with: [0xFF, 0xFE]) || data.starts(with: [0xFE, 0xFF]) {
            throw ReadError(description: "is UTF-16 text: save it as UTF-8")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ReadError(description: "is not UTF-8 text (Latin-1 or another encoding?): save it as UTF-8")
        }
        return text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
    }
}
