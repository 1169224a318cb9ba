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
        return try json(from: node)
    }

    static func describe(_ e: YamlError) -> String {
        // Yams' descriptions span several lines (with the offending line echoed); keep the first.
        let text = "\(e)"
        let first = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? text
        return "malformed YAML: \(first)"
    }

    public static func json(from node: Node) throws -> JSONValue {
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
                o[key] = try json(from: v)
            }
            return .object(o)
        case .sequence(let seq):
            return .array(try seq.map { try json(from: $0) })
        case .alias:
            throw ParseError(description: "malformed YAML: aliases are not supported")
        }
    }
}
