import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The destination's belief about what its target holds, chunk by chunk: the "digest map" that makes
/// copies resumable and incremental.
///
/// It is only ever a hint: a chunk the map claims is re-read and re-hashed from the target before it
/// is reused (see `docs/data-plane.md`, "Trusting the map"), so a stale or tampered map can cost
/// bandwidth but never correctness.
public struct ChunkMap: Sendable, Equatable {
    public enum Entry: Sendable, Equatable {
        case unknown
        case zero
        case data(ChunkDigest)
    }

    public let geometry: VolumeGeometry
    public private(set) var entries: [Entry]
    /// Volume digest of the last run that completed with matching digests (cleared when a run begins).
    public private(set) var completeDigest: ChunkDigest?

    public init(geometry: VolumeGeometry) {
        self.geometry = geometry
        entries = Array(repeating: .unknown, count: geometry.chunkCount)
    }

    public subscript(index: Int) -> Entry {
        get { entries[index] }
        set { entries[index] = newValue }
    }

    /// Chunks of the stream's subset the target is believed to hold as non-zero data.
    public func haveList(stream: Int = 0, streams: Int = 1) -> [HaveEntry] {
        var out: [HaveEntry] = []
        for i in geometry.chunks(ofStream: stream, streams: streams) {
            if case .data(let d) = entries[i] { out.append(HaveEntry(index: i, digest: d)) }
        }
        return out
    }

    public var knownChunkCount: Int { entries.filter { $0 != .unknown }.count }

    // MARK: records

    public enum Record: Sendable, Equatable {
        case data(index: Int, digest: ChunkDigest)
        /// Chunks first, first+stride, … (count of them) are zero.
        case zero(first: Int, count: Int, stride: Int)
        /// A run started: the target is about to change; the completion marker no longer holds.
        case begin
        case complete(ChunkDigest)
    }

    public mutating func apply(_ record: Record) {
        switch record {
        case .data(let index, let digest):
            if index >= 0 && index < entries.count { entries[index] = .data(digest) }
        case .zero(let first, let count, let stride):
            var i = first
            var n = 0
            while n < count && i >= 0 && i < entries.count {
                entries[i] = .zero
                i += max(stride, 1)
                n += 1
            }
        case .begin:
            completeDigest = nil
        case .complete(let digest):
            completeDigest = digest
        }
    }

    // MARK: file format
    //
    // header (64 bytes): magic "OSMMAP1\0", chunkSize u64, size u64, identity (32 bytes), reserved u64
    // then 48-byte records: kind u8, 7 bytes padding, a u64, b (32 bytes)
    //   1 data:     a = index, b = digest
    //   2 zero:     a = first, b = count u64 ‖ stride u64 ‖ 16 zero bytes
    //   3 begin
    //   4 complete: b = volume digest
    // A torn trailing record (after a kill) is ignored.

    public static let headerSize = 64
    public static let recordSize = 48
    static let magic = Array("OSMMAP1\0".utf8)

    public static func encodeHeader(geometry: VolumeGeometry, identity: ChunkDigest) -> [UInt8] {
        var w = ByteWriter()
        w.raw(magic)
        w.u64(UInt64(geometry.chunkSize))
        w.u64(geometry.size)
        w.digest(identity)
        w.u64(0)
        return w.bytes
    }

    public static func encode(_ record: Record) -> [UInt8] {
        var w = ByteWriter()
        func pad(_ n: Int) { for _ in 0..<n { w.u8(0) } }
        switch record {
        case .data(let index, let digest):
            w.u8(1); pad(7); w.u64(UInt64(index)); w.digest(digest)
        case .zero(let first, let count, let stride):
            w.u8(2); pad(7); w.u64(UInt64(first)); w.u64(UInt64(count)); w.u64(UInt64(stride)); pad(16)
        case .begin:
            w.u8(3); pad(47)
        case .complete(let digest):
            w.u8(4); pad(7); w.u64(0); w.digest(digest)
        }
        return w.bytes
    }

    /// Rebuilds a map from a state file's bytes; nil when the file is for another geometry or target.
    public static func decode(_ bytes: [UInt8], geometry: VolumeGeometry, identity: ChunkDigest) -> ChunkMap? {
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic else { return nil }
        return bytes.withUnsafeBytes { raw -> ChunkMap? in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[8..<headerSize]))
            guard let chunkSize = try? r.u64(), let size = try? r.u64(), let id = try? r.digest() else { return nil }
            guard chunkSize == UInt64(geometry.chunkSize), size == geometry.size, id == identity else { return nil }
            var map = ChunkMap(geometry: geometry)
            var offset = headerSize
            while offset + recordSize <= raw.count {
                var rr = ByteReader(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + recordSize)]))
                offset += recordSize
                guard let kind = try? rr.u8() else { break }
                for _ in 0..<7 { _ = try? rr.u8() }
                guard let a = try? rr.u64() else { break }
                switch kind {
                case 1:
                    guard let d = try? rr.digest() else { return map }
                    map.apply(.data(index: Int(a), digest: d))
                case 2:
                    guard let count = try? rr.u64(), let stride = try? rr.u64() else { return map }
                    map.apply(.zero(first: Int(a), count: Int(count), stride: Int(stride)))
                case 3:
                    map.apply(.begin)
                case 4:
                    guard let d = try? rr.digest() else { return map }
                    map.apply(.complete(d))
                default:
                    return map  // garbage: stop replaying here
                }
            }
            return map
        }
    }

    /// The compact form of the map: header + one record per known chunk (zero runs coalesced) + completion.
    public func encodeCompact(identity: ChunkDigest) -> [UInt8] {
        var out = ChunkMap.encodeHeader(geometry: geometry, identity: identity)
        var i = 0
        while i < entries.count {
            switch entries[i] {
            case .unknown:
                i += 1
            case .data(let d):
                out += ChunkMap.encode(.data(index: i, digest: d))
                i += 1
            case .zero:
                var j = i + 1
                while j < entries.count && entries[j] == .zero { j += 1 }
                out += ChunkMap.encode(.zero(first: i, count: j - i, stride: 1))
                i = j
            }
        }
        if let c = completeDigest { out += ChunkMap.encode(.complete(c)) }
        return out
    }
}

/// The on-disk journal of a `ChunkMap` on the destination host: appended to as chunks land (a kill
/// leaves a usable partial map), rewritten compactly and atomically (rename) at the end of a run.
// @unchecked: `fd` is guarded by `lock`; the rest is immutable.
final class StateJournal: @unchecked Sendable {
    let path: String
    private let identity: ChunkDigest
    private let geometry: VolumeGeometry
    private var fd: Int32 = -1
    private let lock = NSLock()

    /// State file path for a target identity in `directory`.
    static func path(directory: String, identity: ChunkDigest) -> String {
        (directory as NSString).appendingPathComponent(String(identity.hex.prefix(32)) + ".map")
    }

    init(directory: String, identity: ChunkDigest, geometry: VolumeGeometry) throws {
        path = StateJournal.path(directory: directory, identity: identity)
        self.identity = identity
        self.geometry = geometry
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw DataPlaneError("cannot create the state directory \(directory): \(error.localizedDescription)")
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The map stored for this target and geometry, if any.
    func load() -> ChunkMap? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return ChunkMap.decode(Array(data), geometry: geometry, identity: identity)
    }

    /// Starts a run: rewrites the file compactly from `map` followed by a `begin` record and keeps it
    /// open for appending.
    func begin(with map: ChunkMap) throws {
        var bytes = map.encodeCompact(identity: identity)
        bytes += ChunkMap.encode(.begin)
        try writeAtomically(bytes)
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        if fd < 0 { throw SystemCallError(call: "open", path: path, errno: errno) }
    }

    func append(_ records: [ChunkMap.Record]) {
        guard !records.isEmpty else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(records.count * ChunkMap.recordSize)
        for r in records { bytes += ChunkMap.encode(r) }
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { return }
        bytes.withUnsafeBytes { _ = try? writeFully(fd, [$0]) }
    }

    /// Ends a run: the compact map (with its completion marker when verified) replaces the journal.
    func finish(with map: ChunkMap) throws {
        lock.lock()
        if fd >= 0 { close(fd); fd = -1 }
        lock.unlock()
        try writeAtomically(map.encodeCompact(identity: identity))
    }

    private func writeAtomically(_ bytes: [UInt8]) throws {
        let tmp = path + ".tmp.\(getpid())"
        let f = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if f < 0 { throw SystemCallError(call: "open", path: tmp, errno: errno) }
        do {
            try bytes.withUnsafeBytes { try writeFully(f, [$0]) }
        } catch {
            close(f)
            unlink(tmp)
            throw error
        }
        close(f)
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw SystemCallError(call: "rename", path: path, errno: e)
        }
    }
}
