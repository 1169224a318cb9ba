import Foundation
import OpenStack
import Resources

/// A data file paired with the kind it holds.
public struct KindFile: Sendable {
    public var kind: any ResourceKind.Type
    public var file: ResourceFile
    public init(kind: any ResourceKind.Type, file: ResourceFile) {
        self.kind = kind
        self.file = file
    }
}

extension ResourceKind {
    /// "networks" -> "network", "security-group-rules" -> "security group rule".
    public static var singularLabel: String {
        var s = name.replacingOccurrences(of: "-", with: " ")
        if s.hasSuffix("s") { s.removeLast() }
        return s
    }

    static func describe(_ record: ResourceRecord, at index: Int) -> String {
        let label = (record.name?.isEmpty == false || !isNamed) ? " '\(label(record))'" : ""
        return "resources[\(index)] (\(singularLabel)\(label))"
    }
}

/// Checks that need no cloud: structure, types, required fields, names, duplicates.
/// Every message is one line naming the file, the resource and the field.
public enum Validator {
    public static func check(_ files: [KindFile]) -> [String] {
        var errors: [String] = []
        var identities: [String: [(String, Int)]] = [:]
        var byKind: [String: [ResourceRecord]] = [:]
        for kf in files { byKind[kf.kind.name, default: []] += kf.file.records }
        for kf in files {
            let kind = kf.kind
            let path = kf.file.path
            for (i, record) in kf.file.records.enumerated() {
                let at = "\(path): \(kind.describe(record, at: i))"
                guard ResourceRegistry.kind(forType: record.type) != nil else {
                    errors.append("\(path): resources[\(i)]: unknown type '\(record.type)'")
                    continue
                }
                // Two files may hold one type (keypairs.yml and users_keypairs.yml): the file decides the kind.
                if record.type != kind.typeName {
                    errors.append("\(path): resources[\(i)]: type '\(record.type)' does not belong in \(kind.fileName) (expected \(kind.typeName))")
                    continue
                }
                for p in kind.requiredParams {
                    guard let v = record.params[p] else {
                        errors.append("\(at): params.\(p) is missing")
                        continue
                    }
                    if v.isNull { errors.append("\(at): params.\(p) is null") }
                }
                var checked: Set<String> = []
                if kind.isNamed {
                    if let n = record.params["name"], n.stringValue == nil, !n.isNull {
                        errors.append("\(at): params.name is not a string")
                        checked.insert("name")
                    } else if record.params["name"] != nil, (record.name ?? "").isEmpty {
                        errors.append("\(at): params.name is empty")
                        checked.insert("name")
                    }
                }
                for (key, value) in record.params.sorted(by: { $0.key < $1.key }) where !checked.contains(key) {
                    if let problem = shapeProblem(key, value) {
                        errors.append("\(at): params.\(key) \(problem)")
                    } else if let rule = kind.valueRules[key] ?? ValueRule.byName(key, named: kind.isNamed), let problem = rule.problem(value) {
                        errors.append("\(at): params.\(key) \(problem)")
                    }
                }
                let own = kind.validate(record)
                errors += own.map { "\(at): \($0)" }
                if own.isEmpty { errors += kind.crossFileProblems(record, others: byKind).map { "\(at): \($0)" } }
                if let id = kind.importIdentity(record) { identities[id, default: []].append((path, i)) }
            }
        }
        for (id, places) in identities.sorted(by: { $0.key < $1.key }) where places.count > 1 {
            let name = id.split(separator: ":", maxSplits: 1).last.map(String.init) ?? id
            let where_ = places.map { "\(($0.0 as NSString).lastPathComponent) resources[\($0.1)]" }.joined(separator: ", ")
            errors.append("\(places[0].0): '\(name)' is defined \(places.count) times (\(where_)); names must be unique per kind")
        }
        return errors
    }

    /// What `validate` and `import` warn about: unknown params, then values the destination
    /// accepts that are unusual (`advisories`), one line each naming the file and the resource.
    public static func warnings(_ files: [KindFile]) -> [String] {
        var out = unknownParams(files)
        for kf in files {
            out += kf.file.unknownKeys.map { "\(kf.file.path): \($0) is not a key of a data file that os-migrate knows: it is ignored" }
        }
        for kf in files {
            for (i, record) in kf.file.records.enumerated() {
                out += kf.kind.advisories(record).map { "\(kf.file.path): \(kf.kind.describe(record, at: i)): \($0)" }
            }
        }
        return out + listedTwice(files)
    }

    /// Unnamed resources (rules, role assignments, interfaces) listed more than once in a file,
    /// the description aside: the destination gets one of them. One line per repeat, naming
    /// the file, both positions and the resource.
    public static func listedTwice(_ files: [KindFile]) -> [String] {
        var out: [String] = []
        for kf in files where !kf.kind.isNamed {
            var first: [String: Int] = [:]
            for (i, record) in kf.file.records.enumerated() {
                var params = record.params
                params["description"] = nil
                guard let key = try? JSONValue.object(params).jsonData(sortedKeys: true) else { continue }
                let k = String(decoding: key, as: UTF8.self)
                if let at = first[k] {
                    out.append("\(kf.file.path): resources[\(at)] and resources[\(i)] are the same \(kf.kind.singularLabel) '\(kf.kind.label(record))': it is imported once")
                } else {
                    first[k] = i
                }
            }
        }
        return out
    }

    /// Params a kind does not know (it would ignore them): warnings, one line each, naming the
    /// file, the resource and the param. Not errors: a file written by a newer tool still imports.
    public static func unknownParams(_ files: [KindFile]) -> [String] {
        var out: [String] = []
        for kf in files {
            guard let known = kf.kind.knownParams else { continue }
            for (i, record) in kf.file.records.enumerated() {
                for key in record.params.keys.sorted() where !known.contains(key) {
                    out.append("\(kf.file.path): resources[\(i)] (\(kf.kind.label(record))): params.\(key) is not a field of \(kf.kind.name) that os-migrate knows: it is ignored")
                }
            }
        }
        return out
    }

    /// Two resources that renames (`--map-name`, `--rename-prefix`) would import under one name:
    /// the import would create one and then take the other for it (or make two of one name).
    public static func collisions(_ files: [KindFile], names: NameMapping) -> [String] {
        guard !names.isEmpty else { return [] }
        var errors: [String] = []
        var identities: [String: [(path: String, index: Int, name: String)]] = [:]
        for kf in files {
            for (i, record) in kf.file.records.enumerated() {
                guard let id = kf.kind.importIdentity(names.apply(record, kind: kf.kind)) else { continue }
                identities[id, default: []].append((kf.file.path, i, record.name ?? ""))
            }
        }
        for (id, places) in identities.sorted(by: { $0.key < $1.key }) where places.count > 1 {
            let to = id.split(separator: ":", maxSplits: 1).last.map(String.init) ?? id
            let which = places.map { "resources[\($0.index)] '\($0.name)'" }.joined(separator: " and ")
            errors.append("\(places[0].path): \(which) would both be imported as '\(to)' (after --map-name / --rename-prefix)")
        }
        return errors
    }

    /// Conventional shapes: `*_ref` is a reference or null, `tags` a list of strings.
    static func shapeProblem(_ key: String, _ value: JSONValue) -> String? {
        if key.hasSuffix("_ref") {
            if value.isNull { return nil }
            guard let o = value.objectValue else { return "is not a reference (a mapping with name, project_name, domain_name)" }
            guard let n = o["name"], n.stringValue != nil else { return "has no name" }
            if n.stringValue!.isEmpty { return "has an empty name" }
        }
        if key == "tags", !value.isNull {
            guard let a = value.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else { return "is not a list of strings" }
        }
        return nil
    }
}

/// Validation failed: all problems, printed one per line.
public struct ValidationFailure: Error, CustomStringConvertible, Sendable {
    public var problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
    public var description: String {
        problems.count == 1 ? problems[0] : problems.joined(separator: "\n") + "\n\(problems.count) problems found; nothing was changed"
    }
}
