import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Everything the receiving agent needs for one volume.
struct ReceiverConfig: Sendable {
    var source: VolumeLocation
    var target: String
    var mode: CopyMode = .copy
    var chunkSize = VolumeGeometry.defaultChunkSize
    var streams = 1
    /// nil: each agent uses its own core count.
    var workers: Int?
    var targetIsZero = false
    /// The chunk map's key (nil: the target's path and device).
    var targetKey: String?
    /// Reuse what the map claims without re-reading it.
    var trustMap = false
    /// nil: no chunk map.
    var stateDirectory: String?
    var compress = false
    /// Read the source through qemu-nbd + ssh -L instead of running the agent on the source host.
    var nbdFallback = false
    /// Seconds without a byte from the source or a resolved chunk before giving up; 0 = never.
    var stallTimeout: Double = 300
    var agentExecutable: String
    var hooks = TestHooks()
}

/// The receiving side of one volume copy: drives the senders, verifies, writes, keeps the map.
/// Here: the session's state and its run; the streams to the senders are in ReceiverStreams.swift,
/// the destination and the landing of chunks in ReceiverTarget.swift (their state is internal to
/// be shared with them).
// @unchecked: the state below is guarded by `cond` once threads run (set up before, on the calling thread).
final class ReceiveSession: @unchecked Sendable {
    let config: ReceiverConfig
    private let progressHandler: @Sendable (CopyProgress) -> Void
    let log: @Sendable (String) -> Void

    let cond = NSCondition()
    var failure: DataPlaneError?
    var cancelled = false
    var streams: [PeerStream] = []

    // Set up once the source is known.
    var target: VolumeHandle!
    var geometry: VolumeGeometry!
    var scheme: DigestScheme!
    var journal: StateJournal?
    var targetKnownZero = false
    var zeroFrom: UInt64 = .max

    // Set up once the source is known; guarded by `cond` once the reader and worker threads run
    // (read the map with `mapEntry`/`currentMap`).
    var tally: ReceivePlan.Tally!
    // Guarded by `cond`.
    var attempts: [UInt8] = []
    var summaries: [StreamSummary?] = []

    var nbdTunnel: NBDTunnel?
    /// The source host the sender agent runs on over ssh; nil when it runs here (a local source,
    /// or the NBD fallback, where the local agent reads through the tunnel).
    var senderEndpoint: SSHEndpoint? { nbdTunnel == nil ? config.source.endpoint : nil }
    let queue = BlockingQueue<Job>()
    var pool: BufferPool!
    private let startTime = monotonicSeconds()
    lazy var zeroScratch: AlignedBuffer = {
        let b = AlignedBuffer(capacity: 1 << 20)
        memset(b.pointer, 0, b.capacity)
        return b
    }()

    enum Job {
        case data(stream: Int, header: DataFrameHeader, buffer: AlignedBuffer, zeroMask: BlockMask)
        case zero(first: Int, count: Int)
        case verify(stream: Int, index: Int, expected: ChunkDigest, reuse: Bool)
    }

    init(config: ReceiverConfig, progress: @escaping @Sendable (CopyProgress) -> Void,
         log: @escaping @Sendable (String) -> Void) {
        self.config = config
        progressHandler = progress
        self.log = log
    }

    func cancel() {
        fail(DataPlaneError("cancelled"))
    }

    func fail(_ e: DataPlaneError) {
        cond.lock()
        if failure == nil { failure = e }
        let peers = streams
        let buffers = pool
        cond.broadcast()
        cond.unlock()
        queue.close()
        buffers?.close()
        for s in peers { s.process.signal(SIGTERM) }
    }

    /// Registers a started stream; throws (after stopping it) when the session already failed.
    private func register(_ peer: PeerStream) throws {
        cond.lock()
        streams.append(peer)
        let stop = failure
        cond.unlock()
        if let stop {
            peer.process.signal(SIGTERM)
            throw stop
        }
    }

    var failed: DataPlaneError? {
        cond.lock()
        defer { cond.unlock() }
        return failure
    }

    // MARK: run

    func run() throws -> CopyResult {
        signal(SIGPIPE, SIG_IGN)
        var existing: VolumeHandle? = nil
        do {
            existing = try preflightTarget()
        } catch let e as DataPlaneError {
            throw e
        }
        defer { shutdownStreams() }
        if config.nbdFallback, let ep = config.source.endpoint {
            let t = try NBDTunnel(endpoint: ep, path: config.source.path, compress: config.compress)
            nbdTunnel = t
        }
        defer { nbdTunnel?.stop() }
        // Stream 0 first (it may deploy the agent), then the others.
        let first = try launch(stream: 0)
        try register(first)
        for s in 1..<max(config.streams, 1) {
            let peer = try launch(stream: s)
            try register(peer)
            guard peer.hello.size == first.hello.size else {
                throw DataPlaneError("source size changed between streams", kind: .protocolError)
            }
        }
        let sourceSize = first.hello.size ?? 0
        geometry = try VolumeGeometry(size: sourceSize, chunkSize: config.chunkSize)
        scheme = DigestScheme(geometry: geometry)
        try prepareTarget(existing: existing, sourceSize: sourceSize)
        var map = ChunkMap(geometry: geometry)
        if config.mode == .copy, let dir = config.stateDirectory {
            do {
                let j = try StateJournal(directory: dir, identity: targetIdentity(), geometry: geometry)
                if let stored = ReceivePlan.usableMap(j.load(), targetIsZero: config.targetIsZero, targetCreated: targetKnownZero && !config.targetIsZero) {
                    map = stored
                }
                try j.begin(with: map)
                journal = j
            } catch {
                log("warning: no chunk map for this run (\(error)); the copy will not be resumable")
            }
        }
        let chunkCount = geometry.chunkCount
        cond.lock()
        tally = ReceivePlan.Tally(map: map, sourceSize: sourceSize, verify: config.mode == .verify)
        attempts = Array(repeating: 0, count: chunkCount)
        summaries = Array(repeating: nil, count: streams.count)
        cond.unlock()

        let workerCount = max(config.workers ?? defaultWorkerCount(), 1)
        let buffers = BufferPool(bufferSize: geometry.chunkSize, limit: 2 * workerCount + 2 * streams.count)
        cond.lock()
        pool = buffers
        let stopped = failure
        cond.unlock()
        if let stopped { throw stopped }

        // Tell each sender what the target already holds, then let it go.
        for s in streams {
            let have = config.mode == .copy ? tally.map.haveList(stream: s.index, streams: streams.count) : []
            var i = 0
            while i < have.count {
                let n = min(16384, have.count - i)
                try s.writer.send(.have(Array(have[i..<(i + n)])))
                i += n
            }
            try s.writer.send(.start)
        }

        var threads: [WorkerThread] = []
        for w in 0..<workerCount {
            threads.append(WorkerThread(name: "osm-recv-\(w)") { [self] in workerLoop() })
        }
        var readers: [WorkerThread] = []
        for s in streams {
            readers.append(WorkerThread(name: "osm-recv-read-\(s.index)") { [self] in readLoop(s) })
        }
        let ticker = WorkerThread(name: "osm-progress") { [self] in tickLoop() }

        // Wait until every chunk is resolved (or something failed).
        cond.lock()
        waitWatchingForStall { tally.isComplete }
        cond.unlock()
        queue.close()
        for t in threads { t.join() }

        if failed == nil && config.mode != .verify {
            do { try target.syncData() } catch { fail(describeTarget(error)) }
        }
        if failed == nil {
            for s in streams {
                do { try s.writer.send(.finish) } catch { fail(DataPlaneError("source \(config.source.description): the connection was lost before the summary", kind: .connect)) }
            }
            cond.lock()
            waitWatchingForStall { !summaries.contains(where: { $0 == nil }) }
            cond.unlock()
        }
        for r in readers { r.join() }
        cond.lock()
        tally.result.seconds = monotonicSeconds() - startTime
        cond.broadcast()
        cond.unlock()
        ticker.join()

        if let e = failed {
            try? journal?.finish(with: currentMap())
            throw e
        }
        let outcome = try conclude()
        return outcome
    }

    /// Waits (with `cond` held) until `done()` or a failure. Fails the session when, for
    /// `config.stallTimeout` seconds, no byte arrives on any stream and no chunk is resolved.
    private func waitWatchingForStall(until done: () -> Bool) {
        let limit = config.stallTimeout
        guard limit > 0 else {
            while failure == nil && !done() { cond.wait() }
            return
        }
        let step = min(1.0, limit / 4)
        var mark = activityMark()
        var lastActivity = monotonicSeconds()
        while failure == nil && !done() {
            _ = cond.wait(until: Date(timeIntervalSinceNow: step))
            let now = monotonicSeconds()
            let m = activityMark()
            if m != mark {
                mark = m
                lastActivity = now
            } else if now - lastActivity >= limit {
                cond.unlock()
                fail(DataPlaneError("source \(config.source.description): stalled: nothing arrived for \(formatSeconds(limit)) s (--stall-timeout); giving up", kind: .connect))
                cond.lock()
            }
        }
    }

    /// Grows whenever a byte arrives from a sender or a chunk is resolved (called with `cond` held).
    private func activityMark() -> UInt64 {
        streams.reduce(tally.progress.bytesDone) { $0 &+ $1.reader.totalRead }
    }

    /// Compares the digests and builds the result.
    private func conclude() throws -> CopyResult {
        cond.lock()
        var r = tally.result
        let digests = tally.targetDigests
        let sourceChunks = tally.sourceDigests
        let sums = summaries.map { $0! }
        let p = tally.progress
        cond.unlock()
        r.source = config.source.description
        r.destination = config.target
        r.mode = config.mode
        r.chunkSize = geometry.chunkSize
        r.streams = streams.count
        r.bytesCopied = p.bytesCopied
        r.bytesZero = p.bytesZero
        r.bytesReused = p.bytesReused
        r.bytesOnWire = wireBytes()
        // The last event carries the average rate of the whole copy.
        var last = snapshot()
        if last.seconds > 0 { last.rate = Double(last.bytesDone) / last.seconds }
        progressHandler(last)

        if config.mode == .unverified {
            r.digest = ""
            r.verified = false
            try? journal?.finish(with: currentMap())
            return r
        }
        // Each stream's digest against the destination's chunks; in verify mode also against the
        // chunk digests the source sent (they must be its own).
        var allMatch = true
        for s in streams {
            let chunks = geometry.chunks(ofStream: s.index, streams: streams.count)
            if sums[s.index].streamDigest != DigestScheme.combine(chunks.map { digests[$0] }).hex { allMatch = false }
            if config.mode == .verify, sums[s.index].streamDigest != DigestScheme.combine(chunks.map { sourceChunks[$0] }).hex {
                throw DataPlaneError("source \(config.source.description): protocol error: the stream digest does not match the chunk digests sent", kind: .protocolError)
            }
        }
        r.digest = scheme.volumeDigest(digests).hex
        if config.mode == .verify {
            // Both volume digests, and `digest` only when they are the same: a consumer must never
            // read the destination's digest of a differing volume as the copy's.
            let destination = r.digest
            let source = scheme.volumeDigest(sourceChunks).hex
            r.sourceDigest = source
            r.destinationDigest = destination
            let sameSize = target.kind == .blockDevice || target.size == geometry.size
            if !sameSize { log("destination \(config.target) is \(target.size) bytes, the source \(geometry.size)") }
            r.verified = allMatch && r.chunksDiffering == 0 && sameSize && source == destination
            if !r.verified, r.chunksDiffering == 0 { r.chunksDiffering = max(r.chunksDiffering, 1) }
            if !r.verified { r.digest = "" }
            return r
        }
        guard allMatch else {
            try? journal?.finish(with: currentMap())
            throw DataPlaneError("digest mismatch: the destination does not match the source (source \(sums.map(\.streamDigest).joined(separator: ",")), destination \(r.digest))", kind: .verification)
        }
        r.verified = true
        var finalMap = currentMap()
        finalMap.apply(.complete(ChunkDigest(hex: r.digest)!))
        do { try journal?.finish(with: finalMap) } catch { log("warning: cannot save the chunk map: \(error)") }
        return r
    }

    private func currentMap() -> ChunkMap {
        cond.lock()
        defer { cond.unlock() }
        return tally.map
    }

    /// One entry of the map; workers write it (under `cond`) while readers and other workers read it.
    func mapEntry(_ index: Int) -> ChunkMap.Entry {
        cond.lock()
        defer { cond.unlock() }
        return tally.map[index]
    }

    private func wireBytes() -> UInt64 {
        streams.reduce(0) { $0 + $1.reader.totalRead + $1.writer.written }
    }

    private func snapshot() -> CopyProgress {
        cond.lock()
        var p = tally.progress
        cond.unlock()
        p.bytesOnWire = wireBytes()
        p.seconds = monotonicSeconds() - startTime
        return p
    }

    private func tickLoop() {
        var lastDone: UInt64 = 0
        var lastTime = monotonicSeconds()
        while true {
            cond.lock()
            let deadline = Date(timeIntervalSinceNow: 0.25)
            while tally.result.seconds == 0 && failure == nil {
                if !cond.wait(until: deadline) { break }
            }
            let finished = tally.result.seconds != 0 || failure != nil
            cond.unlock()
            if finished { return }
            var p = snapshot()
            let now = monotonicSeconds()
            let dt = now - lastTime
            if dt > 0 { p.rate = Double(p.bytesDone &- lastDone) / dt }
            lastDone = p.bytesDone
            lastTime = now
            progressHandler(p)
        }
    }

    private func shutdownStreams() {
        cond.lock()
        let peers = streams
        let bad = failure != nil
        cond.unlock()
        for s in peers {
            s.process.closeStdin()
            if bad { s.process.signal(SIGTERM) }
        }
        for s in peers { _ = s.process.wait(timeout: 10) }
    }
}
