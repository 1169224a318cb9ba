import DataPlane
import Foundation
import Testing
import TestSupport

/// The agent `conversion-hosts deploy` copies must run on old conversion hosts: the
/// self-contained build of `scripts/build-agent` in a Debian 11 userland (glibc 2.31), reached
/// the way a conversion host is, over ssh. `scripts/test` builds the agent and the Debian 11
/// sysroot (debootstrap) first; here an sshd runs every session inside that sysroot (chroot).
/// No cloud: a host test (root, chroot, mount), not a lab test.
@Suite("The self-contained agent on glibc 2.31 (a Debian 11 chroot)", .serialized)
struct PortableAgentTests {
    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/HostTests/PortableAgentTests.swift
        return url.path
    }()
    static var agent: String {
        ProcessInfo.processInfo.environment["OSM_PORTABLE_AGENT"] ?? repository + "/.build/release/os-migrate-agent"
    }
    static var sysroot: String {
        ProcessInfo.processInfo.environment["OSM_AGENT_SYSROOT"] ?? "/var/cache/os-migrate/bullseye"
    }

    @Test("deployed over ssh into Debian 11, it prints its version and receives a verified copy")
    func oldGlibc() async throws {
        let root = Self.sysroot
        guard FileManager.default.isExecutableFile(atPath: Self.agent), FileManager.default.fileExists(atPath: root + "/.complete") else {
            throw TestFailure("no self-contained agent at \(Self.agent) or no sysroot at \(root): run scripts/build-agent")
        }
        let libc = try Self.output("/usr/sbin/chroot", [root, "/lib/x86_64-linux-gnu/libc.so.6"])
        #expect(libc.contains("release version 2.31"), "\(libc)")

        // The Swift runtime reads /proc/self: a conversion host has it, the chroot needs it mounted.
        let mounted = (try String(contentsOfFile: "/proc/mounts", encoding: .utf8)).contains(" \(root)/proc ")
        if !mounted { #expect(try Self.runSync("/usr/bin/mount", ["-t", "proc", "proc", root + "/proc"]) == 0) }
        defer { if !mounted { _ = try? Self.runSync("/usr/bin/umount", [root + "/proc"]) } }

        let server = try SSHServer(extraConfig: "ForceCommand /usr/sbin/chroot \(root) /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n")
        defer { server.stop() }
        // Inside, the receiver reaches the sender (this same sshd) with the same key and pin.
        let inside = root + server.directory
        try FileManager.default.createDirectory(atPath: inside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: inside) }
        for f in ["id_ed25519", "known_hosts"] {
            try FileManager.default.copyItem(atPath: server.directory + "/" + f, toPath: inside + "/" + f)
        }
        try? FileManager.default.removeItem(atPath: root + "/root/.cache/os-migrate")
        try? FileManager.default.removeItem(atPath: root + "/root/.local/state/os-migrate")

        let endpoint = SSHEndpoint(user: server.user, host: server.host, port: server.port, identity: server.identityFile,
                                   options: server.sshOptionValues)
        let info = try RemoteAgentCheck.version(endpoint, deploy: true, executable: Self.agent)
        #expect(info.deployed)
        #expect(info.version == "os-migrate-agent \(DataPlane.version) protocol \(Hello.protocolVersion) build \(try AgentBuild.id(executable: Self.agent))")
        #expect(FileManager.default.fileExists(atPath: root + "/root/.cache/os-migrate"), "deployed inside the chroot")

        // 40 MiB: data at three places, the rest a hole.
        let src = root + "/tmp/osm-portable-src.img", dst = root + "/tmp/osm-portable-dst.img"
        defer { for p in [src, dst] { try? FileManager.default.removeItem(atPath: p) } }
        try? FileManager.default.removeItem(atPath: dst)
        _ = FileManager.default.createFile(atPath: src, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: src))
        for (offset, seed) in [(0, 1), (9 << 20, 2), ((40 << 20) - 65536, 3)] {
            try h.seek(toOffset: UInt64(offset))
            h.write(Data((0..<65536).map { UInt8(truncatingIfNeeded: $0 * seed + seed) }))
        }
        try h.close()

        var args = ["copy", "\(server.destination):/tmp/osm-portable-src.img", "\(server.destination):/tmp/osm-portable-dst.img",
                    "--port", String(server.port), "--identity", server.identityFile, "--json"]
        for o in server.sshOptionValues { args += ["--ssh-option", o] }
        let r = try await CLIRunner.run(args, env: ["OSM_AGENT_BINARY": Self.agent], timeout: 300)
        #expect(r.exitCode == 0, "\(r.stderr)\n\(r.stdout)")
        let result = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(result.contains("\"verified\":true"), "\(result)")
        #expect(FileManager.default.contentsEqual(atPath: src, andPath: dst))
    }

    static func output(_ exe: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    static func runSync(_ exe: String, _ args: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}
