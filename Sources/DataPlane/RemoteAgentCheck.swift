import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `agent version` said on a remote host.
public struct RemoteAgentInfo: Sendable, Codable, Equatable {
    /// The line `os-migrate agent version` printed (`os-migrate-agent 0.1.0 protocol 1 build …`).
    public var version: String
    /// True when this call copied the binary there (it was missing, or of another build).
    public var deployed: Bool

    public init(version: String, deployed: Bool) {
        self.version = version
        self.deployed = deployed
    }
}

/// Runs `os-migrate agent version` on a remote host through the same deployment the copy uses
/// (the binary in `~/.cache/os-migrate/os-migrate-<version>-<build>`, copied there when missing,
/// or the endpoint's `remoteCommand`), so that a host can be checked before any copy.
public enum RemoteAgentCheck {
    /// The remote command string that runs `os-migrate <arguments>` on the endpoint (for nesting
    /// in another ssh command, e.g. from a destination host to a source host).
    public static func remoteCommand(_ endpoint: SSHEndpoint, arguments: [String],
                                     executable: String = agentExecutablePath()) throws -> String {
        let buildID = endpoint.remoteCommand == nil ? try RemoteAgent.buildID(executable: executable) : nil
        return RemoteAgent.command(endpoint, args: arguments, buildID: buildID)
    }

    /// Exit status of the remote command when the deployed binary is missing.
    public static var missingStatus: Int32 { RemoteAgent.missingStatus }

    /// `agent version` on the endpoint. With `deploy`, a missing binary is copied there first;
    /// without it, a missing binary is a `.notFound` error. A binary that cannot run there (another
    /// architecture, an older glibc, missing libraries) is an `.other` error that says why; ssh
    /// failures are `.connect` errors.
    public static func version(_ endpoint: SSHEndpoint, deploy: Bool = true, executable: String = agentExecutablePath(),
                               timeout: Double = 120) throws -> RemoteAgentInfo {
        let buildID = endpoint.remoteCommand == nil ? try RemoteAgent.buildID(executable: executable) : nil
        var deployed = false
        while true {
            let lease = SSHMultiplexing.shared.lease(for: endpoint)
            let argv = endpoint.sshArguments(lease: lease) + [RemoteAgent.command(endpoint, args: ["agent", "version"], buildID: buildID)]
            let child = try ChildProcess(argv: argv, stdin: .null, stdout: .pipe, stderr: .pipe)
            child.collectStderr()
            // One short line: it fits the pipe, so waiting first cannot block the child.
            let status = child.wait(timeout: timeout)
            lease.release()
            let out = readAll(child.stdoutFD)
            let stderr = child.stderrText()
            let line = String(decoding: out, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            if status.succeeded, line.hasPrefix("os-migrate-agent ") {
                return RemoteAgentInfo(version: line, deployed: deployed)
            }
            let why = lastLine(stderr)
            if status == .exited(RemoteAgent.missingStatus), endpoint.remoteCommand == nil, let buildID {
                guard deploy, !deployed else {
                    throw DataPlaneError("the os-migrate agent (build \(buildID)) is not installed on \(endpoint.host)", kind: .notFound)
                }
                try RemoteAgent.upload(endpoint, executable: executable, buildID: buildID)
                deployed = true
                continue
            }
            if status == .exited(255) {
                throw DataPlaneError("cannot connect to \(endpoint.destination) over ssh: \(why ?? status.description)", kind: .connect)
            }
            let what = endpoint.remoteCommand.map { "the os-migrate agent \($0)" } ?? "the os-migrate agent"
            if status.succeeded {
                throw DataPlaneError("\(what) on \(endpoint.host) printed an unexpected version line: \(line.isEmpty ? "(nothing)" : line)",
                                     kind: .protocolError)
            }
            throw DataPlaneError("\(what) cannot run on \(endpoint.host): \(why ?? status.description)", kind: .other)
        }
    }

    private static func readAll(_ fd: Int32) -> [UInt8] {
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { (try? readSome(fd, $0.baseAddress!, $0.count)) ?? 0 }
            if n <= 0 { break }
            if data.count < 65536 { data += buf[0..<n] }
        }
        return data
    }

    private static func lastLine(_ text: String) -> String? {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }.last
    }
}
