import Foundation
import OpenStack
import Testing
import TestSupport

/// Issue 11 on the lab: a VM that keeps running while its volumes sync (a writer changes 1 % of
/// each volume between passes: the lab's "running guest"), then a cutover; kills during a sync
/// and during the cutover are finished by a rerun with no duplicate and nothing leaked.
@Suite("Warm migration", .serialized)
struct WarmMigrationTests {
    static func report(_ env: WorkloadMigrationTests.Env) async throws -> JSONValue? {
        let r = try await env.run(["report", "--json"])
        return try JSONDecoder().decode(JSONValue.self, from: Data(r.stdout.utf8))["workloads"]?.arrayValue?.first
    }

    /// Nothing of a pass is left: no snapshot, no temporary volume, no source volume on a
    /// conversion host. `kept`: between passes each destination volume stays attached to the
    /// destination conversion host, and only there; after the cutover none is on a conversion host.
    static func noTemporaries(_ env: WorkloadMigrationTests.Env, _ sourceVolumes: [String], _ what: String, kept: Bool = true) async throws {
        let s = env.s, d = env.d
        #expect(try await s.list(Cinder.snapshots).collect().isEmpty, "\(what): snapshots left")
        let temps = try await s.list(Cinder.volumes).collect().filter { $0.name.hasPrefix("os-migrate-") }
        #expect(temps.isEmpty, "\(what): temporary volumes left: \(temps.map(\.name))")
        for v in try await d.list(Cinder.volumes).collect() {
            let servers = v.attachments.compactMap(\.serverID)
            var names: [String] = []
            for id in servers { names.append(try await d.get(Nova.servers, id).name) }
            if kept {
                #expect(names.count == 1 && names.allSatisfy { $0.hasPrefix("os_migrate_conv") }, "\(what): \(v.name) attached to \(names)")
            } else {
                #expect(!names.contains { $0.hasPrefix("os_migrate_conv") }, "\(what): \(v.name) left attached to \(names)")
            }
        }
        for id in sourceVolumes {
            let attached = try await s.get(Cinder.volumes, id).attachments.compactMap(\.serverID)
            for a in attached { #expect(!(try await s.get(Nova.servers, a).name.hasPrefix("os_migrate_conv")), "\(what): source volume on a conversion host") }
        }
    }

    @Test("two syncs while the VM runs (only what changed moves), a sync killed and rerun, a cutover killed and rerun: bytes equal, downtime measured, nothing leaked")
    func syncThenCutover() async throws {
        try await WorkloadMigrationTests.withEnv("wm") { env in
            let s = env.s, d = env.d
            let boot = try await WorkloadLab.volume(s, name: "wm-root", image: env.image)
            let data = try await WorkloadLab.volume(s, name: "wm-data", size: 1)
            try await WorkloadLab.fill(data.id, seed: 90, offsetMiB: 0, count: 40)
            let vm = try await WorkloadLab.server(s, name: "wm-vm", network: env.network, securityGroup: "app-sg", key: "app-key",
                                                  bootVolume: boot.id, image: nil, data: [data.id], flavor: "1")
            try await WorkloadMigrationTests.prepare(env)
            let volumes = [boot.id, data.id]
            // The running guest writes 1 % of each volume (10 MiB of 1 GiB) at a new place each time.
            var round = 0
            func guestWrites() async throws {
                round += 1
                for (i, v) in volumes.enumerated() { try await WorkloadLab.fill(v, seed: UInt64(100 + 10 * round + i), offsetMiB: 100 * round + 50 * i, count: 10) }
            }

            // Pass 1: everything (the destination volumes are new: nothing of them is read).
            let first = try await env.run(["import", "workloads", "--sync", "--json"])
            #expect(first.exitCode == 0, "\(first.stderr)\n\(first.stdout)")
            let m1 = WorkloadMigrationTests.item(first.stdout, "wm-vm")?["message"]?.stringValue ?? ""
            #expect(m1.hasPrefix("sync pass 1: 2 volume(s), "), "\(first.stdout)")
            #expect(try await s.get(Nova.servers, vm).status == "ACTIVE")
            #expect(try await d.named(Nova.servers, "wm-vm").isEmpty)
            let targets = try await d.list(Cinder.volumes).collect()
            #expect(targets.map(\.name).sorted() == ["wm-data", "wm-root"], "\(targets.map(\.name))")
            try await Self.noTemporaries(env, volumes, "pass 1")
            let dstData = try #require(targets.first { $0.name == "wm-data" })
            #expect(try await WorkloadLab.identical(data.id, dstData.id))

            // Pass 2 after the guest wrote: only the changed chunks move.
            try await guestWrites()
            let second = try await env.run(["import", "workloads", "--sync", "--json"])
            #expect(second.exitCode == 0, "\(second.stderr)\n\(second.stdout)")
            #expect(WorkloadMigrationTests.item(second.stdout, "wm-vm")?["message"]?.stringValue?.hasPrefix("sync pass 2: 2 volume(s), ") == true)
            let passes = try #require(try await Self.report(env)?["sync_passes"]?.arrayValue)
            let pass2 = passes.filter { $0["pass"]?.intValue == 2 }
            #expect(pass2.count == 2)
            for p in pass2 {
                // 10 MiB written, in at most 4 chunks of 4 MiB.
                #expect((p["bytes_changed"]?.intValue ?? .max) <= 16 << 20, "\(p.jsonString())")
                #expect((p["bytes_on_wire"]?.intValue ?? .max) <= 17 << 20, "\(p.jsonString())")
            }
            #expect(try await WorkloadLab.identical(data.id, dstData.id))
            try await Self.noTemporaries(env, volumes, "pass 2")
            let synced = try #require(try await Self.report(env))
            #expect(synced["state"]?.stringValue == "synced")
            // Kept between passes: both destination volumes and their attachments to the destination host; nothing to clean up.
            let kept = (synced["kept_for_cutover"]?.arrayValue ?? []).map { "\($0["cloud"]?.stringValue ?? "") \($0["kind"]?.stringValue ?? "")" }.sorted()
            #expect(kept == ["dst attachment", "dst attachment", "dst volume", "dst volume"], "\(synced.jsonString())")
            #expect(synced["leftovers"]?.arrayValue?.isEmpty == true, "\(synced.jsonString())")

            // A sync killed with both volumes copied and still attached: the next pass cleans up and runs.
            try await guestWrites()
            let killed = try await env.run(["import", "workloads", "--sync", "--json"], env: ["OSM_EXIT_AT": "sync-copied"])
            #expect(killed.exitCode == 137, "\(killed.stderr)\n\(killed.stdout)")
            let third = try await env.run(["import", "workloads", "--sync", "--json"])
            #expect(third.exitCode == 0, "\(third.stderr)\n\(third.stdout)")
            #expect(WorkloadMigrationTests.item(third.stdout, "wm-vm")?["message"]?.stringValue?.hasPrefix("sync pass 3: ") == true, "\(third.stdout)")
            try await Self.noTemporaries(env, volumes, "pass 3 after a kill")
            #expect(try await d.list(Cinder.volumes).collect().count == 2)

            // The cutover, killed after its final copy, then finished.
            try await guestWrites()
            let cut = try await env.run(["import", "workloads", "--cutover", "--json"], env: ["OSM_EXIT_AFTER": "copy"])
            #expect(cut.exitCode == 137, "\(cut.stderr)\n\(cut.stdout)")
            let done = try await env.run(["import", "workloads", "--cutover", "--json"])
            #expect(done.exitCode == 0, "\(done.stderr)\n\(done.stdout)")
            let m = WorkloadMigrationTests.item(done.stdout, "wm-vm")?["message"]?.stringValue ?? ""
            #expect(m.contains(", downtime "), "\(m)")
            let servers = try await d.named(Nova.servers, "wm-vm")
            #expect(servers.count == 1 && servers.first?.status == "ACTIVE")
            #expect(try await s.get(Nova.servers, vm).status == "SHUTOFF")
            let attached = try await d.volumeAttachments(server: try #require(servers.first).id)
            #expect(attached.count == 2)
            let finalVolumes = try await d.list(Cinder.volumes).collect()
            #expect(finalVolumes.count == 2, "\(finalVolumes.map(\.name))")
            for v in finalVolumes {
                let source = v.name == "wm-data" ? data.id : boot.id
                #expect(try await WorkloadLab.identical(source, v.id), "\(v.name) differs")
            }
            try await Self.noTemporaries(env, [], "cutover", kept: false)
            let entry = try #require(try await Self.report(env))
            #expect(entry["state"]?.stringValue == "done")
            #expect((entry["downtime_seconds"]?.doubleValue ?? 0) > 0)
            // The final pass moved only what the guest wrote since pass 3, and read none of the rest of the destination.
            for c in entry["copies"]?.arrayValue ?? [] {
                #expect((c["bytes_on_wire"]?.intValue ?? .max) <= 17 << 20, "\(c.jsonString())")
            }
            let again = try await env.run(["import", "workloads", "--json"])
            #expect(WorkloadMigrationTests.item(again.stdout, "wm-vm")?["status"]?.stringValue == "ok")
        }
    }

    /// A VM booted from a 1 GiB volume (`<tag>-vm`, running), the pre-workload resources imported, one
    /// sync pass done; its id.
    static func syncedVolumeBootedVM(_ env: WorkloadMigrationTests.Env, _ tag: String) async throws -> String {
        let s = env.s
        let boot = try await WorkloadLab.volume(s, name: "\(tag)-root", image: env.image)
        let vm = try await WorkloadLab.server(s, name: "\(tag)-vm", network: env.network, securityGroup: "app-sg", key: "app-key",
                                              bootVolume: boot.id, image: nil, data: [], flavor: "1")
        try await WorkloadMigrationTests.prepare(env)
        let sync = try await env.run(["import", "workloads", "--sync", "--json"])
        #expect(sync.exitCode == 0, "\(sync.stderr)\n\(sync.stdout)")
        return vm
    }

    @Test("a source the operator stopped before the cutover: its downtime runs from that stop (the server's instance actions)")
    func operatorStoppedSource() async throws {
        try await WorkloadMigrationTests.withEnv("wo") { env in
            let s = env.s, d = env.d
            let vm = try await Self.syncedVolumeBootedVM(env, "wo")
            // The operator stops the VM by hand, and the cutover comes a few seconds later.
            let stopAsked = Date()
            try await s.stopServer(vm)
            try await WorkloadLab.waitServer(s, vm, "SHUTOFF")
            try await Task.sleep(for: .seconds(3))
            let cut = try await env.run(["import", "workloads", "--cutover", "--json"])
            #expect(cut.exitCode == 0, "\(cut.stderr)\n\(cut.stdout)")
            let done = Date()
            #expect(try await d.named(Nova.servers, "wo-vm").first?.status == "ACTIVE")
            let entry = try #require(try await Self.report(env))
            let downtime = try #require(entry["downtime_seconds"]?.doubleValue, "\(entry.jsonString())")
            // Nova keeps the stop's start to the second: at most a second earlier than asked.
            let elapsed = done.timeIntervalSince(stopAsked)
            #expect(downtime >= 3 && downtime <= elapsed + 1.5, "downtime \(downtime) s; the stop was asked \(elapsed) s before the cutover ended")
            let steps = (entry["steps"]?.arrayValue ?? []).compactMap { $0["step"]?.stringValue }
            #expect(!steps.contains("stop source"), "\(steps)")
            #expect(steps.first == "prepare cutover", "\(steps)")
        }
    }

    @Test("a conversion host that does not answer fails the cutover before the source is stopped: the source keeps running")
    func unreachableHostBeforeStop() async throws {
        try await WorkloadMigrationTests.withEnv("wu") { env in
            let s = env.s, d = env.d
            let vm = try await Self.syncedVolumeBootedVM(env, "wu")
            // The source conversion host goes away between the sync and the cutover.
            env.hosts.src.stop()
            let cut = try await env.run(["import", "workloads", "--cutover", "--json"])
            #expect(cut.exitCode != 0)
            let item = WorkloadMigrationTests.item(cut.stdout, "wu-vm")
            #expect(item?["status"]?.stringValue == "failed", "\(cut.stdout)")
            #expect(item?["message"]?.stringValue?.contains("cannot reach conversion host os_migrate_conv_src") == true, "\(cut.stdout)")
            // Never stopped: still ACTIVE, and Nova has no stop action for it. Nothing in the destination.
            #expect(try await s.get(Nova.servers, vm).status == "ACTIVE")
            #expect(try await s.lastStopRequested(vm) == nil)
            #expect(try await d.named(Nova.servers, "wu-vm").isEmpty)
        }
    }
}
