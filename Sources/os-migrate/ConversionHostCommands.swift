import ArgumentParser
import DataPlane
import Engine
import Foundation
import OpenStack
import Resources
import Synchronization
import Workloads

/// `os-migrate conversion-hosts deploy|status|delete [--cloud src|dst|both]`.
struct ConversionHostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conversion-hosts",
        abstract: "Deploy, check or delete the conversion hosts that carry the workloads' disks.",
        discussion: """
            One server per cloud (os_migrate_conv_src, os_migrate_conv_dst) with its network, router, security group, \
            keypair and floating IP, configured by the vars file's os_migrate_conversion_* variables. Host keys are \
            pinned on first contact in <data-dir>/conversion/known_hosts. See docs/conversion-hosts.md.
            """,
        subcommands: [Deploy.self, Status.self, Delete.self])

    enum Side: String, ExpressibleByArgument, CaseIterable {
        case src, dst, both
        var sides: [CloudSide] {
            switch self {
            case .src: return [.src]
            case .dst: return [.dst]
            case .both: return [.src, .dst]
            }
        }
    }

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create (or reuse, by name) the conversion hosts, pin their host keys, install the agent, link dst to src.")

        @Option(name: .long, help: "Which cloud's host: src, dst or both.") var cloud: Side = .both
        @OptionGroup var common: CommonOptions

        func run() async throws {
            try await Context.run(common, sides: cloud.sides) { ctx in
                let items = ItemLog(json: common.json)
                let log = items.log
                var hosts: [CloudSide: ConversionHost] = [:]
                var failures: [String] = []
                // No (side, Result<_, Error>) tuples out of the group: Swift 6.3.1 -O hands them back
                // with the side of another task (reproduced in isolation), which linked dst → dst.
                await withTaskGroup(of: DeployOutcome.self) { group in
                    for side in cloud.sides {
                        let settings = ctx.settings[side]!, session = ctx.sessions[side]!
                        group.addTask {
                            guard settings.deployEnabled else {
                                log(settings.serverItem(.skipped, "os_migrate_deploy_\(side.rawValue)_conversion_host is false"))
                                return DeployOutcome(side: side, host: nil, failure: nil)
                            }
                            do {
                                return DeployOutcome(side: side, host: try await ConversionHosts.deploy(settings, session: session, log: log), failure: nil)
                            } catch {
                                return DeployOutcome(side: side, host: nil, failure: "\(error)")
                            }
                        }
                    }
                    for await outcome in group {
                        if let h = outcome.host { hosts[h.side] = h }
                        if let e = outcome.failure {
                            failures.append(e)
                            log(ctx.settings[outcome.side]!.serverItem(.failed, e))
                        }
                    }
                }
                // The link, whenever both hosts exist (a redeployed source host needs it renewed).
                let srcSettings = ctx.settings[.src]!
                if failures.isEmpty, srcSettings.linkHosts {
                    do {
                        var src = hosts[.src], dst = hosts[.dst]
                        if src == nil, let s = ctx.sessions[.src] { src = try await ConversionHosts.locate(srcSettings, session: s) }
                        if dst == nil, let s = ctx.sessions[.dst] {
                            // Only the source host was deployed: renew the link if the destination host is there.
                            do { dst = try await ConversionHosts.locate(ctx.settings[.dst]!, session: s) } catch let e as ConversionHostError {
                                if e.kind != .notFound { items.sink.note("link not renewed: \(e)") }
                                dst = nil
                            }
                        }
                        if let src, let dst {
                            try await ConversionHosts.link(src: src, dst: dst, sourceSettings: srcSettings, srcSession: ctx.sessions[.src],
                                                           dstSession: ctx.sessions[.dst], log: log)
                        } else if cloud != .src {
                            items.sink.note("link not set up: the source cloud is not configured (--src-cloud or --vars)")
                        }
                    } catch {
                        failures.append("\(error)")
                        log(ItemResult(kind: "link", name: "dst → src", status: .failed, message: "\(error)"))
                    }
                }
                return items.finish(failures: failures)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the conversion hosts: server, addresses, SSH with the pinned host key, agent version, link.")

        @Option(name: .long, help: "Which cloud's host: src, dst or both.") var cloud: Side = .both
        @OptionGroup var common: CommonOptions

        func run() async throws {
            try await Context.run(common, sides: cloud.sides) { ctx in
                var reports: [ConversionHostStatus] = []
                await withTaskGroup(of: ConversionHostStatus.self) { group in
                    for side in cloud.sides {
                        let settings = ctx.settings[side]!, session = ctx.sessions[side]!
                        group.addTask { await ConversionHosts.status(settings, session: session) }
                    }
                    for await r in group { reports.append(r) }
                }
                reports.sort { $0.side == .src && $1.side == .dst }
                if let i = reports.firstIndex(where: { $0.side == .dst }), reports[i].reachable,
                   let srcSession = ctx.sessions[.src], let dstSession = ctx.sessions[.dst], ctx.settings[.src]!.linkHosts
                {
                    reports[i].link = await ConversionHosts.linkStatus(src: ctx.settings[.src]!, srcSession: srcSession,
                                                                       dst: ctx.settings[.dst]!, dstSession: dstSession)
                }
                let ok = reports.allSatisfy(\.ok)
                if common.json {
                    var hosts: JSONObject = [:]
                    for r in reports { hosts[r.side.rawValue] = r.json }
                    printLine(JSONValue.object(["hosts": .object(hosts), "ok": .bool(ok)]).jsonString())
                } else {
                    for r in reports { printLine(r.text) }
                }
                for r in reports {
                    for p in r.problems + (r.link?.problem.map { [$0] } ?? []) {
                        FileHandle.standardError.write(Data(("os-migrate: error: " + p + "\n").utf8))
                    }
                }
                return ok ? 0 : 1
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete the conversion hosts and what deploy created for them (idempotent).")

        @Option(name: .long, help: "Which cloud's host: src, dst or both.") var cloud: Side = .both
        @Flag(name: .long, help: "Also delete the data directory's conversion keys and pinned host keys (with --cloud both only).")
        var purgeKeys = false
        @OptionGroup var common: CommonOptions

        func validate() throws {
            if purgeKeys && cloud != .both {
                throw ValidationError("--purge-keys needs --cloud both: both hosts use the same keys")
            }
        }

        func run() async throws {
            try await Context.run(common, sides: cloud.sides) { ctx in
                let items = ItemLog(json: common.json)
                let log = items.log
                var failures: [String] = []
                // The link key on the destination host goes first (when both hosts are there).
                if let srcSession = ctx.sessions[.src], let dstSession = ctx.sessions[.dst],
                   let src = try? await ConversionHosts.locate(ctx.settings[.src]!, session: srcSession),
                   let dst = try? await ConversionHosts.locate(ctx.settings[.dst]!, session: dstSession)
                {
                    await ConversionHosts.unlink(src: src, dst: dst)
                }
                await withTaskGroup(of: String?.self) { group in
                    for side in cloud.sides {
                        let settings = ctx.settings[side]!, session = ctx.sessions[side]!
                        group.addTask {
                            guard settings.deleteEnabled else {
                                log(settings.serverItem(.skipped, "os_migrate_delete_\(side.rawValue)_conversion_host is false"))
                                return nil
                            }
                            do {
                                try await ConversionHosts.delete(settings, session: session, log: log)
                                return nil
                            } catch {
                                log(settings.serverItem(.failed, "\(error)"))
                                return "\(error)"
                            }
                        }
                    }
                    for await f in group { if let f { failures.append(f) } }
                }
                if purgeKeys && failures.isEmpty {
                    for p in try ConversionHosts.purgeKeys(ctx.settings[.src]!) {
                        log(ItemResult(kind: "key file", name: p, status: .changed, action: "deleted"))
                    }
                }
                return items.finish(failures: failures)
            }
        }
    }

    /// Settings for both sides, sessions for the selected ones (and for the other one when configured).
    struct DeployOutcome: Sendable {
        let side: CloudSide
        let host: ConversionHost?
        let failure: String?
    }

    struct Context {
        var settings: [CloudSide: ConversionHostSettings] = [:]
        var sessions: [CloudSide: CloudSession] = [:]

        /// `CommandRunner.run` with the context of `sides` made first, inside it.
        static func run(_ common: CommonOptions, sides: [CloudSide], _ body: (Context) async throws -> Int32) async throws {
            SSHMultiplexing.shared.enable()
            try await CommandRunner.run(common) { transport in
                try await body(try Context(common: common, transport: transport, sides: sides))
            }
        }

        init(common: CommonOptions, transport: HTTPTransport, sides: [CloudSide]) throws {
            let config = try common.configuration()
            for side in CloudSide.allCases {
                settings[side] = try ConversionHostSettings.load(side: side, vars: config.vars, dataDir: config.dataDir)
            }
            for side in CloudSide.allCases {
                let profile: CloudProfile?
                if sides.contains(side) {
                    profile = side == .src ? try config.requireSource() : try config.requireDestination()
                } else {
                    profile = side == .src ? config.src : config.dst
                }
                if let profile { sessions[side] = try CloudSession(profile: profile, transport: transport) }
            }
        }
    }
}

/// Deploy's and delete's progress: each item shown as it comes, and kept for the recap.
final class ItemLog: Sendable {
    let sink: ConsoleSink
    private let results = Mutex<[ItemResult]>([])

    init(json: Bool) { sink = ConsoleSink(json: json) }

    var log: ConversionHosts.Log {
        { [self] r in
            results.withLock { $0.append(r) }
            sink.item(r)
        }
    }

    /// The recap, then one error line per failure; the exit status.
    func finish(failures: [String]) -> Int32 {
        sink.recap(Recap(results.withLock { $0 }))
        for f in failures { CommandRunner.printError(ConfigError(f)) }
        return failures.isEmpty ? 0 : 1
    }
}

extension ConversionHostSettings {
    /// The `<side> server` line of this side's host.
    func serverItem(_ status: ItemResult.Status, _ message: String) -> ItemResult {
        ItemResult(kind: "\(side.rawValue) server", name: hostName, status: status, message: message)
    }
}
