/// How a volume is cut into chunks (the unit of hashing, transfer and resume) and blocks (the unit
/// of zero detection and of the leaf hashes inside a chunk).
public struct VolumeGeometry: Sendable, Equatable, Codable {
    /// Leaf block size: zero detection and leaf hashing granularity. Fixed in protocol v1.
    public static let blockSize = 64 * 1024
    public static let defaultChunkSize = 4 * 1024 * 1024
    public static let maxChunkSize = 64 * 1024 * 1024

    public let size: UInt64
    public let chunkSize: Int

    public init(size: UInt64, chunkSize: Int) throws {
        guard chunkSize >= Self.blockSize, chunkSize <= Self.maxChunkSize, chunkSize % Self.blockSize == 0 else {
            throw DataPlaneError("chunk size must be a multiple of 64 KiB between 64 KiB and 64 MiB (got \(chunkSize))")
        }
        self.size = size
        self.chunkSize = chunkSize
    }

    public var chunkCount: Int { Int((size + UInt64(chunkSize) - 1) / UInt64(chunkSize)) }
    public var blocksPerChunk: Int { chunkSize / Self.blockSize }

    public func chunkOffset(_ index: Int) -> UInt64 { UInt64(index) * UInt64(chunkSize) }

    public func chunkLength(_ index: Int) -> Int {
        let start = chunkOffset(index)
        return Int(min(UInt64(chunkSize), size - start))
    }

    /// Number of leaf blocks in a chunk of `length` bytes (the last may be short).
    public static func blockCount(chunkLength length: Int) -> Int { (length + blockSize - 1) / blockSize }

    /// Index of the chunk that holds byte `offset`.
    public func chunkIndex(containing offset: UInt64) -> Int { Int(offset / UInt64(chunkSize)) }

    /// Chunk indices that belong to stream `stream` of `streams` (interleaved: i % streams == stream).
    public func chunks(ofStream stream: Int, streams: Int) -> StrideTo<Int> {
        stride(from: stream, to: chunkCount, by: max(streams, 1))
    }
}

/// Parses sizes such as `4M`, `64K`, `1G`, `4194304`, `4MiB`.
public func parseByteSize(_ text: String) -> Int? {
    var s = text.trimmingCharacters(in: .whitespaces).uppercased()
    if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") { s.removeLast() }
    var multiplier = 1
    if let last = s.last, "KMGT".contains(last) {
        multiplier = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40][String(last)]!
        s.removeLast()
    }
    guard let value = Int(s), value >= 0 else { return nil }
    return value * multiplier
}

/// `1.5 GiB` style rendering.
public func formatBytes(_ value: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(value)
    var i = 0
    while v >= 1024 && i < units.count - 1 {
        v /= 1024
        i += 1
    }
    return i == 0 ? "\(value) B" : String(format: "%.1f %@", v, units[i])
}

import Foundation
