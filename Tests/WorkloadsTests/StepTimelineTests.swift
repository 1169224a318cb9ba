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
            event(2, StepTimeline.sourceStopped, "SHUTOFF"),
            event(5, "stage"), event(6, "attachSource"), event(6.5, "copy-begun", "vol"),
            event(9, "copy"), event(9, "detach"), event(12.25, "server"),
        ]
        let t = StepTimeline(events: events, startedAt: t0)
        #expect(t.entries == [
            .init(step: "stop source", seconds: 2), .init(step: "stage", seconds: 3), .init(step: "attachSource", seconds: 1),
            .init(step: "copy", seconds: 3), .init(step: "detach", seconds: 0), .init(step: "server", seconds: 3.25),
        ])
        #expect(t.text == "stop source 2.0 s, stage 3.0 s, attachSource 1.0 s, copy 3.0 s, detach 0.0 s, server 3.2 s")
    }

    @Test func noStartMeasuresFromTheFirstEventAndNoEventsIsEmpty() {
        #expect(StepTimeline(events: [], startedAt: t0).entries.isEmpty)
        let t = StepTimeline(events: [event(1, "stage"), event(4, "attachSource")], startedAt: nil)
        #expect(t.entries == [.init(step: "stage", seconds: 0), .init(step: "attachSource", seconds: 3)])
    }
}
