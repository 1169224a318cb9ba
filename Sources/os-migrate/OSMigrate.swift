import ArgumentParser
import DataPlaneCLI
import Engine

@main
struct OSMigrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "os-migrate",
        abstract: "Migrate an OpenStack tenant from one cloud to another through the OpenStack APIs.",
        discussion: """
            Export resources from the source cloud to editable YAML files in the data directory, \
            then import them into the destination cloud. Clouds come from clouds.yaml (--src-cloud, \
            --dst-cloud), the OS_* variables, or the Ansible os-migrate vars file (--vars).
            """,
        subcommands: [CheckCommand.self, ExportCommand.self, ImportCommand.self, ValidateCommand.self, ReportCommand.self,
                      ConversionHostsCommand.self, AgentCommand.self, CopyCommand.self])

    /// A first word that is no command is reported as such, not as the option after it
    /// (`os-migrate frobnicate --dst-cloud x` would otherwise say "Unknown option '--dst-cloud'").
    static func main() async {
        let args = Array(CommandLine.arguments.dropFirst())
        if let problem = unknownCommand(args) { exit(withError: ValidationError(problem)) }
        await main(nil)
    }

    /// The problem with the first argument when it is neither an option nor a command.
    static func unknownCommand(_ args: [String]) -> String? {
        guard let first = args.first, !first.hasPrefix("-") else { return nil }
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        guard !names.contains(first) else { return nil }
        return "unknown command '\(TerminalText.escaped(first, limit: 60))': the commands are " + names.dropLast().joined(separator: ", ")
    }
}
