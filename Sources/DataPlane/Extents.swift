/// A byte range of a volume.
public struct Extent: Sendable, Equatable, Codable {
    public var offset: UInt64
    public var length: UInt64
    public init(offset: UInt64, length: UInt64) {
        self.offset = offset
        self.length = length
    }
    public var end: UInt64 { offset + length }
}

/// A run of leaf blocks inside one chunk that are either all data or all zeros.
public struct Segment: Sendable, Equatable {
    public var firstBlock: Int
    public var blockCount: Int
    public var isData: Bool
    public init(firstBlock: Int, blockCount: Int, isData: Bool) {
        self.firstBlock = firstBlock
        self.blockCount = blockCount
        self.isData = isData
    }

    /// Byte range of the segment inside a chunk of `chunkLength` bytes.
    public func byteRange(chunkLength: Int) -> Range<Int> {
        let start = firstBlock * VolumeGeometry.blockSize
        let end = min((firstBlock + blockCount) * VolumeGeometry.blockSize, chunkLength)
        return start..<end
    }
}

/// Pure planning of what to read and what to send.
public enum ExtentPlanner {
    /// For each chunk, whether it intersects any data extent. `nil` extents (unknown, e.g. a block
    /// device) mean every chunk may hold data and must be read.
    public static func chunksWithData(extents: [Extent]?, geometry: VolumeGeometry) -> [Bool] {
        let count = geometry.chunkCount
        guard let extents else { return Array(repeating: true, count: count) }
        var result = Array(repeating: false, count: count)
        for e in extents where e.length > 0 {
            let end = min(e.end, geometry.size)
            if e.offset >= end { continue }
            let first = geometry.chunkIndex(containing: e.offset)
            let last = geometry.chunkIndex(containing: end - 1)
            for i in first...last { result[i] = true }
        }
        return result
    }

    /// Runs of consecutive indices (within the stream's interleaved subset) where `predicate` holds,
    /// as (first index, count of subset members).
    public static func runs(in indices: StrideTo<Int>, where predicate: (Int) -> Bool) -> [(first: Int, count: Int)] {
        var out: [(Int, Int)] = []
        var start: Int? = nil
        var n = 0
        for i in indices {
            if predicate(i) {
                if start == nil { start = i; n = 0 }
                n += 1
            } else if let s = start {
                out.append((s, n))
                start = nil
            }
        }
        if let s = start { out.append((s, n)) }
        return out
    }

    /// The parts of chunk [offset, offset+length) that may hold data, as block-aligned byte ranges
    /// relative to the chunk (merged, in order). `extents` must be sorted and non-overlapping (as
    /// SEEK_DATA/SEEK_HOLE gives them); nil means everything may be data.
    public static func dataRanges(inChunkAt offset: UInt64, length: Int, extents: [Extent]?) -> [Range<Int>] {
        guard let extents else { return length > 0 ? [0..<length] : [] }
        let end = offset + UInt64(length)
        let bs = UInt64(VolumeGeometry.blockSize)
        // First extent that ends after the chunk starts.
        var lo = 0, hi = extents.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if extents[mid].end <= offset { lo = mid + 1 } else { hi = mid }
        }
        var out: [Range<Int>] = []
        var i = lo
        while i < extents.count && extents[i].offset < end {
            let s = max(extents[i].offset, offset) - offset
            let e = min(extents[i].end, end) - offset
            let a = Int(s / bs * bs)
            let b = Int(min((e + bs - 1) / bs * bs, UInt64(length)))
            if let last = out.last, a <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, b)
            } else if a < b {
                out.append(a..<b)
            }
            i += 1
        }
        return out
    }

    /// Which blocks of a chunk buffer are all zeros.
    /// `dataRanges` (block-aligned) limits the scan: blocks outside them are zero by construction.
    public static func zeroBlocks(of buffer: UnsafeRawBufferPointer, dataRanges: [Range<Int>]? = nil) -> BlockMask {
        let bs = VolumeGeometry.blockSize
        let blocks = VolumeGeometry.blockCount(chunkLength: buffer.count)
        if let dataRanges {
            var mask = BlockMask(count: blocks, allSet: true)
            for r in dataRanges {
                var b = r.lowerBound / bs
                while b * bs < r.upperBound {
                    let start = b * bs
                    let end = min(start + bs, buffer.count)
                    mask[b] = isAllZero(UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
                    b += 1
                }
            }
            return mask
        }
        var mask = BlockMask(count: blocks)
        for b in 0..<blocks {
            let start = b * bs
            let end = min(start + bs, buffer.count)
            if isAllZero(UnsafeRawBufferPointer(rebasing: buffer[start..<end])) { mask[b] = true }
        }
        return mask
    }

    /// Coalesces a zero-block mask into alternating data/zero segments covering the chunk.
    public static func segments(zeroBlocks: BlockMask) -> [Segment] {
        var out: [Segment] = []
        var b = 0
        while b < zeroBlocks.count {
            let zero = zeroBlocks[b]
            var e = b + 1
            while e < zeroBlocks.count && zeroBlocks[e] == zero { e += 1 }
            out.append(Segment(firstBlock: b, blockCount: e - b, isData: !zero))
            b = e
        }
        return out
    }

    /// The inverse of `segments`: the zero-block mask they describe. Returns nil if the segments do not
    /// tile `blockCount` blocks exactly, in order.
    public static func zeroMask(segments: [Segment], blockCount: Int) -> BlockMask? {
        var mask = BlockMask(count: blockCount)
        var next = 0
        for s in segments {
            guard s.firstBlock == next, s.blockCount > 0, s.firstBlock + s.blockCount <= blockCount else { return nil }
            if !s.isData { for b in s.firstBlock..<(s.firstBlock + s.blockCount) { mask[b] = true } }
            next = s.firstBlock + s.blockCount
        }
        return next == blockCount ? mask : nil
    }
}

/// Word-compare zero test (no hashing). Vectorised by the optimiser; exits early on data.
@inline(__always)
public func isAllZero(_ buffer: UnsafeRawBufferPointer) -> Bool {
    guard let base = buffer.baseAddress else { return true }
    let count = buffer.count
    var i = 0
    // Unaligned head.
    while i < count && (Int(bitPattern: base + i) & 7) != 0 {
        if base.load(fromByteOffset: i, as: UInt8.self) != 0 { return false }
        i += 1
    }
    let words = (count - i) / 8
    if words > 0 {
        let p = (base + i).assumingMemoryBound(to: UInt64.self)
        // Quick probe of the first words: random data fails here.
        let probe = min(words, 8)
        var acc: UInt64 = 0
        for w in 0..<probe { acc |= p[w] }
        if acc != 0 { return false }
        var w = probe
        while w < words {
            let end = min(w + 512, words)  // 4 KiB steps, reduction vectorises
            var a: UInt64 = 0
            var k = w
            while k < end {
                a |= p[k]
                k += 1
            }
            if a != 0 { return false }
            w = end
        }
        i += words * 8
    }
    while i < count {
        if base.load(fromByteOffset: i, as: UInt8.self) != 0 { return false }
        i += 1
    }
    return true
}
