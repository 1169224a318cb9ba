import Foundation
import OpenStack

/// A clouds.yaml in a temporary directory, for running the CLI against lab tenants.
public enum LabClouds {
    /// Write `clouds.yaml` with one entry per profile (keyed by the given name); returns its path.
    /// The file holds passwords: it is created 0600 in a fresh temporary directory.
    public static func write(_ clouds: [String: CloudProfile], in dir: String) throws -> String {
        var text = "clouds:\n"
        for (name, p) in clouds.sorted(by: { $0.key < $1.key }) {
            text += "  \(name):\n    auth:\n"
            for (k, v) in p.auth.sorted(by: { $0.key < $1.key }) { text += "      \(k): '\(v)'\n" }
            if let r = p.regionName { text += "    region_name: \(r)\n" }
            for (service, url) in p.endpointOverrides.sorted(by: { $0.key < $1.key }) { text += "    \(service)_endpoint_override: '\(url)'\n" }
            text += "    interface: \(p.interface)\n    identity_api_version: 3\n"
        }
        let path = (dir as NSString).appendingPathComponent("clouds.yaml")
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        return path
    }

    /// A fresh temporary directory.
    public static func tempDir(_ tag: String) throws -> String {
        let dir = NSTemporaryDirectory() + "osm-\(tag)-\(Lab.randomHex(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}
