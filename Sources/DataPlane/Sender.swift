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

/// The peer's byte stream ended inside a frame: ssh, or the agent at the other end, went away in the
/// middle of the transfer. A lost connection, not a protocol violation: the receiver reports it as one
/// line naming the source, with ssh's last stderr line (`DataPlaneError.Kind.connect`).
struct ConnectionLost: Error, CustomStringConvertible {
    var description: String { "the connection closed in the middle of a frame" }
}

/// Buffered reading of frames from a stream descriptor.
final class FrameReader: @unchecked Sendable {
    let fd: Int32
    private let buffer: AlignedBuffer
    private var start = 0
    private var end = 0
    private var bytesRead: UInt64 = 0
    private let countLock = NSLock()
    var bytesReadLocked: UInt64 {
        countLock.lock()
        defer { countLock.unlock() }
        return bytesRead
    }
    private func addRead(_ n: Int) {
        countLock.lock()
        bytesRead += UInt64(n)
        countLock.unlock()
    }

    init(fd: Int32, bufferSize: Int = 256 * 1024) {
        self.fd = fd
        buffer = AlignedBuffer(capacity: bufferSize)
    }

    /// Reads exactly `count` bytes into `dest`; false on a clean EOF before any byte, `ConnectionLost`
    /// on an EOF after some.
    func read(into dest: UnsafeMutableRawPointer, count: Int) throws -> Bool {
        var done = 0
        let buffered = min(end - start, count)
        if buffered > 0 {
            dest.copyMemory(from: buffer.pointer + start, byteCount: buffered)
            start += buffered
            done = buffered
        }
        while done < count {
            let want = count - done
            if want >= buffer.capacity / 2 {
                let n = Glibc.read(fd, dest + done, want)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SystemCallError(call: "read", path: "stream", errno: errno)
                }
                if n == 0 {
                    if done == 0 { return false }
                    throw ConnectionLost()
                }
                done += n
                addRead(n)
            } else {
                let n = Glibc.read(fd, buffer.pointer, buffer.capacity)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SystemCallError(call: "read", path: "stream", errno: errno)
                }
                if n == 0 {
                    if done == 0 { return false }
                    throw ConnectionLost()
                }
                addRead(n)
                start = 0
                end = n
                let take = min(n, want)
                (dest + done).copyMemory(from: buffer.pointer, byteCount: take)
                start = take
                done += take
            }
        }
        return true
    }

    /// The next frame header, or nil at EOF.
    func header(maxLength: Int) throws -> FrameHeader? {
        var raw = [UInt8](repeating: 0, count: FrameHeader.size)
        let ok = try raw.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: FrameHeader.size) }
        if !ok { return nil }
        let h: FrameHeader
        do {
            h = try raw.withUnsafeBytes { try FrameHeader.decode($0) }
        } catch {
            throw ProtocolError("unexpected bytes from the peer: \(printable(raw))")
        }
        guard h.length <= maxLength else {
            throw ProtocolError("frame too long (\(h.length) bytes) from the peer: \(printable(raw))")
        }
        return h
    }

    /// The payload of a frame whose header was read (so an EOF here is `ConnectionLost`).
    func payload(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 {
            let ok = try out.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: count) }
            if !ok { throw ConnectionLost() }
        }
        return out
    }

    /// A whole non-data frame.
    func message(maxLength: Int) throws -> Message? {
        guard let h = try header(maxLength: maxLength) else { return nil }
        guard h.type != .data else { throw ProtocolError("unexpected data frame") }
        let p = try payload(h.length)
        return try p.withUnsafeBytes { try Message.decode(type: h.type, payload: $0) }
    }

    private func printable(_ bytes: [UInt8]) -> String {
        let s = String(decoding: bytes.map { (32..<127).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
        return "\"\(s)…\" (is the remote shell printing to stdout?)"
    }
}

/// Serialised frame writing on a stream descriptor.
final class FrameWriter: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLock()
    private(set) var bytesWritten: UInt64 = 0

    init(fd: Int32) { self.fd = fd }

    func send(_ m: Message) throws {
        let bytes = m.encode()
        try bytes.withUnsafeBytes { try send(parts: [$0]) }
    }

    func send(parts: [UnsafeRawBufferPointer]) throws {
        lock.lock()
        defer { lock.unlock() }
        try writeFully(fd, parts)
        bytesWritten += UInt64(parts.reduce(0) { $0 + $1.count })
    }

    var written: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return bytesWritten
    }

    /// Test hook: writes only the first `count` bytes of the frame in `parts`, then runs `then` (which
    /// does not return) while still holding the lock, so no other frame follows the torn one.
    func sendTruncated(parts: [UnsafeRawBufferPointer], count: Int, then: () -> Never) -> Never {
        lock.lock()
        var left = count
        var cut: [UnsafeRawBufferPointer] = []
        for p in parts where left > 0 {
            let n = min(p.count, left)
            cut.append(UnsafeRawBufferPointer(rebasing: p[0..<n]))
            left -= n
        }
        try? writeFully(fd, cut)
        then()
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
