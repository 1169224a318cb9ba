import DataPlane
import Foundation
import Testing

/// Pure parts: framing codec, extent planning, digests, chunk map, decisions. No sockets, no files.
@Suite("DataPlane units")
struct UnitTests {
    // MARK: framing

    @Test("control frames round-trip through the codec")
    func controlFramesRoundTrip() throws {
        var hello = Hello(role: "receive")
        hello.mode = .copy
        hello.chunkSize = 4 << 20
        hello.stream = 1
        hello.streams = 3
        let d = ChunkDigest(1, 2, 3, 4)
        let messages: [Message] = [
            .hello(hello), .have([HaveEntry(index: 7, digest: d), HaveEntry(index: 9, digest: ChunkDigest(5, 6, 7, 8))]),
            .start, .zeroRange(first: 3, count: 1000), .match(first: 5, count: 1), .digest(index: 11, digest: d),
            .passDone, .summary(StreamSummary(streamDigest: "ab")), .request([1, 2, 99]), .finish,
            .error(DataPlaneError("No such file or directory", kind: .notFound)),
        ]
        var parser = FrameParser { _ in 4 << 20 }
        for m in messages { parser.append(m.encode()) }
        for m in messages {
            let (decoded, bytes) = try #require(try parser.next())
            #expect(decoded == m)
            #expect(bytes.isEmpty)
        }
        #expect(try parser.next() == nil)
    }

    @Test("a data frame carries only the data segments, and parses back in pieces")
    func dataFrameRoundTrip() throws {
        let length = 4 * 65536 + 100  // a short last chunk: 5 blocks, the last one 100 bytes
        let segments = [Segment(firstBlock: 0, blockCount: 1, isData: true), Segment(firstBlock: 1, blockCount: 3, isData: false),
                        Segment(firstBlock: 4, blockCount: 1, isData: true)]
        let header = DataFrameHeader(index: 12, digest: ChunkDigest(9, 9, 9, 9), segments: segments)
        #expect(header.dataBytes(chunkLength: length) == 65536 + 100)
        let payload = (0..<(65536 + 100)).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
        let frame = header.encodePrefix(chunkLength: length) + payload
        #expect(frame.count == 8 + 44 + 3 * 9 + 65536 + 100)
        var parser = FrameParser { _ in length }
        // Feed it byte-chunk by byte-chunk: nothing until complete.
        var fed = 0
        while fed < frame.count - 1 {
            let n = min(1000, frame.count - 1 - fed)
            parser.append(Array(frame[fed..<(fed + n)]))
            fed += n
            #expect(try parser.next() == nil)
        }
        parser.append([frame.last!])
        let (m, bytes) = try #require(try parser.next())
        #expect(m == .data(header))
        #expect(bytes == payload)
    }

    @Test("garbage and oversized frames are rejected")
    func badFrames() throws {
        var parser = FrameParser { _ in 4 << 20 }
        parser.append(Array("Welcome to host!\n".utf8))
        #expect(throws: ProtocolError.self) { try parser.next() }
        // hello without the magic
        var w = ByteWriter()
        FrameHeader(type: .hello, length: 2).encode(into: &w)
        w.raw([123, 125])
        var p2 = FrameParser { _ in 4 << 20 }
        p2.append(w.bytes)
        #expect(throws: ProtocolError.self) { try p2.next() }
        // a data frame whose length disagrees with its segment table
        let h = DataFrameHeader(index: 0, digest: .zero, segments: [Segment(firstBlock: 0, blockCount: 1, isData: true)])
        var p3 = FrameParser { _ in 65536 }
        var bad = h.encodePrefix(chunkLength: 65536) + [UInt8](repeating: 1, count: 65536)
        bad[4] = bad[4] &- 1  // length one byte short
        p3.append(bad)
        #expect(throws: ProtocolError.self) { try p3.next() }
    }

    // MARK: geometry & extents

    @Test("geometry: chunk count, last partial chunk, stream subsets")
    func geometry() throws {
        let g = try VolumeGeometry(size: UInt64(5 * chunk + 12345), chunkSize: chunk)
        #expect(g.chunkCount == 6)
        #expect(g.chunkLength(5) == 12345)
        #expect(g.chunkLength(0) == chunk)
        #expect(Array(g.chunks(ofStream: 1, streams: 4)) == [1, 5])
        #expect(try VolumeGeometry(size: 0, chunkSize: chunk).chunkCount == 0)
        #expect(throws: DataPlaneError.self) { try VolumeGeometry(size: 1, chunkSize: 1000) }
        #expect(parseByteSize("4M") == chunk)
        #expect(parseByteSize("64KiB") == 65536)
        #expect(parseByteSize("x") == nil)
    }

    @Test("extent planner marks chunks touched by data extents")
    func chunksWithData() throws {
        let g = try VolumeGeometry(size: UInt64(8 * chunk), chunkSize: chunk)
        let extents = [Extent(offset: 0, length: 10), Extent(offset: UInt64(3 * chunk - 1), length: 2),
                       Extent(offset: UInt64(7 * chunk), length: UInt64(chunk))]
        #expect(ExtentPlanner.chunksWithData(extents: extents, geometry: g) == [true, false, true, true, false, false, false, true])
        #expect(ExtentPlanner.chunksWithData(extents: nil, geometry: g) == Array(repeating: true, count: 8))
        #expect(ExtentPlanner.chunksWithData(extents: [], geometry: g) == Array(repeating: false, count: 8))
    }

    @Test("data ranges inside a chunk are block-aligned, clipped and merged")
    func dataRanges() {
        let c = UInt64(chunk)
        let extents = [Extent(offset: 10, length: 5), Extent(offset: 70000, length: 100),  // blocks 0 and 1
                       Extent(offset: c + 65536 * 3 + 1, length: 65536),                    // chunk 1 blocks 3-4
                       Extent(offset: 2 * c - 100, length: 200)]                            // straddles chunks 1|2
        #expect(ExtentPlanner.dataRanges(inChunkAt: 0, length: chunk, extents: extents) == [0..<131072])
        #expect(ExtentPlanner.dataRanges(inChunkAt: c, length: chunk, extents: extents)
                == [(3 * 65536)..<(5 * 65536), (chunk - 65536)..<chunk])
        #expect(ExtentPlanner.dataRanges(inChunkAt: 2 * c, length: 1000, extents: extents) == [0..<1000])
        #expect(ExtentPlanner.dataRanges(inChunkAt: 3 * c, length: chunk, extents: extents) == [])
        #expect(ExtentPlanner.dataRanges(inChunkAt: 0, length: chunk, extents: nil) == [0..<chunk])
        // Blocks outside the ranges are zero without being scanned.
        var buf = [UInt8](repeating: 0, count: 4 * 65536)
        buf[65536 * 2 + 3] = 1
        let mask = buf.withUnsafeBytes { ExtentPlanner.zeroBlocks(of: $0, dataRanges: [65536..<(3 * 65536)]) }
        #expect((0..<4).map { mask[$0] } == [true, true, false, true])
    }

    @Test("runs are computed inside a stream's interleaved subset")
    func runs() {
        let holes: Set<Int> = [0, 2, 4, 5, 6, 9]
        let all = ExtentPlanner.runs(in: stride(from: 0, to: 10, by: 1), where: { holes.contains($0) })
        #expect(all.map { [$0.first, $0.count] } == [[0, 1], [2, 1], [4, 3], [9, 1]])
        let stream0 = ExtentPlanner.runs(in: stride(from: 0, to: 10, by: 2), where: { holes.contains($0) })
        #expect(stream0.map { [$0.first, $0.count] } == [[0, 4]])  // 0, 2, 4, 6 are consecutive members of the subset
        let stream1 = ExtentPlanner.runs(in: stride(from: 1, to: 10, by: 2), where: { holes.contains($0) })
        #expect(stream1.map { [$0.first, $0.count] } == [[5, 1], [9, 1]])
    }

    @Test("zero detection finds zero blocks and segments tile the chunk")
    func zeroBlocksAndSegments() {
        var buf = [UInt8](repeating: 0, count: 5 * 65536 + 10)
        buf[65536 + 65535] = 1  // last byte of block 1
        buf[4 * 65536] = 7  // first byte of block 4
        buf[5 * 65536 + 9] = 3  // last byte of the short block 5
        let mask = buf.withUnsafeBytes { ExtentPlanner.zeroBlocks(of: $0) }
        #expect((0..<6).map { mask[$0] } == [true, false, true, true, false, false])
        let segs = ExtentPlanner.segments(zeroBlocks: mask)
        #expect(segs == [Segment(firstBlock: 0, blockCount: 1, isData: false), Segment(firstBlock: 1, blockCount: 1, isData: true),
                         Segment(firstBlock: 2, blockCount: 2, isData: false), Segment(firstBlock: 4, blockCount: 2, isData: true)])
        #expect(ExtentPlanner.zeroMask(segments: segs, blockCount: 6) == mask)
        #expect(ExtentPlanner.zeroMask(segments: Array(segs.dropLast()), blockCount: 6) == nil)
        #expect(segs[3].byteRange(chunkLength: buf.count) == (4 * 65536)..<(5 * 65536 + 10))
    }

    @Test("isAllZero at every alignment and length")
    func isAllZeroEdges() {
        var buf = [UInt8](repeating: 0, count: 300)
        for start in 0..<9 {
            for len in [0, 1, 7, 8, 9, 63, 64, 65, 200] where start + len <= buf.count {
                #expect(buf.withUnsafeBytes { isAllZero(UnsafeRawBufferPointer(rebasing: $0[start..<(start + len)])) })
                if len > 0 {
                    buf[start + len - 1] = 1
                    #expect(!buf.withUnsafeBytes { isAllZero(UnsafeRawBufferPointer(rebasing: $0[start..<(start + len)])) })
                    buf[start + len - 1] = 0
                }
            }
        }
    }

    // MARK: digests

    @Test("the constant zero digests equal hashing real zeros, full and short last chunk")
    func zeroDigests() throws {
        let size = 2 * chunk + 3 * 65536 + 100
        let g = try VolumeGeometry(size: UInt64(size), chunkSize: chunk)
        let s = DigestScheme(geometry: g)
        for i in 0..<g.chunkCount {
            let zeros = [UInt8](repeating: 0, count: g.chunkLength(i))
            let hashed = zeros.withUnsafeBytes { s.chunkDigest(index: i, buffer: $0, zeroBlocks: BlockMask(count: VolumeGeometry.blockCount(chunkLength: zeros.count))) }
            let shortcut = zeros.withUnsafeBytes { s.chunkDigest(index: i, buffer: $0, zeroBlocks: ExtentPlanner.zeroBlocks(of: $0)) }
            #expect(hashed == s.zeroChunkDigest(i))
            #expect(shortcut == s.zeroChunkDigest(i))
        }
        #expect(s.zeroChunk != s.zeroLastChunk)
        // Known answer: SHA-256 of 64 KiB of zeros.
        #expect(s.zeroBlock.hex == "de2f256064a0af797747c2b97505dc0b9f3df0de4f489eac731c23ae9ca9cc31")
    }

    @Test("a chunk digest changes with any byte and with the zero mask")
    func chunkDigestSensitivity() throws {
        let g = try VolumeGeometry(size: UInt64(chunk), chunkSize: chunk)
        let s = DigestScheme(geometry: g)
        var noise = Noise(seed: 3)
        var buf = [UInt8](repeating: 0, count: chunk)
        buf.withUnsafeMutableBytes { noise.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<65536])) }
        let a = buf.withUnsafeBytes { s.chunkDigest(index: 0, buffer: $0, zeroBlocks: ExtentPlanner.zeroBlocks(of: $0)) }
        buf[3 * 65536 + 5] = 1
        let b = buf.withUnsafeBytes { s.chunkDigest(index: 0, buffer: $0, zeroBlocks: ExtentPlanner.zeroBlocks(of: $0)) }
        #expect(a != b)
        let c = buf.withUnsafeBytes { s.chunkDigest(index: 0, buffer: $0, zeroBlocks: BlockMask(count: 64)) }
        #expect(b == c)  // the mask is an optimisation only: hashing zeros gives the same leaf
        #expect(ChunkDigest(hex: a.hex) == a)
    }

    // MARK: chunk map

    @Test("chunk map: journal replay, torn tail, compaction, have-lists")
    func chunkMap() throws {
        let g = try VolumeGeometry(size: UInt64(10 * chunk), chunkSize: chunk)
        let id = ChunkDigest(1, 1, 1, 1)
        var bytes = ChunkMap.encodeHeader(geometry: g, identity: id)
        bytes += ChunkMap.encode(.data(index: 1, digest: ChunkDigest(1, 0, 0, 0)))
        bytes += ChunkMap.encode(.zero(first: 2, count: 3, stride: 2))  // 2, 4, 6
        bytes += ChunkMap.encode(.data(index: 4, digest: ChunkDigest(4, 0, 0, 0)))  // overrides zero
        bytes += ChunkMap.encode(.complete(ChunkDigest(9, 9, 9, 9)))
        bytes += ChunkMap.encode(.begin)
        bytes += ChunkMap.encode(.data(index: 9, digest: ChunkDigest(9, 0, 0, 0)))
        bytes += Array(ChunkMap.encode(.data(index: 8, digest: ChunkDigest(8, 0, 0, 0)))[0..<20])  // torn by a kill
        let map = try #require(ChunkMap.decode(bytes, geometry: g, identity: id))
        #expect(map[0] == .unknown)
        #expect(map[1] == .data(ChunkDigest(1, 0, 0, 0)))
        #expect(map[2] == .zero)
        #expect(map[4] == .data(ChunkDigest(4, 0, 0, 0)))
        #expect(map[6] == .zero)
        #expect(map[8] == .unknown)
        #expect(map[9] == .data(ChunkDigest(9, 0, 0, 0)))
        #expect(map.completeDigest == nil)  // a run began after the completion marker
        #expect(map.haveList().map(\.index) == [1, 4, 9])
        #expect(map.haveList(stream: 1, streams: 2).map(\.index) == [1, 9])
        // Compact form decodes to the same map.
        let again = try #require(ChunkMap.decode(map.encodeCompact(identity: id), geometry: g, identity: id))
        #expect(again == map)
        // Another target or geometry: not used.
        #expect(ChunkMap.decode(bytes, geometry: g, identity: ChunkDigest(2, 2, 2, 2)) == nil)
        #expect(ChunkMap.decode(bytes, geometry: try VolumeGeometry(size: UInt64(10 * chunk), chunkSize: 2 * MiB), identity: id) == nil)
        #expect(ChunkMap.decode(Array(bytes[0..<10]), geometry: g, identity: id) == nil)
    }

    // MARK: decisions

    @Test("sender decisions")
    func senderDecisions() {
        let d = ChunkDigest(1, 2, 3, 4), e = ChunkDigest(4, 3, 2, 1)
        #expect(SenderDecision.decide(mode: .copy, isZero: true, digest: d, have: d, isRepair: false) == .zero)
        #expect(SenderDecision.decide(mode: .copy, isZero: false, digest: d, have: d, isRepair: false) == .match)
        #expect(SenderDecision.decide(mode: .copy, isZero: false, digest: d, have: e, isRepair: false) == .data)
        #expect(SenderDecision.decide(mode: .copy, isZero: false, digest: d, have: nil, isRepair: false) == .data)
        #expect(SenderDecision.decide(mode: .copy, isZero: false, digest: d, have: d, isRepair: true) == .data)
        #expect(SenderDecision.decide(mode: .copy, isZero: true, digest: d, have: nil, isRepair: true) == .data)
        #expect(SenderDecision.decide(mode: .verify, isZero: false, digest: d, have: nil, isRepair: false) == .digestOnly)
        #expect(SenderDecision.decide(mode: .unverified, isZero: false, digest: nil, have: d, isRepair: false) == .data)
    }

    @Test("receiver decisions: zeroing, landing, reuse, completion")
    func receiverDecisions() throws {
        #expect(ReceivePlan.onZero(entry: .unknown, targetKnownZero: true) == .skip)
        #expect(ReceivePlan.onZero(entry: .zero, targetKnownZero: false) == .verifyZero)
        #expect(ReceivePlan.onZero(entry: .data(.zero), targetKnownZero: false) == .zero)
        #expect(ReceivePlan.onZero(entry: .unknown, targetKnownZero: false) == .zero)
        let d = ChunkDigest(1, 2, 3, 4), e = ChunkDigest(4, 3, 2, 1)
        #expect(ReceivePlan.onData(sent: d, computed: d, failedAttempts: 2) == .write)
        #expect(ReceivePlan.onData(sent: d, computed: e, failedAttempts: 0) == .rerequest)
        #expect(ReceivePlan.onData(sent: d, computed: e, failedAttempts: 1) == .rerequest)
        #expect(ReceivePlan.onData(sent: d, computed: e, failedAttempts: 2) == .fail)
        #expect(ReceivePlan.onRehash(claimed: d, actual: d) == .reuse)
        #expect(ReceivePlan.onRehash(claimed: d, actual: e) == .repair)
        let g = try VolumeGeometry(size: UInt64(chunk), chunkSize: chunk)
        let map = ChunkMap(geometry: g)
        #expect(ReceivePlan.usableMap(map, targetIsZero: false, targetCreated: false) == map)
        #expect(ReceivePlan.usableMap(map, targetIsZero: true, targetCreated: false) == nil)
        #expect(ReceivePlan.usableMap(map, targetIsZero: false, targetCreated: true) == nil)
        var c = ReceivePlan.Completion(chunkCount: 3)
        let first = c.resolve(1), twice = c.resolve(1), outside = c.resolve(3)
        #expect(first && !twice && !outside)
        #expect(!c.isComplete)
        let rest = [c.resolve(0), c.resolve(2)]
        #expect(rest == [true, true])
        #expect(c.isComplete)
    }

    @Test("the receiver's tally: each chunk resolved once, counted by how it was resolved")
    func receiverTally() throws {
        let g = try VolumeGeometry(size: UInt64(3 * chunk - 100), chunkSize: chunk)
        var t = ReceivePlan.Tally(map: ChunkMap(geometry: g), sourceSize: g.size, verify: false)
        #expect(t.progress.bytesTotal == g.size && t.result.sourceSize == g.size && t.sourceDigests.isEmpty)
        let d = ChunkDigest(1, 2, 3, 4), e = ChunkDigest(4, 3, 2, 1)
        let landed = [t.resolve(0, digest: d, how: .copied(data: 1000, zero: chunk - 1000), entry: .data(d)),
                      t.resolve(2, digest: e, how: .zero(chunk - 100), entry: .zero)]
        #expect(landed == [true, true])
        #expect(!t.isComplete)
        // Twice, or outside the volume: a protocol error, and nothing changes.
        let before = t
        let refused = [t.resolve(2, digest: d, how: .reused(chunk - 100), entry: .data(d)),
                       t.resolve(3, digest: d, how: .reused(chunk), entry: .data(d))]
        #expect(refused == [false, false])
        #expect(t == before)
        let last = t.resolve(1, digest: d, how: .reused(chunk), entry: nil)
        #expect(last && t.isComplete)
        #expect(t.targetDigests == [d, d, e])
        #expect(t.map[0] == .data(d) && t.map[1] == .unknown && t.map[2] == .zero)
        #expect(t.progress.bytesDone == g.size && t.progress.bytesCopied == 1000)
        #expect(t.progress.bytesZero == UInt64(2 * chunk - 1100) && t.progress.bytesReused == UInt64(chunk))
        #expect(t.result.chunksCopied == 1 && t.result.chunksReused == 1 && t.result.chunksDiffering == 0)
        t.repair(0)
        #expect(t.map[0] == .unknown && t.result.chunksRepaired == 1)
    }

    @Test("the receiver's tally in verify mode keeps the source's digests and counts differing chunks")
    func receiverTallyVerify() throws {
        let g = try VolumeGeometry(size: UInt64(2 * chunk), chunkSize: chunk)
        var t = ReceivePlan.Tally(map: ChunkMap(geometry: g), sourceSize: g.size, verify: true)
        let d = ChunkDigest(1, 2, 3, 4), e = ChunkDigest(4, 3, 2, 1)
        let resolved = [t.resolve(0, digest: d, how: .verified(equal: true), entry: nil, source: d),
                        t.resolve(1, digest: d, how: .verified(equal: false), entry: nil, source: e)]
        #expect(resolved == [true, true] && t.isComplete)
        #expect(t.sourceDigests == [d, e] && t.targetDigests == [d, d])
        #expect(t.map == ChunkMap(geometry: g))
        #expect(t.result.chunksDiffering == 1 && t.progress.bytesDone == g.size && t.progress.bytesCopied == 0)
    }

    // MARK: locations & ssh

    @Test("locations parse like scp and ssh arguments pin the cipher")
    func locations() throws {
        let a = try VolumeLocation.parse("cloud-user@10.0.0.5:/dev/vdb")
        #expect(a.endpoint?.user == "cloud-user" && a.endpoint?.host == "10.0.0.5" && a.path == "/dev/vdb")
        #expect(try VolumeLocation.parse("/dev/vdc").endpoint == nil)
        #expect(try VolumeLocation.parse("./a:b").endpoint == nil)
        let v6 = try VolumeLocation.parse("[fd00::1]:/dev/vdb")
        #expect(v6.endpoint?.host == "fd00::1")
        #expect(v6.description == "[fd00::1]:/dev/vdb")
        #expect(throws: DataPlaneError.self) { try VolumeLocation.parse("host:") }

        let args = SSHEndpoint(user: "u", host: "h", port: 2222, identity: "/k", options: ["ProxyJump=bastion"]).sshArguments()
        #expect(args.starts(with: ["ssh", "-o", "ProxyJump=bastion", "-p", "2222", "-i", "/k"]))
        #expect(args.contains("Ciphers=\(SSHEndpoint.preferredCiphers)"))
        #expect(args.contains("BatchMode=yes") && args.contains("ServerAliveInterval=15") && args.contains("ConnectTimeout=30"))
        let patient = SSHEndpoint(host: "h", options: ["ConnectTimeout=120"]).sshArguments()
        #expect(patient.filter { $0.hasPrefix("ConnectTimeout=") } == ["ConnectTimeout=120"])
        #expect(!args.contains { $0.contains("StrictHostKeyChecking") })
        #expect(args.suffix(2) == ["--", "u@h"])
        let own = SSHEndpoint(host: "h", options: ["Ciphers=chacha20-poly1305@openssh.com"]).sshArguments()
        #expect(own.filter { $0.hasPrefix("Ciphers=") } == ["Ciphers=chacha20-poly1305@openssh.com"])
        #expect(shellQuote("it's") == "'it'\\''s'")
        #expect(shellQuote("/dev/vdb") == "/dev/vdb")
    }

    @Test("NBD URIs")
    func nbdURIs() throws {
        #expect(NBDAddress.parse("nbd://127.0.0.1:10810") == NBDAddress(host: "127.0.0.1", port: 10810))
        #expect(NBDAddress.parse("nbd://h/exp")?.export == "exp")
        #expect(NBDAddress.parse("nbd://[::1]:99")?.host == "::1")
        #expect(NBDAddress.parse("nbd+unix:///disk?socket=/run/s")?.socketPath == "/run/s")
        #expect(NBDAddress.parse("nbd+unix:///disk?socket=/run/s")?.export == "disk")
        #expect(NBDAddress.parse("http://x") == nil)
        #expect(try VolumeLocation.parse("nbd://127.0.0.1:10810").endpoint == nil)
    }

    @Test("agent events round-trip as JSON lines")
    func events() throws {
        var p = CopyProgress()
        p.bytesDone = 5
        p.bytesTotal = 10
        p.rate = 2.5
        let line = AgentEvent.line("progress", p)
        #expect(line.hasPrefix("{\"event\":\"progress\","))
        guard case .progress(let q)? = AgentEvent.parse(line) else { Issue.record("not progress"); return }
        #expect(q == p)
        #expect(q.eta == 2)
        var r = CopyResult()
        r.digest = "abc"
        r.verified = true
        guard case .result(let s)? = AgentEvent.parse(AgentEvent.line("result", r)) else { Issue.record("not result"); return }
        #expect(s == r)
        guard case .error(let e)? = AgentEvent.parse(AgentEvent.line("error", DataPlaneError("x", kind: .tooSmall))) else { Issue.record("not error"); return }
        #expect(e.kind == .tooSmall)
    }

    @Test("a host's glibc from `ldd --version`: older than 2.31 is too old for the agent")
    func glibcMinimum() {
        #expect(AgentBuild.glibcVersion(lddLine: "ldd (Debian GLIBC 2.31-13+deb11u11) 2.31")! == (2, 31))
        #expect(AgentBuild.glibcVersion(lddLine: "ldd (GNU libc) 2.34")! == (2, 34))
        #expect(AgentBuild.glibcVersion(lddLine: "musl libc (x86_64)") == nil)
        #expect(AgentBuild.glibcTooOld(lddLine: "ldd (Ubuntu GLIBC 2.27-3ubuntu1.6) 2.27"))
        #expect(AgentBuild.glibcTooOld(lddLine: "ldd (GNU libc) 2.17"))
        #expect(!AgentBuild.glibcTooOld(lddLine: "ldd (Debian GLIBC 2.31-13+deb11u11) 2.31"))
        #expect(!AgentBuild.glibcTooOld(lddLine: "ldd (GNU libc) 2.34"))
        #expect(!AgentBuild.glibcTooOld(lddLine: "something else"))
    }
}
