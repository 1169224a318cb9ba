import DataPlane
import Engine
import Foundation
import OpenStack
import Resources

/// Copies detached volumes through the conversion hosts: the source volume is attached to the
/// source host, the destination volume to the destination host, the data plane copies and
/// verifies, both are detached again (on failure too), and the digest is recorded in the
/// destination volume's metadata. With a data dir, each copy is in the ledger from before the
/// first attach (`report` shows one a kill interrupted, and what it left attached).
public struct ConversionHostVolumeCopier: VolumeDataCopier {
    let hosts: ConversionHostPair
    let src: CloudSession
    let dst: CloudSession
    let timeout: Double
    let progress: (@Sendable (String, CopyProgress) -> Void)?
    /// Where the ledger is (opened at the first copy: a dry run writes nothing).
    let ledgerDir: String?

    public init(hosts: ConversionHostPair, src: CloudSession, dst: CloudSession, timeout: Double = 1800, ledgerDir: String? = nil,
                progress: (@Sendable (String, CopyProgress) -> Void)? = nil)
    {
        self.hosts = hosts
        self.ledgerDir = ledgerDir
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
        let ledger = try ledgerDir.map { try Ledger(dataDir: $0) }
        try ledger?.beginVolumeCopy(source: sourceVolume, name: label, destination: destinationVolume,
                                    sourceHost: hosts.src.serverID, destinationHost: hosts.dst.serverID)
        var problems: [String] = []
        let digest: String
        do {
            let srcPath = try await hosts.src.attach(volumeID: sourceVolume, session: src, timeout: timeout)
            let dstPath = try await hosts.dst.attach(volumeID: destinationVolume, session: dst, timeout: timeout)
            KillPoint.reached("volume-copy-attached")
            let req = CopyRequest(source: VolumeLocation(endpoint: hosts.link, path: srcPath),
                                  destination: VolumeLocation(endpoint: hosts.dst.ssh, path: dstPath))
            let progress = self.progress
            let result = try await runCopy(req) { p in progress?(label, p) }
            KillPoint.reached("volume-copy-copied")
            digest = result.digest
        } catch {
            await detachBoth(sourceVolume, destinationVolume, &problems)
            try? ledger?.finishVolumeCopy(source: sourceVolume, state: .failed,
                                          error: ([TerminalText.capped("\(error)")] + problems).joined(separator: "; "))
            throw error
        }
        await detachBoth(sourceVolume, destinationVolume, &problems)
        KillPoint.reached("volume-copy-detached")
        if !problems.isEmpty {
            try? ledger?.finishVolumeCopy(source: sourceVolume, state: .failed, error: problems.joined(separator: "; "))
            throw OpenStackError(kind: .waitFailed, service: "conversion hosts", message: problems.joined(separator: "; "))
        }
        try await Volumes.recordVerifiedCopy(dst, volume: destinationVolume, digest: digest)
        try ledger?.finishVolumeCopy(source: sourceVolume, state: .done, digest: digest)
        return digest
    }

    func detachBoth(_ s: String, _ d: String, _ problems: inout [String]) async {
        do { try await hosts.src.detach(volumeID: s, session: src, timeout: timeout) } catch { problems.append("detach \(s): \(error)") }
        do { try await hosts.dst.detach(volumeID: d, session: dst, timeout: timeout) } catch { problems.append("detach \(d): \(error)") }
    }
}
