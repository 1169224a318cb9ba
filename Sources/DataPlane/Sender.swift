import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the sender does with one chunk (pure).
public enum SenderDecision: Equatable, Sendable {
    case zero
    case match
    case data
    case digestOnly

    public static func decide(mode: CopyMode, isZero: Bool, digest: ChunkDigest?, have: ChunkDigest?, isRepair: Bool) -> SenderDecision {
        if isRepair { return .data }
        if isZero { return .zero }
        switch mode {
        case .verify: return .digestOnly
        case .unverified: return .data
        case .copy:
            if let have, let digest, have == digest { return .match }
            return .data
        }
    }
}

/// `os-migrate agent send PATH`: reads the source and answers the receiver over stdin/stdout.
public enum Sender {
    /// Runs the sender on `input`/`output`; returns the process exit status. Only the sender's fields
    /// of `hooks` (`sender…`) apply.
    public static func run(path: String, input: Int32 = 0, output: Int32 = 1, hooks: TestHooks = TestHooks()) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // sshd hands the session 64 KiB pipes; bigger ones mean fewer wake-ups per chunk.
        enlargePipe(output)
        enlargePipe(input)
        let writer = FrameWriter(fd: output)
        let reader = FrameReader(fd: input)
        do {
            let volume: SourceVolume
            do {
                if let nbd = NBDAddress.parse(path) {
                    volume = try NBDSource(nbd)
                } else {
                    let v = try VolumeHandle.open(path, writable: false)
                    v.enableDirectIO(writable: false)
                    volume = v
                }
            } catch let e as SystemCallError {
                try? writer.send(.error(DataPlaneError.from(errno: e.errno, errnoString(e.errno))))
                return 1
            } catch let e as DataPlaneError {
                try? writer.send(.error(e))
                return 1
            } catch {
                try? writer.send(.error(DataPlaneError("\(error)")))
                return 1
            }
            var hello = Hello(role: "send")
            hello.size = volume.size
            hello.kind = volume.kind
            hello.path = path
            try writer.send(.hello(hello))

            guard case .hello(let peer)? = try reader.message(maxLength: 1 << 20) else {
                throw ProtocolError("expected a hello from the receiver")
            }
            guard peer.protocolVersion == Hello.protocolVersion else {
                throw DataPlaneError("protocol version mismatch: sender \(Hello.protocolVersion), receiver \(peer.protocolVersion) (agent versions \(DataPlane.version) and \(peer.agentVersion))", kind: .protocolError)
            }
            let geometry = try VolumeGeometry(size: volume.size, chunkSize: peer.chunkSize ?? VolumeGeometry.defaultChunkSize)
            guard (peer.blockSize ?? VolumeGeometry.blockSize) == VolumeGeometry.blockSize else {
                throw ProtocolError("unsupported block size \(peer.blockSize ?? 0)")
            }
            var have: [Int: ChunkDigest] = [:]
            loop: while true {
                switch try reader.message(maxLength: 1 << 24) {
                case .have(let entries)?:
                    for e in entries { have[e.index] = e.digest }
                case .start?: break loop
                case .error(let m)?: throw m
                case nil: return 1  // receiver went away
                default: throw ProtocolError("unexpected frame before start")
                }
            }
            let session = SendSession(volume: volume, geometry: geometry, mode: peer.mode ?? .copy,
                                      stream: peer.stream ?? 0, streams: max(peer.streams ?? 1, 1),
                                      workers: peer.workers ?? defaultWorkerCount(),
                                      have: have, reader: reader, writer: writer, hooks: hooks)
            try session.run()
            return 0
        } catch let e as DataPlaneError {
            try? writer.send(.error(e))
            return 1
        } catch let e as SystemCallError {
            try? writer.send(.error(DataPlaneError.from(errno: e.errno, e.description)))
            return 1
        } catch {
            try? writer.send(.error(DataPlaneError("\(error)")))
            return 1
        }
    }
}

// @unchecked: the mutable state is guarded by `cond` once the worker threads run (set up before).
final class SendSession: @unchecked Sendable {
    let volume: SourceVolume
    let geometry: VolumeGeometry
    let scheme: DigestScheme
    let mode: CopyMode
    let stream: Int
    let streams: Int
    let workerCount: Int
    let have: [Int: ChunkDigest]
    let reader: FrameReader
    let writer: FrameWriter
    let hooks: TestHooks

    private let cond = NSCondition()
    private var passChunks: [Int] = []
    private var passNext = 0
    private var repairs: [Int] = []
    private var active = 0
    private var passDoneSent = false
    private var finishReceived = false
    private var failure: Error?
    private var digests: [ChunkDigest]
    private var summary = StreamSummary(streamDigest: "")
    /// Data extents of the source (files), nil when unknown (block devices).
    private var extents: [Extent]?

    init(volume: SourceVolume, geometry: VolumeGeometry, mode: CopyMode, stream: Int, streams: Int, workers: Int,
         have: [Int: ChunkDigest], reader: FrameReader, writer: FrameWriter, hooks: TestHooks = TestHooks()) {
        self.volume = volume
        self.geometry = geometry
        scheme = DigestScheme(geometry: geometry)
        self.mode = mode
        self.stream = stream
        self.streams = streams
        workerCount = max(workers, 1)
        self.have = have
        self.reader = reader
        self.writer = writer
        self.hooks = hooks
        digests = Array(repeating: .zero, count: geometry.chunkCount)
    }

    func run() throws {
        volume.adviseSequential()
        let subset = geometry.chunks(ofStream: stream, streams: streams)
        extents = volume.dataExtents()
        let hasData = ExtentPlanner.chunksWithData(extents: extents, geometry: geometry)
        // Holes: known zeros, sent as ranges without reading.
        for run in ExtentPlanner.runs(in: subset, where: { !hasData[$0] }) {
            try writer.send(.zeroRange(first: run.first, count: run.count))
            var i = run.first
            for _ in 0..<run.count {
                digests[i] = scheme.zeroChunkDigest(i)
                i += streams
            }
            summary.chunksZero += run.count
        }
        passChunks = subset.filter { hasData[$0] }

        let control = WorkerThread(name: "osm-send-control") { [self] in controlLoop() }
        var workers: [WorkerThread] = []
        for w in 0..<workerCount {
            workers.append(WorkerThread(name: "osm-send-\(w)") { [self] in workerLoop() })
        }
        for w in workers { w.join() }
        cond.lock()
        let failed = failure
        cond.unlock()
        if let failed {
            // The control thread may be blocked reading; the process exits right after.
            throw failed
        }
        if mode != .unverified {
            summary.streamDigest = DigestScheme.combine(subset.map { digests[$0] }).hex
        }
        summary.bytesSent = writer.written
        try writer.send(.summary(summary))
        _ = control
    }

    private func fail(_ e: Error) {
        cond.lock()
        if failure == nil { failure = e }
        cond.broadcast()
        cond.unlock()
    }

    /// Reads requests and the final `finish` from the receiver.
    private func controlLoop() {
        do {
            while true {
                guard let m = try reader.message(maxLength: 1 << 24) else {
                    fail(DataPlaneError("the receiver closed the connection", kind: .connect))
                    return
                }
                switch m {
                case .request(let indices):
                    cond.lock()
                    for i in indices where i >= 0 && i < geometry.chunkCount && i % streams == stream {
                        repairs.append(i)
                    }
                    cond.broadcast()
                    cond.unlock()
                case .finish:
                    cond.lock()
                    finishReceived = true
                    cond.broadcast()
                    cond.unlock()
                    return
                case .error(let e):
                    fail(e)
                    return
                default:
                    fail(ProtocolError("unexpected frame from the receiver"))
                    return
                }
            }
        } catch {
            fail(error)
        }
    }

    private enum Job { case pass(Int), repair(Int) }

    private func nextJob() -> Job? {
        cond.lock()
        defer { cond.unlock() }
        while true {
            if failure != nil { return nil }
            if !repairs.isEmpty {
                active += 1
                return .repair(repairs.removeFirst())
            }
            if passNext < passChunks.count {
                let i = passChunks[passNext]
                passNext += 1
                active += 1
                return .pass(i)
            }
            if active == 0 && !passDoneSent {
                passDoneSent = true
                cond.unlock()
                do { try writer.send(.passDone) } catch { cond.lock(); failure = failure ?? error; cond.broadcast(); return nil }
                cond.lock()
                continue
            }
            if finishReceived && active == 0 && repairs.isEmpty { return nil }
            cond.wait()
        }
    }

    private func workerLoop() {
        let buffer = AlignedBuffer(capacity: geometry.chunkSize)
        while let job = nextJob() {
            do {
                switch job {
                case .pass(let i): try process(i, repair: false, buffer: buffer)
                case .repair(let i): try process(i, repair: true, buffer: buffer)
                }
            } catch {
                fail(error)
            }
            cond.lock()
            active -= 1
            cond.broadcast()
            cond.unlock()
        }
    }

    /// Test hook: waits `ms` milliseconds, or until the session fails (the receiver went away).
    private func delayForTest(_ ms: UInt64) {
        let until = Date(timeIntervalSinceNow: Double(ms) / 1000)
        cond.lock()
        while failure == nil && cond.wait(until: until) {}
        cond.unlock()
    }

    private func process(_ index: Int, repair: Bool, buffer: AlignedBuffer) throws {
        if let ms = hooks.senderDelayMilliseconds, !repair { delayForTest(ms) }
        let length = geometry.chunkLength(index)
        let base = geometry.chunkOffset(index)
        // Read only the parts that may hold data; holes inside the chunk are zeros by construction.
        let ranges = ExtentPlanner.dataRanges(inChunkAt: base, length: length, extents: extents)
        var pos = 0
        for r in ranges {
            if r.lowerBound > pos { memset(buffer.pointer + pos, 0, r.lowerBound - pos) }
            try volume.read(into: buffer.pointer + r.lowerBound, count: r.count, at: base + UInt64(r.lowerBound))
            pos = r.upperBound
        }
        if pos < length { memset(buffer.pointer + pos, 0, length - pos) }
        let bytes = UnsafeRawBufferPointer(start: buffer.pointer, count: length)
        let zeroMask = ExtentPlanner.zeroBlocks(of: bytes, dataRanges: extents == nil ? nil : ranges)
        let allZero = zeroMask.setCount == zeroMask.count
        var digest: ChunkDigest? = nil
        if mode != .unverified {
            digest = allZero ? scheme.zeroChunkDigest(index) : scheme.chunkDigest(index: index, buffer: bytes, zeroBlocks: zeroMask)
        }
        let decision = SenderDecision.decide(mode: mode, isZero: allZero, digest: digest, have: have[index], isRepair: repair)
        switch decision {
        case .zero:
            try writer.send(.zeroRange(first: index, count: 1))
        case .match:
            try writer.send(.match(first: index, count: 1))
        case .digestOnly:
            try writer.send(.digest(index: index, digest: digest!))
        case .data:
            let header = DataFrameHeader(index: index, digest: digest ?? .zero, segments: ExtentPlanner.segments(zeroBlocks: zeroMask))
            let prefix = header.encodePrefix(chunkLength: length)
            try prefix.withUnsafeBytes { p in
                var parts = [p]
                for s in header.segments where s.isData {
                    let r = s.byteRange(chunkLength: length)
                    parts.append(UnsafeRawBufferPointer(rebasing: bytes[r]))
                }
                if let limit = hooks.senderKillAfterBytes, writer.written >= limit {
                    let frame = parts.reduce(0) { $0 + $1.count }
                    writer.sendTruncated(parts: parts, count: frame / 2) {
                        let line = "os-migrate agent: test hook: killed in the middle of chunk \(index) after \(limit) bytes\n"
                        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
                        kill(getpid(), SIGKILL)
                        fatalError("SIGKILL")
                    }
                }
                try writer.send(parts: parts)
            }
        }
        cond.lock()
        digests[index] = digest ?? .zero
        summary.bytesRead += UInt64(length)
        switch decision {
        case .zero: summary.chunksZero += 1
        case .match: summary.chunksMatched += 1
        case .data, .digestOnly:
            if repair { summary.chunksResent += 1 } else { summary.chunksData += 1 }
        }
        cond.unlock()
    }
}
