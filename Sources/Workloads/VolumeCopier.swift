import DataPlane
import Foundation
import OpenStack
import Resources

/// Copies detached volumes through the conversion hosts: the source volume is attached to the
/// source host, the destination volume to the destination host, the data plane copies and
/// verifies, both are detached again (on failure too), and the digest is recorded in the
/// destination volume's metadata.
public struct ConversionHostVolumeCopier: VolumeDataCopier {
    let hosts: ConversionHostPair
    let src: CloudSession
    let dst: CloudSession
    let timeout: Double
    let progress: (@Sendable (String, CopyProgress) -> Void)?

    public init(hosts: ConversionHostPair, src: CloudSession, dst: CloudSession, timeout: Double = 1800,
                progress: (@Sendable (String, CopyProgress) -> Void)? = nil)
    {
        self.hosts = hosts
        self.src = src
        self.dst = dst
        self.timeout = timeout
        self.progress = progress
    }

    public var destinationHostServerID: String? { hosts.dst.serverID }

    public func copy(sourceVolume: String, into destinationVolume: String, label: String) async throws -> String {
        let source = try await src.get(Cinder.volumes, sourceVolume)
        if let other = source.attachments.first(where: { $0.serverID != hosts.src.serverID }) {
            throw OpenStackError(kind: .waitFailed, service: ServiceType.blockStorage,
                                 message: "source volume \(sourceVolume) is attached to server \(other.serverID ?? "?"): it is no longer detached")
        }
        var problems: [String] = []
        let digest: String
        do {
            let srcPath = try await hosts.src.attach(volumeID: sourceVolume, session: src, timeout: timeout)
            let dstPath = try await hosts.dst.attach(volumeID: destinationVolume, session: dst, timeout: timeout)
            let req = CopyRequest(source: VolumeLocation(endpoint: hosts.link, path: srcPath),
                                  destination: VolumeLocation(endpoint: hosts.dst.ssh, path: dstPath))
            let progress = self.progress
            let result = try await runCopy(req) { p in progress?(label, p) }
            digest = result.digest
        } catch {
            await detachBoth(sourceVolume, destinationVolume, &problems)
            throw error
        }
        await detachBoth(sourceVolume, destinationVolume, &problems)
        if !problems.isEmpty {
            throw OpenStackError(kind: .waitFailed, service: "conversion hosts", message: problems.joined(separator: "; "))
        }
        try await Volumes.recordVerifiedCopy(dst, volume: destinationVolume, digest: digest)
        return digest
    }

    func detachBoth(_ s: String, _ d: String, _ problems: inout [String]) async {
        do { try await hosts.src.detach(volumeID: s, session: src, timeout: timeout) } catch { problems.append("detach \(s): \(error)") }
        do { try await hosts.dst.detach(volumeID: d, session: dst, timeout: timeout) } catch { problems.append("detach \(d): \(error)") }
    }
}
