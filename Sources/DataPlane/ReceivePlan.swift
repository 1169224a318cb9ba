/// Pure decisions of the receiving agent (unit-tested without sockets).
public enum ReceivePlan {
    /// What to do with a chunk the source says is all zeros.
    public enum ZeroAction: Equatable, Sendable {
        /// The target is known to read as zeros here (fresh or `--target-is-zero`): nothing to do.
        case skip
        /// The map says zero: check the target (a hole, or read + word-compare) and zero it only if it is not.
        case verifyZero
        /// Zero the range (punch a hole / BLKZEROOUT / write zeros).
        case zero
    }

    public static func onZero(entry: ChunkMap.Entry, targetKnownZero: Bool) -> ZeroAction {
        if targetKnownZero { return .skip }
        if entry == .zero { return .verifyZero }
        return .zero
    }

    /// What to do with a data chunk that arrived, after hashing what arrived.
    public enum LandedAction: Equatable, Sendable {
        case write
        /// Corrupted in flight: ask the source again.
        case rerequest
        /// Failed too many times: abort, never report success.
        case fail
    }

    public static let maxAttempts = 3

    public static func onData(sent: ChunkDigest, computed: ChunkDigest, failedAttempts: Int) -> LandedAction {
        if sent == computed { return .write }
        return failedAttempts + 1 >= maxAttempts ? .fail : .rerequest
    }

    /// What to do with a chunk the source says matches the map's claim, after re-hashing the target.
    public enum ReuseAction: Equatable, Sendable {
        case reuse
        /// The target no longer holds what the map says (modified outside): fetch it again.
        case repair
    }

    public static func onRehash(claimed: ChunkDigest, actual: ChunkDigest) -> ReuseAction {
        claimed == actual ? .reuse : .repair
    }

    /// Whether stored map entries may be used at all for this run.
    public static func usableMap(_ map: ChunkMap?, targetIsZero: Bool, targetCreated: Bool) -> ChunkMap? {
        if targetIsZero || targetCreated { return nil }
        return map
    }

    /// Tracks when a session is complete: every chunk resolved exactly once.
    public struct Completion: Sendable, Equatable {
        public private(set) var resolved: [Bool]
        public private(set) var resolvedCount = 0
        public init(chunkCount: Int) { resolved = Array(repeating: false, count: chunkCount) }

        /// Marks a chunk resolved; false if it already was (a protocol error).
        public mutating func resolve(_ index: Int) -> Bool {
            guard index >= 0, index < resolved.count, !resolved[index] else { return false }
            resolved[index] = true
            resolvedCount += 1
            return true
        }

        public var isComplete: Bool { resolvedCount == resolved.count }
    }
}

extension ReceivePlan {
    /// How a chunk was resolved.
    public enum Resolution: Equatable, Sendable {
        /// Written: its data bytes and its zero bytes.
        case copied(data: Int, zero: Int)
        /// Zeros (skipped, checked or zeroed): its bytes.
        case zero(Int)
        /// The target already held it (re-hashed): its bytes.
        case reused(Int)
        /// Verify mode: compared with the source's digest.
        case verified(equal: Bool)
    }

    /// The receiver's account of one copy (the session keeps it under its lock): which chunks are
    /// resolved, their digests, the chunk map, the progress and the result's counters.
    public struct Tally: Sendable, Equatable {
        public private(set) var completion: Completion
        /// The target's chunk digests.
        public private(set) var targetDigests: [ChunkDigest]
        /// Verify mode: the source's chunk digests, as the sender reported them.
        public private(set) var sourceDigests: [ChunkDigest]
        public private(set) var map: ChunkMap
        public var progress = CopyProgress()
        public var result = CopyResult()

        /// A copy of `sourceSize` bytes starting from `map`; `verify`: also keep the source's digests.
        public init(map: ChunkMap, sourceSize: UInt64, verify: Bool) {
            let chunkCount = map.geometry.chunkCount
            completion = Completion(chunkCount: chunkCount)
            targetDigests = Array(repeating: .zero, count: chunkCount)
            sourceDigests = verify ? Array(repeating: .zero, count: chunkCount) : []
            self.map = map
            progress.bytesTotal = sourceSize
            result.sourceSize = sourceSize
        }

        public var isComplete: Bool { completion.isComplete }

        /// Chunk `index` is resolved: its digest on the target, how, its new map entry (nil:
        /// unchanged) and, in verify mode, the source's digest. False when it already was, or is
        /// no chunk of the volume (a protocol error; nothing changes).
        public mutating func resolve(_ index: Int, digest: ChunkDigest, how: Resolution,
                                     entry: ChunkMap.Entry?, source: ChunkDigest? = nil) -> Bool {
            guard completion.resolve(index) else { return false }
            targetDigests[index] = digest
            if let source { sourceDigests[index] = source }
            if let entry { map[index] = entry }
            progress.bytesDone += UInt64(map.geometry.chunkLength(index))
            switch how {
            case .copied(let d, let z):
                progress.bytesCopied += UInt64(d)
                progress.bytesZero += UInt64(z)
                result.chunksCopied += 1
            case .zero(let z):
                progress.bytesZero += UInt64(z)
            case .reused(let r):
                progress.bytesReused += UInt64(r)
                result.chunksReused += 1
            case .verified(let equal):
                if !equal { result.chunksDiffering += 1 }
            }
            return true
        }

        /// The target no longer holds what the map says for chunk `index`: it is fetched again.
        public mutating func repair(_ index: Int) {
            result.chunksRepaired += 1
            map[index] = .unknown
        }
    }
}
