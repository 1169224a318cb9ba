import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One SSH session (or local pipe pair) to a sender.
// @unchecked: `hello` is set once by `launch` before the stream is shared; the rest is immutable.
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

/// The receiver's side of the streams: starting the senders and reading their frames.
extension ReceiveSession {
    // MARK: streams

    private func senderArguments() -> [String] {
        var args = ["agent", "send", nbdTunnel?.uri ?? config.source.path]
        if let k = config.hooks.senderKillAfterBytes { args += ["--test-kill-after-bytes", String(k)] }
        if let d = config.hooks.senderDelayMilliseconds { args += ["--test-delay-ms", String(d)] }
        return args
    }

    func launch(stream index: Int) throws -> PeerStream {
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

    func readLoop(_ s: PeerStream) {
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
    func lost(_ s: PeerStream) {
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
