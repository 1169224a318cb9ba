import Foundation

#if canImport(Glibc)
    import Glibc
#endif

@_silgen_name("pipe2")
private func ssh_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// A private OpenSSH server on a loopback port for tests.
///
/// Each instance generates its own ed25519 host and user keys in a temporary directory, writes an
/// `sshd_config` (ListenAddress 127.0.0.1, a free port, UsePAM no, StrictModes no, its own
/// AuthorizedKeysFile and PidFile), starts `/usr/sbin/sshd -D -e -f <config>` and waits until it
/// answers with an SSH banner. Clients pin the generated host key through a known_hosts file
/// (`StrictHostKeyChecking=yes`), never `no`. Several instances (one per suite or test) can run
/// at once. `stop()` (or deinit) stops the server by pid and removes the directory.
///
/// The login user is the current user (root in CI): sshd run as a non-root user can only log in
/// as that same user.
public final class SSHServer: @unchecked Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public let host = "127.0.0.1"
    public private(set) var port: Int = 0
    public let user: String
    /// The temporary directory holding keys, config, pid and log files.
    public let directory: String
    /// The client's private key (`ssh -i`).
    public let identityFile: String
    /// known_hosts file that pins this server's host key for `[127.0.0.1]:port`.
    public let knownHostsFile: String
    public let logFile: String

    /// sshd's pid.
    public private(set) var pid: pid_t = 0
    /// A tiny `sh` guard whose stdin is a pipe held by this process: if the test process dies without
    /// calling `stop()`, the pipe closes and the guard kills sshd, so no server outlives its tests.
    private var guardPid: pid_t = 0
    private var guardPipe: Int32 = -1
    private let lock = NSLock()

    /// `user@127.0.0.1`.
    public var destination: String { "\(user)@\(host)" }

    /// The `-o` values clients need, without the `-o` (for tools taking `--ssh-option VALUE`).
    public var sshOptionValues: [String] {
        ["UserKnownHostsFile=\(knownHostsFile)", "StrictHostKeyChecking=yes", "BatchMode=yes", "IdentitiesOnly=yes"]
    }

    /// Arguments for `ssh` (or `scp` with `-P` instead of `-p`): `-p PORT -i KEY -o …`.
    public var sshOptions: [String] {
        ["-p", String(port), "-i", identityFile] + sshOptionValues.flatMap { ["-o", $0] }
    }

    /// Lines appended to the generated `sshd_config` (e.g. a `ForceCommand`).
    private let extraConfig: String

    /// Starts a server; throws when sshd is missing or does not come up. `extraConfig` lines are
    /// appended to its `sshd_config`.
    public init(extraConfig: String = "") throws {
        self.extraConfig = extraConfig
        guard let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name else {
            throw StartError(description: "cannot determine the current user")
        }
        user = String(cString: name)
        var template = Array((NSTemporaryDirectory() + "/osm-sshd-XXXXXX").utf8CString)
        guard let dirPtr = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StartError(description: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: dirPtr).replacingOccurrences(of: "//", with: "/")
        identityFile = directory + "/id_ed25519"
        knownHostsFile = directory + "/known_hosts"
        logFile = directory + "/sshd.log"
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") else {
            throw StartError(description: "/usr/sbin/sshd not found: install openssh-server")
        }
        try SSHServer.keygen(directory + "/host_ed25519")
        try SSHServer.keygen(identityFile)
        try FileManager.default.copyItem(atPath: identityFile + ".pub", toPath: directory + "/authorized_keys")
        if geteuid() == 0 {
            // Root sshd insists on its privilege separation directory.
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        }
        var lastError = "sshd did not start"
        for _ in 0..<8 {
            port = try SSHServer.freePort()
            try writeConfig()
            let hostKey = try String(contentsOfFile: directory + "/host_ed25519.pub", encoding: .utf8)
                .split(separator: " ").prefix(2).joined(separator: " ")
            try "[\(host)]:\(port) \(hostKey)\n".write(toFile: knownHostsFile, atomically: true, encoding: .utf8)
            try startDaemon()
            if waitUntilReady(timeout: 15) { return }
            lastError = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? lastError
            stopProcess(keepDirectory: true)
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw StartError(description: "sshd did not start: \(lastError)")
    }

    deinit { stop() }

    /// Stops sshd (by pid) and removes the directory. Idempotent.
    public func stop() {
        stopProcess()
        lock.lock()
        defer { lock.unlock() }
        if FileManager.default.fileExists(atPath: directory) {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// Runs `ssh … user@127.0.0.1 COMMAND` and returns (exit status, stdout, stderr).
    public func run(_ command: String, stdin: Data? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        p.arguments = sshOptions + [destination, command]
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(stdin) }
        try? inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    // MARK: internals

    private func stopProcess(keepDirectory: Bool = false) {
        lock.lock()
        let p = pid, g = guardPid, fd = guardPipe
        pid = 0
        guardPid = 0
        guardPipe = -1
        lock.unlock()
        if keepDirectory && g > 0 { kill(g, SIGKILL) }  // so the guard does not remove the keys
        if p > 0 { kill(p, SIGTERM) }
        if fd >= 0 { close(fd) }  // the guard reaps sshd and exits
        guard g > 0 else { return }
        var status: Int32 = 0
        for _ in 0..<500 {
            if waitpid(g, &status, WNOHANG) == g { return }
            usleep(10_000)
        }
        if p > 0 { kill(p, SIGKILL) }
        kill(g, SIGKILL)
        waitpid(g, &status, 0)
    }

    private func startDaemon() throws {
        // The guard also removes the directory: a server held in a static (never deinitialised) is
        // cleaned up when the test process exits.
        let script = "/usr/sbin/sshd -D -e -f \"$1\" </dev/null 2>>\"$2\" & p=$!; echo $p; read _; kill $p 2>/dev/null; wait $p; rm -rf \"$3\""
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1]
        guard ssh_pipe2(&inPipe, O_CLOEXEC) == 0, ssh_pipe2(&outPipe, O_CLOEXEC) == 0 else {
            throw StartError(description: "pipe failed")
        }
        let g = try SSHServer.spawn(["/bin/sh", "-c", script, "sh", directory + "/sshd_config", logFile, directory],
                                    stdin: inPipe[0], stdout: outPipe[1], stderrFile: logFile)
        close(inPipe[0])
        close(outPipe[1])
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(outPipe[0], &byte, 1) == 1 && byte != 10 { line.append(byte) }
        close(outPipe[0])
        lock.lock()
        guardPid = g
        guardPipe = inPipe[1]
        pid = pid_t(String(decoding: line, as: UTF8.self)) ?? 0
        lock.unlock()
    }

    private func writeConfig() throws {
        let config = """
            Port \(port)
            ListenAddress \(host)
            HostKey \(directory)/host_ed25519
            PidFile \(directory)/sshd.pid
            AuthorizedKeysFile \(directory)/authorized_keys
            UsePAM no
            StrictModes no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            MaxStartups 200:30:400
            MaxSessions 100
            LogLevel ERROR
            PrintMotd no

            """ + extraConfig
        try config.write(toFile: directory + "/sshd_config", atomically: true, encoding: .utf8)
    }

    private func waitUntilReady(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if pid <= 0 || kill(pid, 0) != 0 { return false }
            if SSHServer.banner(port: port) { return true }
            usleep(20_000)
        }
        return false
    }

    /// True when something on the port answers with an SSH banner.
    private static func banner(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return false }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 4 && String(decoding: buf[0..<4], as: UTF8.self) == "SSH-"
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let r = withUnsafeMutablePointer(to: &addr) { p -> Int32 in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
                guard bind(fd, sp, len) == 0 else { return -1 }
                return getsockname(fd, sp, &len)
            }
        }
        guard r == 0 else { throw StartError(description: "cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    private static func keygen(_ path: String) throws {
        let pid = try spawn(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "osm-test", "-f", path],
                            stdin: nil, stdout: nil, stderrFile: "/dev/null")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw StartError(description: "ssh-keygen failed for \(path) (status \(status))") }
    }

    private static func spawn(_ argv: [String], stdin: Int32?, stdout: Int32?, stderrFile: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        if let stdout {
            posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderrFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ)
        guard rc == 0 else { throw StartError(description: "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }
}
