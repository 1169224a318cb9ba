import Crypto

/// A SHA-256 value (of a leaf block, a chunk or a volume).
public struct ChunkDigest: Hashable, Sendable, CustomStringConvertible {
    public var bytes: (UInt64, UInt64, UInt64, UInt64)

    public init(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) { bytes = (a, b, c, d) }

    public init(raw: UnsafeRawBufferPointer) {
        precondition(raw.count >= 32)
        bytes = (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    init(_ digest: SHA256.Digest) {
        self = digest.withUnsafeBytes { ChunkDigest(raw: $0) }
    }

    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        for i in 0..<32 {
            guard let h = nibble(chars[2 * i]), let l = nibble(chars[2 * i + 1]) else { return nil }
            out[i] = h << 4 | l
        }
        self = out.withUnsafeBytes { ChunkDigest(raw: $0) }
    }

    public static func == (l: ChunkDigest, r: ChunkDigest) -> Bool {
        l.bytes.0 == r.bytes.0 && l.bytes.1 == r.bytes.1 && l.bytes.2 == r.bytes.2 && l.bytes.3 == r.bytes.3
    }

    public func hash(into h: inout Hasher) {
        h.combine(bytes.0); h.combine(bytes.1); h.combine(bytes.2); h.combine(bytes.3)
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = bytes
        return try withUnsafeBytes(of: &copy) { try body($0) }
    }

    public var hex: String {
        withBytes { raw in
            let digits = Array("0123456789abcdef".utf8)
            var out = [UInt8]()
            out.reserveCapacity(64)
            for b in raw {
                out.append(digits[Int(b >> 4)])
                out.append(digits[Int(b & 15)])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    public var description: String { hex }

    public static let zero = ChunkDigest(0, 0, 0, 0)
}

/// The digest scheme (protocol v1), identical on both sides:
///
/// - leaf  = SHA-256(block bytes) for each 64 KiB block of a chunk (the last block of the volume may be short)
/// - chunk = SHA-256(leaf_0 ‖ leaf_1 ‖ … ‖ leaf_n-1)
/// - volume = SHA-256(chunk_0 ‖ chunk_1 ‖ … ‖ chunk_m-1), zero chunks included
///
/// A leaf of an all-zero block is a constant, so zero blocks and zero chunks cost no hashing:
/// hashing work is proportional to the non-zero data, not to the volume size.
public struct DigestScheme: Sendable {
    public let geometry: VolumeGeometry
    /// SHA-256 of a full all-zero block.
    public let zeroBlock: ChunkDigest
    /// SHA-256 of the (short) last block of the volume, when it is all zeros.
    public let zeroLastBlock: ChunkDigest
    /// Digest of a full all-zero chunk.
    public let zeroChunk: ChunkDigest
    /// Digest of the last chunk when it is all zeros (equals `zeroChunk` when the last chunk is full).
    public let zeroLastChunk: ChunkDigest

    public init(geometry: VolumeGeometry) {
        self.geometry = geometry
        let bs = VolumeGeometry.blockSize
        let zeros = [UInt8](repeating: 0, count: bs)
        zeroBlock = zeros.withUnsafeBytes { DigestScheme.leaf($0) }
        let lastChunkLength = geometry.chunkCount > 0 ? geometry.chunkLength(geometry.chunkCount - 1) : geometry.chunkSize
        let lastBlockLength = lastChunkLength % bs == 0 ? bs : lastChunkLength % bs
        zeroLastBlock = zeros.withUnsafeBytes { DigestScheme.leaf(UnsafeRawBufferPointer(rebasing: $0[0..<lastBlockLength])) }
        let full = geometry.blocksPerChunk
        zeroChunk = DigestScheme.combine(Array(repeating: zeroBlock, count: full))
        let lastBlocks = VolumeGeometry.blockCount(chunkLength: lastChunkLength)
        var last = Array(repeating: zeroBlock, count: lastBlocks)
        if lastBlocks > 0 { last[lastBlocks - 1] = zeroLastBlock }
        zeroLastChunk = DigestScheme.combine(last)
    }

    public static func leaf(_ bytes: UnsafeRawBufferPointer) -> ChunkDigest {
        var h = SHA256()
        h.update(bufferPointer: bytes)
        return ChunkDigest(h.finalize())
    }

    /// SHA-256 over a sequence of digests.
    public static func combine<S: Sequence>(_ digests: S) -> ChunkDigest where S.Element == ChunkDigest {
        var h = SHA256()
        for d in digests { d.withBytes { h.update(bufferPointer: $0) } }
        return ChunkDigest(h.finalize())
    }

    public func zeroChunkDigest(_ index: Int) -> ChunkDigest {
        index == geometry.chunkCount - 1 ? zeroLastChunk : zeroChunk
    }

    /// The digest of chunk `index` whose bytes are in `buffer` (length = chunk length), where
    /// `zeroBlocks[i]` says block i is known to be all zeros (its bytes are not hashed).
    public func chunkDigest(index: Int, buffer: UnsafeRawBufferPointer, zeroBlocks: BlockMask) -> ChunkDigest {
        let length = buffer.count
        let bs = VolumeGeometry.blockSize
        let blocks = VolumeGeometry.blockCount(chunkLength: length)
        let isLastChunk = index == geometry.chunkCount - 1
        var h = SHA256()
        for b in 0..<blocks {
            let start = b * bs
            let end = min(start + bs, length)
            let leafDigest: ChunkDigest
            if zeroBlocks[b] {
                leafDigest = (isLastChunk && b == blocks - 1) ? zeroLastBlock : zeroBlock
            } else {
                leafDigest = DigestScheme.leaf(UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
            }
            leafDigest.withBytes { h.update(bufferPointer: $0) }
        }
        return ChunkDigest(h.finalize())
    }

    /// Volume digest over chunk digests in index order.
    public func volumeDigest(_ chunkDigests: [ChunkDigest]) -> ChunkDigest {
        DigestScheme.combine(chunkDigests)
    }
}

/// One bit per leaf block of a chunk (a chunk has at most 1024 blocks).
public struct BlockMask: Sendable, Equatable {
    private var words: [UInt64]
    public let count: Int

    public init(count: Int, allSet: Bool = false) {
        self.count = count
        words = Array(repeating: 0, count: (count + 63) / 64)
        if allSet { for i in 0..<count { self[i] = true } }  // keep bits past `count` clear (==)
    }

    public subscript(i: Int) -> Bool {
        get { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
        set {
            if newValue { words[i >> 6] |= 1 << UInt64(i & 63) } else { words[i >> 6] &= ~(1 << UInt64(i & 63)) }
        }
    }

    public var setCount: Int {
        var n = 0
        for i in 0..<count where self[i] { n += 1 }
        return n
    }
}
