import ArgumentParser
import AgentCompat
import DataPlaneCLI

/// The block-copy agent alone: what `conversion-hosts deploy` and the data plane copy to the
/// conversion hosts. Built self-contained (`scripts/build-agent`: static Swift runtime, linked
/// against the oldest supported glibc), it runs on any x86_64 Linux with glibc 2.31 or later.
/// Its command line is os-migrate's: `os-migrate-agent agent send|receive|version|digest`.
@main
struct OSMigrateAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "os-migrate-agent",
        abstract: "The os-migrate block-copy agent that runs on conversion hosts (see `os-migrate agent --help`).",
        subcommands: [AgentCommand.self])
}
