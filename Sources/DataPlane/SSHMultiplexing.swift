import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One SSH connection per host for the many sessions a migration opens there (OpenSSH connection
/// sharing: `ControlMaster=auto`, `ControlPath`, `ControlPersist`). Each new connection costs a key
/// exchange and an authentication (0.2–0.3 s on the lab's link, seconds through a jump host over a
/// WAN); a session on a shared connection costs one round trip.
///
/// Off unless the process turns it on (the migrator does, the agents do not), and scoped to that one
/// process: its sockets live in a private directory made at first use (`mkdtemp`, mode 0700), they
/// are closed (`ssh -O exit`) when the process exits, and a connection idle for `persistSeconds`
/// closes by itself (a killed migrator leaves nothing for longer). So no later command ever runs on
/// a connection authenticated earlier, under other settings or another host key. Sessions share a
/// connection only when they were asked with the same destination, port, key and options (the
/// socket's name is a digest of them). At most `maxSessions` sessions share one connection at a time
/// (sshd refuses more than its MaxSessions, 10 by default); the others open their own. An operator
/// who sets any `Control…` option gets exactly their settings.
public final class SSHMultiplexing: @unchecked Sendable {
    public static let shared = SSHMultiplexing()
    public static let maxSessions = 8
    public static let persistSeconds = 15
    /// Longer socket paths do not fit `sun_path` (108 bytes, with room for ssh's temporary suffix).
    static let maxSocketPath = 90

    // Guarded by `lock`.
    private let lock = NSLock()
    private var enabled = false
    private var directory: String?
    private var directoryFailed = false
    private var active: [String: Int] = [:]
    private var used: Set<String> = []

    public init() {}

    /// Turns sharing on for this process and closes the shared connections at its exit.
    public func enable() {
        lock.lock()
        defer { lock.unlock() }
        guard !enabled else { return }
        enabled = true
        if self === SSHMultiplexing.shared { atexit { SSHMultiplexing.shared.closeAll() } }
    }

    /// A session's share of a connection to `endpoint`: its `-o` options (none when sharing is off,
    /// the operator set a `Control…` option, or `maxSessions` already share it). Release it when
    /// the session's ssh process has ended.
    public func lease(for endpoint: SSHEndpoint) -> SSHLease {
        lock.lock()
        defer { lock.unlock() }
        guard enabled, !Self.operatorControls(endpoint), let dir = privateDirectory() else { return SSHLease(owner: nil, path: nil) }
        let path = dir + "/" + Self.socketName(endpoint)
        guard path.utf8.count <= Self.maxSocketPath, active[path, default: 0] < Self.maxSessions else {
            return SSHLease(owner: nil, path: nil)
        }
        active[path, default: 0] += 1
        used.insert(path)
        return SSHLease(owner: self, path: path)
    }

    func release(_ path: String) {
        lock.lock()
        active[path, default: 1] -= 1
        lock.unlock()
    }

    /// Closes every shared connection of this process and removes its socket directory.
    public func closeAll() {
        lock.lock()
        let paths = used
        let dir = directory
        used = []
        lock.unlock()
        for path in paths where FileManager.default.fileExists(atPath: path) {
            if let child = try? ChildProcess(argv: ["ssh", "-o", "ControlPath=" + path, "-O", "exit", "os-migrate-mux"],
                                             stdin: .null, stdout: .null, stderr: .null) {
                _ = child.wait(timeout: 5)
            }
        }
        if let dir { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// The `-o` values that share a connection through the socket `path` (pure).
    public static func options(path: String) -> [String] {
        ["ControlMaster=auto", "ControlPath=" + path, "ControlPersist=\(persistSeconds)"]
    }

    /// Did the operator choose their own connection sharing (any `Control…` option)?
    public static func operatorControls(_ endpoint: SSHEndpoint) -> Bool {
        endpoint.options.contains { $0.lowercased().hasPrefix("control") }
    }

    /// The socket's file name: 16 hex digits of the SHA-256 of everything that shapes the connection (pure).
    public static func socketName(_ endpoint: SSHEndpoint) -> String {
        let parts = [endpoint.destination, endpoint.port.map(String.init) ?? "", endpoint.identity ?? ""] + endpoint.options
        let digest = SHA256.hash(data: Data(parts.joined(separator: "\u{0}").utf8))
        return ELFBuildID.hex(Array(digest.prefix(8)))
    }

    /// `$XDG_RUNTIME_DIR/osm-ssh-XXXXXX` (or under the temporary directory), made once; nil when it
    /// cannot be made (no sharing then). Called with `lock` held.
    private func privateDirectory() -> String? {
        if let directory { return directory }
        if directoryFailed { return nil }
        let env = ProcessInfo.processInfo.environment
        var isDir: ObjCBool = false
        var base = NSTemporaryDirectory()
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty, FileManager.default.fileExists(atPath: runtime, isDirectory: &isDir), isDir.boolValue {
            base = runtime
        }
        if base.hasSuffix("/") { base.removeLast() }
        var template = Array((base + "/osm-ssh-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            directoryFailed = true
            return nil
        }
        directory = String(cString: made)
        return directory
    }
}

/// One session's share of a shared SSH connection (see `SSHMultiplexing`).
public final class SSHLease: @unchecked Sendable {
    private let owner: SSHMultiplexing?
    /// The control socket, or nil: this session opens a connection of its own.
    public let path: String?
    // Guarded by `lock`.
    private let lock = NSLock()
    private var released = false

    init(owner: SSHMultiplexing?, path: String?) {
        self.owner = owner
        self.path = path
    }

    /// The `-o` values for this session's ssh.
    public var options: [String] { path.map(SSHMultiplexing.options(path:)) ?? [] }

    /// Gives the share back (once; later calls do nothing).
    public func release() {
        lock.lock()
        let first = !released
        released = true
        lock.unlock()
        if first, let owner, let path { owner.release(path) }
    }

    deinit { release() }
}
