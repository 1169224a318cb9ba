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
