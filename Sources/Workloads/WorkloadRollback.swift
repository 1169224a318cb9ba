import DataPlane
import Foundation
import OpenStack
import Resources

/// Undoing a run: what it created in both clouds is removed (or released) from the ledger's records,
/// newest first where order matters, and the source gets its volumes (and its running VM) back.
extension WorkloadRun {
    /// Failure: remove everything the run created in both clouds and give the source back its
    /// volumes. Returns what could not be undone.
    func rollback() async -> [String] {
        var problems: [String] = []
        await undoDestination(&problems)
        await undoSource(&problems, restart: true)
        try? ledger.clearCopies(id)
        return problems
    }

    /// How one kind of recorded resource is undone: `what` names it in a problem line (`{}`
    /// stands for its id, else the id follows).
    typealias Undo = (kind: String, what: String, op: (Ledger.Resource) async throws -> Void)

    /// Undo each resource of each kind, in the order given; what is undone is released in the
    /// ledger, what fails is a problem line and stays recorded for the next run.
    func undo(_ resources: [Ledger.Resource], _ steps: [Undo], _ problems: inout [String]) async {
        for step in steps {
            for r in resources where r.kind == step.kind {
                do {
                    try await step.op(r)
                    try ledger.setState(r, .released)
                } catch {
                    let what = step.what.contains("{}") ? step.what.replacingOccurrences(of: "{}", with: r.resourceID) : "\(step.what) \(r.resourceID)"
                    problems.append("\(what): \(error)")
                }
            }
        }
    }

    func undoDestination(_ problems: inout [String]) async {
        let mine = ((try? ledger.resources(id, state: .created)) ?? []).filter { $0.cloud == CloudSide.dst.rawValue }
        await undo(mine.reversed(), [
            ("floatingip", "delete floating IP", { try await dst.delete(Neutron.floatingIPs, $0.resourceID) }),
            ("fip-association", "release floating IP", { _ = try await dst.update(Neutron.floatingIPs, $0.resourceID, ["port_id": .null]) }),
            ("server", "delete destination server", { r in
                try await dst.delete(Nova.servers, r.resourceID)
                try await Waiter.waitGone("server \(r.resourceID)", service: ServiceType.compute, timeout: 600) {
                    try await dst.find(Nova.servers, id: r.resourceID)?.status
                }
            }),
        ], &problems)
        await undo(mine, [
            ("port", "delete port", { try await dst.delete(Neutron.ports, $0.resourceID) }),
            ("attachment", "detach volume {} from the destination conversion host", {
                try await hosts().dst.detach(volumeID: $0.resourceID, session: dst, timeout: timeout)
            }),
            ("volume", "delete destination volume", { try await deleteVolume(dst, $0.resourceID) }),
        ], &problems)
    }

    /// Give the source back what the run took; `restart`: the migration failed, so a source VM
    /// the run stopped (`--stop-source`) is started again (on success it stays stopped).
    func undoSource(_ problems: inout [String], restart: Bool) async {
        let created = ((try? ledger.resources(id, state: .created)) ?? []).filter { $0.cloud == CloudSide.src.rawValue }
        // Data volumes go back in device order, so the VM sees them where they were.
        let ordered = created.sorted { WorkloadKind.deviceOrder($0.details["device"] ?? "") < WorkloadKind.deviceOrder($1.details["device"] ?? "") }
        await undo(ordered, [
            ("attachment", "detach volume {} from the source conversion host", {
                try await hosts().src.detach(volumeID: $0.resourceID, session: src, timeout: timeout)
            }),
            ("volume", "delete temporary volume", { try await deleteVolume(src, $0.resourceID) }),
            ("snapshot", "delete temporary snapshot", { r in
                try await src.delete(Cinder.snapshots, r.resourceID)
                try await Waiter.waitGone("snapshot \(r.resourceID)", service: ServiceType.blockStorage, timeout: timeout) {
                    try await src.find(Cinder.snapshots, id: r.resourceID)?.status
                }
            }),
            ("image", "delete temporary image", { try await src.deleteImage($0.resourceID) }),
            ("detachment", "re-attach volume {} to the source server", { r in
                let server = r.details["server"] ?? plan.sourceID
                let vol = try await src.get(Cinder.volumes, r.resourceID)
                if !vol.attachments.contains(where: { $0.serverID == server }) {
                    _ = try await waitVolume(src, r.resourceID, "available")
                    try await src.attachVolume(server: server, volume: r.resourceID)
                    _ = try await waitVolume(src, r.resourceID, "in-use")
                }
            }),
            ("stopped-server", "start the source server {} again", { r in
                // On success it stays stopped: only released.
                guard restart, let s = try await src.find(Nova.servers, id: r.resourceID), s.status == "SHUTOFF" else { return }
                try await src.startServer(r.resourceID)
                _ = try await Waiter.wait("source server \(r.resourceID)", service: ServiceType.compute, timeout: timeout, until: ["ACTIVE"],
                                          failOn: ["ERROR"], fetch: { try await src.find(Nova.servers, id: r.resourceID) },
                                          status: { $0.status })
            }),
        ], &problems)
    }

    func deleteVolume(_ s: CloudSession, _ vid: String) async throws {
        guard let v = try await s.find(Cinder.volumes, id: vid) else { return }
        if v.status == "in-use" || v.status == "detaching" || v.status == "attaching" {
            _ = try await waitVolume(s, vid, "available")
        }
        try await s.delete(Cinder.volumes, vid)
        try await Waiter.waitGone("volume \(vid)", service: ServiceType.blockStorage, timeout: timeout) {
            try await s.find(Cinder.volumes, id: vid)?.status
        }
    }
}
