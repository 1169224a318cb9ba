// DataPlane: verified, sparse-aware, resumable block copy between two hosts over SSH.
// See docs/data-plane.md for the design, the wire protocol and the library API.
import Foundation

public enum DataPlane {
    /// Agent version; part of the deployed binary's name and of every hello.
    public static let version = "0.1.0"
}

/// One clear, single-line failure.
public struct DataPlaneError: Error, CustomStringConvertible, Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// ssh could not connect or authenticate, the agent could not be started remotely, or the
        /// connection to the source was lost in the middle of the transfer (a rerun resumes).
        case connect
        /// A source or destination path does not exist.
        case notFound
        /// Permission denied on a source or destination.
        case permission
        /// The destination is smaller than the source.
        case tooSmall
        /// Digests did not match (or a chunk kept failing verification).
        case verification
        /// The peer spoke something unexpected.
        case protocolError = "protocol"
        /// Bad arguments.
        case usage
        /// Anything else (I/O errors, …).
        case other
    }

    public var kind: Kind
    public var message: String

    public init(_ message: String, kind: Kind = .other) {
        self.message = message
        self.kind = kind
    }

    public var description: String { message }

    /// Classifies an errno.
    static func from(errno code: Int32, _ message: String) -> DataPlaneError {
        switch code {
        case ENOENT, ENXIO, ENODEV: return DataPlaneError(message, kind: .notFound)
        case EACCES, EPERM, EROFS: return DataPlaneError(message, kind: .permission)
        default: return DataPlaneError(message, kind: .other)
        }
    }
}

/// Fault injection for tests (the CLI fills these from `OSM_AGENT_TEST_*` environment variables).
public struct TestHooks: Sendable, Codable, Equatable {
    /// Flip a byte of this chunk as it arrives at the receiver (the first time only, or always).
    public var corruptChunk: Int?
    public var corruptAlways = false
    /// SIGKILL the receiving process once this many data bytes were written.
    public var killAfterBytes: UInt64?
    /// Once the sender has sent this many bytes, it writes half of its next data frame, a line on
    /// stderr, and SIGKILLs itself (a sender or its ssh dying in the middle of the transfer).
    public var senderKillAfterBytes: UInt64?
    /// The sender waits this long before sending each chunk of its pass (a slow or stalled source);
    /// the wait ends early when the receiver goes away.
    public var senderDelayMilliseconds: UInt64?
    public init() {}
}

/// A copy (or a verification) of one volume.
public struct CopyRequest: Sendable {
    public var source: VolumeLocation
    /// Where the receiving agent runs is `destination.endpoint` (nil: in this process).
    public var destination: VolumeLocation
    public var chunkSize = VolumeGeometry.defaultChunkSize
    /// Parallel SSH sessions (each with its own sender process) for this volume.
    public var streams = 1
    /// Hashing/writing threads per agent; nil = number of cores (max 8).
    public var workers: Int?
    /// The target is known to read as zeros (a fresh volume): zero ranges are not written.
    public var targetIsZero = false
    /// What the destination's chunk map is kept under (e.g. the Cinder volume id): a device path
    /// like /dev/sdb names one volume now and another later. nil: the target's path and device.
    public var targetKey: String?
    /// Take the chunk map's word for the chunks it holds instead of re-reading them from the
    /// target: only for a target nothing but these copies has written since the map recorded
    /// it (see docs/data-plane.md, "Trusting the map").
    public var trustMap = false
    /// Compare digests only; nothing is written.
    public var verifyOnly = false
    /// Benchmark-only: no hashing at all (the result is never `verified`).
    public var unverified = false
    /// ssh compression (`Compression=yes`); only worth it on slow links.
    public var compress = false
    /// Fallback when the agent cannot run on the source host: read the source through
    /// `qemu-nbd --read-only` there, over an `ssh -L` tunnel (unix sockets on both ends).
    public var nbdFallback = false
    /// Directory for the destination's chunk maps (on the destination host). nil = default
    /// (`$XDG_STATE_HOME/os-migrate/dataplane` or `~/.local/state/os-migrate/dataplane`).
    public var stateDirectory: String?
    /// Do not read or write a chunk map (every run is a full copy).
    public var useState = true
    /// Give up (`DataPlaneError.Kind.connect`) when nothing arrives from the source and no chunk is
    /// resolved for this many seconds; 0 = wait forever. (ssh's keepalives already end a dead
    /// connection after about a minute; this catches a live connection over which nothing moves.)
    public var stallTimeout: Double = 300
    /// The local `os-migrate` executable (runs local senders and is copied to remote hosts).
    /// nil = this process's executable.
    public var agentExecutable: String?
    public var testHooks = TestHooks()
    /// Warnings and remote agent log lines (e.g. "chunk 3 … fetching it again"); nil = discard.
    public var log: (@Sendable (String) -> Void)?

    public init(source: VolumeLocation, destination: VolumeLocation) {
        self.source = source
        self.destination = destination
    }
}

/// Progress of a running copy (emitted a few times per second).
public struct CopyProgress: Sendable, Codable, Equatable {
    /// Source volume size.
    public var bytesTotal: UInt64 = 0
    /// Bytes of the volume resolved so far (copied + zero + reused).
    public var bytesDone: UInt64 = 0
    /// Non-zero bytes received and written.
    public var bytesCopied: UInt64 = 0
    /// Zero bytes that did not cross the wire.
    public var bytesZero: UInt64 = 0
    /// Bytes of chunks the target already held (verified by re-hashing).
    public var bytesReused: UInt64 = 0
    /// Protocol bytes both ways (before SSH encryption).
    public var bytesOnWire: UInt64 = 0
    public var seconds: Double = 0
    /// bytesDone per second over the last interval.
    public var rate: Double = 0
    public init() {}

    /// Seconds left at the current rate, if known.
    public var eta: Double? {
        guard rate > 0, bytesTotal >= bytesDone else { return nil }
        return Double(bytesTotal - bytesDone) / rate
    }
}

/// The outcome of a copy whose digests matched (or of a verification).
public struct CopyResult: Sendable, Codable, Equatable {
    public var source: String = ""
    public var destination: String = ""
    public var mode: CopyMode = .copy
    public var sourceSize: UInt64 = 0
    public var chunkSize: Int = 0
    public var streams: Int = 1
    public var bytesCopied: UInt64 = 0
    public var bytesZero: UInt64 = 0
    public var bytesReused: UInt64 = 0
    public var bytesOnWire: UInt64 = 0
    public var chunksCopied: Int = 0
    public var chunksReused: Int = 0
    /// Chunks the map claimed but whose target bytes no longer matched (re-sent).
    public var chunksRepaired: Int = 0
    /// Chunks that arrived corrupted and were re-requested.
    public var chunksRetried: Int = 0
    /// Verification only: chunks whose digests differ.
    public var chunksDiffering: Int = 0
    public var seconds: Double = 0
    /// Hex SHA-256 volume digest (see DigestScheme), set only when the source's and the destination's
    /// are the same: "" when unverified, and for `verifyOnly` when they differ (see `sourceDigest` and
    /// `destinationDigest`).
    public var digest: String = ""
    /// `verifyOnly`: the source's volume digest. nil for copies (a copy returns only when they match).
    public var sourceDigest: String?
    /// `verifyOnly`: the destination's volume digest (over the source's size).
    public var destinationDigest: String?
    /// True only when the source and destination digests were computed independently and match.
    public var verified = false
    public init() {}
}

/// Copies (or verifies) one volume. Safe to call concurrently for several volumes.
/// Throws `DataPlaneError`; returns only when the digests match, or — for `verifyOnly` — with
/// `verified` telling whether they do.
public func runCopy(_ request: CopyRequest, progress: @escaping @Sendable (CopyProgress) -> Void = { _ in }) async throws -> CopyResult {
    let session = CopySession(request: request, progress: progress)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<CopyResult, Error>) in
            Thread.detachNewThread {
                do {
                    cont.resume(returning: try session.run())
                } catch {
                    cont.resume(throwing: error)
                }
            }
        }
    } onCancel: {
        session.cancel()
    }
}

/// The blocking form of `runCopy`.
public func runCopyBlocking(_ request: CopyRequest, progress: @escaping @Sendable (CopyProgress) -> Void = { _ in }) throws -> CopyResult {
    try CopySession(request: request, progress: progress).run()
}

/// Default state directory on this host.
public func defaultStateDirectory() -> String {
    let env = ProcessInfo.processInfo.environment
    if let x = env["XDG_STATE_HOME"], !x.isEmpty { return x + "/os-migrate/dataplane" }
    let home = env["HOME"] ?? NSHomeDirectory()
    return home + "/.local/state/os-migrate/dataplane"
}

/// This process's executable.
public func currentExecutablePath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// The binary the data plane runs on remote hosts (copied there when missing): `$OSM_AGENT_BINARY`,
/// else `os-migrate-agent` beside this executable (the self-contained agent, see
/// `scripts/build-agent`), else this executable itself.
public func agentExecutablePath() -> String {
    if let p = ProcessInfo.processInfo.environment["OSM_AGENT_BINARY"], !p.isEmpty { return p }
    let me = currentExecutablePath()
    let sibling = (me as NSString).deletingLastPathComponent + "/os-migrate-agent"
    if sibling != me, FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
    return me
}

/// A copy that can be run on the calling thread (blocking) and cancelled from another.
public final class CopySessionHandle: Sendable {
    private let session: CopySession
    public init(request: CopyRequest, progress: @escaping @Sendable (CopyProgress) -> Void = { _ in }) {
        session = CopySession(request: request, progress: progress)
    }
    /// Runs the copy; see `runCopy`.
    public func run() throws -> CopyResult { try session.run() }
    /// Stops the copy: children are terminated and `run` throws.
    public func cancel() { session.cancel() }
}

/// Identity of this build of the agent.
public enum AgentBuild {
    /// The oldest glibc the self-contained agent (`scripts/build-agent`) runs on: Debian 11,
    /// Ubuntu 20.04, RHEL/CentOS Stream 9 and later.
    public static let minimumGlibc = (major: 2, minor: 31)

    /// The glibc version in `ldd --version`'s first line (`ldd (Debian GLIBC 2.31-13) 2.31`).
    public static func glibcVersion(lddLine: String) -> (major: Int, minor: Int)? {
        guard let last = lddLine.split(separator: " ").last else { return nil }
        let parts = last.split(separator: ".").prefix(2).compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }

    /// Is a host's glibc older than the agent's minimum?
    public static func glibcTooOld(lddLine: String) -> Bool {
        guard let v = glibcVersion(lddLine: lddLine) else { return false }
        return (v.major, v.minor) < (minimumGlibc.major, minimumGlibc.minor)
    }

    /// `<version>-<12 hex of the GNU build ID (or of the SHA-256 of the executable)>`: the name under which it is deployed.
    public static func id(executable: String = currentExecutablePath()) throws -> String {
        try RemoteAgent.buildID(executable: executable)
    }
}
