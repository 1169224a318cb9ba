import Foundation

/// Wire protocol v1 between `agent receive` (drives) and `agent send` (reads the source), spoken over
/// the stdin/stdout of one SSH session per stream. Every frame is an 8-byte header
/// `type:u8 flags:u8 reserved:u16 length:u32` (little-endian) followed by `length` payload bytes.
public enum FrameType: UInt8, Sendable {
    case hello = 0x01       // both ways, first frame: magic "OSMDP1\n" + JSON
    case have = 0x02        // R→S: chunks the target is believed to hold: [index u64, digest 32B]
    case start = 0x03       // R→S: end of the have-list; the sender starts its pass
    case zeroRange = 0x10   // S→R: chunks [first, first+count) of this stream's subset are all zeros
    case data = 0x11        // S→R: one chunk: index, digest, segment table, non-zero bytes
    case match = 0x12       // S→R: chunks of the subset whose digest equals the have-list digest
    case digest = 0x13      // S→R: (verify mode) digest of a non-zero chunk, no data
    case passDone = 0x14    // S→R: the sender finished its pass (repairs may still follow)
    case summary = 0x15     // S→R: after `finish`: the stream digest and counters (JSON)
    case request = 0x20     // R→S: (re)send these chunks as data (repairs)
    case finish = 0x21      // R→S: every chunk is resolved; send the summary and exit
    case error = 0x7F       // either way: fatal, UTF-8 message
}

public struct FrameHeader: Sendable, Equatable {
    public static let size = 8
    public var type: FrameType
    public var length: Int

    public init(type: FrameType, length: Int) {
        self.type = type
        self.length = length
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(type.rawValue)
        w.u8(0)
        w.u16(0)
        w.u32(UInt32(length))
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> FrameHeader {
        guard bytes.count >= size else { throw ProtocolError("short frame header") }
        var r = ByteReader(bytes)
        let t = try r.u8()
        _ = try r.u8()
        _ = try r.u16()
        let len = try r.u32()
        guard let type = FrameType(rawValue: t) else {
            throw ProtocolError("unknown frame type 0x\(String(t, radix: 16))")
        }
        return FrameHeader(type: type, length: Int(len))
    }
}

public struct ProtocolError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "protocol error: \(message)" }
}

/// First frame of each side.
public struct Hello: Codable, Sendable, Equatable {
    public static let magic = Array("OSMDP1\n".utf8)
    public static let protocolVersion = 1

    public var protocolVersion: Int = Hello.protocolVersion
    public var role: String
    public var agentVersion: String = DataPlane.version
    // receiver → sender
    public var mode: CopyMode?
    public var chunkSize: Int?
    public var blockSize: Int?
    public var stream: Int?
    public var streams: Int?
    public var workers: Int?
    // sender → receiver
    public var size: UInt64?
    public var kind: VolumeKind?
    public var path: String?

    public init(role: String) { self.role = role }
}

/// What a session does.
public enum CopyMode: String, Codable, Sendable {
    /// Copy with per-chunk verification and a volume digest (default).
    case copy
    /// Compare digests only; nothing is written.
    case verify
    /// Benchmark-only: copy without hashing anything (no digest, never reported as verified).
    case unverified
}

/// The sender's last word on a stream.
public struct StreamSummary: Codable, Sendable, Equatable {
    /// SHA-256 over the digests of this stream's chunks in index order ("" when unverified).
    public var streamDigest: String
    public var bytesRead: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var chunksData: Int = 0
    public var chunksZero: Int = 0
    public var chunksMatched: Int = 0
    public var chunksResent: Int = 0
    public init(streamDigest: String) { self.streamDigest = streamDigest }
}

public struct HaveEntry: Sendable, Equatable {
    public var index: Int
    public var digest: ChunkDigest
    public init(index: Int, digest: ChunkDigest) {
        self.index = index
        self.digest = digest
    }
}

/// The fixed part of a data frame; the non-zero segment bytes follow it on the wire, in order.
public struct DataFrameHeader: Sendable, Equatable {
    public static let fixedSize = 8 + 32 + 4
    public static let segmentSize = 9
    public var index: Int
    public var digest: ChunkDigest
    public var segments: [Segment]

    public init(index: Int, digest: ChunkDigest, segments: [Segment]) {
        self.index = index
        self.digest = digest
        self.segments = segments
    }

    public var tableSize: Int { Self.fixedSize + Self.segmentSize * segments.count }

    /// Number of data bytes that follow the table for a chunk of `chunkLength` bytes.
    public func dataBytes(chunkLength: Int) -> Int {
        segments.filter(\.isData).reduce(0) { $0 + $1.byteRange(chunkLength: chunkLength).count }
    }

    /// Frame header + fixed part + segment table (the data bytes are written after it).
    public func encodePrefix(chunkLength: Int) -> [UInt8] {
        var w = ByteWriter()
        FrameHeader(type: .data, length: tableSize + dataBytes(chunkLength: chunkLength)).encode(into: &w)
        w.u64(UInt64(index))
        w.digest(digest)
        w.u32(UInt32(segments.count))
        for s in segments {
            w.u32(UInt32(s.firstBlock))
            w.u32(UInt32(s.blockCount))
            w.u8(s.isData ? 1 : 0)
        }
        return w.bytes
    }

    /// Decodes the fixed part (first `fixedSize` bytes) and returns the header with an empty table and
    /// the number of segments to read next.
    public static func decodeFixed(_ bytes: UnsafeRawBufferPointer) throws -> (DataFrameHeader, Int) {
        var r = ByteReader(bytes)
        let index = try r.u64()
        let digest = try r.digest()
        let n = try r.u32()
        guard n <= 4096 else { throw ProtocolError("too many segments (\(n))") }
        return (DataFrameHeader(index: Int(index), digest: digest, segments: []), Int(n))
    }

    public static func decodeTable(_ bytes: UnsafeRawBufferPointer, count: Int) throws -> [Segment] {
        var r = ByteReader(bytes)
        var out: [Segment] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let first = try r.u32()
            let n = try r.u32()
            let isData = try r.u8()
            out.append(Segment(firstBlock: Int(first), blockCount: Int(n), isData: isData != 0))
        }
        return out
    }
}

/// Every message except the bytes of a data frame.
public enum Message: Sendable, Equatable {
    case hello(Hello)
    case have([HaveEntry])
    case start
    case zeroRange(first: Int, count: Int)
    case data(DataFrameHeader)
    case match(first: Int, count: Int)
    case digest(index: Int, digest: ChunkDigest)
    case passDone
    case summary(StreamSummary)
    case request([Int])
    case finish
    case error(DataPlaneError)

    /// Encodes a complete frame. Not for `.data` (use `DataFrameHeader.encodePrefix` + bytes).
    public func encode() -> [UInt8] {
        var p = ByteWriter()
        let type: FrameType
        switch self {
        case .hello(let h):
            type = .hello
            p.raw(Hello.magic)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            p.raw(Array((try? enc.encode(h)) ?? Data()))
        case .have(let entries):
            type = .have
            p.u32(UInt32(entries.count))
            for e in entries {
                p.u64(UInt64(e.index))
                p.digest(e.digest)
            }
        case .start: type = .start
        case .zeroRange(let first, let count):
            type = .zeroRange
            p.u64(UInt64(first)); p.u64(UInt64(count))
        case .data: preconditionFailure("data frames are encoded with DataFrameHeader.encodePrefix")
        case .match(let first, let count):
            type = .match
            p.u64(UInt64(first)); p.u64(UInt64(count))
        case .digest(let index, let digest):
            type = .digest
            p.u64(UInt64(index)); p.digest(digest)
        case .passDone: type = .passDone
        case .summary(let s):
            type = .summary
            p.raw(Array((try? JSONEncoder().encode(s)) ?? Data()))
        case .request(let indices):
            type = .request
            p.u32(UInt32(indices.count))
            for i in indices { p.u64(UInt64(i)) }
        case .finish: type = .finish
        case .error(let e):
            type = .error
            p.raw(Array((try? JSONEncoder().encode(e)) ?? Data(e.message.utf8)))
        }
        var w = ByteWriter()
        FrameHeader(type: type, length: p.bytes.count).encode(into: &w)
        w.raw(p.bytes)
        return w.bytes
    }

    /// Decodes the payload of a non-data frame.
    public static func decode(type: FrameType, payload: UnsafeRawBufferPointer) throws -> Message {
        var r = ByteReader(payload)
        switch type {
        case .hello:
            guard payload.count >= Hello.magic.count, Array(payload[0..<Hello.magic.count]) == Hello.magic else {
                throw ProtocolError("bad hello")
            }
            let json = Data(payload[Hello.magic.count...])
            do {
                return .hello(try JSONDecoder().decode(Hello.self, from: json))
            } catch {
                throw ProtocolError("bad hello: \(error)")
            }
        case .have:
            let n = Int(try r.u32())
            guard payload.count == 4 + n * 40 else { throw ProtocolError("bad have frame length") }
            var out: [HaveEntry] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(HaveEntry(index: Int(try r.u64()), digest: try r.digest())) }
            return .have(out)
        case .start: return .start
        case .zeroRange: return .zeroRange(first: Int(try r.u64()), count: Int(try r.u64()))
        case .match: return .match(first: Int(try r.u64()), count: Int(try r.u64()))
        case .digest: return .digest(index: Int(try r.u64()), digest: try r.digest())
        case .passDone: return .passDone
        case .summary:
            do {
                return .summary(try JSONDecoder().decode(StreamSummary.self, from: Data(payload)))
            } catch {
                throw ProtocolError("bad summary: \(error)")
            }
        case .request:
            let n = Int(try r.u32())
            guard payload.count == 4 + n * 8 else { throw ProtocolError("bad request frame length") }
            var out: [Int] = []
            for _ in 0..<n { out.append(Int(try r.u64())) }
            return .request(out)
        case .finish: return .finish
        case .error:
            if let e = try? JSONDecoder().decode(DataPlaneError.self, from: Data(payload)) { return .error(e) }
            return .error(DataPlaneError(String(decoding: payload, as: UTF8.self)))
        case .data: throw ProtocolError("data frames are decoded with DataFrameHeader")
        }
    }
}

/// A whole-frame parser over an in-memory byte stream (used by tests and small control frames).
public struct FrameParser {
    private var buffer: [UInt8] = []
    private let chunkLength: (Int) -> Int

    /// `chunkLength(index)` gives the length of a chunk, to validate data frames.
    public init(chunkLength: @escaping (Int) -> Int) { self.chunkLength = chunkLength }

    public mutating func append(_ bytes: [UInt8]) { buffer += bytes }

    /// The next complete frame: the message and, for data frames, its data bytes.
    public mutating func next() throws -> (Message, [UInt8])? {
        guard buffer.count >= FrameHeader.size else { return nil }
        let header = try buffer.withUnsafeBytes { try FrameHeader.decode($0) }
        guard buffer.count >= FrameHeader.size + header.length else { return nil }
        let payload = Array(buffer[FrameHeader.size..<(FrameHeader.size + header.length)])
        buffer.removeFirst(FrameHeader.size + header.length)
        if header.type == .data {
            return try payload.withUnsafeBytes { p in
                let (fixed, n) = try DataFrameHeader.decodeFixed(p)
                var h = fixed
                let tableEnd = DataFrameHeader.fixedSize + n * DataFrameHeader.segmentSize
                guard p.count >= tableEnd else { throw ProtocolError("short data frame") }
                h.segments = try DataFrameHeader.decodeTable(UnsafeRawBufferPointer(rebasing: p[DataFrameHeader.fixedSize..<tableEnd]), count: n)
                let expected = h.dataBytes(chunkLength: chunkLength(h.index))
                guard p.count - tableEnd == expected else { throw ProtocolError("data frame length mismatch") }
                return (.data(h), Array(p[tableEnd...]))
            }
        }
        return try payload.withUnsafeBytes { (try Message.decode(type: header.type, payload: $0), []) }
    }
}

public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func digest(_ d: ChunkDigest) { d.withBytes { bytes += $0 } }
    public mutating func raw(_ b: [UInt8]) { bytes += b }
}

public struct ByteReader {
    private let base: UnsafeRawBufferPointer
    private var pos = 0
    public init(_ base: UnsafeRawBufferPointer) { self.base = base }
    private mutating func need(_ n: Int) throws {
        if pos + n > base.count { throw ProtocolError("truncated frame") }
    }
    public mutating func u8() throws -> UInt8 {
        try need(1); defer { pos += 1 }
        return base[pos]
    }
    public mutating func u16() throws -> UInt16 {
        try need(2); defer { pos += 2 }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt16.self))
    }
    public mutating func u32() throws -> UInt32 {
        try need(4); defer { pos += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt32.self))
    }
    public mutating func u64() throws -> UInt64 {
        try need(8); defer { pos += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
    }
    public mutating func digest() throws -> ChunkDigest {
        try need(32); defer { pos += 32 }
        return ChunkDigest(raw: UnsafeRawBufferPointer(rebasing: base[pos..<(pos + 32)]))
    }
}
