import Foundation
import Testing
import Workloads

@Suite struct StepTimelineTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func event(_ offset: Double, _ step: String, _ message: String = "done") -> Ledger.Event {
        Ledger.Event(workload: "w", at: t0.addingTimeInterval(offset), step: step, message: message)
    }

    @Test func stepsOfTheLatestAttemptFromTheirMarks() {
        let events = [
            event(-50, "stage"), event(-40, "failed", "boom"),                  // an earlier attempt
            event(0.5, StepTimeline.cutoverPrepared, "ports"), event(2, StepTimeline.sourceStopped, "SHUTOFF"),
            event(5, "stage"), event(6, "attachSource"), event(6.5, "copy-begun", "vol"),
            event(9, "copy"), event(9.5, "detach"), event(12.75, "server"),
        ]
        let t = StepTimeline(events: events, startedAt: t0)
        // stage → copy are one pipeline: one entry ("transfer"), however their records fell.
        #expect(t.entries == [
            .init(step: "prepare cutover", seconds: 0.5), .init(step: "stop source", seconds: 1.5), .init(step: "transfer", seconds: 7),
            .init(step: "detach", seconds: 0.5), .init(step: "server", seconds: 3.25),
        ])
        #expect(t.text == "prepare cutover 0.5 s, stop source 1.5 s, transfer 7.0 s, detach 0.5 s, server 3.2 s")
    }

    @Test func noStartMeasuresFromTheFirstEventAndNoEventsIsEmpty() {
        #expect(StepTimeline(events: [], startedAt: t0).entries.isEmpty)
        let t = StepTimeline(events: [event(1, "ports"), event(4, "server")], startedAt: nil)
        #expect(t.entries == [.init(step: "ports", seconds: 0), .init(step: "server", seconds: 3)])
    }
}
