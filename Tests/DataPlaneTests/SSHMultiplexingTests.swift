import DataPlane
import Foundation
import Testing
import TestSupport

@Suite("SSH connection sharing")
struct SSHMultiplexingTests {
    static let endpoint = SSHEndpoint(user: "root", host: "10.0.0.5", port: 22, identity: "/k", options: ["UserKnownHostsFile=/kh"])

    @Test func offUntilEnabledThenAtMostMaxSessionsShareAConnection() throws {
        let mux = SSHMultiplexing()
        #expect(mux.lease(for: Self.endpoint).path == nil)
        mux.enable()
        var leases = (0..<SSHMultiplexing.maxSessions).map { _ in mux.lease(for: Self.endpoint) }
        let path = try #require(leases[0].path)
        #expect(leases.allSatisfy { $0.path == path })
        #expect(leases[0].options == ["ControlMaster=auto", "ControlPath=\(path)", "ControlPersist=15"])
        // The ninth session opens its own connection, until one of the eight ends.
        #expect(mux.lease(for: Self.endpoint).path == nil)
        leases[3].release()
        leases[3].release()  // once only
        let again = mux.lease(for: Self.endpoint)
        #expect(again.path == path)
        #expect(mux.lease(for: Self.endpoint).path == nil)
        leases.append(again)
        // The private directory: mode 0700, removed by closeAll.
        let dir = (path as NSString).deletingLastPathComponent
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int)
        #expect(mode == 0o700)
        #expect((dir as NSString).lastPathComponent.hasPrefix("osm-ssh-"))
        mux.closeAll()
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    @Test func onlySessionsAskedTheSameWayShareAndTheOperatorsControlOptionsWin() {
        let mux = SSHMultiplexing()
        mux.enable()
        defer { mux.closeAll() }
        var accepting = Self.endpoint
        accepting.options.append("StrictHostKeyChecking=accept-new")
        var otherPort = Self.endpoint
        otherPort.port = 2222
        let paths = [Self.endpoint, accepting, otherPort].map { mux.lease(for: $0).path }
        #expect(Set(paths.compactMap { $0 }).count == 3)
        #expect(SSHMultiplexing.socketName(Self.endpoint) == SSHMultiplexing.socketName(Self.endpoint))
        #expect(SSHMultiplexing.socketName(Self.endpoint).count == 16)
        var own = Self.endpoint
        own.options.append("ControlMaster=no")
        #expect(mux.lease(for: own).path == nil)
        #expect(!own.sshArguments(lease: mux.lease(for: own)).contains { $0.hasPrefix("ControlPath=") })
        let lease = mux.lease(for: Self.endpoint)
        let args = Self.endpoint.sshArguments(lease: lease)
        #expect(args.contains("ControlPath=\(lease.path!)"))
        #expect(args.firstIndex(of: "UserKnownHostsFile=/kh")! < args.firstIndex(of: "ControlMaster=auto")!)
    }

    /// Against a real sshd: the first session starts the shared connection and returns at once (the
    /// connection lives on in the background, detached from our pipes), the second runs on it, exit
    /// statuses and stderr come through, and closeAll ends the connection.
    @Test func sessionsRunOnOneConnectionThatCloseAllEnds() throws {
        let server = try SSHServer()
        defer { server.stop() }
        let mux = SSHMultiplexing()
        mux.enable()
        defer { mux.closeAll() }
        let endpoint = SSHEndpoint(user: server.user, host: server.host, port: server.port, identity: server.identityFile,
                                   options: server.sshOptionValues)
        func run(_ command: String) throws -> (Int32, String, Double) {
            let lease = mux.lease(for: endpoint)
            defer { lease.release() }
            let start = ContinuousClock.now
            let child = try ChildProcess(argv: endpoint.sshArguments(lease: lease) + [command], stdin: .null, stdout: .null, stderr: .pipe)
            child.collectStderr()
            let status = child.wait(timeout: 30)
            let d = (ContinuousClock.now - start).components
            return (status.code, child.stderrText(), Double(d.seconds) + Double(d.attoseconds) / 1e18)
        }
        let path = try #require(mux.lease(for: endpoint).path)
        let first = try run("true")
        #expect(first.0 == 0)
        #expect(first.2 < 10, "the first session waited for the background connection: \(first.2) s")
        #expect(FileManager.default.fileExists(atPath: path))
        let second = try run("echo shared >&2; exit 3")
        #expect(second.0 == 3)
        #expect(second.1.contains("shared"))
        let check = try ChildProcess(argv: ["ssh", "-o", "ControlPath=" + path, "-O", "check", "x"], stdin: .null, stdout: .null, stderr: .null)
        #expect(check.wait(timeout: 10).code == 0)
        mux.closeAll()
        #expect(!FileManager.default.fileExists(atPath: path))
        let after = try ChildProcess(argv: ["ssh", "-o", "ControlPath=" + path, "-O", "check", "x"], stdin: .null, stdout: .null, stderr: .null)
        #expect(after.wait(timeout: 10).code != 0)
    }
}
