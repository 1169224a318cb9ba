import ArgumentParser
import DataPlane
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// SSH pass-through options shared by `copy` and `agent receive`.
struct SSHPassThroughOptions: ParsableArguments {
    @Option(name: .customLong("ssh-option"), help: ArgumentHelp("An ssh option, as for `ssh -o` (repeatable).", valueName: "OPT"))
    var sshOptions: [String] = []

    @Option(help: ArgumentHelp("Private key file for ssh (`ssh -i`).", valueName: "FILE"))
    var identity: String?

    @Option(help: ArgumentHelp("ssh port (`ssh -p`).", valueName: "N"))
    var port: Int?

    @Option(name: .customLong("remote-command"), help: ArgumentHelp("Path of os-migrate on the remote host(s). Default: copy this binary to ~/.cache/os-migrate/ there when missing or of another build.", valueName: "PATH"))
    var remoteCommand: String?

    @Option(name: .customLong("remote-cache-dir"), help: .hidden)
    var remoteCacheDirectory: String?

    func apply(to endpoint: SSHEndpoint?) -> SSHEndpoint? {
        guard var e = endpoint else { return nil }
        e.options = sshOptions
        e.identity = identity
        e.port = port
        e.remoteCommand = remoteCommand
        e.remoteCacheDirectory = remoteCacheDirectory
        return e
    }
}

/// Tuning and behaviour options shared by `copy` and `agent receive`.
struct TransferOptions: ParsableArguments {
    @Option(name: .customLong("chunk-size"), help: ArgumentHelp("Chunk size: unit of hashing, transfer and resume (multiple of 64K).", valueName: "SIZE"))
    var chunkSize: String = "4M"

    @Option(help: ArgumentHelp("Parallel SSH sessions for the volume.", valueName: "N"))
    var streams: Int = 1

    @Option(help: ArgumentHelp("Hashing/writing threads per agent (default: cores, max 8).", valueName: "N"))
    var workers: Int?

    @Flag(name: .customLong("target-is-zero"), help: "The destination is known to read as zeros: do not write zero ranges.")
    var targetIsZero = false

    @Option(name: .customLong("target-key"), help: ArgumentHelp("Keep the destination's chunk map under this key (e.g. the volume's id) instead of its path.", valueName: "KEY"))
    var targetKey: String?

    @Flag(name: .customLong("trust-map"), help: "Reuse what the chunk map holds without reading it again (a target only these copies have written).")
    var trustMap = false

    @Flag(name: .customLong("verify-only"), help: "Compare source and destination digests; write nothing.")
    var verifyOnly = false

    @Flag(name: .customLong("no-verify"), help: "Benchmark only: skip all hashing (never reported as verified; exit status 4).")
    var noVerify = false

    @Flag(help: "Use ssh compression (only worth it on slow links).")
    var compress = false

    @Flag(name: .customLong("nbd-fallback"), help: "Read the source through `qemu-nbd --read-only` over an ssh tunnel instead of running the agent on the source host.")
    var nbdFallback = false

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Directory of the destination's chunk maps, on the destination host (default ~/.local/state/os-migrate/dataplane).", valueName: "DIR"))
    var stateDirectory: String?

    @Flag(name: .customLong("no-state"), help: "Neither use nor keep a chunk map (no resume, no incremental).")
    var noState = false

    @Option(name: .customLong("stall-timeout"), help: ArgumentHelp("Give up when nothing arrives from the source and nothing is written for this many seconds (0: never).", valueName: "SECONDS"))
    var stallTimeout: Double = 300

    @Option(name: .customLong("test-corrupt-chunk"), help: .hidden)
    var testCorruptChunk: Int?
    @Flag(name: .customLong("test-corrupt-always"), help: .hidden)
    var testCorruptAlways = false
    @Option(name: .customLong("test-kill-after-bytes"), help: .hidden)
    var testKillAfterBytes: UInt64?
    @Option(name: .customLong("test-sender-kill-after-bytes"), help: .hidden)
    var testSenderKillAfterBytes: UInt64?
    @Option(name: .customLong("test-sender-delay-ms"), help: .hidden)
    var testSenderDelayMilliseconds: UInt64?

    func chunkBytes() throws -> Int {
        guard let n = parseByteSize(chunkSize) else { throw ValidationError("invalid chunk size \(chunkSize)") }
        return n
    }

    func configure(_ r: inout CopyRequest) throws {
        guard stallTimeout >= 0 && stallTimeout.isFinite else {
            throw ValidationError("--stall-timeout must be 0 (never) or a number of seconds")
        }
        r.chunkSize = try chunkBytes()
        r.stallTimeout = stallTimeout
        r.streams = streams
        r.workers = workers
        r.targetIsZero = targetIsZero
        if let k = targetKey {
            guard !k.isEmpty, k.utf8.count <= 255, k.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                throw ValidationError("--target-key must be 1 to 255 printable characters without spaces")
            }
            r.targetKey = k
        }
        r.trustMap = trustMap
        r.verifyOnly = verifyOnly
        r.unverified = noVerify
        r.compress = compress
        r.nbdFallback = nbdFallback
        r.stateDirectory = stateDirectory
        r.useState = !noState
        var hooks = TestHooks()
        let env = ProcessInfo.processInfo.environment
        hooks.corruptChunk = testCorruptChunk ?? env["OSM_AGENT_TEST_CORRUPT_CHUNK"].flatMap(Int.init)
        hooks.corruptAlways = testCorruptAlways || env["OSM_AGENT_TEST_CORRUPT_ALWAYS"] == "1"
        hooks.killAfterBytes = testKillAfterBytes ?? env["OSM_AGENT_TEST_KILL_AFTER_BYTES"].flatMap(UInt64.init)
        hooks.senderKillAfterBytes = testSenderKillAfterBytes ?? env["OSM_AGENT_TEST_SENDER_KILL_AFTER_BYTES"].flatMap(UInt64.init)
        hooks.senderDelayMilliseconds = testSenderDelayMilliseconds ?? env["OSM_AGENT_TEST_SENDER_DELAY_MS"].flatMap(UInt64.init)
        r.testHooks = hooks
    }
}

/// Exit statuses of `copy` and `agent receive`.
enum CopyExit {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let differ: Int32 = 3
    static let unverified: Int32 = 4

    static func code(for e: DataPlaneError) -> Int32 {
        e.kind == .verification ? differ : (e.kind == .usage ? 2 : failed)
    }
}

private func writeStdout(_ line: String) -> Bool {
    let bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

private func writeStderr(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// `os-migrate agent …`: the block-copy agent that runs on conversion hosts.
public struct AgentCommand: AsyncParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Internal: the block-copy agent that runs on conversion hosts.",
        discussion: """
        `os-migrate copy` and the workload migration start these over ssh; operators rarely call them.
        The destination runs `agent receive`, which starts `ssh SOURCE os-migrate agent send PATH` and \
        speaks the data-plane protocol with it over that session's stdin/stdout (no listening ports). \
        See docs/data-plane.md.
        """,
        subcommands: [Send.self, Receive.self, Version.self, Digest.self])

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a source volume and answer a receiver on stdin/stdout (binary protocol).")

        @Argument(help: "Source block device or file.")
        var path: String

        @Option(name: .customLong("test-kill-after-bytes"), help: .hidden)
        var testKillAfterBytes: UInt64?
        @Option(name: .customLong("test-delay-ms"), help: .hidden)
        var testDelayMilliseconds: UInt64?

        func run() throws {
            var hooks = TestHooks()
            hooks.senderKillAfterBytes = testKillAfterBytes
            hooks.senderDelayMilliseconds = testDelayMilliseconds
            let code = Sender.run(path: path, hooks: hooks)
            if code != 0 { throw ExitCode(code) }
        }
    }

    struct Receive: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull a volume from a sender into a local target, verified; report progress as JSON lines.",
            discussion: "Exit status: 0 digests match, 1 error, 3 digests differ, 4 finished unverified (--no-verify).")

        @Option(help: ArgumentHelp("Source as [user@]host:path (or a local path).", valueName: "SPEC"))
        var source: String

        @Option(help: ArgumentHelp("Local target block device or file.", valueName: "PATH"))
        var target: String

        @Flag(name: .customLong("json-events"), help: "Write JSON-lines events (progress, result, error) on stdout.")
        var jsonEvents = false

        @Flag(name: .customLong("stop-on-stdin-eof"), help: .hidden)
        var stopOnStdinEOF = false

        @OptionGroup var ssh: SSHPassThroughOptions
        @OptionGroup var transfer: TransferOptions

        func run() throws {
            let json = jsonEvents
            var source: VolumeLocation
            var request: CopyRequest
            do {
                source = try VolumeLocation.parse(self.source)
                source.endpoint = ssh.apply(to: source.endpoint)
                request = CopyRequest(source: source, destination: VolumeLocation(endpoint: nil, path: target))
                try transfer.configure(&request)
            } catch let e as DataPlaneError {
                throw ValidationError(e.message)
            }
            request.log = { line in
                if json { _ = writeStdout(AgentEvent.log(line)) } else { writeStderr(line + "\n") }
            }
            let box = SessionBox()
            let progress: @Sendable (CopyProgress) -> Void = { p in
                if json, !writeStdout(AgentEvent.line("progress", p)) { box.cancel() }
            }
            let session = CopySessionHandle(request: request, progress: progress)
            box.set(session)
            if stopOnStdinEOF {
                Thread.detachNewThread {
                    var b = [UInt8](repeating: 0, count: 512)
                    while true {
                        let n = b.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { break }
                    }
                    box.cancel()
                }
            }
            do {
                let result = try session.run()
                if json { _ = writeStdout(AgentEvent.line("result", result)) } else { _ = writeStdout(describe(result)) }
                if result.mode == .unverified { throw ExitCode(CopyExit.unverified) }
                if !result.verified { throw ExitCode(CopyExit.differ) }
            } catch let e as DataPlaneError {
                if json { _ = writeStdout(AgentEvent.line("error", e)) } else { writeStderr("os-migrate: error: \(e.message)\n") }
                throw ExitCode(CopyExit.code(for: e))
            }
        }
    }

    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the agent version, protocol and build.")
        func run() throws {
            let build = (try? AgentBuild.id()) ?? "unknown"
            print("os-migrate-agent \(DataPlane.version) protocol \(Hello.protocolVersion) build \(build)")
        }
    }

    struct Digest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the volume digest of a local file or block device (the digest `copy` reports).")

        @Argument(help: "File or block device.")
        var path: String

        @Option(name: .customLong("chunk-size"), help: ArgumentHelp("Chunk size (must match the copy's).", valueName: "SIZE"))
        var chunkSize: String = "4M"

        func run() throws {
            guard let cs = parseByteSize(chunkSize) else { throw ValidationError("invalid chunk size \(chunkSize)") }
            do {
                let (digest, _) = try localVolumeDigest(path: path, chunkSize: cs)
                print("\(digest)  \(path)")
            } catch let e as DataPlaneError {
                writeStderr("os-migrate: error: \(e.message)\n")
                throw ExitCode(CopyExit.failed)
            }
        }
    }
}

/// `os-migrate copy SRC DST`: verified, sparse-aware block copy over SSH.
public struct CopyCommand: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy a block device or file between hosts over SSH, verified.",
        discussion: """
        SRC and DST are [user@]host:path or local paths (block devices or files). Run it on the \
        destination host (`os-migrate copy cloud-user@src:/dev/vdb /dev/vdc`), or from anywhere with \
        both sides remote: the receiving agent then runs on the destination host (or on --via).
        Only the chunks the destination lacks cross the wire; zeros never do. Every chunk is \
        verified on arrival and the SHA-256 volume digests of both sides must match.
        Exit status: 0 digests match, 1 error, 2 usage, 3 digests differ, 4 finished unverified (--no-verify).
        """)

    @Argument(help: "Source: [user@]host:path or a local path.")
    var source: String

    @Argument(help: "Destination: [user@]host:path or a local path.")
    var destination: String

    @Option(help: ArgumentHelp("Run the receiving agent on this host ([user@]host); DST is a path there.", valueName: "HOST"))
    var via: String?

    @Flag(help: "Write JSON-lines progress events and a final result object on stdout.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    @OptionGroup var ssh: SSHPassThroughOptions
    @OptionGroup var transfer: TransferOptions

    func makeRequest() throws -> CopyRequest {
        var src = try VolumeLocation.parse(source)
        var dst = try VolumeLocation.parse(destination)
        if let via {
            let v = try VolumeLocation.parse(via + ":/")
            guard dst.endpoint == nil || dst.endpoint?.host == v.endpoint?.host else {
                throw DataPlaneError("--via \(via) conflicts with the destination host \(dst.endpoint!.host)", kind: .usage)
            }
            dst.endpoint = v.endpoint
        }
        src.endpoint = ssh.apply(to: src.endpoint)
        dst.endpoint = ssh.apply(to: dst.endpoint)
        var r = CopyRequest(source: src, destination: dst)
        try transfer.configure(&r)
        return r
    }

    public func run() throws {
        var request: CopyRequest
        do {
            request = try makeRequest()
        } catch let e as DataPlaneError {
            throw ValidationError(e.message)
        }
        let json = self.json
        let tty = isatty(2) != 0 && !json && !quiet
        let line = ProgressLine()
        request.log = { message in
            line.clear()
            if json { _ = writeStdout(AgentEvent.log(message)) } else { writeStderr(message + "\n") }
        }
        let progress: @Sendable (CopyProgress) -> Void = { p in
            if json {
                _ = writeStdout(AgentEvent.line("progress", p))
            } else if tty {
                line.show(p)
            }
        }
        let session = CopySessionHandle(request: request, progress: progress)
        do {
            let result = try session.run()
            line.clear()
            if json { _ = writeStdout(AgentEvent.line("result", result)) } else { _ = writeStdout(describe(result)) }
            if result.mode == .unverified { throw ExitCode(CopyExit.unverified) }
            if !result.verified { throw ExitCode(CopyExit.differ) }
        } catch let e as DataPlaneError {
            line.clear()
            if json { _ = writeStdout(AgentEvent.line("error", e)) }
            writeStderr("os-migrate: error: \(e.message)\n")
            throw ExitCode(CopyExit.code(for: e))
        }
    }
}

/// The final human line of a copy.
func describe(_ r: CopyResult) -> String {
    let rate = r.seconds > 0 ? String(format: "%.0f MB/s", Double(r.sourceSize) / r.seconds / 1e6) : "-"
    let time = String(format: "%.2f s", r.seconds)
    switch r.mode {
    case .verify:
        if r.verified {
            return "identical: \(r.source) and \(r.destination), \(r.sourceSize) bytes in \(time); digest \(r.digest)"
        }
        return "DIFFERENT: \(r.chunksDiffering) chunk(s) of \(r.chunkSize) bytes differ between \(r.source) and \(r.destination) (\(time)); "
            + "source digest \(r.sourceDigest ?? "?"), destination digest \(r.destinationDigest ?? "?")"
    case .unverified:
        return "copied UNVERIFIED (--no-verify): \(r.sourceSize) bytes in \(time) (\(rate)); copied \(r.bytesCopied), zero \(r.bytesZero), reused \(r.bytesReused), on the wire \(r.bytesOnWire) bytes; no digest"
    case .copy:
        var extra = ""
        if r.chunksRepaired > 0 { extra += ", \(r.chunksRepaired) chunk(s) repaired" }
        if r.chunksRetried > 0 { extra += ", \(r.chunksRetried) chunk(s) re-sent after failing verification" }
        return "verified: \(r.sourceSize) bytes (\(formatBytes(r.sourceSize))) in \(time) (\(rate)); copied \(r.bytesCopied), zero \(r.bytesZero), reused \(r.bytesReused), on the wire \(r.bytesOnWire) bytes\(extra); digest \(r.digest)"
    }
}

/// A TTY progress line on stderr with rate and ETA.
// @unchecked: `shown` and the writes to stderr are guarded by `lock`.
final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private var shown = false

    func show(_ p: CopyProgress) {
        let pct = p.bytesTotal > 0 ? Double(p.bytesDone) * 100 / Double(p.bytesTotal) : 100
        var eta = "--:--"
        if let e = p.eta, e.isFinite, e < 360_000 {
            let s = Int(e.rounded())
            eta = String(format: "%d:%02d", s / 60, s % 60)
        }
        let text = String(format: "\r%5.1f%%  %@ / %@  %@/s  ETA %@  (zero %@, reused %@, wire %@)\u{1B}[K",
                          pct, formatBytes(p.bytesDone), formatBytes(p.bytesTotal),
                          formatBytes(UInt64(max(p.rate, 0))), eta,
                          formatBytes(p.bytesZero), formatBytes(p.bytesReused), formatBytes(p.bytesOnWire))
        lock.lock()
        shown = true
        writeStderr(text)
        lock.unlock()
    }

    func clear() {
        lock.lock()
        if shown {
            writeStderr("\r\u{1B}[K")
            shown = false
        }
        lock.unlock()
    }
}

/// Lets a signal handler / stdin watcher cancel a running session.
// @unchecked: `session` and `pendingCancel` are guarded by `lock`.
final class SessionBox: @unchecked Sendable {
    private let lock = NSLock()
    private var session: CopySessionHandle?
    private var pendingCancel = false
    func set(_ s: CopySessionHandle) {
        lock.lock()
        session = s
        let c = pendingCancel
        lock.unlock()
        if c { s.cancel() }
    }
    func cancel() {
        lock.lock()
        pendingCancel = true
        let s = session
        lock.unlock()
        s?.cancel()
    }
}
