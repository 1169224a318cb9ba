import DataPlane
import Foundation
import TestSupport
import Testing

/// The library API the Workloads module calls.
@Suite("DataPlane library API")
struct LibraryTests {
    final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var events: [CopyProgress] = []
        func add(_ p: CopyProgress) {
            lock.lock()
            events.append(p)
            lock.unlock()
        }
        var all: [CopyProgress] {
            lock.lock()
            defer { lock.unlock() }
            return events
        }
    }

    @Test("progress: several events, bytesDone rising to the total, a rate > 0 (in process and relayed from a remote receiver)")
    func progress() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img")
        let size = try DiskKind.dense.make(src)
        let ep = SSHEndpoint(user: h.server.user, host: h.server.host, port: h.server.port, identity: h.server.identityFile,
                             options: h.server.sshOptionValues, remoteCommand: h.binary)
        var r = CopyRequest(source: VolumeLocation(endpoint: ep, path: src),
                            destination: VolumeLocation(endpoint: nil, path: h.scratch.file("dst.img")))
        r.agentExecutable = h.binary
        r.useState = false
        r.chunkSize = 1 << 20
        r.workers = 1
        r.testHooks.senderDelayMilliseconds = 60  // 24 chunks, one at a time: ≈ 1.5 s, about 6 ticks
        let counter = Counter()
        let result = try await runCopy(r) { counter.add($0) }
        #expect(result.verified)
        #expect(try sameBytes(src, h.scratch.file("dst.img")))
        let events = counter.all
        #expect(progressProblems(events, total: UInt64(size), atLeast: 4) == [], "\(events.map { ($0.bytesDone, $0.rate) })")

        // The CLI with the receiver on the "destination host": its JSON events relayed.
        let dst2 = h.scratch.file("dst2.img")
        let run = try await h.copy(h.remote(src), "127.0.0.1:" + dst2, ["--chunk-size", "1M", "--workers", "1", "--no-state"],
                                   env: ["OSM_AGENT_TEST_SENDER_DELAY_MS": "60"], state: false)
        #expect(run.exitCode == 0, "\(run)")
        #expect(try sameBytes(src, dst2))
        #expect(progressProblems(run.progress, total: UInt64(size), atLeast: 4) == [], "\(run.progress.map { ($0.bytesDone, $0.rate) })")
    }

    @Test("several volumes copied at once through ssh, with progress")
    func concurrentCopies() async throws {
        let h = try Harness()
        let kinds: [DiskKind] = [.dense, .half, .explicitZeros]
        var requests: [CopyRequest] = []
        for (i, k) in kinds.enumerated() {
            let src = h.scratch.file("src\(i).img")
            try k.make(src, seed: UInt64(i + 1))
            let ep = SSHEndpoint(user: h.server.user, host: h.server.host, port: h.server.port, identity: h.server.identityFile,
                                 options: h.server.sshOptionValues, remoteCommand: h.binary)
            var r = CopyRequest(source: VolumeLocation(endpoint: ep, path: src),
                                destination: VolumeLocation(endpoint: nil, path: h.scratch.file("dst\(i).img")))
            r.stateDirectory = h.scratch.stateDir
            r.agentExecutable = h.binary
            r.chunkSize = 1 << 20
            requests.append(r)
        }
        let counter = Counter()
        let results = try await withThrowingTaskGroup(of: (Int, CopyResult).self) { group in
            for (i, r) in requests.enumerated() {
                group.addTask { (i, try await runCopy(r, progress: { counter.add($0) })) }
            }
            var out: [Int: CopyResult] = [:]
            for try await (i, r) in group { out[i] = r }
            return out
        }
        for i in kinds.indices {
            let r = try #require(results[i])
            #expect(r.verified)
            #expect(r.chunkSize == 1 << 20)
            #expect(try sameBytes(h.scratch.file("src\(i).img"), h.scratch.file("dst\(i).img")))
            #expect(r.digest == (try localVolumeDigest(path: h.scratch.file("src\(i).img"), chunkSize: 1 << 20).digest))
        }
        #expect(counter.all.count >= 3)  // at least the final event of each
    }

    @Test("errors are typed; cancellation stops a copy")
    func errorsAndCancel() async throws {
        let h = try Harness()
        let ep = SSHEndpoint(user: h.server.user, host: h.server.host, port: h.server.port, identity: h.server.identityFile,
                             options: h.server.sshOptionValues, remoteCommand: h.binary)
        var r = CopyRequest(source: VolumeLocation(endpoint: ep, path: "/nonexistent/disk"),
                            destination: VolumeLocation(endpoint: nil, path: h.scratch.file("x.img")))
        r.agentExecutable = h.binary
        r.useState = false
        await #expect(throws: DataPlaneError("source root@127.0.0.1:/nonexistent/disk: No such file or directory", kind: .notFound)) {
            try await runCopy(r)
        }

        // A big sparse-free source; cancel right away.
        let src = h.scratch.file("big.img")
        var w = try DiskWriter(path: src, size: 256 * MiB, seed: 1)
        w.random(at: 0, count: 256 * MiB)
        w.close()
        var big = CopyRequest(source: VolumeLocation(endpoint: ep, path: src),
                              destination: VolumeLocation(endpoint: nil, path: h.scratch.file("big-dst.img")))
        big.agentExecutable = h.binary
        big.useState = false
        let task = Task { try await runCopy(big) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        await #expect(throws: DataPlaneError.self) { try await task.value }
    }
}
