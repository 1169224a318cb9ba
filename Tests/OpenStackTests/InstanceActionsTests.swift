import Foundation
import OpenStack
import Testing

/// When a server was stopped, from its instance actions (a listing recorded from the lab's Nova).
@Suite struct InstanceActionsTests {
    @Test func theNewestStopOfARecordedListing() throws {
        let listing = try #require(try Fixture.json("compute/instance-actions.json")["instanceActions"])
        let stop = try #require(InstanceActions.lastStop(in: listing))
        #expect(ISO8601DateFormatter().string(from: stop) == "2026-12-05T03:28:29Z")
    }

    @Test func olderDateFormatsAndNoStop() throws {
        let listing: JSONValue = [
            ["action": "stop", "start_time": "2026-12-01 10:00:00.000000"],
            ["action": "stop", "start_time": "2026-12-02 09:30:15.000000"],
            ["action": "start", "start_time": "2026-12-03 00:00:00.000000"],
        ]
        #expect(InstanceActions.lastStop(in: listing).map { ISO8601DateFormatter().string(from: $0) } == "2026-12-02T09:30:15Z")
        #expect(InstanceActions.lastStop(in: [["action": "create", "start_time": "2026-12-01T00:00:00.000000"]]) == nil)
        #expect(InstanceActions.lastStop(in: .null) == nil)
    }
}
