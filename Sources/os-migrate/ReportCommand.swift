import ArgumentParser
import Engine
import Foundation
import OpenStack
import Workloads

/// `os-migrate report`: what the ledger knows about the workload migrations in this data dir.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show the migration ledger: each workload's state, its verified copies and anything left to clean up.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await CommandRunner.run(common) { transport, config in
            let path = (config.dataDir as NSString).appendingPathComponent(Ledger.fileName)
            guard FileManager.default.fileExists(atPath: path) else {
                throw ConfigError("\(path): no migration ledger yet (run `os-migrate import workloads` first)")
            }
            let ledger = try Ledger(dataDir: config.dataDir)
            // With both clouds, what the ledger lists as left over is checked there (a kill can
            // leave the ledger behind the cloud).
            var clouds: (src: CloudSession, dst: CloudSession)?
            if let src = config.src, let dst = config.dst {
                clouds = (try CloudSession(profile: src, transport: transport), try CloudSession(profile: dst, transport: transport))
            }
            var out: [JSONValue] = []
            let iso = ISO8601DateFormatter()
            for w in try ledger.workloads() {
                let copies = try ledger.copies(w.sourceID)
                var leftovers: [Ledger.Resource] = []
                var gone: [Ledger.Resource] = []
                for r in try ledger.resources(w.sourceID, state: .created) {
                    if let c = clouds, try await LedgerCheck.exists(r, src: c.src, dst: c.dst) == false { gone.append(r) } else { leftovers.append(r) }
                }
                let interrupted = try ledger.resources(w.sourceID, state: .intended)
                var seconds: Double?
                if let start = w.startedAt, let end = w.finishedAt { seconds = end.timeIntervalSince(start) }
                var o: JSONObject = [
                    "name": .string(w.name), "source_id": .string(w.sourceID), "state": .string(w.state.rawValue),
                    "last_step": w.step.map(JSONValue.string) ?? .null, "attempts": .int(w.attempts),
                    "destination_id": w.destinationID.map(JSONValue.string) ?? .null,
                    "started_at": w.startedAt.map { .string(iso.string(from: $0)) } ?? .null,
                    "finished_at": w.finishedAt.map { .string(iso.string(from: $0)) } ?? .null,
                    "seconds": seconds.map(JSONValue.double) ?? .null,
                    "error": w.error.map(JSONValue.string) ?? .null,
                    "downtime_seconds": w.downtimeSeconds.map(JSONValue.double) ?? .null,
                ]
                let timeline = StepTimeline(events: try ledger.events(w.sourceID), startedAt: w.startedAt)
                o["steps"] = .array(timeline.entries.map { ["step": .string($0.step), "seconds": .double($0.seconds)] })
                o["sync_passes"] = .array(try ledger.syncPasses(w.sourceID).map { p in
                    ["pass": .int(p.pass), "device": .string(p.device), "destination_volume": .string(p.destinationVolume),
                     "size": .int(Int(p.size)), "bytes_changed": .int(Int(p.bytesChanged)), "bytes_on_wire": .int(Int(p.bytesOnWire)),
                     "seconds": .double(p.seconds), "digest": .string(p.digest), "at": .string(iso.string(from: p.at))]
                })
                o["copies"] = .array(copies.map { c in
                    ["device": .string(c.device), "source_volume": .string(c.sourceVolume), "destination_volume": .string(c.destinationVolume),
                     "size": .int(Int(c.size)), "digest": .string(c.digest), "bytes_copied": .int(Int(c.bytesCopied)),
                     "bytes_zero": .int(Int(c.bytesZero)), "bytes_reused": .int(Int(c.bytesReused)),
                     "bytes_on_wire": .int(Int(c.bytesOnWire)), "seconds": .double(c.seconds),
                     "verified_at": .string(iso.string(from: c.verifiedAt))]
                })
                let entry = { (r: Ledger.Resource) -> JSONValue in
                    ["cloud": .string(r.cloud), "kind": .string(r.kind), "id": .string(r.resourceID), "role": .string(r.role)]
                }
                o["leftovers"] = .array(leftovers.map(entry))
                o["already_gone"] = .array(gone.map(entry))
                o["interrupted_creates"] = .array(interrupted.map(entry))
                // A warm sync's destination volumes and their attachments to the destination
                // conversion host, kept for the next pass and the cutover (a done workload's
                // kept resources are simply its migrated ones).
                o["kept_for_cutover"] = .array(w.state == .done ? [] : try ledger.resources(w.sourceID, state: .kept).map(entry))
                o["checked_in_clouds"] = .bool(clouds != nil)
                out.append(.object(o))
            }
            let volumes = try await Self.volumeCopies(ledger, clouds: clouds)
            if common.json {
                printLine(JSONValue.object(["workloads": .array(out), "detached_volumes": .array(volumes)]).jsonString())
                return 0
            }
            if out.isEmpty && volumes.isEmpty { printLine("no workloads in the ledger") }
            for w in out {
                var line = "\(w["name"]!.stringValue!): \(w["state"]!.stringValue!)"
                if let d = w["destination_id"]?.stringValue { line += ", destination server \(d)" }
                if let s = w["seconds"]?.doubleValue { line += String(format: ", %.1f s", s) }
                if let d = w["downtime_seconds"]?.doubleValue { line += String(format: ", downtime %.1f s", d) }
                if let a = w["attempts"]?.intValue, a > 1 { line += ", attempt \(a)" }
                if w["state"]?.stringValue == "running", let st = w["last_step"]?.stringValue { line += " (last step done: \(st))" }
                printLine(line)
                if let e = w["error"]?.stringValue { printLine("  error: \(e)") }
                let steps = (w["steps"]?.arrayValue ?? []).map { s in
                    StepTimeline.Entry(step: s["step"]?.stringValue ?? "", seconds: s["seconds"]?.doubleValue ?? 0)
                }
                if !steps.isEmpty { printLine("  steps: " + StepTimeline.text(steps)) }
                for c in w["copies"]?.arrayValue ?? [] {
                    let gib = { (k: String) in String(format: "%.2f GiB", Double(c[k]?.intValue ?? 0) / 1_073_741_824) }
                    printLine("  \(c["device"]!.stringValue!): \(gib("size")) verified, \(gib("bytes_on_wire")) on the wire, \(gib("bytes_zero")) zero, "
                        + String(format: "%.1f s", c["seconds"]?.doubleValue ?? 0) + ", digest \(c["digest"]!.stringValue!)")
                }
                for p in w["sync_passes"]?.arrayValue ?? [] {
                    let gib = { (k: String) in String(format: "%.2f GiB", Double(p[k]?.intValue ?? 0) / 1_073_741_824) }
                    printLine("  sync pass \(p["pass"]?.intValue ?? 0) \(p["device"]?.stringValue ?? ""): \(gib("bytes_changed")) changed of \(gib("size")), "
                        + "\(gib("bytes_on_wire")) on the wire, " + String(format: "%.1f s", p["seconds"]?.doubleValue ?? 0))
                }
                let text = { (l: JSONValue) in "\(l["cloud"]!.stringValue!) \(l["kind"]!.stringValue!) \(l["id"]!.stringValue!) (\(l["role"]!.stringValue!))" }
                for l in w["leftovers"]?.arrayValue ?? [] { printLine("  to clean up: " + text(l)) }
                for l in w["already_gone"]?.arrayValue ?? [] { printLine("  already gone from the cloud: " + text(l)) }
                for l in w["interrupted_creates"]?.arrayValue ?? [] {
                    printLine("  interrupted create: \(l["cloud"]!.stringValue!) \(l["kind"]!.stringValue!) (\(l["role"]!.stringValue!)): "
                        + "the next run finds it or makes it")
                }
                for l in w["kept_for_cutover"]?.arrayValue ?? [] { printLine("  kept for the cutover: " + text(l)) }
                let unfinished = w["state"]?.stringValue == "running" || !(w["leftovers"]?.arrayValue ?? []).isEmpty
                    || !(w["interrupted_creates"]?.arrayValue ?? []).isEmpty
                if unfinished { printLine("  to finish: run `os-migrate import workloads` again") }
                if w["state"]?.stringValue == "synced" {
                    printLine("  synced, the source still running: `os-migrate import workloads --sync` again, or `--cutover` to finish")
                }
            }
            for v in volumes {
                var line = "detached volume \(TerminalText.escaped(v["name"]?.stringValue ?? "")): \(v["state"]?.stringValue ?? "")"
                if let a = v["attempts"]?.intValue, a > 1 { line += ", attempt \(a)" }
                if let d = v["digest"]?.stringValue { line += ", digest \(d)" }
                printLine(line)
                if let e = v["error"]?.stringValue { printLine("  error: \(TerminalText.escaped(e))") }
                for l in v["still_attached"]?.arrayValue ?? [] {
                    printLine("  still attached: \(l["cloud"]?.stringValue ?? "") volume \(l["volume"]?.stringValue ?? "") to the conversion host server \(l["server"]?.stringValue ?? "")")
                }
                if v["state"]?.stringValue != "done" { printLine("  to finish: run `os-migrate import detached-volumes` again") }
            }
            return 0
        }
    }

    /// The detached volumes' copies; with both clouds, which of their volumes a kill left
    /// attached to a conversion host (asked of the cloud, not taken from the ledger).
    static func volumeCopies(_ ledger: Ledger, clouds: (src: CloudSession, dst: CloudSession)?) async throws -> [JSONValue] {
        let iso = ISO8601DateFormatter()
        var out: [JSONValue] = []
        for c in try ledger.volumeCopies() {
            var o: JSONObject = [
                "name": .string(c.name), "source_volume": .string(c.sourceVolume), "destination_volume": .string(c.destinationVolume),
                "state": .string(c.state == .running ? "interrupted" : c.state.rawValue), "attempts": .int(c.attempts),
                "started_at": .string(iso.string(from: c.startedAt)),
                "finished_at": c.finishedAt.map { .string(iso.string(from: $0)) } ?? .null,
                "digest": c.digest.map(JSONValue.string) ?? .null, "error": c.error.map(JSONValue.string) ?? .null,
            ]
            if let clouds, c.state != .done {
                var attached: [JSONValue] = []
                for (cloud, session, volume, server) in [("src", clouds.src, c.sourceVolume, c.sourceHost),
                                                         ("dst", clouds.dst, c.destinationVolume, c.destinationHost)]
                {
                    if let v = try await session.find(Cinder.volumes, id: volume), v.attachments.contains(where: { $0.serverID == server }) {
                        attached.append(["cloud": .string(cloud), "volume": .string(volume), "server": .string(server)])
                    }
                }
                o["still_attached"] = .array(attached)
            }
            o["checked_in_clouds"] = .bool(clouds != nil)
            out.append(.object(o))
        }
        return out
    }
}
