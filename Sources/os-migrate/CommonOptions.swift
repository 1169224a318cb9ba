import ArgumentParser
import Engine
import Foundation
import Logging
import OpenStack
import Synchronization

/// Options every subcommand accepts after its name.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Data directory holding the YAML files (default: os_migrate_data_dir from --vars, else ./os-migrate-data).", valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, help: ArgumentHelp("Source cloud: a clouds.yaml name, or 'envvars' for the OS_* variables.", valueName: "name"))
    var srcCloud: String?

    @Option(name: .long, help: ArgumentHelp("Destination cloud: a clouds.yaml name, or 'envvars' for the OS_* variables.", valueName: "name"))
    var dstCloud: String?

    @Option(name: .long, help: ArgumentHelp("The Ansible os-migrate vars file (os-migrate-vars.yml).", valueName: "file"))
    var vars: String?

    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    @Flag(name: [.short, .long], help: "More logging on stderr (-v info, -vv debug: every API call, -vvv trace).")
    var verbose: Int

    func configuration() throws -> RunConfiguration {
        try RunConfiguration.resolve(srcCloud: srcCloud, dstCloud: dstCloud, varsPath: vars, dataDir: dataDir)
    }

    func bootstrapLogging() {
        LogSetup.bootstrap(verbosity: verbose)
    }
}

enum LogSetup {
    private static let done = Mutex(false)

    static func bootstrap(verbosity: Int) {
        let first = done.withLock { d -> Bool in
            defer { d = true }
            return !d
        }
        guard first else { return }
        let level: Logger.Level
        switch verbosity {
        case 0: level = .warning
        case 1: level = .info
        case 2: level = .debug
        default: level = .trace
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// Runs a command body with the process's one HTTP transport, shutting it down afterwards,
/// and turns failures into one line on stderr and exit code 1.
enum CommandRunner {
    /// `run` with the run's configuration (clouds, vars, data dir) loaded first, inside it.
    static func run(_ common: CommonOptions, _ body: (HTTPTransport, RunConfiguration) async throws -> Int32) async throws {
        try await run(common) { transport in try await body(transport, try common.configuration()) }
    }

    static func run(_ common: CommonOptions, _ body: (HTTPTransport) async throws -> Int32) async throws {
        common.bootstrapLogging()
        // On a terminal, a request unanswered for 5 s says what it waits for.
        let waiting = isatty(STDERR_FILENO) == 1 ? HTTPTransport.WaitingNotice { printNotice($0) } : nil
        let transport = HTTPTransport(waiting: waiting)
        let code: Int32
        do {
            code = try await body(transport)
        } catch {
            await transport.shutdown()
            if let e = error as? ExitCode { throw e }
            if error is CleanExit { throw error }
            printError(error, json: common.json)
            throw ExitCode.failure
        }
        await transport.shutdown()
        if code != 0 { throw ExitCode(code) }
    }

    /// One line per problem on stderr, escaped (a value from a file or a cloud cannot forge a
    /// line or reach the terminal as control characters) and capped; with `--json` also one
    /// `{"event":"error",…}` object per problem on stdout.
    static func printError(_ error: any Error, json: Bool = false) {
        let problems: [String]
        if let v = error as? ValidationFailure {
            problems = v.problems
        } else {
            switch error {
            case let e as ConfigError: problems = [e.description]
            case let e as OpenStackError: problems = [e.description]
            case let e as CustomStringConvertible: problems = [e.description]
            default: problems = ["\(error)"]
            }
        }
        for p in problems {
            FileHandle.standardError.write(Data(("os-migrate: error: " + TerminalText.escaped(p, limit: 2000) + "\n").utf8))
            if json {
                FileHandle.standardOutput.write(Data((JSONValue.object(["event": "error", "message": .string(TerminalText.capped(p))]).jsonString() + "\n").utf8))
            }
        }
        if problems.count > 1 {
            FileHandle.standardError.write(Data("os-migrate: \(problems.count) problems found; nothing was changed\n".utf8))
        }
    }
}

/// A warning on stderr, one line, escaped and capped (nothing is refused for it).
func printWarning(_ s: String) {
    FileHandle.standardError.write(Data(("os-migrate: warning: " + TerminalText.escaped(s, limit: 2000) + "\n").utf8))
}

/// A progress notice on stderr, one line, escaped.
func printNotice(_ s: String) {
    FileHandle.standardError.write(Data(("os-migrate: " + TerminalText.escaped(s, limit: 2000) + "\n").utf8))
}

func printLine(_ s: String) {
    print(s)
}
