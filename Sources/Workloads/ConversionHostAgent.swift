import DataPlane
import Foundation
import OpenStack
import Resources

/// Whether the os-migrate agent runs on a conversion host (and installing it there).
extension ConversionHosts {
    /// `agent version` on the host (deploying this binary there when `deploy` and no agent path is set).
    public static func checkAgent(_ host: ConversionHost, deploy: Bool, executable: String? = nil) async throws -> RemoteAgentInfo {
        let endpoint = host.ssh
        let exe = executable ?? agentExecutablePath()
        let fix = host.ssh.remoteCommand == nil
            ? "deploy the self-contained agent (`scripts/build-agent`, installed as os-migrate-agent beside os-migrate: "
                + "x86_64 Linux with glibc \(AgentBuild.minimumGlibc.major).\(AgentBuild.minimumGlibc.minor) or later), "
                + "or install os-migrate there and set os_migrate_\(host.side.rawValue)_conversion_host_agent_path"
            : "check os_migrate_\(host.side.rawValue)_conversion_host_agent_path"
        // Another architecture: say so before copying a binary that cannot run there.
        if host.ssh.remoteCommand == nil, let local = ELFMachine.of(path: exe) {
            let r = try await host.run("uname -m", timeout: 60)
            let remote = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if r.status == 0, !remote.isEmpty, !ELFMachine.compatible(local, remote) {
                throw ConversionHostError(.agent, "\(host.label): the os-migrate agent cannot run there: this binary is built for \(local), "
                    + "the host is \(remote); \(fix)")
            }
        }
        do {
            return try await onThread {
                Result { try RemoteAgentCheck.version(endpoint, deploy: deploy, executable: exe) }
            }.get()
        } catch let e as DataPlaneError {
            switch e.kind {
            case .connect:
                // Say it the way every other ssh failure to this host is said.
                let probe = try await host.runRaw("true", timeout: 60)
                if let se = host.sshError(probe) { throw se }
                throw ConversionHostError(.unreachable, "\(host.label): \(e.message)")
            case .notFound:
                throw ConversionHostError(.agent, "\(host.label): the os-migrate agent of this build is not installed: "
                    + "run `os-migrate conversion-hosts deploy --cloud \(host.side.rawValue)`")
            default:
                var platform = ""
                if let r = try? await host.run("uname -m; ldd --version 2>&1 | head -n 1", timeout: 30), r.status == 0 {
                    let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                    platform = " (host: " + lines.joined(separator: ", ") + ")"
                    if lines.count > 1, AgentBuild.glibcTooOld(lddLine: lines[1]) {
                        platform += "; its glibc is older than the \(AgentBuild.minimumGlibc.major).\(AgentBuild.minimumGlibc.minor) the agent needs"
                    }
                }
                throw ConversionHostError(.agent, "\(host.label): \(e.message)\(platform); \(fix)")
            }
        }
    }
}
