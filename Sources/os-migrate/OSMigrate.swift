import ArgumentParser
import DataPlaneCLI

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
}
