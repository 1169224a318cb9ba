import Foundation
import OpenStack

/// How one param maps to an API attribute, declared once per kind; the generic code below
/// does export, comparison, create and update bodies for every kind declared this way.
public struct Field: Sendable {
    public enum Shape: Sendable, Equatable {
        case value
        /// A list kept sorted so that re-exports are byte-stable.
        case sortedList
        /// A reference param; the API attribute holds the id.
        case ref(RefType)
        /// Neutron tags: set through the tags API after create/update.
        case tags
    }

    public enum OnCreate: Sendable, Equatable {
        /// Send unless null.
        case skipNull
        /// Send unless null, false, 0, "", [] or {} (attributes newer APIs reject when empty).
        case skipFalsey
        /// Send unless equal to the service's default (admin-only attributes a tenant may not
        /// even mention, e.g. `shared: false`).
        case skipDefault(JSONValue)
        /// Send even when null (`gateway_ip: null` means "no gateway").
        case always
        /// Never sent on create.
        case never
    }

    public enum OnUpdate: Sendable, Equatable {
        case mutable
        /// Fixed at creation: a difference is reported as a failure.
        case immutable
        /// Not compared (informational, or cannot be read back).
        case ignored
    }

    public var param: String
    public var api: String
    public var shape: Shape
    public var onCreate: OnCreate
    public var onUpdate: OnUpdate
    /// For lists of objects: the keys to sort by, in order (pools by start then end).
    public var sortBy: [String]
    /// The service shows and accepts it only for admins (Neutron's `provider:*`, a router's
    /// `ha`): without admin credentials it is left out of create, update and comparison, so a
    /// file exported by an admin imports with a tenant's credentials.
    public var adminOnly: Bool

    public init(_ param: String, _ api: String? = nil, shape: Shape = .value, create: OnCreate = .skipNull,
                update: OnUpdate = .mutable, sortBy: [String] = [], adminOnly: Bool = false)
    {
        self.param = param
        self.api = api ?? param
        self.shape = shape
        self.onCreate = create
        self.onUpdate = update
        self.sortBy = sortBy
        self.adminOnly = adminOnly
    }

    public static func list(_ param: String, _ api: String? = nil, create: OnCreate = .skipNull, update: OnUpdate = .mutable,
                            sortBy: [String] = []) -> Field
    {
        Field(param, api, shape: .sortedList, create: create, update: update, sortBy: sortBy)
    }

    public static func ref(_ param: String, _ api: String, _ type: RefType, create: OnCreate = .skipNull,
                           update: OnUpdate = .mutable) -> Field
    {
        Field(param, api, shape: .ref(type), create: create, update: update)
    }

    public static let tags = Field("tags", "tags", shape: .tags, create: .never, update: .mutable)
}

/// An `_info` entry: copied from the API object, lists sorted.
public struct InfoField: Sendable {
    public var key: String
    public var api: String
    public var sorted: Bool
    public init(_ key: String, _ api: String? = nil, sorted: Bool = false) {
        self.key = key
        self.api = api ?? key
        self.sorted = sorted
    }
}

public struct FieldMap: Sendable {
    public var fields: [Field]
    public var info: [InfoField]

    public init(_ fields: [Field], info: [InfoField]) {
        self.fields = fields
        self.info = info
    }

    public func field(_ param: String) -> Field? { fields.first { $0.param == param } }

    // MARK: export

    public func params(from api: JSONObject, refs: ReferenceBuilder) async throws -> JSONObject {
        var out: JSONObject = [:]
        for f in fields {
            let v = api[f.api] ?? .null
            switch f.shape {
            case .value: out[f.param] = v
            case .sortedList, .tags: out[f.param] = Self.sortedList(v, by: f.sortBy)
            case .ref(let t): out[f.param] = try await refs.ref(t, id: v.stringValue)
            }
        }
        return out
    }

    public func infoValues(from api: JSONObject) -> JSONObject {
        var out: JSONObject = [:]
        for i in info {
            let v = api[i.api] ?? .null
            out[i.key] = i.sorted ? Self.sortedList(v) : v
        }
        return out
    }

    /// Lists sorted: strings alphabetically, objects by the `by` keys' values (else by JSON text).
    public static func sortedList(_ v: JSONValue, by keys: [String] = []) -> JSONValue {
        guard case .array(let a) = v else { return v }
        func key(_ e: JSONValue) -> [String] {
            if let s = e.stringValue { return [s] }
            if keys.isEmpty { return [e.jsonString()] }
            return keys.map { e[$0]?.stringValue ?? e[$0]?.jsonString() ?? "" }
        }
        return .array(a.sorted { key($0).lexicographicallyPrecedes(key($1)) })
    }

    // MARK: comparison

    /// Params of `desired` that differ from `current`. Params the desired record does not
    /// have are not managed (a file from an older exporter lacks newer fields); admin-only
    /// params are not compared without admin credentials (the service hides them).
    public func differences(desired: JSONObject, current: JSONObject, isAdmin: Bool = true) -> [String] {
        var out: [String] = []
        for f in fields where f.onUpdate != .ignored && (isAdmin || !f.adminOnly) {
            guard let d = desired[f.param] else { continue }
            let c = current[f.param] ?? .null
            if !Self.same(d, c, field: f) { out.append(f.param) }
        }
        return out.sorted()
    }

    static func same(_ a: JSONValue, _ b: JSONValue, field: Field) -> Bool {
        switch field.shape {
        case .sortedList, .tags:
            // An empty list and a missing one say the same thing.
            if a.isFalsey && b.isFalsey { return true }
            return sortedList(a, by: field.sortBy) == sortedList(b, by: field.sortBy)
        case .ref:
            return sameReference(a, b)
        default:
            return a == b
        }
    }

    /// Two references to the same thing: equal, or the same name where one side could not name
    /// the owner. A tenant cannot read another project (the admin project's `public` network):
    /// the destination's side degrades to a name-only reference, the reference tool's file
    /// (exported by an admin) names the project.
    public static func sameReference(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if a == b { return true }
        guard let an = a["name"]?.stringValue, let bn = b["name"]?.stringValue, an == bn else { return false }
        for key in ["project_name", "domain_name"] {
            let x = a[key] ?? .null, y = b[key] ?? .null
            if !x.isNull && !y.isNull && x != y { return false }
        }
        return true
    }

    public func immutable(_ params: [String]) -> [String] {
        params.filter { p in field(p)?.onUpdate == .immutable }
    }

    /// Admin-only params the record sets (other than null or false) that a caller without admin
    /// credentials cannot apply: "provider_network_type, provider_segmentation_id not applied:
    /// Neutron reserves them to admins". Nil when there are none or the caller is admin.
    public func adminOnlyNote(_ record: ResourceRecord, isAdmin: Bool, service: String = "Neutron") -> String? {
        if isAdmin { return nil }
        let skipped = fields.filter { f in
            guard f.adminOnly, let v = record.params[f.param] else { return false }
            return !v.isNull && v != .bool(false)
        }.map(\.param).sorted()
        if skipped.isEmpty { return nil }
        return Self.adminNote(skipped.joined(separator: ", "), plural: skipped.count > 1, service: service)
    }

    /// "WHAT not applied: Neutron reserves it (them) to admins".
    public static func adminNote(_ what: String, plural: Bool, service: String = "Neutron") -> String {
        "\(what) not applied: \(service) reserves \(plural ? "them" : "it") to admins"
    }

    /// What to do with a resource that exists: nothing when it is as described; a failure that
    /// names the fixed fields that differ (never a silent "changed"); else an update of just the
    /// fields that differ, with their old and new values. `extra`: differences and notes the map
    /// cannot see (compound params). `isAdmin`: whether admin-only params are managed.
    public func step(id: String, desired: ResourceRecord, current: JSONObject, extra: (fields: [String], notes: [String]) = ([], []),
                     isAdmin: Bool = true, update: @escaping @Sendable ([String]) async throws -> Void) -> ImportStep
    {
        let diffs = Array(Set(differences(desired: desired.params, current: current, isAdmin: isAdmin) + extra.fields)).sorted()
        let notes = extra.notes + [adminOnlyNote(desired, isAdmin: isAdmin)].compactMap { $0 }
        let note = notes.isEmpty ? nil : notes.joined(separator: "; ")
        if diffs.isEmpty { return .ok(id: id, note: note) }
        let fixed = immutable(diffs)
        if !fixed.isEmpty {
            return .fail(reason: "differs in fields that cannot change after creation: "
                + fixed.map { KindSupport.describe($0, current: current[$0], desired: desired.params[$0]) }.joined(separator: ", "))
        }
        let changes = diffs.map { FieldChange(field: $0, from: current[$0], to: desired.params[$0]) }
        return .update(id: id, fields: diffs, changes: changes, note: note) { try await update(diffs) }
    }

    // MARK: create and update bodies

    /// The create body: every managed param the record has, refs resolved (admin-only params
    /// only with admin credentials).
    public func createBody(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> JSONObject {
        var body: JSONObject = [:]
        for f in fields where ctx.isAdmin || !f.adminOnly {
            guard let v = record.params[f.param] else { continue }
            switch f.onCreate {
            case .never: continue
            case .skipNull where v.isNull: continue
            case .skipFalsey where v.isFalsey: continue
            case .skipDefault(let d) where v == d || v.isNull: continue
            default: break
            }
            body[f.api] = try await apiValue(f, v, record, ctx)
        }
        return body
    }

    public func updateBody(_ params: [String], _ record: ResourceRecord, _ ctx: ImportContext) async throws -> JSONObject {
        var body: JSONObject = [:]
        for p in params {
            guard let f = field(p), f.shape != .tags, ctx.isAdmin || !f.adminOnly, let v = record.params[p] else { continue }
            body[f.api] = try await apiValue(f, v, record, ctx)
        }
        return body
    }

    func apiValue(_ f: Field, _ v: JSONValue, _ record: ResourceRecord, _ ctx: ImportContext) async throws -> JSONValue {
        switch f.shape {
        case .ref(let t):
            return try await ctx.resolve(t, record, f.param).map(JSONValue.string) ?? .null
        default:
            return v
        }
    }

    /// The references a record's params make.
    public func references(_ record: ResourceRecord) -> [FieldReference] {
        fields.compactMap { f in
            guard case .ref(let t) = f.shape, let r = Reference(record.params[f.param]) else { return nil }
            return FieldReference(field: "params.\(f.param)", type: t, ref: r)
        }
    }

    /// Tags from a record, when it manages them.
    public func tags(_ record: ResourceRecord) -> [String]? {
        guard let v = record.params["tags"], fields.contains(where: { $0.shape == .tags }) else { return nil }
        return (v.arrayValue ?? []).compactMap(\.stringValue).sorted()
    }
}
