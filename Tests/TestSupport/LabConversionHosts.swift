import Foundation
import OpenStack

#if canImport(Glibc)
    import Glibc
#endif

/// Conversion hosts in the lab, ready for `os-migrate conversion-hosts deploy --vars <varsFile>`.
///
/// The lab's servers run on Nova's fake driver (no guest), so each conversion host is a Nova
/// server that deploy creates *plus* a private sshd on loopback (`SSHServer`) that stands in for
/// its guest. The vars file points deploy at the sshd through the per-side overrides:
///
/// - `os_migrate_<side>_conversion_host_ssh_address: 127.0.0.1`, `_ssh_port: <the sshd's port>`,
///   `_ssh_user: <the sshd's user, root in CI>`;
/// - `_device_discovery: /var/lib/osmlab/volumes/volume-{volume_id}`: an attached Cinder volume's
///   data is its file on the lab host (see the lab README; a volume with snapshots is a qcow2
///   overlay there, so stage from a volume made from the snapshot);
/// - `os_migrate_src_conversion_host_authorized_keys_file: <src sshd dir>/authorized_keys`, where
///   deploy authorizes the link key (the destination host's key for the source host);
/// - `os_migrate_conversion_host_ssh_timeout: 60`, `os_migrate_conversion_host_deploy_timeout: 600`.
///
/// The conversion host key (`<dataDir>/conversion/ssh.key`) is generated here, before deploy, and
/// its public key appended to both sshds' authorized_keys: this plays cloud-init's part (on a real
/// cloud Nova injects the keypair deploy creates from that same `ssh.key.pub`); deploy finds the
/// key and reuses it. Host keys are pinned by deploy (ssh-keyscan of 127.0.0.1:port), as on a
/// real cloud; nothing here bypasses host key checking.
///
/// The vars file carries both tenants' credentials (`os_migrate_src_auth`, `os_migrate_dst_auth`;
/// mode 0600, in a fresh temporary directory), flavor `m1.tiny`, image `osmlab-image`, external
/// network `public`. Keep the value alive for the test's duration (it owns the sshds), call
/// `stop()` at the end.
public final class LabConversionHosts: @unchecked Sendable {
    public let src: SSHServer
    public let dst: SSHServer
    /// The data directory (`os_migrate_data_dir`), a fresh temporary directory.
    public let dataDir: String
    public let varsFile: String
    /// The vars file's text (holds passwords: never print it).
    public let varsText: String
    /// `<dataDir>/conversion/ssh.key`.
    public var keyFile: String { dataDir + "/conversion/ssh.key" }
    /// `<dataDir>/conversion/known_hosts` (written by deploy).
    public var knownHostsFile: String { dataDir + "/conversion/known_hosts" }
    /// The lab's device discovery template.
    public static let deviceTemplate = "/var/lib/osmlab/volumes/volume-{volume_id}"

    /// Starts two sshds, makes the data dir and the key, writes the vars file. `extraVars` are
    /// appended as `key: value` lines (YAML), e.g. `["os_migrate_src_conversion_host_name": "x"]`.
    public static func make(src srcTenant: LabTenant, dst dstTenant: LabTenant, extraVars: [String: String] = [:]) throws
        -> LabConversionHosts
    {
        let dir = try LabClouds.tempDir("convhosts")
        let src = try SSHServer()
        let dst: SSHServer
        do { dst = try SSHServer() } catch {
            src.stop()
            throw error
        }
        do {
            let conv = dir + "/conversion"
            try FileManager.default.createDirectory(atPath: conv, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try keygen(conv + "/ssh.key")
            let pub = try String(contentsOfFile: conv + "/ssh.key.pub", encoding: .utf8)
            for server in [src, dst] {
                let h = try FileHandle(forWritingTo: URL(fileURLWithPath: server.directory + "/authorized_keys"))
                h.seekToEndOfFile()
                h.write(Data((pub.hasSuffix("\n") ? pub : pub + "\n").utf8))
                try h.close()
            }
            var vars: [(String, String)] = [
                ("os_migrate_data_dir", yamlQuote(dir)),
                ("os_migrate_conversion_flavor_name", "m1.tiny"),
                ("os_migrate_conversion_image_name", "osmlab-image"),
                ("os_migrate_src_conversion_external_network_name", "public"),
                ("os_migrate_dst_conversion_external_network_name", "public"),
                ("os_migrate_conversion_host_deploy_timeout", "600"),
                ("os_migrate_conversion_host_ssh_timeout", "60"),
                ("os_migrate_src_conversion_host_authorized_keys_file", yamlQuote(src.directory + "/authorized_keys")),
                ("os_migrate_dst_conversion_host_authorized_keys_file", yamlQuote(dst.directory + "/authorized_keys")),
            ]
            for (side, server) in [("src", src), ("dst", dst)] {
                vars += [
                    ("os_migrate_\(side)_conversion_host_ssh_address", server.host),
                    ("os_migrate_\(side)_conversion_host_ssh_port", String(server.port)),
                    ("os_migrate_\(side)_conversion_host_ssh_user", yamlQuote(server.user)),
                    ("os_migrate_\(side)_conversion_host_device_discovery", yamlQuote(deviceTemplate)),
                ]
            }
            var text = vars.map { "\($0.0): \($0.1)\n" }.joined()
            for (k, v) in extraVars.sorted(by: { $0.key < $1.key }) { text += "\(k): \(v)\n" }
            for (side, tenant) in [("src", srcTenant), ("dst", dstTenant)] {
                text += "os_migrate_\(side)_auth:\n"
                for (k, v) in tenant.profile.auth.sorted(by: { $0.key < $1.key }) { text += "  \(k): \(yamlQuote(v))\n" }
                if let r = tenant.profile.regionName { text += "os_migrate_\(side)_region_name: \(r)\n" }
            }
            let path = dir + "/os-migrate-vars.yml"
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw SSHServer.StartError(description: "cannot write \(path)")
            }
            return LabConversionHosts(src: src, dst: dst, dataDir: dir, varsFile: path, varsText: text)
        } catch {
            src.stop()
            dst.stop()
            throw error
        }
    }

    private init(src: SSHServer, dst: SSHServer, dataDir: String, varsFile: String, varsText: String) {
        self.src = src
        self.dst = dst
        self.dataDir = dataDir
        self.varsFile = varsFile
        self.varsText = varsText
    }

    /// The sshd standing in for a side's host ("src" or "dst").
    public func server(_ side: String) -> SSHServer { side == "src" ? src : dst }

    /// Stops both sshds, removes the data dir, and the link files deploy left on "the destination
    /// host" (this machine's `~/.cache/os-migrate/link`) for this source sshd (found by its host key).
    public func stop() {
        removeLinkFiles()
        src.stop()
        dst.stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    deinit { stop() }

    private func removeLinkFiles() {
        guard let pw = getpwnam(dst.user),
              let hostKey = try? String(contentsOfFile: src.directory + "/host_ed25519.pub", encoding: .utf8).split(separator: " ").dropFirst().first
        else { return }
        let dir = String(cString: pw.pointee.pw_dir) + "/.cache/os-migrate/link"
        for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasSuffix(".known_hosts") {
            let path = dir + "/" + f
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains(String(hostKey)) else { continue }
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: String(path.dropLast(".known_hosts".count)) + ".key")
        }
    }

    static func yamlQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

    static func keygen(_ path: String) throws {
        // posix_spawn, not Foundation's Process: its child reaping does not mix with swift-subprocess.
        let argv = ["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "os-migrate-conversion-host-key", "-f", path]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, cargs, environ) == 0 else {
            throw SSHServer.StartError(description: "cannot start ssh-keygen")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw SSHServer.StartError(description: "ssh-keygen failed for \(path)") }
    }
}
