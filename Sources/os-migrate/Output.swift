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

    func write(_ line: String, terminator: String = "\n") {
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data((line + terminator).utf8))
        }
    }

    func item(_ r: ItemResult) {
        if json {
            var o: JSONObject = ["event": "item", "kind": .string(r.kind), "name": .string(TerminalText.capped(r.name)),
                                 "status": .string(r.status.rawValue), "message": .string(TerminalText.capped(r.message))]
            if let a = r.action { o["action"] = .string(a) }
            if !r.fields.isEmpty { o["fields"] = .array(r.fields.map(JSONValue.string)) }
            if !r.changes.isEmpty {
                // Old and new values as compact JSON text, cut short; "fields" keeps the names.
                o["diff"] = .array(r.changes.map { ["field": .string($0.field), "from": .string($0.from), "to": .string($0.to)] })
            }
            if let id = r.id { o["id"] = .string(id) }
            write(JSONValue.object(o).jsonString())
            return
        }
        if !showItems && r.status != .failed { return }
        let status = r.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
        // Updates end with the values: `description: "a" → "b"` (cut short; never secrets).
        let diff = r.changes.isEmpty ? "" : "  " + TerminalText.escaped(FieldChange.describe(r.changes), limit: 1000)
        let message = r.message.isEmpty ? "" : "  (\(TerminalText.escaped(r.message, limit: 2000)))"
        write("\(status) \(r.kind): \(TerminalText.escaped(r.name))\(message)\(diff)")
    }

    func note(_ message: String) {
        if json {
            write(JSONValue.object(["event": "note", "message": .string(TerminalText.capped(message))]).jsonString())
        } else {
            write("== \(TerminalText.escaped(message, limit: 2000))")
        }
    }

    func progress(_ e: ProgressEvent) {
        if json {
            var o: JSONObject = ["event": "progress", "kind": .string(e.kind), "name": .string(TerminalText.capped(e.name)), "phase": .string(e.phase),
                                 "done": .int(Int(e.done))]
            if let t = e.total { o["total"] = .int(Int(t)) }
            if let r = e.rate { o["rate"] = .int(Int(r)) }
            write(JSONValue.object(o).jsonString())
            return
        }
        if isTerminal {
            liveProgress(e)
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
        var line = "progress \(e.kind): \(TerminalText.escaped(e.name)) \(e.phase) \(mib(e.done))"
        if let t = e.total, t > 0 { line += " of \(mib(t)) MiB (\(Int(Double(e.done) * 100 / Double(t)))%)" } else { line += " MiB" }
        if let r = e.rate { line += ", \(mib(Int64(r))) MiB/s" }
        write(line)
    }

    /// On a terminal: one line redrawn in place, with a bar, the rate and the time left.
    func liveProgress(_ e: ProgressEvent) {
        let line = Self.progressLine(e, width: 24)
        let finished = e.total.map { $0 > 0 && e.done >= $0 } ?? false
        write("\r\u{1B}[K" + line, terminator: finished ? "\n" : "")
    }

    /// `vm1 /dev/sdb copy [#########.......] 45% 0.9/2.0 GiB 480 MB/s ETA 0:02`
    static func progressLine(_ e: ProgressEvent, width: Int) -> String {
        let gib = { (b: Int64) in String(format: "%.1f", Double(b) / 1_073_741_824) }
        var line = "\(e.kind): \(TerminalText.escaped(e.name, limit: 60)) \(e.phase)"
        if let t = e.total, t > 0 {
            let fraction = min(1, Double(e.done) / Double(t))
            let filled = Int(fraction * Double(width))
            line += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
            line += String(format: " %3d%% %@/%@ GiB", Int(fraction * 100), gib(e.done), gib(t))
            if let r = e.rate, r > 0 {
                line += String(format: " %.0f MB/s", r / 1e6)
                let left = Int(Double(t - e.done) / r)
                if e.done < t { line += String(format: " ETA %d:%02d", left / 60, left % 60) }
            }
        } else {
            line += " \(gib(e.done)) GiB"
        }
        return line
    }

    let isTerminal = isatty(STDOUT_FILENO) == 1


    /// The last line: counts per status, and what it cost in API calls.
    /// `requests`: the counters of every session the command used (both clouds).
    func recap(_ recap: Recap, requests: [RequestCounter] = []) {
        let calls = requests.reduce(0) { $0 + $1.total }, writes = requests.reduce(0) { $0 + $1.writes }
        if json {
            var o = recap.json["recap"]?.objectValue ?? [:]
            o["event"] = "recap"
            if !requests.isEmpty {
                o["api_calls"] = .int(calls)
                o["api_writes"] = .int(writes)
            }
            write(JSONValue.object(o).jsonString())
        } else {
            write(recap.line + (requests.isEmpty ? "" : "  (\(calls) API calls, \(writes) writes)"))
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
            write("\(TerminalText.escaped(s.file, limit: 1000)): \(s.added) added, \(s.updated) updated, \(s.unchanged) unchanged, \(s.filtered) filtered out (\(s.total) in file)")
        }
    }
}
