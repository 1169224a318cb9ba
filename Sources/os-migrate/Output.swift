import Engine
import Foundation
import OpenStack
import Resources
import Synchronization

/// Prints engine events as text lines or as one JSON object per line, from any task.
final class ConsoleSink: EventSink, Sendable {
    let json: Bool
    /// In text mode, print each item (imports do; exports print a summary per file unless -v).
    let showItems: Bool
    private let lock = Mutex(())
    private let printedQuarters = Mutex<[String: Int]>([:])

    init(json: Bool, showItems: Bool = true) {
        self.json = json
        self.showItems = showItems
    }

    func write(_ line: String) {
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
    }

    func item(_ r: ItemResult) {
        if json {
            var o: JSONObject = ["event": "item", "kind": .string(r.kind), "name": .string(r.name),
                                 "status": .string(r.status.rawValue), "message": .string(r.message)]
            if let a = r.action { o["action"] = .string(a) }
            if !r.fields.isEmpty { o["fields"] = .array(r.fields.map(JSONValue.string)) }
            if let id = r.id { o["id"] = .string(id) }
            write(JSONValue.object(o).jsonString())
            return
        }
        if !showItems && r.status != .failed { return }
        let status = r.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
        write("\(status) \(r.kind): \(r.name)\(r.message.isEmpty ? "" : "  (\(r.message))")")
    }

    func note(_ message: String) {
        if json {
            write(JSONValue.object(["event": "note", "message": .string(message)]).jsonString())
        } else {
            write("== \(message)")
        }
    }

    func progress(_ e: ProgressEvent) {
        if json {
            var o: JSONObject = ["event": "progress", "kind": .string(e.kind), "name": .string(e.name), "phase": .string(e.phase),
                                 "done": .int(Int(e.done))]
            if let t = e.total { o["total"] = .int(Int(t)) }
            if let r = e.rate { o["rate"] = .int(Int(r)) }
            write(JSONValue.object(o).jsonString())
            return
        }
        // Text: a line per quarter of the way (JSON gets every event).
        if let t = e.total, t > 0 {
            let quarter = Int(e.done * 4 / t)
            let key = "\(e.kind)\u{0}\(e.name)\u{0}\(e.phase)"
            let due = printedQuarters.withLock { q -> Bool in
                if let last = q[key], last >= quarter { return false }
                q[key] = quarter
                return true
            }
            if !due { return }
        }
        let mib = { (b: Int64) in String(format: "%.1f", Double(b) / 1_048_576) }
        var line = "progress \(e.kind): \(e.name) \(e.phase) \(mib(e.done))"
        if let t = e.total, t > 0 { line += " of \(mib(t)) MiB (\(Int(Double(e.done) * 100 / Double(t)))%)" } else { line += " MiB" }
        if let r = e.rate { line += ", \(mib(Int64(r))) MiB/s" }
        write(line)
    }

    /// The last line: counts per status, and what it cost in API calls.
    func recap(_ recap: Recap, requests: RequestCounter? = nil) {
        if json {
            var o = recap.json["recap"]?.objectValue ?? [:]
            o["event"] = "recap"
            if let requests {
                o["api_calls"] = .int(requests.total)
                o["api_writes"] = .int(requests.writes)
            }
            write(JSONValue.object(o).jsonString())
        } else {
            write(recap.line + (requests.map { "  (\($0.total) API calls, \($0.writes) writes)" } ?? ""))
        }
    }

    func export(_ s: ExportSummary) {
        if json {
            write(JSONValue.object([
                "event": "export", "kind": .string(s.kind), "file": .string(s.file), "added": .int(s.added),
                "updated": .int(s.updated), "unchanged": .int(s.unchanged), "filtered": .int(s.filtered), "total": .int(s.total),
                "written": .bool(s.written),
            ]).jsonString())
        } else {
            write("\(s.file): \(s.added) added, \(s.updated) updated, \(s.unchanged) unchanged, \(s.filtered) filtered out (\(s.total) in file)")
        }
    }
}
