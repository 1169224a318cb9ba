import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A host reached with the system OpenSSH client (so ssh_config, ssh-agent and ProxyJump keep working).
public struct SSHEndpoint: Sendable, Hashable, Codable {
    public var user: String?
    public var host: String
    public var port: Int?
    /// Private key file (`ssh -i`), a path on the host that opens the connection.
    public var identity: String?
    /// Extra options, each as for `ssh -o` (e.g. `ProxyJump=bastion`). They take precedence over ours.
    public var options: [String]
    /// Path of the `os-migrate` binary on that host; nil = copy this binary there when missing or of
    /// another build (to `remoteCacheDirectory`).
    public var remoteCommand: String?
    /// Where the binary is deployed when `remoteCommand` is nil; default `~/.cache/os-migrate`.
    public var remoteCacheDirectory: String?

    public init(user: String? = nil, host: String, port: Int? = nil, identity: String? = nil,
                options: [String] = [], remoteCommand: String? = nil, remoteCacheDirectory: String? = nil) {
        self.user = user
        self.host = host
        self.port = port
        self.identity = identity
        self.options = options
        self.remoteCommand = remoteCommand
        self.remoteCacheDirectory = remoteCacheDirectory
    }

    /// `user@host` or `host`, as given to ssh.
    public var destination: String { user.map { "\($0)@\(host)" } ?? host }

    /// Default cipher preference: AES-GCM first (measured ~40 % faster than chacha20-poly1305 on AES-NI
    /// hosts), with the usual ciphers as fall-backs so servers without it still connect.
    public static let preferredCiphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"

    /// `ssh …` up to and including the destination (the remote command string follows); with
    /// `lease`, the session runs on the connection it shares (see `SSHMultiplexing`).
    public func sshArguments(compress: Bool = false, lease: SSHLease? = nil) -> [String] {
        var args = ["ssh"]
        // User options first: for each option ssh keeps the first value it sees.
        for o in options { args += ["-o", o] }
        for o in lease?.options ?? [] { args += ["-o", o] }
        if let port { args += ["-p", String(port)] }
        if let identity { args += ["-i", identity] }
        let lower = options.map { $0.lowercased() }
        func userSet(_ key: String) -> Bool {
            lower.contains { $0.hasPrefix(key + "=") || $0.hasPrefix(key + " ") }
        }
        if !userSet("ciphers") { args += ["-o", "Ciphers=\(SSHEndpoint.preferredCiphers)"] }
        if !userSet("batchmode") { args += ["-o", "BatchMode=yes"] }
        // A host that takes the TCP connection and never answers must not hang a copy forever.
        if !userSet("connecttimeout") { args += ["-o", "ConnectTimeout=30"] }
        if !userSet("serveraliveinterval") { args += ["-o", "ServerAliveInterval=15"] }
        if !userSet("serveralivecountmax") { args += ["-o", "ServerAliveCountMax=4"] }
        if compress && !userSet("compression") { args += ["-o", "Compression=yes"] }
        args += ["-T", "-x", "-e", "none", "--", destination]
        return args
    }
}

/// `[user@]host:path` or a local path.
public struct VolumeLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    public var endpoint: SSHEndpoint?
    public var path: String

    public init(endpoint: SSHEndpoint?, path: String) {
        self.endpoint = endpoint
        self.path = path
    }

    /// Parses `[user@]host:path` (scp style; `[v6addr]:path` too). A spec whose part before the first
    /// colon contains a `/` is a local path.
    public static func parse(_ spec: String) throws -> VolumeLocation {
        if spec.hasPrefix("nbd://") || spec.hasPrefix("nbd+unix://") {
            // An NBD export read by a sender running here (the qemu-nbd fallback).
            guard NBDAddress.parse(spec) != nil else { throw DataPlaneError("invalid NBD URI \(spec)", kind: .usage) }
            return VolumeLocation(endpoint: nil, path: spec)
        }
        if spec.hasPrefix("[") {
            guard let close = spec.firstIndex(of: "]"), spec[spec.index(after: close)...].hasPrefix(":") else {
                throw DataPlaneError("invalid location \(spec): expected [host]:path", kind: .usage)
            }
            let host = String(spec[spec.index(after: spec.startIndex)..<close])
            let path = String(spec[spec.index(close, offsetBy: 2)...])
            guard !path.isEmpty else { throw DataPlaneError("invalid location \(spec): empty path", kind: .usage) }
            return VolumeLocation(endpoint: SSHEndpoint(host: host), path: path)
        }
        guard let colon = spec.firstIndex(of: ":") else {
            return VolumeLocation(endpoint: nil, path: spec)
        }
        let before = spec[..<colon]
        if before.contains("/") { return VolumeLocation(endpoint: nil, path: spec) }
        let path = String(spec[spec.index(after: colon)...])
        guard !path.isEmpty, !before.isEmpty else {
            throw DataPlaneError("invalid location \(spec): expected [user@]host:path", kind: .usage)
        }
        var user: String? = nil
        var host = String(before)
        if let at = before.lastIndex(of: "@") {
            user = String(before[..<at])
            host = String(before[before.index(after: at)...])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw DataPlaneError("invalid location \(spec): empty host", kind: .usage) }
        return VolumeLocation(endpoint: SSHEndpoint(user: user, host: host), path: path)
    }

    public var description: String {
        guard let e = endpoint else { return path }
        let host = e.host.contains(":") ? "[\(e.host)]" : e.host
        return (e.user.map { "\($0)@" } ?? "") + host + ":" + path
    }
}

/// POSIX shell single-quoting.
public func shellQuote(_ s: String) -> String {
    if !s.isEmpty && s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@,+%".contains($0) }) && s.allSatisfy(\.isASCII) {
        return s
    }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Starting the agent on a remote host, and deploying this binary there when needed.
enum RemoteAgent {
    /// Exit status of the launcher script when the deployed binary is missing.
    static let missingStatus: Int32 = 97

    /// Identifies this build: `<version>-<first 12 hex of the linker's GNU build ID>`, or of the
    /// executable's SHA-256 when it has no build ID (hashing 100 MB with a cold page cache cost
    /// about 0.1 s at the start of every command).
    static func buildID(executable: String) throws -> String {
        buildIDLock.lock()
        defer { buildIDLock.unlock() }
        if let id = buildIDCache[executable] { return id }
        if let note = ELFBuildID.read(path: executable) {
            let id = DataPlane.version + "-" + String(ELFBuildID.hex(note).prefix(12))
            buildIDCache[executable] = id
            return id
        }
        let fd = open(executable, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw DataPlaneError("cannot read the agent binary \(executable): \(errnoString(errno))") }
        defer { close(fd) }
        var h = SHA256()
        let buf = AlignedBuffer(capacity: 1 << 20)
        while true {
            let n = (try? readSome(fd, buf.pointer, buf.capacity)) ?? 0
            if n <= 0 { break }
            h.update(bufferPointer: UnsafeRawBufferPointer(start: buf.pointer, count: n))
        }
        let id = DataPlane.version + "-" + String(ChunkDigest(h.finalize()).hex.prefix(12))
        buildIDCache[executable] = id
        return id
    }
    nonisolated(unsafe) private static var buildIDCache: [String: String] = [:]
    private static let buildIDLock = NSLock()

    /// The remote path expression (already shell-quoted, `$HOME` expanded by the remote shell).
    static func deployedPathExpression(_ endpoint: SSHEndpoint, buildID: String) -> String {
        let dir = endpoint.remoteCacheDirectory ?? "~/.cache/os-migrate"
        let file = "/os-migrate-" + buildID
        if dir == "~" { return "\"$HOME\"" + shellQuote(file) }
        if dir.hasPrefix("~/") { return "\"$HOME\"" + shellQuote(String(dir.dropFirst(1)) + file) }
        return shellQuote(dir + file)
    }

    /// The remote command string that runs `os-migrate <args>` on the endpoint.
    static func command(_ endpoint: SSHEndpoint, args: [String], buildID: String?) -> String {
        let quotedArgs = args.map(shellQuote).joined(separator: " ")
        if let cmd = endpoint.remoteCommand {
            return shellQuote(cmd) + " " + quotedArgs
        }
        let script = "p=\"$1\"; shift; [ -x \"$p\" ] || exit \(missingStatus); exec \"$p\" \"$@\""
        return "sh -c " + shellQuote(script) + " sh " + deployedPathExpression(endpoint, buildID: buildID ?? "unknown") + " " + quotedArgs
    }

    /// Copies `executable` to the endpoint's cache directory (atomically: upload then rename), and
    /// removes the other builds cached there that nothing has run for two days (each is ~100 MB;
    /// one still running keeps working, since its file is only unlinked).
    static func upload(_ endpoint: SSHEndpoint, executable: String, buildID: String) throws {
        let script = "set -e; p=\"$1\"; d=$(dirname \"$p\"); mkdir -p \"$d\"; t=\"$p.upload.$$\"; cat > \"$t\"; chmod 755 \"$t\"; mv -f \"$t\" \"$p\"; "
            + "find \"$d\" -maxdepth 1 -name 'os-migrate-*' ! -name \"$(basename \"$p\")\" ! -name '*.upload.*' -amin +2880 -delete 2>/dev/null || true"
        let remote = "sh -c " + shellQuote(script) + " sh " + deployedPathExpression(endpoint, buildID: buildID)
        let fd = open(executable, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw DataPlaneError("cannot read the agent binary \(executable): \(errnoString(errno))") }
        defer { close(fd) }
        let lease = SSHMultiplexing.shared.lease(for: endpoint)
        defer { lease.release() }
        let child = try ChildProcess(argv: endpoint.sshArguments(lease: lease) + [remote], stdin: .fd(fd), stdout: .null, stderr: .pipe)
        child.collectStderr()
        let status = child.wait()
        if !status.succeeded {
            let why = child.lastStderrLine() ?? status.description
            throw DataPlaneError("cannot copy the agent to \(endpoint.host): \(why)", kind: .connect)
        }
    }
}
