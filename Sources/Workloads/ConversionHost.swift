import DataPlane
import Foundation
import OpenStack

/// Which cloud a conversion host (or anything else) belongs to.
public enum CloudSide: String, Sendable, Codable, CaseIterable {
    case src, dst
}

/// How a volume attached to a conversion host is found on that host.
public enum DeviceDiscovery: Sendable, Equatable, Codable, CustomStringConvertible {
    /// `/dev/disk/by-id/*<volume id prefix>`: virtio and virtio-scsi disks carry the volume id
    /// (its first 20 characters) as their serial. The default.
    case serial
    /// The disk that appears between an lsblk before and after the attach (the reference
    /// tool's way), with attaches to one host serialized.
    case lsblk
    /// A path template with `{volume_id}`, for hosts where volumes are reached another way
    /// (the lab: `/var/lib/osmlab/volumes/volume-{volume_id}`).
    case template(String)

    public init(parsing s: String) throws {
        switch s {
        case "serial", "by-id": self = .serial
        case "lsblk": self = .lsblk
        default:
            guard s.contains("{volume_id}") else {
                throw ConfigError("device discovery '\(s)' is not serial, lsblk, or a path template containing {volume_id}")
            }
            self = .template(s)
        }
    }

    public var description: String {
        switch self {
        case .serial: return "serial"
        case .lsblk: return "lsblk"
        case .template(let t): return t
        }
    }
}

/// A conversion host that exists and answers: the Nova server, and how the migrator (and, for
/// the source host, the destination host) reach it over SSH.
public struct ConversionHost: Sendable, Codable {
    public var side: CloudSide
    public var name: String
    public var serverID: String
    /// The address the migrator uses (an override, else the floating IP, else the access IP).
    public var address: String
    /// The migrator's SSH endpoint for this host (user, port, key, pinned known_hosts, ProxyJump).
    public var ssh: SSHEndpoint
    public var deviceDiscovery: DeviceDiscovery

    public init(side: CloudSide, name: String, serverID: String, address: String, ssh: SSHEndpoint,
                deviceDiscovery: DeviceDiscovery)
    {
        self.side = side
        self.name = name
        self.serverID = serverID
        self.address = address
        self.ssh = ssh
        self.deviceDiscovery = deviceDiscovery
    }
}

/// The pair a migration runs through. `link` is how the destination host reaches the source
/// host (its key and known_hosts live on the destination host).
public struct ConversionHostPair: Sendable {
    public var src: ConversionHost
    public var dst: ConversionHost
    public var link: SSHEndpoint

    public init(src: ConversionHost, dst: ConversionHost, link: SSHEndpoint) {
        self.src = src
        self.dst = dst
        self.link = link
    }
}
