import Foundation
import OpenStack

/// What a command runs against: the data directory and the source and destination clouds,
/// from command-line flags, the vars file, and the OS_* environment, in that order.
public struct RunConfiguration: Sendable {
    public static let defaultDataDir = "./os-migrate-data"

    public var dataDir: String
    public var src: CloudProfile?
    public var dst: CloudProfile?
    public var vars: MigrationVars?

    public init(dataDir: String = RunConfiguration.defaultDataDir, src: CloudProfile? = nil, dst: CloudProfile? = nil,
                vars: MigrationVars? = nil)
    {
        self.dataDir = dataDir
        self.src = src
        self.dst = dst
        self.vars = vars
    }

    public static func resolve(srcCloud: String?, dstCloud: String?, varsPath: String?, dataDir: String?,
                               loader: CloudConfigLoader = CloudConfigLoader()) throws -> RunConfiguration
    {
        let vars = try varsPath.map { try MigrationVars(path: $0, environment: loader.environment) }
        var config = RunConfiguration(vars: vars)
        config.dataDir = dataDir ?? vars?.dataDir ?? defaultDataDir
        if config.dataDir.isEmpty {
            throw ConfigError(dataDir != nil ? "--data-dir is empty: give the data directory's path"
                : "\(varsPath ?? "the vars file"): os_migrate_data_dir is empty: give the data directory's path")
        }
        config.src = try srcCloud.map { try loader.load(cloud: $0) } ?? vars?.cloudProfile(.src)
        config.dst = try dstCloud.map { try loader.load(cloud: $0) } ?? vars?.cloudProfile(.dst)
        return config
    }

    public func requireSource() throws -> CloudProfile {
        guard let src else {
            throw ConfigError("no source cloud: pass --src-cloud NAME (a clouds.yaml entry) or --vars FILE with os_migrate_src_auth")
        }
        return src
    }

    public func requireDestination() throws -> CloudProfile {
        guard let dst else {
            throw ConfigError("no destination cloud: pass --dst-cloud NAME (a clouds.yaml entry) or --vars FILE with os_migrate_dst_auth")
        }
        return dst
    }
}
