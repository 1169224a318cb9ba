import Foundation
import Logging
import OpenStack

/// Small helpers shared by the identity, compute, image and volume kinds.
enum KindSupport {
    /// An id the resolver handed out in a dry run for something not created yet.
    static func isPlaceholder(_ id: String?) -> Bool { id?.hasPrefix(ReferenceResolver.placeholderPrefix) ?? false }

    /// Equal, with numbers compared by value (`1` and `1.0` from two different YAML writers).
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }

    /// "ram (destination 512, file 1024)".
    static func describe(_ field: String, current: JSONValue?, desired: JSONValue?) -> String {
        "\(field) (destination \((current ?? .null).jsonString()), file \((desired ?? .null).jsonString()))"
    }

    /// The record, or nil when it refers to something that is gone (deleted while the export ran,
    /// or a dangling id the service keeps): such a resource is left out, with a warning, instead
    /// of failing the whole export.
    static func unlessGone<T>(_ what: @autoclosure () -> String, _ logger: Logger, _ body: () async throws -> T) async throws -> T? {
        do { return try await body() } catch let e as ReferenceError {
            logger.warning("\(what()) left out: \(e.description)")
            return nil
        }
    }

    /// A whole collection, listed once per run and shared by the run's concurrent steps.
    static func cachedList(_ ctx: ImportContext, _ key: String, _ request: APIRequest, _ listKey: String) async throws -> [JSONObject] {
        try await ctx.cache.value(key) {
            .array(try await ctx.session.list(JSONValue.self, request, key: listKey).collect())
        }.arrayValue?.compactMap(\.objectValue) ?? []
    }

    /// Order records so that each comes after the record its `parentName` names (when that is in
    /// the list); others keep their order.
    static func parentsFirst(_ records: [ResourceRecord], name: (ResourceRecord) -> String?,
                             parentName: (ResourceRecord) -> String?) -> [ResourceRecord]
    {
        var byName: [String: Int] = [:]
        for (i, r) in records.enumerated() { if let n = name(r) { byName[n] = i } }
        var depth: [Int: Int] = [:]
        func depthOf(_ i: Int, _ seen: Set<Int>) -> Int {
            if let d = depth[i] { return d }
            var d = 0
            if let p = parentName(records[i]), let j = byName[p], j != i, !seen.contains(j) {
                d = depthOf(j, seen.union([i])) + 1
            }
            depth[i] = d
            return d
        }
        return records.indices.map { ($0, depthOf($0, [])) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map { records[$0.0] }
    }
}

/// What flavors and volume types share: extra specs (a mapping of strings) and a list of the
/// projects a private one is shared with.
enum ProjectAccess {
    /// The string values of a mapping (extra specs); anything else is left out.
    /// A mapping's string values; numbers as Nova stores them (it accepts `hw:cpu_cores: 2` and
    /// answers "2"), anything else dropped (validation refuses it first).
    static func stringMap(_ v: JSONValue?) -> [String: String] {
        (v?.objectValue ?? [:]).compactMapValues { value in
            if let s = value.stringValue { return s }
            if case .int(let i) = value { return String(i) }
            if case .double(let d) = value { return "\(d)" }
            return nil
        }
    }

    /// Destination project ids of the access list; nil when the file does not manage it.
    static func projects(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> [String]? {
        guard let list = record.params["access_project_refs"], !list.isNull else { return nil }
        var ids: [String] = []
        for (i, v) in (list.arrayValue ?? []).enumerated() {
            do {
                if let id = try await ctx.resolver.resolve(.project, v) { ids.append(id) }
            } catch let e as ReferenceError {
                throw ReferenceError("params.access_project_refs[\(i)]: \(e.description)")
            }
        }
        return ids
    }
}
