import Foundation
import Subprocess

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Runs the built `os-migrate` binary, the way a user does.
///
/// The binary is the one next to the running test executable (`dirname /proc/self/exe`, e.g.
/// `.build/debug/os-migrate`), or `$OSM_BINARY`. The child inherits the test process's
/// environment without its `OS_*` variables (a developer's OS_CLOUD must not leak in), then
/// `env` on top of it.
public struct CLIRunner {
    public struct Timeout: Error, CustomStringConvertible {
        public var args: [String]
        public var seconds: Double
        public var description: String { "os-migrate \(args.joined(separator: " ")) did not finish within \(seconds) s" }
    }

    public struct NotBuilt: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "os-migrate binary not found at \(path): build with `swift build --build-tests`" }
    }

    /// The `os-migrate` executable.
    public static var binaryPath: String {
        if let p = ProcessInfo.processInfo.environment["OSM_BINARY"], !p.isEmpty { return p }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments.first ?? "."
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("os-migrate").path
    }

    /// The agent the CLI deploys to conversion hosts: `os-migrate-agent` beside the binary.
    public static var agentPath: String {
        URL(fileURLWithPath: binaryPath).deletingLastPathComponent().appendingPathComponent("os-migrate-agent").path
    }

    public static func run(_ args: [String], env: [String: String] = [:], stdin: String? = nil, timeout: Double = 300,
                           workingDirectory: String? = nil) async throws -> (exitCode: Int32, stdout: String, stderr: String)
    {
        let path = binaryPath
        guard FileManager.default.isExecutableFile(atPath: path) else { throw NotBuilt(path: path) }
        var overrides: [Environment.Key: String?] = [:]
        for key in ProcessInfo.processInfo.environment.keys where key.hasPrefix("OS_") {
            overrides[Environment.Key(stringLiteral: key)] = .some(nil)
        }
        for (k, v) in env { overrides[Environment.Key(stringLiteral: k)] = v }
        let environment = Environment.inherit.updating(overrides)
        let config = Configuration(executable: .path(FilePath(path)), arguments: Arguments(args), environment: environment,
                                   workingDirectory: workingDirectory.map { FilePath($0) })
        let limit = 64 << 20

        return try await withThrowingTaskGroup(of: (Int32, String, String)?.self) { group in
            group.addTask {
                let status: TerminationStatus
                let out: String?
                let err: String?
                if let stdin {
                    let r = try await Subprocess.run(config, input: .string(stdin), output: .string(limit: limit), error: .string(limit: limit))
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
                return (code, out ?? "", err ?? "")
            }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw Timeout(args: args, seconds: timeout)
            }
            return (exitCode: result.0, stdout: result.1, stderr: result.2)
        }
    }
}
