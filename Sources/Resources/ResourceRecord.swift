import Foundation
import OpenStack

/// One serialized resource, as it stands in a data file:
/// `type`, `params` (desired state, editable), `_info` (facts, ignored on import) and
/// `_migration_params` (how to migrate).
public struct ResourceRecord: Sendable, Equatable {
    public var type: String
    public var params: JSONObject
    public var info: JSONObject
    public var migrationParams: JSONObject

    public init(type: String, params: JSONObject, info: JSONObject = [:], migrationParams: JSONObject = [:]) {
        self.type = type
        self.params = params
        self.info = info
        self.migrationParams = migrationParams
    }

    public var id: String? { info["id"]?.stringValue }
    public var name: String? { params["name"]?.stringValue }

    /// The whole record as the file holds it.
    public var json: JSONValue {
        ["type": .string(type), "params": .object(params), "_info": .object(info), "_migration_params": .object(migrationParams)]
    }

    public init(json: JSONObject) {
        type = json["type"]?.stringValue ?? ""
        params = json["params"]?.objectValue ?? [:]
        info = json["_info"]?.objectValue ?? [:]
        migrationParams = json["_migration_params"]?.objectValue ?? [:]
    }

    /// A string param, or a value reached by a dotted path ("device_ref.name").
    public func value(at path: String) -> JSONValue? {
        var cur: JSONValue = .object(params)
        for part in path.split(separator: ".") {
            guard let next = cur[String(part)] else { return nil }
            cur = next
        }
        return cur
    }
}

/// A reference that stands in for an id: `{name, project_name, domain_name}`, where `%auth%`
/// means the project (or user) the migration authenticates as.
public struct Reference: Sendable, Hashable, CustomStringConvertible {
    public static let auth = "%auth%"

    public var name: String
    public var projectName: String?
    public var domainName: String?

    public init(name: String, projectName: String? = nil, domainName: String? = nil) {
        self.name = name
        self.projectName = projectName
        self.domainName = domainName
    }

    public init?(_ value: JSONValue?) {
        guard let o = value?.objectValue, let n = o["name"]?.stringValue else { return nil }
        name = n
        projectName = o["project_name"]?.stringValue
        domainName = o["domain_name"]?.stringValue
    }

    public var json: JSONValue {
        ["name": .string(name), "project_name": projectName.map(JSONValue.string) ?? .null,
         "domain_name": domainName.map(JSONValue.string) ?? .null]
    }

    public var isAuthProject: Bool { projectName == Self.auth }

    public var description: String {
        if let p = projectName, p != Self.auth { return "'\(name)' (project \(p))" }
        return "'\(name)'"
    }
}
