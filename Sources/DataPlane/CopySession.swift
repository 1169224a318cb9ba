import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// JSON-lines events of `agent receive --json-events` and `copy --json`:
/// `{"event":"progress",…CopyProgress}`, `{"event":"result",…CopyResult}`,
/// `{"event":"error","kind":…,"message":…}`, `{"event":"log","message":…}`.
public enum AgentEvent {
    public static func line<T: Encodable>(_ event: String, _ value: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? enc.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        if body == "{}" { return "{\"event\":\"\(event)\"}" }
        return "{\"event\":\"\(event)\"," + body.dropFirst()
    }

    public static func log(_ message: String) -> String {
        line("log", ["message": message])
    }

    public enum Parsed {
        case progress(CopyProgress)
        case result(CopyResult)
        case error(DataPlaneError)
        case log(String)
    }

    public static func parse(_ line: String) -> Parsed? {
        let data = Data(line.utf8)
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let event = obj["event"] as? String else { return nil }
        let dec = JSONDecoder()
        switch event {
        case "progress": return (try? dec.decode(CopyProgress.self, from: data)).map { .progress($0) }
        case "result": return (try? dec.decode(CopyResult.self, from: data)).map { .result($0) }
        case "error": return (try? dec.decode(DataPlaneError.self, from: data)).map { .error($0) }
        case "log": return .log(obj["message"] as? String ?? "")
        default: return nil
        }
    }
}

/// Log lines of a session (warnings such as "chunk 3 repaired"); the CLI prints them on stderr.
public typealias CopyLog = @Sendable (String) -> Void

/// One `runCopy`: either a receiver in this process, or a receiver started on the destination host
/// over ssh whose JSON events are relayed.
// @unchecked: `receiver`, `remote` and `cancelled` are guarded by `lock`.
final class CopySession: @unchecked Sendable {
    let request: CopyRequest
    let progress: @Sendable (CopyProgress) -> Void
    let log: CopyLog
    private let lock = NSLock()
    private var receiver: ReceiveSession?
    private var remote: ChildProcess?
    private var cancelled = false

    init(request: CopyRequest, progress: @escaping @Sendable (CopyProgress) -> Void, log: CopyLog? = nil) {
        self.request = request
        self.progress = progress
        self.log = log ?? request.log ?? { _ in }
    }

    func cancel() {
        lock.lock()
        cancelled = true
        let r = receiver
        let c = remote
        lock.unlock()
        r?.cancel()
        c?.signal(SIGTERM)
    }

    var mode: CopyMode { request.verifyOnly ? .verify : (request.unverified ? .unverified : .copy) }

    func run() throws -> CopyResult {
        guard request.streams >= 1 && request.streams <= 32 else {
            throw DataPlaneError("streams must be between 1 and 32", kind: .usage)
        }
        _ = try VolumeGeometry(size: 0, chunkSize: request.chunkSize)
        guard request.stallTimeout >= 0 && request.stallTimeout.isFinite else {
            throw DataPlaneError("the stall timeout must be 0 (none) or a number of seconds", kind: .usage)
        }
        let exe = request.agentExecutable ?? agentExecutablePath()
        if let dst = request.destination.endpoint {
            return try runRemote(dst, executable: exe)
        }
        var config = ReceiverConfig(source: request.source, target: request.destination.path, agentExecutable: exe)
        config.mode = mode
        config.chunkSize = request.chunkSize
        config.streams = request.streams
        config.workers = request.workers.map { max($0, 1) }
        config.targetIsZero = request.targetIsZero
        config.targetKey = request.targetKey
        config.trustMap = request.trustMap
        config.stateDirectory = request.useState ? (request.stateDirectory ?? defaultStateDirectory()) : nil
        config.compress = request.compress
        config.nbdFallback = request.nbdFallback
        config.stallTimeout = request.stallTimeout
        config.hooks = request.testHooks
        let session = ReceiveSession(config: config, progress: progress, log: log)
        lock.lock()
        receiver = session
        let stop = cancelled
        lock.unlock()
        if stop { throw DataPlaneError("cancelled") }
        return try session.run()
    }

    /// Arguments of `agent receive` on the destination host.
    func receiveArguments(destination dst: SSHEndpoint) throws -> [String] {
        guard let src = request.source.endpoint else {
            throw DataPlaneError("a local source with a remote destination is not supported: name the source as [user@]host:path (reachable from the destination host) or run the copy on the destination host", kind: .usage)
        }
        var args = ["agent", "receive"]
        if src.host == dst.host && src.user == dst.user && src.port == dst.port {
            args += ["--source", request.source.path]
        } else {
            args += ["--source", request.source.description]
            if let p = src.port { args += ["--port", String(p)] }
            if let i = src.identity { args += ["--identity", i] }
            for o in src.options { args += ["--ssh-option", o] }
            if let c = src.remoteCommand { args += ["--remote-command", c] }
            if let d = src.remoteCacheDirectory { args += ["--remote-cache-dir", d] }
        }
        args += ["--target", request.destination.path, "--json-events", "--stop-on-stdin-eof",
                 "--chunk-size", String(request.chunkSize), "--streams", String(request.streams)]
        if let w = request.workers { args += ["--workers", String(w)] }
        args += ["--stall-timeout", formatSeconds(request.stallTimeout)]
        if request.targetIsZero { args.append("--target-is-zero") }
        if let k = request.targetKey { args += ["--target-key", k] }
        if request.trustMap { args.append("--trust-map") }
        if request.verifyOnly { args.append("--verify-only") }
        if request.unverified { args.append("--no-verify") }
        if request.compress { args.append("--compress") }
        if request.nbdFallback { args.append("--nbd-fallback") }
        if !request.useState { args.append("--no-state") }
        if let d = request.stateDirectory { args += ["--state-dir", d] }
        let h = request.testHooks
        if let c = h.corruptChunk { args += ["--test-corrupt-chunk", String(c)] }
        if h.corruptAlways { args.append("--test-corrupt-always") }
        if let k = h.killAfterBytes { args += ["--test-kill-after-bytes", String(k)] }
        if let k = h.senderKillAfterBytes { args += ["--test-sender-kill-after-bytes", String(k)] }
        if let d = h.senderDelayMilliseconds { args += ["--test-sender-delay-ms", String(d)] }
        return args
    }

    private func runRemote(_ dst: SSHEndpoint, executable: String) throws -> CopyResult {
        let args = try receiveArguments(destination: dst)
        var deployed = false
        while true {
            let buildID = dst.remoteCommand == nil ? try RemoteAgent.buildID(executable: executable) : nil
            let lease = SSHMultiplexing.shared.lease(for: dst)
            defer { lease.release() }
            let argv = dst.sshArguments(lease: lease) + [RemoteAgent.command(dst, args: args, buildID: buildID)]
            let child = try ChildProcess(argv: argv, stdin: .pipe, stdout: .pipe, stderr: .pipe)
            lock.lock()
            remote = child
            let stop = cancelled
            lock.unlock()
            if stop {
                child.signal(SIGTERM)
                _ = child.wait(timeout: 10)
                throw DataPlaneError("cancelled")
            }
            let log = self.log
            child.collectStderr { line in
                if !line.isEmpty { log(line) }
            }
            var result: CopyResult?
            var failure: DataPlaneError?
            var pending: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            let fd = child.stdoutFD
            func handle(_ line: String) {
                switch AgentEvent.parse(line) {
                case .progress(let p)?: progress(p)
                case .result(let r)?: result = r
                case .error(let e)?: failure = e
                case .log(let m)?: log(m)
                case nil: if !line.isEmpty { log(line) }
                }
            }
            while true {
                let n = buf.withUnsafeMutableBytes { (try? readSome(fd, $0.baseAddress!, $0.count)) ?? 0 }
                if n <= 0 { break }
                pending += buf[0..<n]
                while let nl = pending.firstIndex(of: 10) {
                    handle(String(decoding: pending[..<nl], as: UTF8.self))
                    pending.removeSubrange(...nl)
                }
            }
            if !pending.isEmpty { handle(String(decoding: pending, as: UTF8.self)) }
            child.closeStdin()
            let status = child.wait(timeout: 30)
            lock.lock()
            remote = nil
            let wasCancelled = cancelled
            lock.unlock()
            if let result { return result }
            if let failure { throw failure }
            if wasCancelled { throw DataPlaneError("cancelled") }
            if status == .exited(RemoteAgent.missingStatus), dst.remoteCommand == nil, !deployed, let buildID {
                try RemoteAgent.upload(dst, executable: executable, buildID: buildID)
                deployed = true
                continue
            }
            throw diagnoseStartFailure(child: child, status: status, endpoint: dst, label: request.destination.description)
        }
    }
}

/// The volume digest of a local file or block device (same scheme as the copy), computed with
/// `workers` threads. Holes are not read.
public func localVolumeDigest(path: String, chunkSize: Int = VolumeGeometry.defaultChunkSize,
                              workers: Int = defaultWorkerCount()) throws -> (digest: String, size: UInt64) {
    let volume: VolumeHandle
    do {
        volume = try VolumeHandle.open(path, writable: false)
    } catch let e as SystemCallError {
        throw DataPlaneError.from(errno: e.errno, e.description)
    }
    let geometry = try VolumeGeometry(size: volume.size, chunkSize: chunkSize)
    let scheme = DigestScheme(geometry: geometry)
    let hasData = ExtentPlanner.chunksWithData(extents: volume.dataExtents(), geometry: geometry)
    // @unchecked: `next`, `digests` and `error` are guarded by `lock`.
    final class State: @unchecked Sendable {
        var next = 0
        var digests: [ChunkDigest]
        var error: Error?
        let lock = NSLock()
        init(_ n: Int) { digests = Array(repeating: .zero, count: n) }
    }
    let state = State(geometry.chunkCount)
    var threads: [WorkerThread] = []
    for _ in 0..<max(workers, 1) {
        threads.append(WorkerThread(name: "osm-digest") {
            let buf = AlignedBuffer(capacity: geometry.chunkSize)
            while true {
                state.lock.lock()
                let i = state.next
                state.next += 1
                let stop = state.error != nil
                state.lock.unlock()
                if stop || i >= geometry.chunkCount { return }
                var d = scheme.zeroChunkDigest(i)
                if hasData[i] {
                    do {
                        let len = geometry.chunkLength(i)
                        try volume.read(into: buf.pointer, count: len, at: geometry.chunkOffset(i))
                        let bytes = UnsafeRawBufferPointer(start: buf.pointer, count: len)
                        let mask = ExtentPlanner.zeroBlocks(of: bytes)
                        if mask.setCount != mask.count { d = scheme.chunkDigest(index: i, buffer: bytes, zeroBlocks: mask) }
                    } catch {
                        state.lock.lock()
                        state.error = error
                        state.lock.unlock()
                        return
                    }
                }
                state.lock.lock()
                state.digests[i] = d
                state.lock.unlock()
            }
        })
    }
    for t in threads { t.join() }
    if let e = state.error { throw e }
    return (scheme.volumeDigest(state.digests).hex, volume.size)
}

/// Seconds as an option value or in a message: "300", "2.5".
func formatSeconds(_ s: Double) -> String {
    s == s.rounded() && abs(s) < 1e15 ? String(Int64(s)) : String(s)
}
