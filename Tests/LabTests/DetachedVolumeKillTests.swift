import Foundation
import OpenStack
import Testing
import TestSupport

/// Issue 14 for detached volumes: a kill at each instant of a volume's import (`OSM_EXIT_AT`),
/// then `report` (what the kill left, asked of the clouds), then a rerun that finishes it: one
/// destination volume, the source's bytes, nothing left attached to a conversion host.
@Suite("Detached volumes killed at each instant", .serialized)
struct DetachedVolumeKillTests {
    static let points = ["volume-copy-attached", "volume-copy-copied", "volume-copy-detached", "volume-created"]

    @Test("killed at each instant of a detached volume's import: report shows what is attached; the rerun finishes, one volume, bytes equal, nothing attached")
    func killedDetachedVolumes() async throws {
        try await WorkloadMigrationTests.withEnv("kv") { env in
            let s = env.s, d = env.d
            var sources: [String: String] = [:]
            for (i, _) in Self.points.enumerated() {
                let v = try await WorkloadLab.volume(s, name: "kv-\(i)", size: 1)
                try await WorkloadLab.fill(v.id, seed: UInt64(60 + i), offsetMiB: 5 + 7 * i, count: 2)
                sources["kv-\(i)"] = v.id
            }
            let exp = try await env.run(["export", "detached-volumes"])
            try #require(exp.exitCode == 0, "\(exp.stderr)")
            for (i, point) in Self.points.enumerated() {
                let name = "kv-\(i)"
                let filter = ["--filter", "detached-volumes=\(name)"]
                let killed = try await env.run(["import", "detached-volumes", "--json"] + filter, env: ["OSM_EXIT_AT": point])
                #expect(killed.exitCode == 137, "\(point): not killed: \(killed.stderr)\n\(killed.stdout)")

                // What the kill left, from the ledger and the clouds.
                let attachedNow = point == "volume-copy-attached" || point == "volume-copy-copied"
                let report = try await env.run(["report", "--json"])
                #expect(report.exitCode == 0, "\(point): \(report.stderr)")
                let entry = try JSONDecoder().decode(JSONValue.self, from: Data(report.stdout.utf8))["detached_volumes"]?.arrayValue?
                    .first { $0["name"]?.stringValue == name }
                if point == "volume-created" {
                    // Killed before its copy began: the destination volume (carrying its source's id) is all there is.
                    #expect(entry == nil, "\(point): \(report.stdout)")
                } else {
                    #expect(entry?["state"]?.stringValue == "interrupted", "\(point): \(report.stdout)")
                    #expect(entry?["checked_in_clouds"]?.boolValue == true)
                    #expect(entry?["still_attached"]?.arrayValue?.map { $0["cloud"]?.stringValue ?? "" } == (attachedNow ? ["src", "dst"] : []),
                            "\(point): \(report.stdout)")
                    let text = try await env.run(["report"])
                    #expect(text.stdout.contains("detached volume \(name): interrupted\n"), "\(text.stdout)")
                    #expect(text.stdout.contains("to finish: run `os-migrate import detached-volumes` again"))
                    if attachedNow {
                        #expect(text.stdout.contains("  still attached: src volume \(sources[name]!) to the conversion host server "), "\(text.stdout)")
                    }
                }

                let rerun = try await env.run(["import", "detached-volumes", "--json"] + filter)
                #expect(rerun.exitCode == 0, "\(point): \(rerun.stderr)\n\(rerun.stdout)")
                let item = CLIEvents.item(rerun.stdout, name)
                #expect(item?["status"]?.stringValue == "changed", "\(point): \(rerun.stdout)")
                let targets = try await d.named(Cinder.volumes, name)
                #expect(targets.count == 1, "\(point): \(targets.count) destination volumes")
                let target = try #require(targets.first)
                #expect(try await WorkloadLab.identical(sources[name]!, target.id), "\(point): bytes differ")
                #expect(target.metadata?["os_migrate_digest"]?.hasPrefix("osm-sha256-chunked:") == true)
                #expect(target.attachments.isEmpty, "\(point): destination volume still attached")
                #expect(try await s.get(Cinder.volumes, sources[name]!).attachments.isEmpty, "\(point): source volume still attached")
                let after = try JSONDecoder().decode(JSONValue.self, from: Data(try await env.run(["report", "--json"]).stdout.utf8))
                let done = after["detached_volumes"]?.arrayValue?.first { $0["name"]?.stringValue == name }
                #expect(done?["state"]?.stringValue == "done", "\(point): \(after.jsonString())")
            }
            // Everything done: no snapshot, no stray volume, all ok with no write.
            #expect(try await s.list(Cinder.snapshots).collect().isEmpty)
            #expect(try await d.list(Cinder.volumes).collect().map(\.name).sorted() == Self.points.indices.map { "kv-\($0)" })
            let again = try await env.run(["import", "detached-volumes", "--json"])
            #expect(again.exitCode == 0)
            let recap = CLIEvents.recap(again.stdout)
            #expect(CLIEvents.count(recap, "ok") == Self.points.count && CLIEvents.count(recap, "api_writes") == 0, "\(again.stdout)")
        }
    }
}
