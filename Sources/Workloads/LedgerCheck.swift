import Foundation
import OpenStack

/// What the clouds say about the ledger's records: a record may lag behind the cloud after a
/// kill (deleted but not yet marked released; created but not yet recorded), so `report` asks.
public enum LedgerCheck {
    /// Does the resource a record names still exist? nil: not a kind that can be looked up by id
    /// (attachments, detachments, a stopped server), or the record has no id yet.
    public static func exists(_ r: Ledger.Resource, src: CloudSession, dst: CloudSession) async throws -> Bool? {
        guard !r.resourceID.isEmpty else { return nil }
        let s = r.cloud == CloudSide.src.rawValue ? src : dst
        switch r.kind {
        case "snapshot": return try await s.find(Cinder.snapshots, id: r.resourceID) != nil
        case "volume": return try await s.find(Cinder.volumes, id: r.resourceID) != nil
        case "image": return try await s.find(Glance.images, id: r.resourceID) != nil
        case "port": return try await s.find(Neutron.ports, id: r.resourceID) != nil
        case "server": return try await s.find(Nova.servers, id: r.resourceID) != nil
        case "floatingip": return try await s.find(Neutron.floatingIPs, id: r.resourceID) != nil
        default: return nil
        }
    }
}
