import ArgumentParser

/// `os-migrate agent send|receive`: the block-copy agent that runs on conversion hosts.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Internal: the block-copy agent that runs on conversion hosts.")
    func run() async throws { throw ValidationError("not implemented yet") }
}

/// `os-migrate copy SRC DST`: verified, sparse-aware block copy over SSH.
struct CopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy a block device or file between hosts over SSH, verified.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
