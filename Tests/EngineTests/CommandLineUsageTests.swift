import Foundation
import Testing
import TestSupport

/// Mistakes on the command line are reported as what they are, before any cloud is contacted.
@Suite("Command line: mistakes named as they are")
struct CommandLineUsageTests {
    /// The first line of stderr (the error; the usage follows it).
    static func error(_ args: [String]) async throws -> (Int32, String) {
        let r = try await CLIRunner.run(args, env: ["OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml"], timeout: 60)
        return (r.exitCode, r.stderr.split(separator: "\n").first.map(String.init) ?? "")
    }

    @Test("an unknown command is named, not the option after it")
    func unknownCommand() async throws {
        let (code, line) = try await Self.error(["frobnicate", "--dst-cloud", "x"])
        #expect(code == 64)
        #expect(line == "Error: unknown command 'frobnicate': the commands are check, export, import, validate, report, conversion-hosts, agent, copy")
        // Options before a command and real commands are left to the parser.
        let (helpCode, _) = try await Self.error(["help"])
        #expect(helpCode == 0)
    }

    @Test("a negative number for a count or a time is refused as out of range, not as a missing value")
    func negativeNumbers() async throws {
        let cases: [([String], String)] = [
            (["import", "networks", "--concurrency", "-3"], "Error: --concurrency must be 1 to 64 (got -3)"),
            (["import", "workloads", "--parallel", "-1"], "Error: --parallel must be 1 to 32 (got -1)"),
            (["import", "workloads", "--copy-parallel", "-2"], "Error: --copy-parallel must be 1 to 16 (got -2)"),
            (["import", "workloads", "--timeout", "-5"], "Error: --timeout must be a positive number of seconds (got -5.0)"),
        ]
        for (args, expected) in cases {
            let (code, line) = try await Self.error(args + ["--dst-cloud", "x"])
            #expect(code == 64, "\(args)")
            #expect(line == expected, "\(args)")
        }
    }
}
