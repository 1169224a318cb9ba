import Foundation

/// Where a workload's migration spent its time: one entry per step of its latest attempt, from
/// the ledger's events (each step's "done", the source's stop). Pure: `report` shows it, and an
/// operator (or `bench/warm`) reads which step a cutover's downtime went to.
public struct StepTimeline: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var step: String
        public var seconds: Double

        public init(step: String, seconds: Double) {
            self.step = step
            self.seconds = seconds
        }
    }

    public var entries: [Entry]

    /// The latest attempt's steps: the events at or after `startedAt`, each step's duration
    /// measured from the previous mark (the attempt's start, the source stopped, or the step
    /// before). Events of other kinds (copy-begun, failures) are not steps and only pass.
    public init(events: [Ledger.Event], startedAt: Date?) {
        let steps = Set(MigrationStep.allCases.map(\.rawValue))
        let transfer = Set(MigrationStep.transfer.map(\.rawValue))
        var last = startedAt
        var out: [Entry] = []
        for e in events {
            if let s = startedAt, e.at < s { continue }
            let isStep = steps.contains(e.step) && e.message == "done"
            guard isStep || e.step == Self.sourceStopped || e.step == Self.cutoverPrepared else { continue }
            let seconds = max(0, e.at.timeIntervalSince(last ?? e.at))
            last = e.at
            // The transfer's steps (stage → copy) run as one pipeline: one entry.
            if transfer.contains(e.step) {
                if out.last?.step == Self.transfer { out[out.count - 1].seconds += seconds } else { out.append(Entry(step: Self.transfer, seconds: seconds)) }
                continue
            }
            let name = e.step == Self.sourceStopped ? "stop source" : e.step == Self.cutoverPrepared ? "prepare cutover" : e.step
            out.append(Entry(step: name, seconds: seconds))
        }
        entries = out
    }

    /// The entry of the steps `MigrationStep.transfer` runs together.
    public static let transfer = "transfer"

    /// The event logged when a cutover's work before the source's stop is done (`prepareCutover`).
    public static let cutoverPrepared = "cutover-prepared"

    /// The event logged when the source server reached SHUTOFF.
    public static let sourceStopped = "source-stopped"

    /// `stop source 0.4 s, transfer 6.1 s, detach 0.5 s, …`
    public var text: String { Self.text(entries) }

    public static func text(_ entries: [Entry]) -> String {
        entries.map { String(format: "%@ %.1f s", $0.step, $0.seconds) }.joined(separator: ", ")
    }
}
