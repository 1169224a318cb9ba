import DataPlane
import Engine
import Foundation
import OpenStack
import Testing
import TestSupport

@testable import Workloads

/// Writes a vars file and loads it.
func varsFile(_ text: String) throws -> MigrationVars {
    let dir = NSTemporaryDirectory() + "osm-chvars-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/vars.yml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return try MigrationVars(path: path, environment: [:])
}

func settingsError(_ text: String, side: CloudSide = .src) throws -> String {
    let vars = try varsFile(text)
    do {
        _ = try ConversionHostSettings.load(side: side, vars: vars, dataDir: "/data")
    } catch let e as ConfigError {
        return e.description.replacingOccurrences(of: vars.path, with: "VARS")
    }
    return "no error"
}

@Suite("ConversionHost settings")
struct ConversionHostSettingsTests {
    @Test("reference defaults")
    func defaults() throws {
        let s = ConversionHostSettings.defaults(side: .src, dataDir: "/data")
        #expect(s.manageNetwork)
        #expect(s.networkName == "os_migrate_conv")
        #expect(s.subnetName == "os_migrate_conv")
        #expect(s.routerName == "os_migrate_conv")
        #expect(s.securityGroupName == "os_migrate_conv")
        #expect(s.subnetCIDR == "192.168.10.0/24")
        #expect(s.allocationStart == "192.168.10.10")
        #expect(s.allocationEnd == "192.168.10.99")
        #expect(s.routerIP == "192.168.10.1")
        #expect(s.dnsNameservers == ["8.8.8.8"])
        #expect(s.networkMTU == nil)
        #expect(s.externalNetworkName == nil)
        #expect(s.flavorName == nil)
        #expect(s.imageName == "os_migrate_conv")
        #expect(s.hostName == "os_migrate_conv_src")
        #expect(ConversionHostSettings.defaults(side: .dst, dataDir: "/data").hostName == "os_migrate_conv_dst")
        #expect(s.keypairName == "os_migrate_conv")
        #expect(s.manageFloatingIP)
        #expect(s.deleteFloatingIP)
        #expect(s.floatingIPAddress == nil)
        #expect(!s.bootFromVolume)
        #expect(s.volumeSize == 20)
        #expect(s.availabilityZone == nil)
        #expect(s.sshUser == "cloud-user")
        #expect(s.sshPort == 22)
        #expect(s.sshAddress == nil)
        #expect(s.proxyJump == nil)
        #expect(s.sshOptions == [])
        #expect(s.deviceDiscovery == .serial)
        #expect(s.authorizedKeysFile == "~/.ssh/authorized_keys")
        #expect(s.agentPath == nil)
        #expect(s.keypairPrivatePath == "/data/conversion/ssh.key")
        #expect(s.linkKeypairPrivatePath == "/data/conversion/link-ssh.key")
        #expect(s.knownHostsPath == "/data/conversion/known_hosts")
        #expect(s.sshAllowedCIDR == nil)
        #expect(s.keyType == "ed25519")
        #expect(s.deployTimeout == 180)
        #expect(s.linkHosts && s.deployEnabled && s.deleteEnabled)
        #expect(s.origin == "defaults")
    }

    @Test("per-side values, common fallbacks and our overrides")
    func fromVars() throws {
        let vars = try varsFile("""
            os_migrate_data_dir: /mig
            os_migrate_conversion_flavor_name: m1.large
            os_migrate_dst_conversion_flavor_name: m1.xl
            os_migrate_src_conversion_external_network_name: ext-src
            os_migrate_conversion_host_ssh_user: centos
            os_migrate_dst_conversion_host_ssh_user: root
            os_migrate_src_conversion_host_ssh_address: 10.0.0.5
            os_migrate_src_conversion_host_ssh_port: "2222"
            os_migrate_src_conversion_host_proxy_jump: bastion.example.com
            os_migrate_src_conversion_host_ssh_options: [ "Compression=no", "ServerAliveInterval=5" ]
            os_migrate_src_conversion_host_device_discovery: lsblk
            os_migrate_dst_conversion_host_device_discovery: /srv/vol-{volume_id}
            os_migrate_src_conversion_host_agent_path: /usr/local/bin/os-migrate
            os_migrate_src_conversion_host_link_address: 172.16.0.9
            os_migrate_src_conversion_host_link_port: 2200
            os_migrate_conversion_ssh_allowed_cidr: 198.51.100.0/24
            os_migrate_conversion_floating_ip_address: false
            os_migrate_dst_conversion_floating_ip_address: 203.0.113.50
            os_migrate_conversion_manage_network: "no"
            os_migrate_src_conversion_subnet_dns_nameservers: [1.1.1.1, 9.9.9.9]
            os_migrate_src_conversion_host_boot_from_volume: yes
            os_migrate_src_conversion_host_volume_size: 40
            os_migrate_conversion_keypair_private_path: "{{ os_migrate_data_dir }}/keys/conv.key"
            os_migrate_src_conversion_host_delete_fip: false
            """)
        let src = try ConversionHostSettings.load(side: .src, vars: vars, dataDir: "/mig")
        let dst = try ConversionHostSettings.load(side: .dst, vars: vars, dataDir: "/mig")
        #expect(src.flavorName == "m1.large")
        #expect(dst.flavorName == "m1.xl")
        #expect(src.externalNetworkName == "ext-src")
        #expect(dst.externalNetworkName == nil)
        #expect(src.sshUser == "centos")
        #expect(dst.sshUser == "root")
        #expect(src.sshAddress == "10.0.0.5")
        #expect(src.sshPort == 2222)
        #expect(dst.sshPort == 22)
        #expect(src.proxyJump == "bastion.example.com")
        #expect(src.sshOptions == ["Compression=no", "ServerAliveInterval=5"])
        #expect(src.deviceDiscovery == .lsblk)
        #expect(dst.deviceDiscovery == .template("/srv/vol-{volume_id}"))
        #expect(src.agentPath == "/usr/local/bin/os-migrate")
        #expect(dst.agentPath == nil)
        #expect(src.linkAddress == "172.16.0.9")
        #expect(src.linkPort == 2200)
        #expect(dst.linkAddress == nil)
        #expect(src.sshAllowedCIDR == "198.51.100.0/24")
        #expect(src.floatingIPAddress == nil)
        #expect(dst.floatingIPAddress == "203.0.113.50")
        #expect(!src.manageNetwork)
        #expect(src.dnsNameservers == ["1.1.1.1", "9.9.9.9"])
        #expect(dst.dnsNameservers == ["8.8.8.8"])
        #expect(src.bootFromVolume && src.volumeSize == 40)
        #expect(src.keypairPrivatePath == "/mig/keys/conv.key")
        #expect(!src.deleteFloatingIP && dst.deleteFloatingIP)
        #expect(src.origin == "vars file \(vars.path)")
    }

    @Test("invalid values: one line naming the file and the key", arguments: [
        ("os_migrate_src_conversion_host_ssh_port: abc", "vars file VARS: os_migrate_src_conversion_host_ssh_port: expected a number, got 'abc'"),
        ("os_migrate_src_conversion_host_ssh_port: 70000", "vars file VARS: os_migrate_src_conversion_host_ssh_port: 70000 is out of range (1–65535)"),
        ("os_migrate_conversion_manage_network: maybe", "vars file VARS: os_migrate_conversion_manage_network: expected true or false, got 'maybe'"),
        ("os_migrate_conversion_subnet_cidr: 192.168.10.0/33", "vars file VARS: os_migrate_conversion_subnet_cidr: '192.168.10.0/33' is not an IPv4 CIDR (like 192.168.10.0/24)"),
        ("os_migrate_conversion_router_ip: 10.0.0.1", "vars file VARS: os_migrate_conversion_router_ip: '10.0.0.1' is not in os_migrate_conversion_subnet_cidr 192.168.10.0/24"),
        ("os_migrate_conversion_subnet_alloc_start: 192.168.10.200", "vars file VARS: os_migrate_conversion_subnet_alloc_end: '192.168.10.99' is before os_migrate_conversion_subnet_alloc_start 192.168.10.200"),
        ("os_migrate_src_conversion_host_device_discovery: /dev/vdb", "vars file VARS: os_migrate_src_conversion_host_device_discovery: device discovery '/dev/vdb' is not serial, lsblk, or a path template containing {volume_id}"),
        ("os_migrate_src_conversion_host_ssh_options: [StrictHostKeyChecking=no]", "vars file VARS: os_migrate_src_conversion_host_ssh_options: 'StrictHostKeyChecking=no': host keys are pinned by os-migrate (/data/conversion/known_hosts); this option may not be set"),
        ("os_migrate_src_conversion_host_ssh_options: {a: 1}", "vars file VARS: os_migrate_src_conversion_host_ssh_options: expected a list of strings, got a mapping"),
        ("os_migrate_src_conversion_subnet_dns_nameservers: [8.8.8.8, dns.example]", "vars file VARS: os_migrate_src_conversion_subnet_dns_nameservers: 'dns.example' is not an IPv4 address"),
        ("os_migrate_conversion_ssh_allowed_cidr: 1.2.3.4", "vars file VARS: os_migrate_conversion_ssh_allowed_cidr: '1.2.3.4' is not an IPv4 CIDR (like 192.168.10.0/24)"),
        ("os_migrate_src_conversion_host_ssh_address: root@10.0.0.1", "vars file VARS: os_migrate_src_conversion_host_ssh_address: 'root@10.0.0.1' is not a host name or address"),
        ("os_migrate_conversion_host_ssh_key_type: dsa", "vars file VARS: os_migrate_conversion_host_ssh_key_type: 'dsa' is not ed25519, rsa or ecdsa"),
        ("os_migrate_src_conversion_host_volume_size: [1]", "vars file VARS: os_migrate_src_conversion_host_volume_size: expected a number, got a list"),
        ("os_migrate_src_conversion_floating_ip_address: 203.0.113", "vars file VARS: os_migrate_src_conversion_floating_ip_address: '203.0.113' is not an IPv4 address"),
    ])
    func invalid(line: String, expected: String) throws {
        #expect(try settingsError(line + "\n") == expected)
    }

    @Test("required values say which key to set")
    func required() throws {
        let s = ConversionHostSettings.defaults(side: .dst, dataDir: "/data")
        #expect(throws: ConfigError("defaults: os_migrate_dst_conversion_flavor_name (or os_migrate_conversion_flavor_name) is not set: "
            + "deploying the dst conversion host needs a flavor (at least 20 GB of disk)")) { try s.requireFlavor() }
        #expect(throws: ConfigError("defaults: os_migrate_dst_conversion_external_network_name is not set: "
            + "it is needed for the router's gateway of the dst conversion host")) { try s.requireExternalNetwork() }
    }
}

@Suite("ConversionHost pure decisions")
struct ConversionHostDecisionTests {
    typealias C = AddressChoice.Candidate

    @Test("address: override > floating IP > access IP > fixed IP on the conversion network")
    func address() {
        let all = [C(address: "192.168.10.20", kind: .fixed, network: "os_migrate_conv"), C(address: "10.1.1.1", kind: .fixed, network: "a-net"),
                   C(address: "198.51.100.4", kind: .access, network: nil), C(address: "203.0.113.7", kind: .floating, network: nil),
                   C(address: "fd00::1", kind: .floating, network: nil)]
        #expect(AddressChoice.choose(override: "127.0.0.1", candidates: all, preferredNetwork: "os_migrate_conv") == "127.0.0.1")
        #expect(AddressChoice.choose(override: nil, candidates: all, preferredNetwork: "os_migrate_conv") == "203.0.113.7")
        #expect(AddressChoice.choose(override: nil, candidates: Array(all.prefix(3)), preferredNetwork: nil) == "198.51.100.4")
        #expect(AddressChoice.choose(override: nil, candidates: Array(all.prefix(2)), preferredNetwork: "os_migrate_conv") == "192.168.10.20")
        #expect(AddressChoice.choose(override: nil, candidates: Array(all.prefix(2)), preferredNetwork: "other") == "10.1.1.1")
        #expect(AddressChoice.choose(override: nil, candidates: [C(address: "fd00::2", kind: .fixed, network: "x")], preferredNetwork: nil) == nil)
        #expect(AddressChoice.choose(override: nil, candidates: [], preferredNetwork: nil) == nil)
    }

    @Test("by-id: the serial is the volume id's first 20 characters; whole disks only, virtio first")
    func byID() {
        let id = "3f1c2a9e-5b7d-4e21-9c3a-0d4e5f6a7b8c"
        #expect(DeviceMatch.serial(id) == "3f1c2a9e-5b7d-4e21-9")
        let entries = ["ata-QEMU_DVD-ROM_QM00001", "virtio-3f1c2a9e-5b7d-4e21-9-part1", "scsi-0QEMU_QEMU_HARDDISK_3f1c2a9e-5b7d-4e21-9c3a-0d4e5f6a7b8c",
                       "virtio-3f1c2a9e-5b7d-4e21-9", "virtio-aaaaaaaa-5b7d-4e21-9"]
        #expect(DeviceMatch.byID(entries: entries, volumeID: id) == "/dev/disk/by-id/virtio-3f1c2a9e-5b7d-4e21-9")
        #expect(DeviceMatch.byID(entries: Array(entries.prefix(3)), volumeID: id)
            == "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_3f1c2a9e-5b7d-4e21-9c3a-0d4e5f6a7b8c")
        #expect(DeviceMatch.byID(entries: ["virtio-3f1c2a9e-5b7d-4e21-9-part1", "virtio-ffff"], volumeID: id) == nil)
        #expect(DeviceMatch.byID(entries: [], volumeID: id) == nil)
    }

    @Test("lsblk: exactly the new whole disks, whatever their names (never assuming /dev/vda)")
    func lsblk() {
        let before = "/dev/sda disk\n/dev/sr0 rom\n/dev/vdb disk\n"
        let after = "/dev/sda disk\n/dev/sr0 rom\n/dev/vdb disk\n/dev/vdc disk\n/dev/loop0 loop\n"
        #expect(DeviceMatch.newDisks(before: before, after: after) == ["/dev/vdc"])
        #expect(DeviceMatch.newDisks(before: before, after: before) == [])
        #expect(DeviceMatch.newDisks(before: "/dev/vda disk\n", after: "/dev/vda disk\n/dev/vdb disk\n/dev/vdd disk\n") == ["/dev/vdb", "/dev/vdd"])
        // NAME-only output (no TYPE column) still parses.
        #expect(DeviceMatch.newDisks(before: "/dev/vda\n", after: "/dev/vda\n/dev/vdb\n") == ["/dev/vdb"])
    }

    @Test("path templates and volume ids")
    func template() throws {
        #expect(DeviceMatch.template("/var/lib/osmlab/volumes/volume-{volume_id}", volumeID: "abc-1") == "/var/lib/osmlab/volumes/volume-abc-1")
        #expect(throws: ConversionHostError.self) { try DeviceMatch.checkVolumeID("a b") }
        #expect(throws: ConversionHostError.self) { try DeviceMatch.checkVolumeID("../x") }
        try DeviceMatch.checkVolumeID("3f1c2a9e-5b7d-4e21-9c3a-0d4e5f6a7b8c")
        #expect(try DeviceDiscovery(parsing: "by-id") == .serial)
    }

    @Test("host key pins: keyscan parsing, replace and remove by alias")
    func pins() {
        let scan = """
            # 127.0.0.1:2222 SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3
            [127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA
            [127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNh
            [127.0.0.1]:2222 ssh-rsa AAAAB3NzaC1yc2E

            """
        let keys = HostKeyPinning.parseKeyscan(scan)
        #expect(keys.map(\.type) == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
        let a = HostKeyPinning.alias(serverID: "id-a"), b = HostKeyPinning.alias(serverID: "id-b")
        #expect(a == "os-migrate-conv-id-a")
        var text = HostKeyPinning.pinning(a, keys: keys, in: "")
        text = HostKeyPinning.pinning(b, keys: [(type: "ssh-ed25519", key: "BBBB")], in: text)
        #expect(HostKeyPinning.lines(for: a, in: text).count == 3)
        #expect(HostKeyPinning.lines(for: b, in: text) == ["os-migrate-conv-id-b ssh-ed25519 BBBB"])
        // Re-pinning replaces; removing leaves the other host alone.
        text = HostKeyPinning.pinning(a, keys: [(type: "ssh-ed25519", key: "CCCC")], in: text)
        #expect(HostKeyPinning.lines(for: a, in: text) == ["os-migrate-conv-id-a ssh-ed25519 CCCC"])
        #expect(HostKeyPinning.removing(a, from: text) == "os-migrate-conv-id-b ssh-ed25519 BBBB\n")
        #expect(HostKeyPinning.removing(b, from: HostKeyPinning.removing(a, from: text)) == "")
        // An alias that is a prefix of another is not the other.
        #expect(HostKeyPinning.lines(for: "os-migrate-conv-id", in: text).isEmpty)
    }

    @Test("ssh failures are told apart")
    func sshFailures() {
        let changed = """
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            Host key for os-migrate-conv-x has changed and you have requested strict checking.
            Host key verification failed.
            """
        #expect(SSHFailure.classify(status: 255, stderr: changed) == .hostKeyChanged)
        #expect(SSHFailure.classify(status: 255, stderr: "No ED25519 host key is known for os-migrate-conv-x and you have requested strict checking.\nHost key verification failed.\n") == .hostKeyNotPinned)
        #expect(SSHFailure.classify(status: 255, stderr: "root@127.0.0.1: Permission denied (publickey).\n") == .authentication)
        #expect(SSHFailure.classify(status: 255, stderr: "ssh: connect to host 127.0.0.1 port 1: Connection refused\n") == .unreachable)
        #expect(SSHFailure.classify(status: 1, stderr: "Permission denied") == nil)
    }

    @Test("SSH source: explicit, else a public migrator address, else anywhere (and why)")
    func sshSource() {
        #expect(SSHSource.decide(explicit: "10.0.0.0/8", migratorAddress: "8.8.4.4").cidr == "10.0.0.0/8")
        #expect(SSHSource.decide(explicit: nil, migratorAddress: "8.8.4.4") == (cidr: "8.8.4.4/32", reason: "the migrator's address"))
        for a in ["127.0.0.1", "10.1.2.3", "192.168.1.9", "172.20.0.1", "100.64.3.3", nil] as [String?] {
            #expect(SSHSource.decide(explicit: nil, migratorAddress: a).cidr == "0.0.0.0/0")
        }
        let d = SecurityGroupDescription.make(cidr: "0.0.0.0/0", reason: "the migrator's address is not known")
        #expect(SecurityGroupDescription.reason(from: d) == "the migrator's address is not known")
        #expect(SecurityGroupDescription.reason(from: "something else") == nil)
    }

    @Test("public keys")
    func keys() {
        #expect(SSHKeys.sameKey("ssh-ed25519 AAAA a@b", "ssh-ed25519 AAAA other"))
        #expect(!SSHKeys.sameKey("ssh-ed25519 AAAA", "ssh-ed25519 AAAB"))
        #expect(SSHKeys.authorizedKeysLine("ssh-ed25519 AAAA old comment", comment: "os-migrate-link") == "ssh-ed25519 AAAA os-migrate-link")
    }

    @Test("the migrator's endpoint pins the host key under the server's alias; never StrictHostKeyChecking=no")
    func endpoint() throws {
        var s = ConversionHostSettings.defaults(side: .src, dataDir: "/data")
        s.sshAddress = nil
        s.proxyJump = "jump@bastion"
        s.sshOptions = ["Compression=no"]
        s.agentPath = "/opt/os-migrate"
        let h = ConversionHosts.host(settings: s, serverID: "sid", address: "203.0.113.9")
        #expect(h.ssh.user == "cloud-user" && h.ssh.host == "203.0.113.9" && h.ssh.port == 22)
        #expect(h.ssh.identity == "/data/conversion/ssh.key")
        #expect(h.ssh.remoteCommand == "/opt/os-migrate")
        #expect(h.ssh.options.prefix(3) == ["UserKnownHostsFile=/data/conversion/known_hosts", "StrictHostKeyChecking=yes",
                                            "HostKeyAlias=os-migrate-conv-sid"])
        #expect(h.ssh.options.contains("ProxyJump=jump@bastion"))
        #expect(h.ssh.options.last == "Compression=no")
        let args = h.ssh.sshArguments().joined(separator: " ")
        #expect(!args.lowercased().contains("stricthostkeychecking=no"))

        // The link: how the destination host sees the source host.
        s.linkAddress = nil
        let link = ConversionHosts.linkEndpoint(source: h, sourceSettings: s)
        #expect(link.host == "203.0.113.9" && link.port == 22 && link.user == "cloud-user")
        #expect(link.identity == "~/.cache/os-migrate/link/os_migrate_conv_src-sid.key")
        #expect(link.options.contains("UserKnownHostsFile=~/.cache/os-migrate/link/os_migrate_conv_src-sid.known_hosts"))
        #expect(link.options.contains("StrictHostKeyChecking=yes"))
        #expect(link.options.contains("HostKeyAlias=os-migrate-conv-sid"))
        #expect(link.remoteCommand == "/opt/os-migrate")
        s.linkAddress = "172.16.1.1"
        s.linkPort = 2200
        let link2 = ConversionHosts.linkEndpoint(source: h, sourceSettings: s)
        #expect(link2.host == "172.16.1.1" && link2.port == 2200)
    }

    @Test("remote shell fragments quote paths and expand ~ remotely")
    func remoteShell() {
        #expect(RemoteShell.path("~/.ssh/authorized_keys") == "\"$HOME\"/.ssh/authorized_keys")
        #expect(RemoteShell.path("/tmp/a b") == "'/tmp/a b'")
        #expect(RemoteShell.appendOnce(line: "ssh-ed25519 AAAA x", to: "/k").contains("grep -qxF 'ssh-ed25519 AAAA x'"))
    }
}

/// The SSH side of conversion hosts against a private sshd (no cloud involved).
@Suite("ConversionHost SSH", .serialized)
struct ConversionHostSSHTests {
    func makeHost(_ server: SSHServer, dataDir: String, discovery: DeviceDiscovery = .lsblk) -> (ConversionHost, ConversionHostSettings) {
        var s = ConversionHostSettings.defaults(side: .src, dataDir: dataDir)
        s.sshAddress = server.host
        s.sshPort = server.port
        s.sshUser = server.user
        s.keypairPrivatePath = server.identityFile
        s.sshTimeout = 20
        s.deviceDiscovery = discovery
        return (ConversionHosts.host(settings: s, serverID: "test-\(server.port)", address: server.host), s)
    }

    @Test("pins on first contact, then a changed host key is a hard error that says what to do")
    func pinning() async throws {
        let server = try SSHServer()
        defer { server.stop() }
        let dataDir = server.directory + "/data"
        let (host, settings) = makeHost(server, dataDir: dataDir)
        // Not pinned yet: refused, nothing added.
        await #expect(throws: ConversionHostError.self) { try await host.run("true") }
        try await ConversionHosts.pinHostKey(host, settings: settings, fresh: false, report: .silent)
        let pinned = try String(contentsOfFile: settings.knownHostsPath, encoding: .utf8)
        let hostKey = try String(contentsOfFile: server.directory + "/host_ed25519.pub", encoding: .utf8).split(separator: " ")[1]
        #expect(pinned.contains("os-migrate-conv-\(host.serverID) ssh-ed25519 \(hostKey)"))
        let r = try await host.run("echo hello")
        #expect(r.status == 0 && r.stdout == "hello\n")
        #expect((try await host.run("exit 3")).status == 3)

        // Tamper: another key under the same alias.
        let other = try SSHServer()
        defer { other.stop() }
        let otherKey = try String(contentsOfFile: other.directory + "/host_ed25519.pub", encoding: .utf8).split(separator: " ")[1]
        try pinned.replacingOccurrences(of: String(hostKey), with: String(otherKey)).write(toFile: settings.knownHostsPath, atomically: true, encoding: .utf8)
        do {
            _ = try await host.run("true")
            Issue.record("a changed host key was accepted")
        } catch let e as ConversionHostError {
            #expect(e.kind == .hostKeyChanged)
            #expect(e.message == "conversion host os_migrate_conv_src (127.0.0.1:\(server.port)) presented an SSH host key that differs from "
                + "the one pinned in \(settings.knownHostsPath) on first contact: the server was rebuilt, or someone is intercepting the connection. "
                + "Nothing was sent to it. If you rebuilt it on purpose, delete the lines starting with 'os-migrate-conv-\(host.serverID)' "
                + "from that file and run `os-migrate conversion-hosts deploy --cloud src` to pin the new key")
        }
        // A known pin is kept on a re-deploy of the same server (no silent re-pinning).
        try await ConversionHosts.pinHostKey(host, settings: settings, fresh: false, report: .silent)
        await #expect(throws: ConversionHostError.self) { try await host.run("true") }
    }

    @Test("unreachable and refused keys read as such")
    func failures() async throws {
        let server = try SSHServer()
        defer { server.stop() }
        let (host, settings) = makeHost(server, dataDir: server.directory + "/data")
        try await ConversionHosts.pinHostKey(host, settings: settings, fresh: false, report: .silent)
        var wrongKey = host
        wrongKey.ssh.identity = server.directory + "/host_ed25519"
        await #expect { _ = try await wrongKey.run("true") } throws: { ($0 as? ConversionHostError)?.kind == .authentication }
        server.stop()
        await #expect { _ = try await host.run("true") } throws: { ($0 as? ConversionHostError)?.kind == .unreachable }
    }

    @Test("an agent binary for another architecture is refused before it is copied, saying why")
    func foreignAgent() async throws {
        let server = try SSHServer()
        defer { server.stop() }
        let (host, settings) = makeHost(server, dataDir: server.directory + "/data")
        try await ConversionHosts.pinHostKey(host, settings: settings, fresh: false, report: .silent)
        // An aarch64 ELF header.
        var elf = [UInt8](repeating: 0, count: 64)
        elf.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
        elf[16] = 2
        elf[18] = 0xB7
        let fake = server.directory + "/os-migrate-arm"
        try Data(elf).write(to: URL(fileURLWithPath: fake))
        chmod(fake, 0o755)
        #expect(ELFMachine.of(path: fake) == "aarch64")
        #expect(ELFMachine.of(path: "/bin/sh").map { ELFMachine.compatible($0, "x86_64") || ELFMachine.compatible($0, "aarch64") } == true)
        do {
            _ = try await ConversionHosts.checkAgent(host, deploy: true, executable: fake)
            Issue.record("a foreign binary was accepted")
        } catch let e as ConversionHostError {
            #expect(e.kind == .agent)
            #expect(e.message.hasPrefix("conversion host os_migrate_conv_src (127.0.0.1:\(server.port)): the os-migrate agent cannot run there: "
                + "this binary is built for aarch64, the host is x86_64; deploy the self-contained agent (`scripts/build-agent`, "
                + "installed as os-migrate-agent beside os-migrate: x86_64 Linux with glibc 2.31 or later), "
                + "or install os-migrate there and set os_migrate_src_conversion_host_agent_path"), "\(e.message)")
        }
        // An agent path that cannot run: its own words, and the variable to check.
        var broken = host
        broken.ssh.remoteCommand = server.directory + "/missing-os-migrate"
        await #expect {
            _ = try await ConversionHosts.checkAgent(broken, deploy: true)
        } throws: { e in
            let m = (e as? ConversionHostError)?.message ?? ""
            return m.contains("the os-migrate agent \(server.directory)/missing-os-migrate cannot run on 127.0.0.1")
                && m.hasSuffix("check os_migrate_src_conversion_host_agent_path")
        }
    }

    @Test("the attach lock serializes, in this process and through flock on the host")
    func attachLock() async throws {
        let server = try SSHServer()
        defer { server.stop() }
        let (host, settings) = makeHost(server, dataDir: server.directory + "/data")
        try await ConversionHosts.pinHostKey(host, settings: settings, fresh: false, report: .silent)
        let order = OrderLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<3 {
                group.addTask {
                    try await host.withAttachLock(timeout: 60) {
                        await order.add("in \(i)")
                        try await Task.sleep(for: .milliseconds(200))
                        await order.add("out \(i)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let events = await order.events
        #expect(events.count == 6)
        for k in stride(from: 0, to: 6, by: 2) {
            #expect(events[k].hasPrefix("in ") && events[k + 1] == "out " + events[k].dropFirst(3))
        }
        // Across processes: while another session holds the flock, ours waits.
        let holder = try ChildProcess(argv: host.ssh.sshArguments()
            + ["f=\"$HOME\"/.cache/os-migrate/attach.lock; exec 9>>\"$f\"; flock 9; echo held; sleep 2"],
            stdin: .pipe, stdout: .pipe, stderr: .pipe)
        #expect(await onThread { holder.readLine() } == "held")
        let start = ContinuousClock.now
        try await host.withAttachLock(timeout: 60) {}
        #expect(ContinuousClock.now - start > .milliseconds(1200))
        #expect(await onThread { holder.wait() } == .exited(0))
    }
}

actor OrderLog {
    var events: [String] = []
    func add(_ e: String) { events.append(e) }
}
