import Foundation
import GRDB

/// The migration ledger: a SQLite database in the data directory that records, per workload,
/// where the migration stands, everything it created or changed in either cloud (so that a
/// failure or a kill is cleaned up, or resumed, and nothing is created twice), and the
/// verified copies (digests) that the report shows.
public final class Ledger: Sendable {
    public static let fileName = "migration-ledger.sqlite"

    let db: DatabaseQueue
    public let path: String

    public init(dataDir: String) throws {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        path = (dataDir as NSString).appendingPathComponent(Self.fileName)
        var config = Configuration()
        config.busyMode = .timeout(30)
        db = try DatabaseQueue(path: path, configuration: config)
        try Self.migrator.migrate(db)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "workload") { t in
                t.primaryKey("sourceID", .text)
                t.column("name", .text).notNull()
                t.column("state", .text).notNull()
                t.column("step", .text)
                t.column("destinationID", .text)
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("startedAt", .datetime)
                t.column("finishedAt", .datetime)
                t.column("error", .text)
            }
            try db.create(table: "resource") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("workload", .text).notNull().references("workload", onDelete: .cascade)
                t.column("cloud", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("role", .text).notNull()
                t.column("resourceID", .text).notNull()
                t.column("detail", .text)
                t.column("state", .text).notNull()
                t.column("updatedAt", .datetime).notNull()
                t.uniqueKey(["workload", "role"])
            }
            try db.create(table: "copy") { t in
                t.column("workload", .text).notNull().references("workload", onDelete: .cascade)
                t.column("device", .text).notNull()
                t.column("sourceVolume", .text).notNull()
                t.column("destinationVolume", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("digest", .text).notNull()
                t.column("bytesCopied", .integer).notNull()
                t.column("bytesZero", .integer).notNull()
                t.column("bytesReused", .integer).notNull()
                t.column("bytesOnWire", .integer).notNull()
                t.column("seconds", .double).notNull()
                t.column("verifiedAt", .datetime).notNull()
                t.primaryKey(["workload", "device"])
            }
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("workload", .text).notNull()
                t.column("at", .datetime).notNull()
                t.column("step", .text).notNull()
                t.column("message", .text).notNull()
            }
        }
        m.registerMigration("v2") { db in
            // Detached volumes copied through the conversion hosts (no workload holds them).
            try db.create(table: "volumeCopy") { t in
                t.primaryKey("sourceVolume", .text)
                t.column("name", .text).notNull()
                t.column("destinationVolume", .text).notNull()
                t.column("sourceHost", .text).notNull()
                t.column("destinationHost", .text).notNull()
                t.column("state", .text).notNull()
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("startedAt", .datetime).notNull()
                t.column("finishedAt", .datetime)
                t.column("digest", .text)
                t.column("error", .text)
            }
        }
        m.registerMigration("v3") { db in
            // Warm migration: each sync pass per volume, and each workload's downtime.
            try db.create(table: "syncPass") { t in
                t.column("workload", .text).notNull().references("workload", onDelete: .cascade)
                t.column("device", .text).notNull()
                t.column("pass", .integer).notNull()
                t.column("destinationVolume", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("bytesChanged", .integer).notNull()
                t.column("bytesOnWire", .integer).notNull()
                t.column("seconds", .double).notNull()
                t.column("digest", .text).notNull()
                t.column("at", .datetime).notNull()
                t.primaryKey(["workload", "device", "pass"])
            }
            try db.alter(table: "workload") { t in
                t.add(column: "stopRequestedAt", .datetime)
                t.add(column: "downtimeSeconds", .double)
            }
        }
        return m
    }

    // MARK: workloads

    public struct Workload: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
        public static let databaseTableName = "workload"
        /// `synced`: a warm sync pass finished; the source still runs, the cutover is to come.
        public enum State: String, Codable, Sendable { case running, done, failed, synced }
        public var sourceID: String
        public var name: String
        public var state: State
        /// The last step completed.
        public var step: String?
        public var destinationID: String?
        public var attempts: Int
        public var startedAt: Date?
        public var finishedAt: Date?
        public var error: String?
        /// When this run asked Nova to stop the source (the start of its downtime).
        public var stopRequestedAt: Date?
        /// Source stop requested → destination server ACTIVE.
        public var downtimeSeconds: Double?
    }

    public func workload(_ sourceID: String) throws -> Workload? {
        try db.read { try Workload.fetchOne($0, key: sourceID) }
    }

    public func workloads() throws -> [Workload] {
        try db.read { try Workload.order(Column("name")).fetchAll($0) }
    }

    /// Begin (or resume) a workload: a new attempt unless one is running.
    @discardableResult
    public func begin(sourceID: String, name: String) throws -> Workload {
        try db.write { db in
            if var w = try Workload.fetchOne(db, key: sourceID) {
                if w.state != .running {
                    w.state = .running
                    w.step = nil
                    w.attempts += 1
                    w.startedAt = Date()
                    w.finishedAt = nil
                    w.error = nil
                    w.destinationID = nil
                    w.stopRequestedAt = nil
                    w.downtimeSeconds = nil
                }
                try w.update(db)
                return w
            }
            let w = Workload(sourceID: sourceID, name: name, state: .running, step: nil, destinationID: nil, attempts: 1,
                             startedAt: Date(), finishedAt: nil, error: nil, stopRequestedAt: nil, downtimeSeconds: nil)
            try w.insert(db)
            return w
        }
    }

    public func completeStep(_ sourceID: String, _ step: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE workload SET step = ? WHERE sourceID = ?", arguments: [step, sourceID])
        }
        try log(sourceID, step: step, "done")
    }

    public func setDestination(_ sourceID: String, _ serverID: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE workload SET destinationID = ? WHERE sourceID = ?", arguments: [serverID, sourceID])
        }
    }

    public func finish(_ sourceID: String, state: Workload.State, error: String? = nil) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE workload SET state = ?, finishedAt = ?, error = ? WHERE sourceID = ?",
                           arguments: [state.rawValue, Date(), error, sourceID])
        }
    }

    public func stopRequested(_ sourceID: String, at: Date = Date()) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE workload SET stopRequestedAt = ? WHERE sourceID = ?", arguments: [at, sourceID])
        }
    }

    public func setDowntime(_ sourceID: String, seconds: Double) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE workload SET downtimeSeconds = ? WHERE sourceID = ?", arguments: [seconds, sourceID])
        }
    }

    // MARK: warm sync passes

    public struct SyncPass: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
        public static let databaseTableName = "syncPass"
        public var workload: String
        public var device: String
        public var pass: Int
        public var destinationVolume: String
        public var size: Int64
        /// Source bytes whose chunks differed from the destination's (what had changed).
        public var bytesChanged: Int64
        public var bytesOnWire: Int64
        public var seconds: Double
        public var digest: String
        public var at: Date
    }

    public func saveSyncPass(_ p: SyncPass) throws {
        try db.write { try p.save($0) }
    }

    public func syncPasses(_ workload: String) throws -> [SyncPass] {
        try db.read { try SyncPass.filter(Column("workload") == workload).order(Column("pass"), Column("device")).fetchAll($0) }
    }

    /// The number of the next pass of a workload (1 for the first).
    public func nextPass(_ workload: String) throws -> Int {
        try db.read { db in
            (try Int.fetchOne(db, sql: "SELECT MAX(pass) FROM syncPass WHERE workload = ?", arguments: [workload]) ?? 0) + 1
        }
    }

    /// Mark the end of a sync: the source keeps running, the workload waits for its cutover.
    public func finishSync(_ sourceID: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE workload SET state = ?, step = NULL, finishedAt = ?, error = NULL WHERE sourceID = ?",
                           arguments: [Workload.State.synced.rawValue, Date(), sourceID])
        }
    }

    // MARK: resources

    public struct Resource: Codable, FetchableRecord, MutablePersistableRecord, Sendable, Equatable {
        public static let databaseTableName = "resource"
        public enum State: String, Codable, Sendable {
            /// Exists because of the migration; removed (or given back) by cleanup.
            case created
            /// Cleaned up.
            case released
            /// Part of the result (destination volumes, ports, server, floating IPs).
            case kept
            /// About to be created (recorded before the call, with what identifies it): a kill
            /// between the cloud's answer and the record leaves this, and the next run adopts
            /// what matches it instead of making it twice or taking it for someone else's.
            case intended
        }
        public var id: Int64?
        public var workload: String
        public var cloud: String
        public var kind: String
        /// What it is for, unique per workload: "boot-snapshot", "staged:<src vol>", "dst-volume:<device>"…
        public var role: String
        public var resourceID: String
        /// JSON details needed to undo it (a detached volume's server and device…).
        public var detail: String?
        public var state: State
        public var updatedAt: Date

        public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

        public var details: [String: String] {
            guard let d = detail?.data(using: .utf8) else { return [:] }
            return (try? JSONDecoder().decode([String: String].self, from: d)) ?? [:]
        }
    }

    /// Record a resource before the step moves on. Recording the same role again updates it.
    @discardableResult
    public func record(_ workload: String, cloud: CloudSide, kind: String, role: String, id: String,
                       detail: [String: String] = [:], state: Resource.State = .created) throws -> Resource
    {
        let d = detail.isEmpty ? nil : String(decoding: try JSONEncoder().encode(detail), as: UTF8.self)
        return try db.write { db in
            if var r = try Resource.filter(Column("workload") == workload && Column("role") == role).fetchOne(db) {
                r.cloud = cloud.rawValue
                r.kind = kind
                r.resourceID = id
                r.detail = d
                r.state = state
                r.updatedAt = Date()
                try r.update(db)
                return r
            }
            var r = Resource(id: nil, workload: workload, cloud: cloud.rawValue, kind: kind, role: role, resourceID: id, detail: d,
                             state: state, updatedAt: Date())
            try r.insert(db)
            return r
        }
    }

    public func resource(_ workload: String, role: String) throws -> Resource? {
        try db.read { try Resource.filter(Column("workload") == workload && Column("role") == role).fetchOne($0) }
    }

    public func resources(_ workload: String, state: Resource.State? = nil) throws -> [Resource] {
        try db.read { db in
            var q = Resource.filter(Column("workload") == workload)
            if let state { q = q.filter(Column("state") == state.rawValue) }
            return try q.order(Column("id")).fetchAll(db)
        }
    }

    public func setState(_ resource: Resource, _ state: Resource.State) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE resource SET state = ?, updatedAt = ? WHERE id = ?",
                           arguments: [state.rawValue, Date(), resource.id])
        }
    }

    // MARK: copies

    public struct Copy: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
        public static let databaseTableName = "copy"
        public var workload: String
        public var device: String
        public var sourceVolume: String
        public var destinationVolume: String
        public var size: Int64
        public var digest: String
        public var bytesCopied: Int64
        public var bytesZero: Int64
        public var bytesReused: Int64
        public var bytesOnWire: Int64
        public var seconds: Double
        public var verifiedAt: Date
    }

    public func saveCopy(_ c: Copy) throws {
        try db.write { try c.save($0) }
    }

    public func copies(_ workload: String) throws -> [Copy] {
        try db.read { try Copy.filter(Column("workload") == workload).order(Column("device")).fetchAll($0) }
    }

    public func clearCopies(_ workload: String) throws {
        try db.write { try Copy.filter(Column("workload") == workload).deleteAll($0) }
    }

    // MARK: events

    public struct Event: Codable, FetchableRecord, Sendable {
        public var workload: String
        public var at: Date
        public var step: String
        public var message: String

        public init(workload: String, at: Date, step: String, message: String) {
            self.workload = workload
            self.at = at
            self.step = step
            self.message = message
        }
    }

    public func log(_ workload: String, step: String, _ message: String) throws {
        try db.write { db in
            try db.execute(sql: "INSERT INTO event (workload, at, step, message) VALUES (?, ?, ?, ?)",
                           arguments: [workload, Date(), step, message])
        }
    }

    public func events(_ workload: String) throws -> [Event] {
        try db.read { try Event.fetchAll($0, sql: "SELECT workload, at, step, message FROM event WHERE workload = ? ORDER BY id",
                                         arguments: [workload]) }
    }

    // MARK: detached volume copies

    /// A detached volume's copy: recorded before its volumes are attached to the conversion
    /// hosts, so a copy killed and never rerun still shows in `report`, with what it left attached.
    public struct VolumeCopy: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
        public static let databaseTableName = "volumeCopy"
        public enum State: String, Codable, Sendable { case running, done, failed }
        public var sourceVolume: String
        public var name: String
        public var destinationVolume: String
        /// The conversion hosts' servers the two volumes are attached to while the copy runs.
        public var sourceHost: String
        public var destinationHost: String
        public var state: State
        public var attempts: Int
        public var startedAt: Date
        public var finishedAt: Date?
        public var digest: String?
        public var error: String?
    }

    public func beginVolumeCopy(source: String, name: String, destination: String, sourceHost: String, destinationHost: String) throws {
        try db.write { db in
            let attempts = try VolumeCopy.fetchOne(db, key: source)?.attempts ?? 0
            try VolumeCopy(sourceVolume: source, name: name, destinationVolume: destination, sourceHost: sourceHost,
                           destinationHost: destinationHost, state: .running, attempts: attempts + 1, startedAt: Date(),
                           finishedAt: nil, digest: nil, error: nil).save(db)
        }
    }

    public func finishVolumeCopy(source: String, state: VolumeCopy.State, digest: String? = nil, error: String? = nil) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE volumeCopy SET state = ?, finishedAt = ?, digest = ?, error = ? WHERE sourceVolume = ?",
                           arguments: [state.rawValue, Date(), digest, error, source])
        }
    }

    public func volumeCopies() throws -> [VolumeCopy] {
        try db.read { try VolumeCopy.order(Column("name")).fetchAll($0) }
    }
}

/// A record a step needs is missing from the ledger (an earlier step's resource was never
/// recorded): the ledger, not a cloud, is at fault. Reads "ledger: <what> is not recorded".
struct LedgerGap: Error, CustomStringConvertible, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { "ledger: \(message)" }
}
