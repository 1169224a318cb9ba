import Foundation
import OpenStack
import Yams

/// Writes data files the way the reference tool's `yaml.safe_dump` does: block style, keys
/// sorted at every level, and every string that a YAML 1.1 reader would take for something
/// else (true, yes, 123, 12:30, 2020-04-07, ~, '') quoted.
public enum YAMLWriter {
    public static func render(_ value: JSONValue) throws -> String {
        try Yams.serialize(node: node(value), indent: 2, width: -1, allowUnicode: true, sortKeys: true)
    }

    static func node(_ v: JSONValue) -> Node {
        switch v {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .int(let i): return Node(String(i), Tag(.int))
        case .double(let d): return Node(pythonFloat(d), Tag(.float))
        case .string(let s):
            return Node(s, Tag(.str), needsQuoting(s) ? .singleQuoted : .any)
        case .array(let a): return Node(a.map(node), Tag(.seq))
        case .object(let o): return Node(o.map { (Node($0.key, Tag(.str), needsQuoting($0.key) ? .singleQuoted : .any), node($0.value)) }, Tag(.map))
        }
    }

    /// `repr()` of a Python float: 1.0, 0.5, 1e-05, inf.
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return ".nan" }
        if d.isInfinite { return d > 0 ? ".inf" : "-.inf" }
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    // YAML 1.1 implicit types (PyYAML's resolver), plus YAML 1.2 floats and y/n for safety.
    static let implicit: [NSRegularExpression] = [
        "^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|y|Y|n|N)$",
        "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)|[-+]?[0-9]+[eE][-+]?[0-9]+)$",
        "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        "^(?:~|null|Null|NULL)$",
        "^(?:<<|=)$",
        "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \\t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]*)?(?:[ \\t]*(?:Z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?)?$",
    ].map { try! NSRegularExpression(pattern: $0) }

    public static func needsQuoting(_ s: String) -> Bool {
        if s.isEmpty { return true }
        if s != s.trimmingCharacters(in: .whitespaces) { return true }
        let range = NSRange(s.startIndex..., in: s)
        return implicit.contains { $0.firstMatch(in: s, range: range) != nil }
    }
}
