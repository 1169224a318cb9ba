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

/// One SSH session (or local pipe pair) to a sender.
final class PeerStream: @unchecked Sendable {
    let index: Int
    let process: ChildProcess
    let reader: FrameReader
    let writer: FrameWriter
    var hello = Hello(role: "send")

    init(index: Int, process: ChildProcess) {
        self.index = index
        self.process = process
        reader = FrameReader(fd: process.stdoutFD)
        writer = FrameWriter(fd: process.stdinFD)
    }
}

/// The receiving side of one volume copy: drives the senders, verifies, writes, keeps the map.
final class ReceiveSession: @unchecked Sendable {
    let config: ReceiverConfig
    private let progressHandler: @Sendable (CopyProgress) -> Void
    private let log: @Sendable (String) -> Void

    private let cond = NSCondition()
    private var failure: DataPlaneError?
    private var cancelled = false
    private var streams: [PeerStream] = []

    // Set up once the source is known.
    private var target: VolumeHandle!
    private var geometry: VolumeGeometry!
    private var scheme: DigestScheme!
    private var journal: StateJournal?
    private var targetKnownZero = false
    private var zeroFrom: UInt64 = .max

    // Set up once the source is known; guarded by `cond` once the reader and worker threads run
    // (read the map with `mapEntry`/`currentMap`).
    private var tally: ReceivePlan.Tally!
    // Guarded by `cond`.
    private var attempts: [UInt8] = []
    private var summaries: [StreamSummary?] = []

    private var nbdTunnel: NBDTunnel?
    /// The source host the sender agent runs on over ssh; nil when it runs here (a local source,
    /// or the NBD fallback, where the local agent reads through the tunnel).
    private var senderEndpoint: SSHEndpoint? { nbdTunnel == nil ? config.source.endpoint : nil }
    private let queue = BlockingQueue<Job>()
    private var pool: BufferPool!
    private let startTime = monotonicSeconds()
    private lazy var zeroScratch: AlignedBuffer = {
        let b = AlignedBuffer(capacity: 1 << 20)
        memset(b.pointer, 0, b.capacity)
        return b
    }()

    private enum Job {
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

    private func fail(_ e: DataPlaneError) {
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

    private var failed: DataPlaneError? {
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
    private func mapEntry(_ index: Int) -> ChunkMap.Entry {
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

    // MARK: target

    private func describeTarget(_ error: Error) -> DataPlaneError {
        if let e = error as? SystemCallError {
            return DataPlaneError.from(errno: e.errno, "destination \(config.target): \(errnoString(e.errno))")
        }
        if let e = error as? DataPlaneError { return e }
        return DataPlaneError("destination \(config.target): \(error)")
    }

    /// Checks the destination before anything is written (or any connection made). Returns the open
    /// target when it exists; nil when a new file will be created.
    private func preflightTarget() throws -> VolumeHandle? {
        let path = config.target
        var st = stat()
        if stat(path, &st) == 0 {
            let fmt = st.st_mode & S_IFMT
            guard fmt == S_IFREG || fmt == S_IFBLK else {
                throw DataPlaneError("destination \(path): not a regular file or block device", kind: .usage)
            }
            let handle: VolumeHandle
            do {
                handle = try VolumeHandle.open(path, writable: config.mode != .verify)
            } catch {
                throw describeTarget(error)
            }
            if config.mode != .verify && !handle.lockExclusive() {
                throw DataPlaneError("destination \(path) is in use by another copy", kind: .other)
            }
            return handle
        }
        let e = errno
        if e != ENOENT || config.mode == .verify || path.hasPrefix("/dev/") {
            throw DataPlaneError.from(errno: e, "destination \(path): \(errnoString(e))")
        }
        let parent = (path as NSString).deletingLastPathComponent
        let dir = parent.isEmpty ? "." : parent
        if access(dir, W_OK) != 0 {
            let e2 = errno
            throw DataPlaneError.from(errno: e2, "destination \(path): \(errnoString(e2))")
        }
        return nil
    }

    private func prepareTarget(existing: VolumeHandle?, sourceSize: UInt64) throws {
        if let t = existing {
            switch t.kind {
            case .blockDevice:
                if t.size < sourceSize {
                    throw DataPlaneError("destination \(config.target) is smaller than the source (\(t.size) < \(sourceSize) bytes)", kind: .tooSmall)
                }
            case .file:
                if config.mode == .verify {
                    if t.size < sourceSize {
                        throw DataPlaneError("destination \(config.target) is smaller than the source (\(t.size) < \(sourceSize) bytes)", kind: .tooSmall)
                    }
                } else if t.size != sourceSize {
                    let old = t.size
                    do { try t.truncate(to: sourceSize) } catch { throw describeTarget(error) }
                    if old < sourceSize { zeroFrom = old }
                }
            }
            target = t
        } else {
            do {
                target = try VolumeHandle.create(config.target)
                _ = target.lockExclusive()
                try target.truncate(to: sourceSize)
            } catch {
                throw describeTarget(error)
            }
            targetKnownZero = true
        }
        if config.targetIsZero { targetKnownZero = true }
        if config.mode != .verify { target.enableDirectIO(writable: true) }
    }

    private func targetIdentity() -> ChunkDigest {
        var real = config.target
        if let p = realpath(config.target, nil) {
            real = String(validatingCString: p) ?? real
            free(p)
        }
        let id = target.kind == .file ? "file:\(real):\(target.device):\(target.inode)" : "block:\(real):\(target.device)"
        return Array(id.utf8).withUnsafeBytes { DigestScheme.leaf($0) }
    }

    private func knownZero(_ offset: UInt64, _ length: Int) -> Bool {
        targetKnownZero || offset >= zeroFrom
    }

    // MARK: streams

    private func senderArguments() -> [String] {
        var args = ["agent", "send", nbdTunnel?.uri ?? config.source.path]
        if let k = config.hooks.senderKillAfterBytes { args += ["--test-kill-after-bytes", String(k)] }
        if let d = config.hooks.senderDelayMilliseconds { args += ["--test-delay-ms", String(d)] }
        return args
    }

    private func launch(stream index: Int) throws -> PeerStream {
        let label = config.source.description
        var deployed = false
        while true {
            let argv: [String]
            var buildID: String? = nil
            if let ep = senderEndpoint {
                if ep.remoteCommand == nil { buildID = try RemoteAgent.buildID(executable: config.agentExecutable) }
                argv = ep.sshArguments(compress: config.compress) + [RemoteAgent.command(ep, args: senderArguments(), buildID: buildID)]
            } else {
                argv = [config.agentExecutable] + senderArguments()
            }
            let child = try ChildProcess(argv: argv, stdin: .pipe, stdout: .pipe, stderr: .pipe)
            let peer = PeerStream(index: index, process: child)
            cond.lock()
            let stop = failure
            cond.unlock()
            if let stop {
                child.signal(SIGTERM)
                throw stop
            }
            child.collectStderr()
            var hello = Hello(role: "receive")
            hello.mode = config.mode
            hello.chunkSize = config.chunkSize
            hello.blockSize = VolumeGeometry.blockSize
            hello.stream = index
            hello.streams = max(config.streams, 1)
            hello.workers = config.workers
            try? peer.writer.send(.hello(hello))
            let first: Message?
            do {
                first = try peer.reader.message(maxLength: 1 << 20)
            } catch let e as ProtocolError {
                child.signal(SIGTERM)
                throw DataPlaneError("source \(label): \(e.message)", kind: .protocolError)
            } catch {
                first = nil
            }
            switch first {
            case .hello(let h)?:
                guard h.protocolVersion == Hello.protocolVersion else {
                    child.signal(SIGTERM)
                    throw DataPlaneError("source \(label): protocol version mismatch (agent \(h.agentVersion) speaks \(h.protocolVersion), we speak \(Hello.protocolVersion))", kind: .protocolError)
                }
                peer.hello = h
                return peer
            case .error(let e)?:
                child.closeStdin()
                _ = child.wait(timeout: 10)
                throw DataPlaneError("source \(label): \(e.message)", kind: e.kind)
            default:
                child.closeStdin()
                let status = child.wait(timeout: 30)
                if status == .exited(RemoteAgent.missingStatus), let ep = config.source.endpoint, ep.remoteCommand == nil, !deployed {
                    try RemoteAgent.upload(ep, executable: config.agentExecutable, buildID: buildID!)
                    deployed = true
                    continue
                }
                throw diagnoseStartFailure(child: child, status: status, endpoint: config.source.endpoint, label: label)
            }
        }
    }

    // MARK: reading

    private func readLoop(_ s: PeerStream) {
        let streamCount = streams.count
        do {
            while true {
                guard let h = try s.reader.header(maxLength: geometry.chunkSize + (1 << 20)) else {
                    cond.lock()
                    let done = summaries[s.index] != nil
                    cond.unlock()
                    if !done { lost(s) }
                    return
                }
                if h.type == .data {
                    try readData(s, header: h, streamCount: streamCount)
                    continue
                }
                let payload = try s.reader.payload(h.length)
                let m = try payload.withUnsafeBytes { try Message.decode(type: h.type, payload: $0) }
                switch m {
                case .zeroRange(let first, let count):
                    try checkRun(first, count, s.index, streamCount)
                    var i = first
                    var left = count
                    while left > 0 {  // split big ranges so several workers share them
                        let n = min(left, 256)
                        queue.push(.zero(first: i, count: n))
                        i += n * streamCount
                        left -= n
                    }
                case .match(let first, let count):
                    try checkRun(first, count, s.index, streamCount)
                    guard config.mode == .copy else { throw ProtocolError("unexpected match") }
                    var i = first
                    for _ in 0..<count {
                        guard case .data(let claimed) = mapEntry(i) else { throw ProtocolError("match for chunk \(i), which was not in the have-list") }
                        queue.push(.verify(stream: s.index, index: i, expected: claimed, reuse: true))
                        i += streamCount
                    }
                case .digest(let index, let digest):
                    try checkRun(index, 1, s.index, streamCount)
                    queue.push(.verify(stream: s.index, index: index, expected: digest, reuse: false))
                case .passDone:
                    break
                case .summary(let sum):
                    cond.lock()
                    summaries[s.index] = sum
                    cond.broadcast()
                    cond.unlock()
                case .error(let e):
                    fail(DataPlaneError("source \(config.source.description): \(e.message)", kind: e.kind))
                    return
                default:
                    throw ProtocolError("unexpected frame \(h.type)")
                }
            }
        } catch is ConnectionLost {
            lost(s)
        } catch let e as DataPlaneError {
            fail(e)
        } catch let e as ProtocolError {
            fail(DataPlaneError("source \(config.source.description): \(e.description)", kind: .protocolError))
        } catch {
            if failed == nil { fail(DataPlaneError("source \(config.source.description): \(error)", kind: .connect)) }
        }
    }

    /// A stream ended before its summary (at a frame boundary or inside a frame): ssh or the sender went
    /// away. One line naming the source, with the last line ssh (or the agent) wrote on stderr.
    private func lost(_ s: PeerStream) {
        guard failed == nil else { return }  // we stopped it ourselves
        let status = s.process.wait(timeout: 5)
        let program = senderEndpoint != nil ? "ssh" : "the agent"
        let why = s.process.lastStderrLine().map { ": \($0)" } ?? " (\(program) \(status))"
        fail(DataPlaneError("source \(config.source.description): the connection was lost during the transfer\(why)", kind: .connect))
    }

    private func checkRun(_ first: Int, _ count: Int, _ stream: Int, _ streamCount: Int) throws {
        guard first >= 0, count >= 0, first % streamCount == stream,
              first + (count - 1) * streamCount < geometry.chunkCount || count == 0 else {
            throw ProtocolError("chunk range out of bounds")
        }
    }

    private func readData(_ s: PeerStream, header h: FrameHeader, streamCount: Int) throws {
        let fixed = try s.reader.payload(DataFrameHeader.fixedSize)
        var (dh, n) = try fixed.withUnsafeBytes { try DataFrameHeader.decodeFixed($0) }
        let table = try s.reader.payload(n * DataFrameHeader.segmentSize)
        dh.segments = try table.withUnsafeBytes { try DataFrameHeader.decodeTable($0, count: n) }
        try checkRun(dh.index, 1, s.index, streamCount)
        let length = geometry.chunkLength(dh.index)
        let blocks = VolumeGeometry.blockCount(chunkLength: length)
        guard let mask = ExtentPlanner.zeroMask(segments: dh.segments, blockCount: blocks) else {
            throw ProtocolError("bad segment table for chunk \(dh.index)")
        }
        guard h.length == dh.tableSize + dh.dataBytes(chunkLength: length) else {
            throw ProtocolError("data frame length mismatch for chunk \(dh.index)")
        }
        let bufferPool: BufferPool = pool
        guard let buffer = bufferPool.take() else { throw DataPlaneError("cancelled") }
        do {
            for seg in dh.segments {
                let r = seg.byteRange(chunkLength: length)
                if seg.isData {
                    guard try s.reader.read(into: buffer.pointer + r.lowerBound, count: r.count) else { throw ConnectionLost() }
                } else {
                    memset(buffer.pointer + r.lowerBound, 0, r.count)
                }
            }
        } catch {
            bufferPool.give(buffer)
            throw error
        }
        if let c = config.hooks.corruptChunk, c == dh.index, let firstData = dh.segments.first(where: \.isData) {
            cond.lock()
            let firstTime = attempts[dh.index] == 0
            cond.unlock()
            if firstTime || config.hooks.corruptAlways {
                let at = firstData.byteRange(chunkLength: length).lowerBound + 17
                buffer.pointer.storeBytes(of: buffer.pointer.load(fromByteOffset: at, as: UInt8.self) ^ 0x5A, toByteOffset: at, as: UInt8.self)
            }
        }
        queue.push(.data(stream: s.index, header: dh, buffer: buffer, zeroMask: mask))
    }

    // MARK: working

    private typealias Resolution = ReceivePlan.Resolution

    /// `source`: verify mode, the source's digest of the chunk.
    private func resolve(_ index: Int, digest: ChunkDigest, how: Resolution, entry: ChunkMap.Entry?, source: ChunkDigest? = nil) {
        cond.lock()
        defer { cond.unlock() }
        guard tally.resolve(index, digest: digest, how: how, entry: entry, source: source) else {
            if failure == nil { failure = DataPlaneError("protocol error: chunk \(index) resolved twice", kind: .protocolError) }
            cond.broadcast()
            return
        }
        if tally.isComplete { cond.broadcast() }
    }

    private func workerLoop() {
        let scratch = AlignedBuffer(capacity: geometry.chunkSize)
        while let job = queue.pop() {
            if failed != nil {
                if case .data(_, _, let b, _) = job { pool.give(b) }
                continue
            }
            do {
                switch job {
                case .data(let s, let h, let b, let mask):
                    defer { pool.give(b) }
                    try landData(stream: s, header: h, buffer: b, zeroMask: mask)
                case .zero(let first, let count):
                    try landZeros(first: first, count: count, scratch: scratch)
                case .verify(let s, let i, let expected, let reuse):
                    try verifyTarget(stream: s, index: i, expected: expected, reuse: reuse, scratch: scratch)
                }
            } catch let e as DataPlaneError {
                fail(e)
            } catch {
                fail(describeTarget(error))
            }
        }
    }

    private func landData(stream: Int, header h: DataFrameHeader, buffer: AlignedBuffer, zeroMask: BlockMask) throws {
        let i = h.index
        let length = geometry.chunkLength(i)
        let bytes = UnsafeRawBufferPointer(start: buffer.pointer, count: length)
        var digest = ChunkDigest.zero
        if config.mode != .unverified {
            digest = zeroMask.setCount == zeroMask.count ? scheme.zeroChunkDigest(i) : scheme.chunkDigest(index: i, buffer: bytes, zeroBlocks: zeroMask)
            cond.lock()
            let failures = Int(attempts[i])
            cond.unlock()
            switch ReceivePlan.onData(sent: h.digest, computed: digest, failedAttempts: failures) {
            case .write: break
            case .rerequest:
                cond.lock()
                attempts[i] += 1
                tally.result.chunksRetried += 1
                cond.unlock()
                log("chunk \(i) failed verification on arrival; requesting it again")
                try streams[stream].writer.send(.request([i]))
                return
            case .fail:
                throw DataPlaneError("chunk \(i) (offset \(geometry.chunkOffset(i))) failed verification \(ReceivePlan.maxAttempts) times: the data arriving does not match the source's digest", kind: .verification)
            }
        }
        let base = geometry.chunkOffset(i)
        var dataBytes = 0
        var zeroBytes = 0
        for seg in h.segments {
            let r = seg.byteRange(chunkLength: length)
            let off = base + UInt64(r.lowerBound)
            if seg.isData {
                try target.write(from: buffer.pointer + r.lowerBound, count: r.count, at: off)
                dataBytes += r.count
            } else {
                if !knownZero(off, r.count) {
                    try target.zeroRange(offset: off, length: UInt64(r.count), scratch: buffer.pointer + r.lowerBound, scratchCount: r.count)
                }
                zeroBytes += r.count
            }
        }
        let allZero = dataBytes == 0
        let entry: ChunkMap.Entry? = config.mode == .unverified ? .unknown : (allZero ? .zero : .data(digest))
        resolve(i, digest: digest, how: .copied(data: dataBytes, zero: zeroBytes), entry: entry)
        if let e = entry, e != .unknown {
            journal?.append([allZero ? .zero(first: i, count: 1, stride: 1) : .data(index: i, digest: digest)])
        }
        if let limit = config.hooks.killAfterBytes {
            cond.lock()
            let copied = tally.progress.bytesCopied
            cond.unlock()
            if copied >= limit { kill(getpid(), SIGKILL) }
        }
    }

    private func landZeros(first: Int, count: Int, scratch: AlignedBuffer) throws {
        let stride = streams.count
        var pendingStart: UInt64? = nil
        var pendingEnd: UInt64 = 0
        var pendingChunks: [Int] = []
        func flush() throws {
            if let s = pendingStart {
                try target.zeroRange(offset: s, length: pendingEnd - s, scratch: zeroScratch.pointer, scratchCount: zeroScratch.capacity)
                for c in pendingChunks {
                    resolve(c, digest: scheme.zeroChunkDigest(c), how: .zero(geometry.chunkLength(c)), entry: .zero)
                }
            }
            pendingStart = nil
            pendingChunks = []
        }
        var i = first
        for _ in 0..<count {
            let off = geometry.chunkOffset(i)
            let len = geometry.chunkLength(i)
            if config.mode == .verify {
                let equal = try targetChunkIsZero(i, scratch: scratch)
                let d = equal ? scheme.zeroChunkDigest(i) : try targetChunkDigest(i, scratch: scratch)
                resolve(i, digest: d, how: .verified(equal: equal), entry: nil, source: scheme.zeroChunkDigest(i))
                i += stride
                continue
            }
            var action = ReceivePlan.onZero(entry: mapEntry(i), targetKnownZero: knownZero(off, len))
            if action == .verifyZero {
                action = try targetChunkIsZero(i, scratch: scratch) ? .skip : .zero
            }
            switch action {
            case .skip, .verifyZero:
                resolve(i, digest: scheme.zeroChunkDigest(i), how: .zero(len), entry: .zero)
            case .zero:
                if let _ = pendingStart, pendingEnd == off {
                    pendingEnd = off + UInt64(len)
                } else {
                    try flush()
                    pendingStart = off
                    pendingEnd = off + UInt64(len)
                }
                pendingChunks.append(i)
            }
            i += stride
        }
        try flush()
        if config.mode != .verify {
            journal?.append([.zero(first: first, count: count, stride: stride)])
        }
    }

    private func targetChunkIsZero(_ i: Int, scratch: AlignedBuffer) throws -> Bool {
        let off = geometry.chunkOffset(i)
        let len = geometry.chunkLength(i)
        if target.isHole(offset: off, length: len) { return true }
        try target.read(into: scratch.pointer, count: len, at: off)
        return isAllZero(UnsafeRawBufferPointer(start: scratch.pointer, count: len))
    }

    private func targetChunkDigest(_ i: Int, scratch: AlignedBuffer) throws -> ChunkDigest {
        let len = geometry.chunkLength(i)
        try target.read(into: scratch.pointer, count: len, at: geometry.chunkOffset(i))
        let bytes = UnsafeRawBufferPointer(start: scratch.pointer, count: len)
        let mask = ExtentPlanner.zeroBlocks(of: bytes)
        return mask.setCount == mask.count ? scheme.zeroChunkDigest(i) : scheme.chunkDigest(index: i, buffer: bytes, zeroBlocks: mask)
    }

    private func verifyTarget(stream: Int, index i: Int, expected: ChunkDigest, reuse: Bool, scratch: AlignedBuffer) throws {
        let actual = try targetChunkDigest(i, scratch: scratch)
        if !reuse {
            resolve(i, digest: actual, how: .verified(equal: actual == expected), entry: nil, source: expected)
            return
        }
        switch ReceivePlan.onRehash(claimed: expected, actual: actual) {
        case .reuse:
            resolve(i, digest: actual, how: .reused(geometry.chunkLength(i)), entry: .data(actual))
        case .repair:
            cond.lock()
            tally.repair(i)
            cond.unlock()
            log("chunk \(i) no longer holds what the chunk map says (modified outside the copy); fetching it again")
            try streams[stream].writer.send(.request([i]))
        }
    }
}

/// Turns "the agent never said hello" into one clear line.
func diagnoseStartFailure(child: ChildProcess, status: ExitStatus, endpoint: SSHEndpoint?, label: String) -> DataPlaneError {
    let line = child.lastStderrLine()
    if let ep = endpoint {
        switch status {
        case .exited(255):
            return DataPlaneError("cannot connect to \(ep.destination) over ssh: \(line ?? "ssh failed")", kind: .connect)
        case .exited(126), .exited(127):
            return DataPlaneError("cannot start the agent on \(ep.destination): \(line ?? status.description)", kind: .connect)
        case .exited(RemoteAgent.missingStatus):
            return DataPlaneError("cannot start the agent on \(ep.destination): it is missing even after copying it there", kind: .connect)
        default:
            return DataPlaneError("the agent on \(ep.destination) stopped (\(status))\(line.map { ": \($0)" } ?? "")", kind: .connect)
        }
    }
    return DataPlaneError("the local agent for \(label) stopped (\(status))\(line.map { ": \($0)" } ?? "")", kind: .other)
}
