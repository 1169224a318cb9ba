import DataPlane
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The built `os-migrate` binary copying through a real sshd (user root on 127.0.0.1 in CI).
@Suite("DataPlane copy end to end", .serialized)
struct CopyEndToEndTests {
    // MARK: bit-exact copies

    @Test("bit-exact copy to a new file", arguments: DiskKind.allCases)
    func copyToNewFile(kind: DiskKind) async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try kind.make(src)
        let run = try await h.copy(h.remote(src), dst)
        #expect(run.exitCode == 0, "\(run)")
        let r = try #require(run.result, "\(run)")
        #expect(try sameBytes(src, dst))
        #expect(r.verified)
        #expect(r.digest == (try localVolumeDigest(path: src).digest))
        // Only non-zero 64 KiB blocks cross the wire; framing is small.
        let data = try nonZeroBlockBytes(src)
        #expect(r.bytesCopied == data)
        #expect(r.bytesCopied + r.bytesZero == r.sourceSize)
        #expect(r.bytesOnWire >= data)
        #expect(Double(r.bytesOnWire) <= Double(data) * 1.02 + 65536, "wire \(r.bytesOnWire) for \(data) bytes of data")
    }

    @Test("a destination holding old data is overwritten everywhere, zeros included", arguments: [DiskKind.sparse5, .explicitZeros, .empty])
    func overwriteOldData(kind: DiskKind) async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        let size = try kind.make(src)
        var w = try DiskWriter(path: dst, size: size + 3 * MiB, seed: 99)  // bigger, full of noise
        w.random(at: 0, count: size + 3 * MiB)
        w.close()
        let run = try await h.copy(h.remote(src), dst)
        #expect(run.exitCode == 0, "\(run)")
        #expect(try sameBytes(src, dst))  // same size too: the file was cut to the source's size
    }

    @Test("copy onto a block device (loop) full of old data, every disk kind", .enabled(if: LoopDevice.available),
          arguments: DiskKind.allCases)
    func copyToLoopDevice(kind: DiskKind) async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), backing = h.scratch.file("backing.img")
        let size = try kind.make(src)
        // The device is a bit larger than the source and holds old data (noise) everywhere, so every
        // zero of the source must be written (BLKZEROOUT or zeros), none can be assumed.
        var w = try DiskWriter(path: backing, size: size + MiB, seed: 5)
        w.random(at: 0, count: size + MiB)
        w.close()
        let old = try Data(contentsOf: URL(fileURLWithPath: backing))
        let dev = try LoopDevice.attach(backing)
        defer { LoopDevice.detach(dev) }
        let run = try await h.copy(h.remote(src), dev)
        #expect(run.exitCode == 0, "\(run)")
        let r = try #require(run.result, "\(run)")
        #expect(try sameBytes(src, dev, count: size))
        #expect(r.verified)
        #expect(r.digest == (try localVolumeDigest(path: src).digest))
        #expect(r.bytesCopied == (try nonZeroBlockBytes(src)))
        #expect(r.bytesCopied + r.bytesZero == UInt64(size))
        // Past the source's size the device is left alone (a loop device ends at a 512-byte boundary).
        let end = (size + MiB) / 512 * 512
        let f = try FileHandle(forReadingFrom: URL(fileURLWithPath: dev))
        defer { try? f.close() }
        try f.seek(toOffset: UInt64(size))
        let tail = try f.read(upToCount: end - size) ?? Data()
        #expect(tail == old[size..<end])
        // The chunk map works for a block device too: a second run moves no data.
        let again = try await h.copy(h.remote(src), dev)
        #expect(again.exitCode == 0, "\(again)")
        #expect(again.result?.chunksCopied == 0)
        #expect(try sameBytes(src, dev, count: size))
    }

    @Test("copy out of a block device (loop): no SEEK_DATA, every chunk read, zeros still skipped", .enabled(if: LoopDevice.available))
    func copyFromLoopDevice() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), back = h.scratch.file("back.img")
        let size = try DiskKind.sparse5.make(src)
        try sh("truncate -s \(size) \(back)")
        let sdev = try LoopDevice.attach(back)
        defer { LoopDevice.detach(sdev) }
        try sh("dd if=\(src) of=\(sdev) bs=1M conv=fsync status=none")
        let out = h.scratch.file("out.img")
        let run = try await h.copy(h.remote(sdev), out)
        #expect(run.exitCode == 0, "\(run)")
        #expect(try sameBytes(src, out))
        #expect(run.result?.bytesCopied == (try nonZeroBlockBytes(src)))
    }

    // MARK: resume, incremental, repair

    @Test("kill the receiver at ~50 %: the next run moves only what is missing")
    func resumeAfterKill() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        var w = try DiskWriter(path: src, size: 64 * MiB, seed: 11)
        w.random(at: 0, count: 56 * MiB)
        w.close()
        let data = try nonZeroBlockBytes(src)
        let killed = try await h.copy(h.remote(src), dst, ["--workers", "1"], env: ["OSM_AGENT_TEST_KILL_AFTER_BYTES": String(data / 2)])
        #expect(killed.exitCode == 128 + SIGKILL, "\(killed)")
        #expect(killed.result == nil)
        #expect(!(try sameBytes(src, dst)))

        let run = try await h.copy(h.remote(src), dst)
        #expect(run.exitCode == 0, "\(run)")
        let r = try #require(run.result)
        #expect(try sameBytes(src, dst))
        // What the first run landed is reused (verified by re-hashing), the rest is copied.
        #expect(r.bytesReused >= data / 2)
        #expect(r.bytesReused + r.bytesCopied == data)
        #expect(r.bytesCopied <= data / 2)
        #expect(r.bytesOnWire >= r.bytesCopied && Double(r.bytesOnWire) <= Double(r.bytesCopied) * 1.02 + 65536)
        #expect(r.chunksRepaired == 0)
    }

    @Test("the sender dies in the middle of a frame at ~50 %: a lost connection naming the source; a rerun completes")
    func senderKilledMidTransfer() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        var w = try DiskWriter(path: src, size: 64 * MiB, seed: 12)
        w.random(at: 0, count: 56 * MiB)
        w.close()
        let data = try nonZeroBlockBytes(src)
        let killed = try await h.copy(h.remote(src), dst, env: ["OSM_AGENT_TEST_SENDER_KILL_AFTER_BYTES": String(data / 2)])
        #expect(killed.exitCode == 1, "\(killed)")
        #expect(killed.result == nil)
        // Not a protocol violation: a lost connection, on one line, with what ssh relayed last.
        #expect(killed.error?.kind == .connect, "\(killed)")
        let line = "os-migrate: error: source \(h.remote(src)): the connection was lost during the transfer: "
            + "os-migrate agent: test hook: killed in the middle of chunk "
        #expect(killed.stderr.hasPrefix(line), "\(killed)")
        #expect(killed.stderr.hasSuffix(" after \(data / 2) bytes\n") && killed.stderr.filter { $0 == "\n" }.count == 1, "\(killed)")
        #expect(killed.error?.message == String(killed.stderr.dropFirst("os-migrate: error: ".count).dropLast()))
        #expect(!(try sameBytes(src, dst)))

        let run = try await h.copy(h.remote(src), dst)
        #expect(run.exitCode == 0, "\(run)")
        let r = try #require(run.result)
        #expect(try sameBytes(src, dst))
        #expect(r.bytesReused > 0 && r.bytesReused + r.bytesCopied == data)  // what landed before the loss is kept
    }

    @Test("a source that stops sending: the copy gives up after --stall-timeout, here and on a remote receiver")
    func stallTimeout() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img"), dst2 = h.scratch.file("dst2.img")
        try DiskKind.dense.make(src)
        // The sender would wait 10 minutes before each chunk (it stops waiting when the receiver leaves).
        let stalled = ["OSM_AGENT_TEST_SENDER_DELAY_MS": "600000"]
        let clock = ContinuousClock()
        let start = clock.now
        let run = try await h.copy(h.remote(src), dst, ["--stall-timeout", "2"], env: stalled)
        #expect(clock.now - start < .seconds(60), "\(run)")
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.result == nil)
        #expect(run.error?.kind == .connect)
        #expect(run.stderr == "os-migrate: error: source \(h.remote(src)): stalled: nothing arrived for 2 s (--stall-timeout); giving up\n", "\(run)")
        // The receiver on the destination host gets the option too (with its default of 300 s this would time out).
        let start2 = clock.now
        let remote = try await h.copy(h.remote(src), "127.0.0.1:" + dst2, ["--stall-timeout", "1.5"], env: stalled)
        #expect(clock.now - start2 < .seconds(60), "\(remote)")
        #expect(remote.exitCode == 1, "\(remote)")
        #expect(remote.error?.message == "source \(h.remote(src)): stalled: nothing arrived for 1.5 s (--stall-timeout); giving up", "\(remote)")
        // Without the stall, the next run completes.
        let again = try await h.copy(h.remote(src), dst)
        #expect(again.exitCode == 0, "\(again)")
        #expect(try sameBytes(src, dst))
    }

    @Test("change 3 chunks on the source after a full copy: exactly those 3 move")
    func incremental() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.half.make(src)
        let first = try await h.copy(h.remote(src), dst)
        #expect(first.exitCode == 0, "\(first)")
        let full = try #require(first.result)

        var w = try DiskWriter(path: src, size: 48 * MiB, seed: 77, truncate: false)
        w.random(at: 1 * chunk, count: chunk)
        w.random(at: 5 * chunk + 12345, count: 1000)  // a small change inside a chunk
        w.random(at: 11 * chunk, count: chunk)
        w.close()
        let second = try await h.copy(h.remote(src), dst)
        #expect(second.exitCode == 0, "\(second)")
        let r = try #require(second.result)
        #expect(r.chunksCopied == 3)
        #expect(r.chunksReused == full.chunksCopied - 3)  // every chunk of this disk holds data
        #expect(try sameBytes(src, dst))
        #expect(r.bytesOnWire < UInt64(3 * chunk + 65536))
        #expect(r.digest == (try localVolumeDigest(path: src).digest))

        // A third run with nothing changed moves nothing.
        let third = try await h.copy(h.remote(src), dst)
        #expect(third.result?.chunksCopied == 0)
        #expect((third.result?.bytesOnWire ?? .max) < 16384)
    }

    @Test("the chunk map follows --target-key, not the path: another path with the same key reuses it, the same path with another key does not")
    func mapByTargetKey() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), a = h.scratch.file("a.img"), b = h.scratch.file("b.img")
        try DiskKind.half.make(src)
        let first = try await h.copy(h.remote(src), a, ["--target-key", "vol-1"])
        #expect(first.exitCode == 0, "\(first)")
        let copied = try #require(first.result?.chunksCopied)
        // The same volume seen at another path (attached again, another /dev/sdX): the map is its.
        try FileManager.default.copyItem(atPath: a, toPath: b)
        let moved = try await h.copy(h.remote(src), b, ["--target-key", "vol-1"])
        #expect(moved.result?.chunksCopied == 0 && moved.result?.chunksReused == copied, "\(moved)")
        // Another volume at the first one's path: no map, a full copy.
        let other = try await h.copy(h.remote(src), a, ["--target-key", "vol-2"])
        #expect(other.result?.chunksCopied == copied && other.result?.chunksReused == 0, "\(other)")
        #expect(try sameBytes(src, a) && sameBytes(src, b))
    }

    @Test("--trust-map reuses the map's chunks without reading the target: only changed chunks are read, moved and written")
    func trustMap() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.half.make(src)
        let first = try await h.copy(h.remote(src), dst, ["--target-key", "t"])
        #expect(first.exitCode == 0, "\(first)")
        var w = try DiskWriter(path: src, size: 48 * MiB, seed: 78, truncate: false)
        w.random(at: 3 * chunk, count: chunk)
        w.close()
        // A byte changed behind the map's back stays unseen with --trust-map (that is the trust)…
        let fd = open(dst, O_RDWR)
        _ = [UInt8]([7]).withUnsafeBytes { pwrite(fd, $0.baseAddress, 1, off_t(6 * chunk + 9)) }
        close(fd)
        let trusted = try await h.copy(h.remote(src), dst, ["--target-key", "t", "--trust-map"])
        #expect(trusted.exitCode == 0, "\(trusted)")
        let r = try #require(trusted.result)
        #expect(r.chunksCopied == 1 && r.chunksRepaired == 0)
        #expect(r.digest == (try localVolumeDigest(path: src).digest))
        #expect(try !sameBytes(src, dst))
        // … and the next run without it finds and repairs it.
        let checked = try await h.copy(h.remote(src), dst, ["--target-key", "t"])
        #expect(checked.result?.chunksRepaired == 1, "\(checked)")
        #expect(try sameBytes(src, dst))
    }

    @Test("a chunk corrupted in flight is detected and re-requested")
    func corruptInFlight() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.dense.make(src)
        let run = try await h.copy(h.remote(src), dst, env: ["OSM_AGENT_TEST_CORRUPT_CHUNK": "2"])
        #expect(run.exitCode == 0, "\(run)")
        let r = try #require(run.result)
        #expect(r.chunksRetried == 1)
        #expect(run.stdout.contains("chunk 2 failed verification on arrival"))
        #expect(try sameBytes(src, dst))
        #expect(r.bytesOnWire > UInt64(24 * MiB + chunk))  // the bad chunk crossed twice
    }

    @Test("a chunk that keeps arriving corrupted fails the copy: never reported as success")
    func corruptAlways() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.dense.make(src)
        let run = try await h.copy(h.remote(src), dst, env: ["OSM_AGENT_TEST_CORRUPT_CHUNK": "1", "OSM_AGENT_TEST_CORRUPT_ALWAYS": "1"])
        #expect(run.exitCode == 3, "\(run)")
        #expect(run.result == nil)
        #expect(run.error?.kind == .verification)
        #expect(run.stderr.contains("os-migrate: error: chunk 1 (offset 4194304) failed verification 3 times"))
    }

    @Test("a destination corrupted between runs is detected and repaired; verify-only reports it")
    func corruptDestinationBetweenRuns() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.explicitZeros.make(src)
        let first = try await h.copy(h.remote(src), dst)
        #expect(first.exitCode == 0, "\(first)")
        // Damage a data chunk and a zero chunk of the destination behind the map's back.
        let fd = open(dst, O_RDWR)
        _ = [UInt8]([1, 2, 3]).withUnsafeBytes { pwrite(fd, $0.baseAddress, 3, off_t(2 * chunk + MiB + 100)) }
        _ = [UInt8]([9]).withUnsafeBytes { pwrite(fd, $0.baseAddress, 1, off_t(7 * chunk + 5)) }
        close(fd)

        let check = try await h.copy(h.remote(src), dst, ["--verify-only"])
        #expect(check.exitCode == 3, "\(check)")
        #expect(check.result?.verified == false)
        #expect(check.result?.chunksDiffering == 2)

        let run = try await h.copy(h.remote(src), dst)
        #expect(run.exitCode == 0, "\(run)")
        let r = try #require(run.result)
        #expect(r.chunksRepaired == 1)  // the data chunk, re-sent
        #expect(r.chunksCopied == 1)
        #expect(try sameBytes(src, dst))  // the zero chunk was re-zeroed locally
        #expect(run.stdout.contains("chunk 2 no longer holds what the chunk map says"))

        let again = try await h.copy(h.remote(src), dst, ["--verify-only"])
        #expect(again.exitCode == 0, "\(again)")
        #expect(again.result?.verified == true)
        #expect(again.result?.digest == r.digest)
    }

    @Test("verify-only on differing volumes: both digests, and no digest that reads like a match (JSON and text)")
    func verifyOnlyDiffering() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.dense.make(src)
        let first = try await h.copy(h.remote(src), dst)
        #expect(first.exitCode == 0, "\(first)")
        let fd = open(dst, O_RDWR)  // flip one byte of chunk 1
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, off_t(5 * MiB + 7)) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, off_t(5 * MiB + 7)) == 1)
        close(fd)
        let srcDigest = try localVolumeDigest(path: src).digest
        let dstDigest = try localVolumeDigest(path: dst).digest
        #expect(srcDigest != dstDigest)

        let check = try await h.copy(h.remote(src), dst, ["--verify-only"])
        #expect(check.exitCode == 3, "\(check)")
        let r = try #require(check.result, "\(check)")
        #expect(!r.verified)
        #expect(r.chunksDiffering == 1)
        #expect(r.digest == "")
        #expect(r.sourceDigest == srcDigest)
        #expect(r.destinationDigest == dstDigest)
        let json = try #require(check.stdout.split(separator: "\n").first { $0.hasPrefix("{\"event\":\"result\"") })
        #expect(json.contains("\"digest\":\"\","), "\(json)")
        #expect(json.contains("\"sourceDigest\":\"\(srcDigest)\"") && json.contains("\"destinationDigest\":\"\(dstDigest)\""), "\(json)")

        let text = try await CLIRunner.run(["copy", h.remote(src), dst, "--verify-only", "--state-dir", h.scratch.stateDir,
                                            "--remote-command", h.binary] + h.sshFlags)
        #expect(text.exitCode == 3, "\(text)")
        let last = text.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("DIFFERENT: 1 chunk(s) of \(chunk) bytes differ between \(h.remote(src)) and \(dst) ("), "\(last)")
        #expect(last.hasSuffix("; source digest \(srcDigest), destination digest \(dstDigest)"), "\(last)")

        // Repaired: identical again, one digest for all three.
        let repair = try await h.copy(h.remote(src), dst)
        #expect(repair.exitCode == 0, "\(repair)")
        let same = try await h.copy(h.remote(src), dst, ["--verify-only"])
        #expect(same.exitCode == 0, "\(same)")
        #expect(same.result?.verified == true)
        #expect(same.result?.digest == srcDigest)
        #expect(same.result?.sourceDigest == srcDigest && same.result?.destinationDigest == srcDigest)
    }

    // MARK: topologies and options

    @Test("several SSH streams per volume")
    func streams() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.partialLastChunk.make(src)
        let run = try await h.copy(h.remote(src), dst, ["--streams", "3"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.result?.streams == 3)
        #expect(try sameBytes(src, dst))
        // Incremental with streams: nothing moves.
        let again = try await h.copy(h.remote(src), dst, ["--streams", "3"])
        #expect(again.result?.chunksCopied == 0)
    }

    @Test("both sides remote: the receiver runs on the destination host and relays its events")
    func bothRemote() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.half.make(src)
        // Same host and user: the remote receiver reads the source locally.
        let run = try await h.copy(h.remote(src), h.remote(dst))
        #expect(run.exitCode == 0, "\(run)")
        #expect(try sameBytes(src, dst))
        // Different spelling of the source host: the remote receiver opens its own ssh to the source.
        let dst2 = h.scratch.file("dst2.img")
        let run2 = try await h.copy(h.remote(src), "127.0.0.1:" + dst2)
        #expect(run2.exitCode == 0, "\(run2)")
        #expect(try sameBytes(src, dst2))
        #expect(run2.result?.bytesOnWire ?? 0 > 0)
        // --via names the receiving host for a bare destination path.
        let dst3 = h.scratch.file("dst3.img")
        let run3 = try await h.copy(h.remote(src), dst3, ["--via", h.server.destination])
        #expect(run3.exitCode == 0, "\(run3)")
        #expect(try sameBytes(src, dst3))
    }

    @Test("fallback: the source read through qemu-nbd --read-only over ssh -L, no agent on the source")
    func nbdFallback() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.explicitZeros.make(src)
        let data = try nonZeroBlockBytes(src)
        let run = try await h.copy(h.remote(src), dst, ["--nbd-fallback"])
        #expect(run.exitCode == 0, "\(run)")
        #expect(try sameBytes(src, dst))
        #expect(run.result?.bytesCopied == data)
        #expect(run.result?.digest == (try localVolumeDigest(path: src).digest))
        // Errors stay one clear line.
        let missing = try await h.copy(h.remote("/dev/osm-no-such-disk"), h.scratch.file("x.img"), ["--nbd-fallback"])
        #expect(missing.exitCode == 1, "\(missing)")
        #expect(missing.stderr == "os-migrate: error: source root@127.0.0.1:/dev/osm-no-such-disk: No such file or directory\n", "\(missing)")
        #expect(!FileManager.default.fileExists(atPath: h.scratch.file("x.img")))
    }

    @Test("the agent is copied to the remote host when missing, then reused")
    func deploysAgent() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.sparse5.make(src)
        let cache = h.scratch.file("agent-cache")
        let run = try await h.copy(h.remote(src), dst, ["--remote-cache-dir", cache], remoteCommand: false)
        #expect(run.exitCode == 0, "\(run)")
        let deployed = try FileManager.default.contentsOfDirectory(atPath: cache)
        #expect(deployed.count == 1)
        #expect(deployed.first?.hasPrefix("os-migrate-\(DataPlane.version)-") == true)
        let attrs = try FileManager.default.attributesOfItem(atPath: cache + "/" + deployed[0])
        let run2 = try await h.copy(h.remote(src), dst, ["--remote-cache-dir", cache], remoteCommand: false)
        #expect(run2.exitCode == 0, "\(run2)")
        let attrs2 = try FileManager.default.attributesOfItem(atPath: cache + "/" + deployed[0])
        #expect(attrs[.modificationDate] as? Date == attrs2[.modificationDate] as? Date)  // not uploaded again
        #expect(try sameBytes(src, dst))
    }

    @Test("verify-only on identical volumes, --target-is-zero, --no-state, human output")
    func options() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.explicitZeros.make(src)
        try sh("truncate -s \(32 * MiB) \(dst)")
        let run = try await h.copy(h.remote(src), dst, ["--target-is-zero", "--no-state"], state: false)
        #expect(run.exitCode == 0, "\(run)")
        #expect(try sameBytes(src, dst))
        let verify = try await h.copy(h.remote(src), dst, ["--verify-only"])
        #expect(verify.exitCode == 0, "\(verify)")
        #expect(verify.result?.verified == true)
        #expect(verify.result?.bytesCopied == 0)
        // Human output: one last line with the counters and the digest.
        let r = try await CLIRunner.run(["copy", h.remote(src), dst, "--state-dir", h.scratch.stateDir, "--remote-command", h.binary] + h.sshFlags)
        #expect(r.exitCode == 0)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("verified: \(32 * MiB) bytes (32.0 MiB) in "))
        #expect(last.contains("copied \(12 * MiB), zero \(20 * MiB), reused 0, on the wire "))
        #expect(last.hasSuffix("digest \(try localVolumeDigest(path: src).digest)"))
        // agent digest agrees.
        let d = try await CLIRunner.run(["agent", "digest", src])
        #expect(d.stdout.hasPrefix(try localVolumeDigest(path: src).digest))
    }

    @Test("an empty (0-byte) source, and a target already being written by another copy")
    func zeroLengthAndLock() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        _ = FileManager.default.createFile(atPath: src, contents: Data())
        let run = try await h.copy(h.remote(src), dst)
        #expect(run.exitCode == 0, "\(run)")
        #expect(run.result?.sourceSize == 0)
        #expect(try sameBytes(src, dst))
        // Hold the lock another copy would hold.
        try DiskKind.empty.make(src)
        let fd = open(dst, O_RDWR)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let busy = try await h.copy(h.remote(src), dst)
        #expect(busy.exitCode == 1, "\(busy)")
        #expect(busy.stderr == "os-migrate: error: destination \(dst) is in use by another copy\n")
    }

    // MARK: errors: one clear line, non-zero exit, nothing written

    @Test("ssh failing to connect")
    func sshConnectFailure() async throws {
        let h = try Harness()
        let dst = h.scratch.file("dst.img")
        let port = h.server.port
        h.server.stop()
        let run = try await h.copy(h.remote("/dev/null"), dst)
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.error?.kind == .connect)
        #expect(run.stderr == "os-migrate: error: cannot connect to root@127.0.0.1 over ssh: ssh: connect to host 127.0.0.1 port \(port): Connection refused\n", "\(run)")
        #expect(!FileManager.default.fileExists(atPath: dst))
    }

    @Test("a missing source device")
    func missingSource() async throws {
        let h = try Harness()
        let dst = h.scratch.file("dst.img")
        let run = try await h.copy(h.remote("/dev/osm-no-such-disk"), dst)
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.error?.kind == .notFound)
        #expect(run.stderr.contains("os-migrate: error: source root@127.0.0.1:/dev/osm-no-such-disk: No such file or directory\n"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: dst))
    }

    @Test("a missing destination device")
    func missingDestination() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img")
        try DiskKind.empty.make(src)
        let run = try await h.copy(h.remote(src), "/dev/osm-no-such-disk")
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.error?.kind == .notFound)
        #expect(run.stderr == "os-migrate: error: destination /dev/osm-no-such-disk: No such file or directory\n", "\(run)")
        #expect(!FileManager.default.fileExists(atPath: "/dev/osm-no-such-disk"))
    }

    @Test("a destination device smaller than the source", .enabled(if: LoopDevice.available))
    func destinationTooSmall() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), backing = h.scratch.file("small.img")
        try DiskKind.half.make(src)
        var w = try DiskWriter(path: backing, size: 16 * MiB, seed: 8)
        w.random(at: 0, count: 16 * MiB)
        w.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: backing))
        let dev = try LoopDevice.attach(backing)
        defer { LoopDevice.detach(dev) }
        let run = try await h.copy(h.remote(src), dev)
        #expect(run.exitCode == 1, "\(run)")
        #expect(run.error?.kind == .tooSmall)
        #expect(run.stderr == "os-migrate: error: destination \(dev) is smaller than the source (\(16 * MiB) < \(48 * MiB) bytes)\n", "\(run)")
        LoopDevice.detach(dev)
        #expect(try Data(contentsOf: URL(fileURLWithPath: backing)) == before)
    }

    @Test("permission denied on the source and on the destination", .enabled(if: geteuid() == 0))
    func permissionDenied() async throws {
        let h = try Harness()
        let src = h.scratch.file("src.img"), dst = h.scratch.file("dst.img")
        try DiskKind.sparse5.make(src)
        chmod(src, 0o600)
        let out = h.scratch.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        chmod(out, 0o777)
        // As nobody: the source (root, 0600) cannot be read.
        let r1 = try runAsNobody(["copy", src, out + "/new.img", "--no-state"])
        #expect(r1.status == 1, "\(r1)")
        #expect(r1.stderr == "os-migrate: error: source \(src): Permission denied\n", "\(r1)")
        #expect(!FileManager.default.fileExists(atPath: out + "/new.img"))
        // As nobody: the destination (root, 0644) cannot be written.
        chmod(src, 0o644)
        try DiskKind.empty.make(dst)
        let before = try Data(contentsOf: URL(fileURLWithPath: dst))
        let r2 = try runAsNobody(["copy", src, dst, "--no-state"])
        #expect(r2.status == 1, "\(r2)")
        #expect(r2.stderr == "os-migrate: error: destination \(dst): Permission denied\n", "\(r2)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dst)) == before)
    }

    private func runAsNobody(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", CLIRunner.binaryPath] + args
        p.environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent"]
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        let od = o.fileHandleForReading.readDataToEndOfFile()
        let ed = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: od, as: UTF8.self), String(decoding: ed, as: UTF8.self))
    }
}
