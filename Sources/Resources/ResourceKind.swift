import Foundation
import Logging
import OpenStack

/// A kind of resource the tool migrates: its file, its fields and references, and how it is
/// exported and imported. A new kind is one type conforming to this and one registry line.
public protocol ResourceKind: Sendable {
    /// CLI name and key of filters: "networks", "router-interfaces".
    static var name: String { get }
    /// File in the data directory: "networks.yml".
    static var fileName: String { get }
    /// The `type` string of its records: "openstack.network.Network".
    static var typeName: String { get }
    /// Kinds whose resources must exist before this kind is imported.
    static var dependencies: [String] { get }
    /// The reference type that names resources of this kind, if others refer to it.
    static var refType: RefType? { get }
    /// Params that hold the plain name (not a reference) of something of another type, renamed
    /// with it by `--map-name` but not checked as references: a volume's `volume_type`.
    static var nameParams: [String: RefType] { get }
    /// Params every record must have.
    static var requiredParams: [String] { get }
    /// Whether records carry a `params.name` that must be unique and non-empty.
    static var isNamed: Bool { get }
    /// The vars-file filter list that selects this kind (`os_migrate_networks_filter`) and the
    /// dotted param path it matches on import.
    static var filterVariable: String { get }
    static var filterPath: String { get }
    /// Needs admin credentials.
    static var adminOnly: Bool { get }
    /// The vars-file filter list applied at export, when it differs from `filterVariable`
    /// (detached volumes: `os_migrate_volumes_filter`).
    static var exportFilterVariable: String { get }

    /// The source project's resources, serialized (unsorted; the engine sorts and filters).
    static func export(_ ctx: ExportContext) async throws -> [ResourceRecord]

    /// Work on the exported records that passed the filters, after the file is merged (image
    /// data into `--image-blobs-dir`). One result per record touched.
    static func afterExport(_ records: [ResourceRecord], _ ctx: ExportContext) async -> [ItemResult]

    /// The references a record makes, for validation before any write.
    static func references(_ record: ResourceRecord) -> [FieldReference]

    /// Record-level checks beyond required params (one message per problem, naming the field).
    static func validate(_ record: ResourceRecord) -> [String]
    /// Values the destination accepts but that are unusual enough to say so (a warning, one per
    /// value, naming the field): never a reason to refuse what the API takes.
    static func advisories(_ record: ResourceRecord) -> [String]
    /// The type and range of params, checked in validation before anything is written (beyond
    /// the rules every kind follows by param name: `ValueRule.byName`).
    static var valueRules: [String: ValueRule] { get }
    /// Every param the kind reads; one it does not know is said in a warning (a typo, or a file of
    /// another tool), never dropped silently. nil: not declared (no warning).
    static var knownParams: Set<String>? { get }
    /// Checks against the other data files checked in the same run (by kind name), e.g. an
    /// interface's address inside its subnet's cidr: one message per problem, naming the field.
    static func crossFileProblems(_ record: ResourceRecord, others: [String: [ResourceRecord]]) -> [String]

    /// Look the record up in the destination and decide what to do.
    static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep

    /// Work that must wait until every record of this kind (and the kinds imported in the same
    /// run) exists, e.g. router static routes after the interfaces. One result per record touched.
    static func finish(_ records: [ResourceRecord], _ ctx: ImportContext) async -> [ItemResult]

    /// A short label for a record in reports (its name, or what identifies it).
    static func label(_ record: ResourceRecord) -> String

    /// The identity that must be unique across files (nil: not checked).
    static func importIdentity(_ record: ResourceRecord) -> String?

    /// What export merges on: a re-export replaces the record with the same identity
    /// (default: type and source id).
    static func exportIdentity(_ record: ResourceRecord) -> String?

    /// Records that must be imported one after another share a key (interfaces of one router).
    static func serialKey(_ record: ResourceRecord) -> String?

    /// The order to import records in (parents before children); default: as in the file.
    static func importOrder(_ records: [ResourceRecord]) -> [ResourceRecord]

    /// Imported by the generic engine (`import all` includes it); workloads are not.
    static var importedByEngine: Bool { get }
}

extension ResourceKind {
    public static var dependencies: [String] { [] }
    public static var refType: RefType? { nil }
    public static var nameParams: [String: RefType] { [:] }
    public static var isNamed: Bool { true }
    public static var filterPath: String { "name" }
    public static var adminOnly: Bool { false }
    public static var exportFilterVariable: String { filterVariable }
    public static func afterExport(_ records: [ResourceRecord], _ ctx: ExportContext) async -> [ItemResult] { [] }
    public static func references(_ record: ResourceRecord) -> [FieldReference] { [] }
    public static func validate(_ record: ResourceRecord) -> [String] { [] }
    public static func advisories(_ record: ResourceRecord) -> [String] { [] }
    public static var valueRules: [String: ValueRule] { [:] }
    public static var knownParams: Set<String>? { nil }
    public static func crossFileProblems(_ record: ResourceRecord, others: [String: [ResourceRecord]]) -> [String] { [] }
    public static func finish(_ records: [ResourceRecord], _ ctx: ImportContext) async -> [ItemResult] { [] }
    public static func label(_ record: ResourceRecord) -> String { record.name ?? record.id ?? "?" }
    public static func importIdentity(_ record: ResourceRecord) -> String? {
        isNamed ? record.name.map { "\(typeName):\($0)" } : nil
    }
    public static func exportIdentity(_ record: ResourceRecord) -> String? { record.id.map { "\(record.type):\($0)" } }
    public static func serialKey(_ record: ResourceRecord) -> String? { nil }
    public static var importedByEngine: Bool { true }
    public static func importOrder(_ records: [ResourceRecord]) -> [ResourceRecord] { records }
}

/// A reference found in a record: which field, to what type.
public struct FieldReference: Sendable {
    public var field: String
    public var type: RefType
    public var ref: Reference
    public init(field: String, type: RefType, ref: Reference) {
        self.field = field
        self.type = type
        self.ref = ref
    }
}

/// What export needs: the source session and its reference builder.
public struct ExportContext: Sendable {
    public let session: CloudSession
    public let refs: ReferenceBuilder
    public let isAdmin: Bool
    public let logger: Logger
    public var options = ExportOptions()
    public var progress: ProgressHandler?
    public var projectID: String { refs.projectID }

    public init(session: CloudSession, refs: ReferenceBuilder, isAdmin: Bool, logger: Logger = Logger(label: "os-migrate.export")) {
        self.session = session
        self.refs = refs
        self.isAdmin = isAdmin
        self.logger = logger
    }
}

/// Import options that change behaviour.
public struct ImportOptions: Sendable {
    public var dryRun: Bool
    /// Keep destination security group rules that the rules file does not list (by default they
    /// are deleted from every group the files cover; see `SecurityGroupRuleKind.finish`).
    public var keepUnlistedRules: Bool
    /// Create detached volumes empty, without their data.
    public var noData = false
    /// Read image data from this directory (`<id>-<name>`) instead of the source cloud.
    public var imageBlobsDir: String?
    /// The source cloud, to stream image data from.
    public var source: CloudSession?
    /// Initial passwords for users that import creates.
    public var userPasswords = UserPasswords()
    /// Moves volume data from the source to the destination (through the conversion hosts).
    public var volumeCopier: (any VolumeDataCopier)?
    public init(dryRun: Bool = false, keepUnlistedRules: Bool = false) {
        self.dryRun = dryRun
        self.keepUnlistedRules = keepUnlistedRules
    }
}

/// What import needs: the destination session, the resolver, and a reference builder on the
/// destination to serialize what exists there for comparison.
public struct ImportContext: Sendable {
    public let session: CloudSession
    public let resolver: ReferenceResolver
    public let current: ReferenceBuilder
    public let isAdmin: Bool
    public let options: ImportOptions
    /// The kinds imported in this run (kinds may defer work to a later kind of the same run).
    public let kinds: Set<String>
    public let logger: Logger
    /// Values listed once per run and shared by concurrent steps.
    public let cache = RunCache()
    /// Where long steps report progress.
    public var progress: ProgressHandler?
    /// Resources created in this run, by kind, for kinds that act on them later.
    public let created = CreatedResources()
    /// Destination ids of the records this run imported (ok, created or updated), by kind.
    public let imported = CreatedResources()
    public var projectID: String { resolver.projectID }

    public init(session: CloudSession, resolver: ReferenceResolver, current: ReferenceBuilder, isAdmin: Bool,
                options: ImportOptions, kinds: Set<String> = [], logger: Logger = Logger(label: "os-migrate.import"))
    {
        self.session = session
        self.resolver = resolver
        self.current = current
        self.isAdmin = isAdmin
        self.options = options
        self.kinds = kinds
        self.logger = logger
    }

    /// Resolve a reference param of a record; nil when the param is null or absent.
    public func resolve(_ type: RefType, _ record: ResourceRecord, _ param: String) async throws -> String? {
        do {
            return try await resolver.resolve(type, record.params[param])
        } catch let e as ReferenceError {
            throw ReferenceError("params.\(param): \(e.description)")
        }
    }
}

/// The decision for one record.
public enum ImportStep: Sendable {
    /// Exists as described.
    case ok(id: String, note: String? = nil)
    /// Missing: `perform` creates it and returns its id.
    case create(detail: String, perform: @Sendable () async throws -> String)
    /// Exists but differs in `fields`: `perform` changes just those. `changes`: the old and new
    /// values, for the report; `note`: what was left out and why.
    case update(id: String, fields: [String], changes: [FieldChange] = [], note: String? = nil,
                perform: @Sendable () async throws -> Void)
    case skip(reason: String)
    case fail(reason: String)
}

/// The outcome of one item, as reported.
public struct ItemResult: Sendable, Equatable {
    public enum Status: String, Sendable { case ok, changed, skipped, failed }
    public var kind: String
    public var name: String
    public var status: Status
    public var message: String
    /// "created", "updated", "deleted" for changed items.
    public var action: String?
    public var fields: [String]
    /// For updates: each changed field's destination value and the file's.
    public var changes: [FieldChange]
    public var id: String?

    public init(kind: String, name: String, status: Status, message: String = "", action: String? = nil,
                fields: [String] = [], changes: [FieldChange] = [], id: String? = nil)
    {
        self.kind = kind
        self.name = name
        self.status = status
        self.message = message
        self.action = action
        self.fields = fields
        self.changes = changes
        self.id = id
    }
}

/// One field of an update: what the destination has and what the file says, as compact JSON
/// text cut to `limit` characters. Values of fields named like a secret are never kept.
public struct FieldChange: Sendable, Equatable {
    public static let limit = 60
    public var field: String
    public var from: String
    public var to: String

    public init(field: String, from: JSONValue?, to: JSONValue?) {
        self.field = field
        if Self.isSecret(field) {
            self.from = "***"
            self.to = "***"
        } else {
            self.from = Self.compact(from ?? .null)
            self.to = Self.compact(to ?? .null)
        }
    }

    public static func isSecret(_ field: String) -> Bool {
        let f = field.lowercased()
        return ["password", "secret", "token", "private_key", "passphrase", "credential"].contains { f.contains($0) }
    }

    /// `"front network"`, `1400`, `["a","b"]`: at most `limit` characters, "…" when cut.
    public static func compact(_ v: JSONValue, limit: Int = FieldChange.limit) -> String {
        let text = v.jsonString()
        guard text.count > limit else { return text }
        return String(text.prefix(limit - 1)) + "…"
    }

    /// `description: "a" → "b"`.
    public var text: String { "\(field): \(from) → \(to)" }

    /// `description: "a" → "b", mtu: 1450 → 1400`.
    public static func describe(_ changes: [FieldChange]) -> String { changes.map(\.text).joined(separator: ", ") }
}
