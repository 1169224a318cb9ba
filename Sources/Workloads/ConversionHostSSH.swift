import DataPlane
import Foundation
import Subprocess

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// A conversion host problem, one line, said so that the operator knows what to do.
public struct ConversionHostError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// The server does not exist (run deploy), or is not usable (ERROR, several of that name).
        case notFound, notUsable
        /// SSH: cannot connect, authentication refused, the pinned host key differs or is missing.
        case unreachable, authentication, hostKeyChanged, hostKeyNotPinned
        /// The agent cannot run there, or is not installed.
        case agent
        /// Attaching, detaching or finding a volume.
        case volume
        case other
    }

    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// What a local command said.
public struct CommandOutput: Sendable, Equatable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// The last non-empty stderr line.
    public var lastErrorLine: String? {
        stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }.last
    }
}

/// Runs local programs (ssh, ssh-keygen, ssh-keyscan) without a shell.
enum LocalCommand {
    struct TimedOut: Error, CustomStringConvertible {
        var command: String
        var seconds: Double
        var description: String { "\(command) did not finish within \(Int(seconds)) s" }
    }

    static func run(_ argv: [String], input: [UInt8]? = nil, timeout: Double = 120) async throws -> CommandOutput {
        precondition(!argv.isEmpty)
        let executable: Executable = argv[0].contains("/") ? .path(FilePath(argv[0])) : .name(argv[0])
        let config = Configuration(executable: executable, arguments: Arguments(Array(argv.dropFirst())))
        let limit = 16 << 20
        return try await withThrowingTaskGroup(of: CommandOutput?.self) { group in
            group.addTask {
                let status: TerminationStatus
                let out: String?
                let err: String?
                if let input {
                    let r = try await Subprocess.run(config, input: .array(input), output: .string(limit: limit), error: .string(limit: limit))
                    (status, out, err) = (r.terminationStatus, r.standardOutput, r.standardError)
                } else {
                    let r = try await Subprocess.run(config, input: .none, output: .string(limit: limit), error: .string(limit: limit))
                    (status, out, err) = (r.terminationStatus, r.standardOutput, r.standardError)
                }
                let code: Int32
                switch status {
                case .exited(let c): code = c
                case .signaled(let s): code = 128 + s
                }
                return CommandOutput(status: code, stdout: out ?? "", stderr: err ?? "")
            }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw TimedOut(command: argv[0], seconds: timeout)
            }
            return result
        }
    }
}

/// How an ssh failure reads (pure: from ssh's exit status and stderr).
public enum SSHFailure: Equatable, Sendable {
    case hostKeyChanged, hostKeyNotPinned, authentication, unreachable, other

    public static func classify(status: Int32, stderr: String) -> SSHFailure? {
        guard status == 255 else { return nil }
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("Host key for ") && stderr.contains("has changed") {
            return .hostKeyChanged
        }
        if stderr.contains("Host key verification failed") || stderr.contains("No ") && stderr.contains("host key is known") {
            return .hostKeyNotPinned
        }
        if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
            return .authentication
        }
        if stderr.contains("Connection refused") || stderr.contains("timed out") || stderr.contains("No route to host")
            || stderr.contains("Could not resolve") || stderr.contains("Connection closed") || stderr.contains("Connection reset")
            || stderr.contains("Network is unreachable") || stderr.contains("kex_exchange_identification")
        {
            return .unreachable
        }
        return .other
    }
}

extension ConversionHost {
    /// `name (address:port)` for messages.
    var label: String { "conversion host \(name) (\(address):\(ssh.port ?? 22))" }

    /// The pinned known_hosts file the migrator uses for this host.
    var knownHostsFile: String? {
        ssh.options.first { $0.hasPrefix("UserKnownHostsFile=") }.map { String($0.dropFirst("UserKnownHostsFile=".count)) }
    }

    /// A one-line error for an ssh failure to this host, or nil when ssh itself did not fail.
    func sshError(_ out: CommandOutput) -> ConversionHostError? {
        guard let failure = SSHFailure.classify(status: out.status, stderr: out.stderr) else { return nil }
        let deploy = "`os-migrate conversion-hosts deploy --cloud \(side.rawValue)`"
        let alias = HostKeyPinning.alias(serverID: serverID)
        let file = knownHostsFile ?? "the pinned known_hosts file"
        switch failure {
        case .hostKeyChanged:
            return ConversionHostError(.hostKeyChanged,
                "\(label) presented an SSH host key that differs from the one pinned in \(file) on first contact: "
                + "the server was rebuilt, or someone is intercepting the connection. Nothing was sent to it. "
                + "If you rebuilt it on purpose, delete the lines starting with '\(alias)' from that file and run \(deploy) to pin the new key")
        case .hostKeyNotPinned:
            return ConversionHostError(.hostKeyNotPinned,
                "\(label): its SSH host key is not pinned in \(file): run \(deploy) to pin it")
        case .authentication:
            return ConversionHostError(.authentication,
                "\(label) refused the key \(ssh.identity ?? "(default)") for user \(ssh.user ?? "(default)"): \(out.lastErrorLine ?? "permission denied")")
        case .unreachable:
            return ConversionHostError(.unreachable, "cannot reach \(label) over ssh: \(out.lastErrorLine ?? "connection failed")")
        case .other:
            return ConversionHostError(.unreachable, "ssh to \(label) failed: \(out.lastErrorLine ?? "exit status 255")")
        }
    }

    /// Runs a shell command on the host over SSH (pinned host key, our key). ssh failures
    /// (unreachable, refused, host key) throw; the command's own status is returned.
    public func run(_ command: String, stdin: Data? = nil, timeout: Double = 300) async throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let out = try await runRaw(command, stdin: stdin, timeout: timeout)
        if let e = sshError(out) { throw e }
        return (out.status, out.stdout, out.stderr)
    }

    /// Like `run`, but a non-zero status throws with the last stderr line.
    @discardableResult
    func runChecked(_ command: String, stdin: Data? = nil, timeout: Double = 300, what: String) async throws -> String {
        let r = try await run(command, stdin: stdin, timeout: timeout)
        guard r.status == 0 else {
            let why = CommandOutput(status: r.status, stdout: r.stdout, stderr: r.stderr).lastErrorLine ?? "exit status \(r.status)"
            throw ConversionHostError(.other, "\(label): \(what) failed: \(why)")
        }
        return r.stdout
    }

    func runRaw(_ command: String, stdin: Data? = nil, timeout: Double = 300) async throws -> CommandOutput {
        let lease = SSHMultiplexing.shared.lease(for: ssh)
        defer { lease.release() }
        do {
            return try await LocalCommand.run(ssh.sshArguments(lease: lease) + [command], input: stdin.map { [UInt8]($0) }, timeout: timeout)
        } catch let e as LocalCommand.TimedOut {
            throw ConversionHostError(.unreachable, "\(label): ssh did not answer within \(Int(e.seconds)) s")
        }
    }
}

/// Remote shell fragments (pure).
enum RemoteShell {
    /// A path for the remote shell: `~/x` becomes `"$HOME"/x` (expanded there), the rest quoted.
    static func path(_ p: String) -> String {
        if p == "~" { return "\"$HOME\"" }
        if p.hasPrefix("~/") { return "\"$HOME\"/" + shellQuote(String(p.dropFirst(2))) }
        return shellQuote(p)
    }

    /// Appends `line` to `file` unless it is already there (creating the file and its directory 0700/0600).
    static func appendOnce(line: String, to file: String) -> String {
        let f = path(file)
        return "set -e; umask 077; f=\(f); mkdir -p \"$(dirname \"$f\")\"; touch \"$f\"; "
            + "grep -qxF \(shellQuote(line)) \"$f\" || printf '%s\\n' \(shellQuote(line)) >> \"$f\""
    }

    /// Writes stdin to `file` atomically with mode 0600; prints the absolute path.
    static func writeStdin(to file: String) -> String {
        let f = path(file)
        return "set -e; umask 077; f=\(f); d=\"$(dirname \"$f\")\"; mkdir -p \"$d\"; t=\"$f.tmp.$$\"; cat > \"$t\"; chmod 600 \"$t\"; "
            + "mv -f \"$t\" \"$f\"; cd \"$d\" && printf '%s\\n' \"$(pwd -P)/$(basename \"$f\")\""
    }
}
