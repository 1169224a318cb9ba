import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var succeeded: Bool { self == .exited(0) }
    /// As a shell reports it: the exit code, or 128 + the signal.
    public var code: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }
    public var description: String {
        switch self {
        case .exited(let c): return "exit status \(c)"
        case .signaled(let s): return "signal \(s)"
        }
    }
}

/// A child process with optional pipes to its stdin, stdout and stderr (posix_spawn; every pipe end
/// is close-on-exec so concurrent spawns never leak each other's pipes; no Foundation `Process`,
/// whose SIGCHLD handling does not mix with swift-subprocess in one process). Its calls block:
/// use them from threads of their own, not from the cooperative pool.
// @unchecked: `stdinFD`, `status` and `stderrTail` are guarded by `lock`; `stderrReader` is set before
// the stderr thread starts; `stdoutPending` belongs to the one reader of stdout.
public final class ChildProcess: @unchecked Sendable {
    public enum Stdio {
        case inherit
        case null
        case pipe
        case fd(Int32)  // a descriptor of ours to hand to the child (not closed)
    }

    public let pid: pid_t
    let argv: [String]
    private(set) var stdinFD: Int32
    let stdoutFD: Int32
    let stderrFD: Int32
    private let lock = NSLock()
    private var status: ExitStatus?
    private var stderrTail: [UInt8] = []
    private var stderrDone = DispatchSemaphore(value: 0)
    private var stderrReader = false
    private var stdoutPending: [UInt8] = []

    public init(argv: [String], stdin: Stdio, stdout: Stdio, stderr: Stdio, environment: [String: String]? = nil) throws {
        self.argv = argv
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var toClose: [Int32] = []
        var ours: [Int32] = [-1, -1, -1]
        func setup(_ s: Stdio, target: Int32, childReads: Bool) throws {
            switch s {
            case .inherit: break
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", childReads ? O_RDONLY : O_WRONLY, 0)
            case .fd(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .pipe:
                let p = try makePipe()
                let childEnd = childReads ? p.read : p.write
                let ourEnd = childReads ? p.write : p.read
                posix_spawn_file_actions_adddup2(&actions, childEnd, target)
                toClose.append(childEnd)
                ours[Int(target)] = ourEnd
                enlargePipe(ourEnd)
            }
        }
        do {
            try setup(stdin, target: 0, childReads: true)
            try setup(stdout, target: 1, childReads: false)
            try setup(stderr, target: 2, childReads: false)
        } catch {
            for fd in toClose + ours where fd >= 0 { close(fd) }
            throw error
        }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var envStrings: [UnsafeMutablePointer<CChar>?]? = nil
        if let environment {
            envStrings = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { envStrings?.forEach { free($0) } }

        var child: pid_t = 0
        let rc: Int32
        if let envStrings {
            rc = posix_spawnp(&child, argv[0], &actions, &attr, cargs, envStrings)
        } else {
            rc = posix_spawnp(&child, argv[0], &actions, &attr, cargs, environ)
        }
        for fd in toClose { close(fd) }
        if rc != 0 {
            for fd in ours where fd >= 0 { close(fd) }
            throw DataPlaneError("cannot start \(argv[0]): \(errnoString(rc))")
        }
        pid = child
        stdinFD = ours[0]
        stdoutFD = ours[1]
        stderrFD = ours[2]
    }

    deinit {
        if stdinFD >= 0 { close(stdinFD) }
        if stdoutFD >= 0 { close(stdoutFD) }
        if stderrFD >= 0 { close(stderrFD) }
    }

    /// The next line of stdout (without the newline), nil at end of file.
    public func readLine() -> String? {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            if let nl = stdoutPending.firstIndex(of: 10) {
                let line = String(decoding: stdoutPending[..<nl], as: UTF8.self)
                stdoutPending.removeSubrange(...nl)
                return line
            }
            let n = buf.withUnsafeMutableBytes { (try? readSome(stdoutFD, $0.baseAddress!, $0.count)) ?? 0 }
            if n <= 0 {
                if stdoutPending.isEmpty { return nil }
                defer { stdoutPending.removeAll() }
                return String(decoding: stdoutPending, as: UTF8.self)
            }
            stdoutPending += buf[0..<n]
        }
    }

    public func closeStdin() {
        lock.lock()
        defer { lock.unlock() }
        if stdinFD >= 0 {
            close(stdinFD)
            stdinFD = -1
        }
    }

    /// Collects stderr in the background, keeping the last 16 KiB; `line` is called for each line.
    public func collectStderr(line: (@Sendable (String) -> Void)? = nil) {
        guard stderrFD >= 0 else { return }
        stderrReader = true
        let fd = stderrFD
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = buf.withUnsafeMutableBytes { (try? readSome(fd, $0.baseAddress!, $0.count)) ?? 0 }
                if n <= 0 { break }
                let bytes = buf[0..<n]
                lock.lock()
                stderrTail += bytes
                if stderrTail.count > 16384 { stderrTail.removeFirst(stderrTail.count - 16384) }
                lock.unlock()
                if let line {
                    pending += bytes
                    while let nl = pending.firstIndex(of: 10) {
                        line(String(decoding: pending[..<nl], as: UTF8.self))
                        pending.removeSubrange(...nl)
                    }
                }
            }
            if let line, !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
            stderrDone.signal()
        }
    }

    /// The collected stderr (waits for the reader to reach EOF, at most `timeout` seconds).
    public func stderrText(timeout: Double = 5) -> String {
        if stderrReader {
            if stderrDone.wait(timeout: .now() + timeout) == .success { stderrDone.signal() }
        }
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: stderrTail, as: UTF8.self)
    }

    /// Last non-empty stderr line, without ssh's noise.
    public func lastStderrLine() -> String? {
        stderrText().split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }.last
    }

    public func signal(_ sig: Int32) {
        lock.lock()
        let done = status != nil
        lock.unlock()
        if !done { kill(pid, sig) }
    }

    @discardableResult
    public func wait() -> ExitStatus {
        lock.lock()
        if let s = status {
            lock.unlock()
            return s
        }
        lock.unlock()
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR {
                raw = 0xFF00
                break
            }
        }
        let s: ExitStatus = (raw & 0x7F) == 0 ? .exited((raw >> 8) & 0xFF) : .signaled(raw & 0x7F)
        lock.lock()
        status = s
        lock.unlock()
        return s
    }

    /// Waits at most `timeout` seconds, then SIGKILLs.
    public func wait(timeout: Double) -> ExitStatus {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            var raw: Int32 = 0
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid {
                let s: ExitStatus = (raw & 0x7F) == 0 ? .exited((raw >> 8) & 0xFF) : .signaled(raw & 0x7F)
                lock.lock()
                status = s
                lock.unlock()
                return s
            }
            if r < 0 && errno != EINTR { return wait() }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        return wait()
    }
}
