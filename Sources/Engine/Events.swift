import Foundation
import OpenStack
import Resources
import Synchronization

/// Where an engine run reports progress: the CLI prints text or JSON lines.
public protocol EventSink: Sendable {
    func item(_ result: ItemResult)
    func note(_ message: String)
    /// Progress of a long step (image data); sinks that do not show it ignore it.
    func progress(_ event: ProgressEvent)
}

extension EventSink {
    public func progress(_ event: ProgressEvent) {}
}

/// Counts per status, like Ansible's PLAY RECAP. An item reported twice (a router whose
/// routes were set after its interfaces) counts once, with its most significant status.
public struct Recap: Sendable, Equatable {
    public var ok = 0
    public var changed = 0
    public var skipped = 0
    public var failed = 0

    public init() {}

    public init(_ results: [ItemResult]) {
        var final: [String: ItemResult.Status] = [:]
        var order: [String] = []
        func rank(_ s: ItemResult.Status) -> Int {
            switch s {
            case .skipped: return 0
            case .ok: return 1
            case .changed: return 2
            case .failed: return 3
            }
        }
        for r in results {
            let key = r.kind + "\u{0}" + r.name
            if let prev = final[key] {
                if rank(r.status) > rank(prev) { final[key] = r.status }
            } else {
                final[key] = r.status
                order.append(key)
            }
        }
        for key in order {
            switch final[key]! {
            case .ok: ok += 1
            case .changed: changed += 1
            case .skipped: skipped += 1
            case .failed: failed += 1
            }
        }
    }

    public static func + (a: Recap, b: Recap) -> Recap {
        var r = a
        r.ok += b.ok
        r.changed += b.changed
        r.skipped += b.skipped
        r.failed += b.failed
        return r
    }

    public var line: String { "RECAP  ok=\(ok)  changed=\(changed)  skipped=\(skipped)  failed=\(failed)" }

    public var json: JSONValue {
        ["recap": ["ok": .int(ok), "changed": .int(changed), "skipped": .int(skipped), "failed": .int(failed)]]
    }
}

/// Collects results while forwarding them.
final class ResultLog: Sendable {
    private let results = Mutex<[ItemResult]>([])
    let sink: any EventSink

    init(sink: any EventSink) { self.sink = sink }

    func add(_ r: ItemResult) {
        results.withLock { $0.append(r) }
        sink.item(r)
    }

    var all: [ItemResult] { results.withLock { $0 } }
}
