import DataPlane
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

let MiB = 1 << 20
let chunk = 4 * MiB

/// A temporary directory removed on deinit.
final class Scratch: @unchecked Sendable {
    let path: String
    init() throws {
        let base = ProcessInfo.processInfo.environment["OSM_TEST_SCRATCH"] ?? "/var/tmp"
        var template = Array((base + "/osm-dp-XXXXXX").utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp failed")
        }
        path = String(cString: p)
        chmod(path, 0o755)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
    var stateDir: String { path + "/state" }
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for tens of MiB.
struct Noise {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func fill(_ p: UnsafeMutableRawBufferPointer) {
        let words = p.count / 8
        let w = p.baseAddress!.bindMemory(to: UInt64.self, capacity: words)
        for i in 0..<words { w[i] = next() | 1 }  // never an all-zero word
        for i in (words * 8)..<p.count { p[i] = UInt8(truncatingIfNeeded: next() | 1) }
    }
}

/// Writes disks: `random(at:count:)` pieces on a sparse file of `size`.
struct DiskWriter {
    let fd: Int32
    var noise: Noise
    /// `truncate: false` modifies an existing disk in place.
    init(path: String, size: Int, seed: UInt64, truncate: Bool = true) throws {
        fd = open(path, O_RDWR | O_CREAT | (truncate ? O_TRUNC : 0), 0o644)
        guard fd >= 0 else { throw TestFailure("open \(path): \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(size)) == 0 else { throw TestFailure("ftruncate") }
        noise = Noise(seed: seed)
    }
    mutating func random(at offset: Int, count: Int) {
        var buf = [UInt8](repeating: 0, count: count)
        buf.withUnsafeMutableBytes { noise.fill($0) }
        _ = buf.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(offset)) }
    }
    /// Allocated (written) zeros: not a hole.
    func zeros(at offset: Int, count: Int) {
        let buf = [UInt8](repeating: 0, count: count)
        _ = buf.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(offset)) }
    }
    func close() { _ = Glibc.close(fd) }
}

enum DiskKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case empty, sparse5, half, dense, partialLastChunk, explicitZeros
    var testDescription: String { rawValue }

    /// Creates the disk; returns its size.
    @discardableResult
    func make(_ path: String, seed: UInt64 = 42) throws -> Int {
        switch self {
        case .empty:
            let w = try DiskWriter(path: path, size: 16 * MiB, seed: seed)
            w.close()
            return 16 * MiB
        case .sparse5:
            // 64 MiB, 5 % data in 64 KiB pieces at pseudo-random places, plus the very last block.
            let size = 64 * MiB
            var w = try DiskWriter(path: path, size: size, seed: seed)
            var n = Noise(seed: seed &+ 7)
            for _ in 0..<48 {
                let block = Int(n.next() % UInt64(size / 65536))
                w.random(at: block * 65536, count: 65536)
            }
            w.random(at: size - 65536, count: 65536)
            w.close()
            return size
        case .half:
            let size = 48 * MiB
            var w = try DiskWriter(path: path, size: size, seed: seed)
            for m in stride(from: 0, to: size, by: 2 * MiB) { w.random(at: m, count: MiB) }
            w.close()
            return size
        case .dense:
            let size = 24 * MiB
            var w = try DiskWriter(path: path, size: size, seed: seed)
            w.random(at: 0, count: size)
            w.close()
            return size
        case .partialLastChunk:
            // Not a multiple of the chunk, nor of the 64 KiB block, nor of 512.
            let size = 5 * chunk + 3 * 65536 + 12345
            var w = try DiskWriter(path: path, size: size, seed: seed)
            w.random(at: 0, count: 3 * MiB)
            w.random(at: size - 70000, count: 70000)
            w.close()
            return size
        case .explicitZeros:
            // 32 MiB: alternating 1 MiB of written zeros and 1 MiB of data, then 8 MiB of written zeros.
            let size = 32 * MiB
            var w = try DiskWriter(path: path, size: size, seed: seed)
            for m in stride(from: 0, to: 24 * MiB, by: 2 * MiB) {
                w.zeros(at: m, count: MiB)
                w.random(at: m + MiB, count: MiB)
            }
            w.zeros(at: 24 * MiB, count: 8 * MiB)
            w.close()
            return size
        }
    }
}

/// Bytes of a file that lie in 64 KiB blocks holding any non-zero byte (what must cross the wire).
func nonZeroBlockBytes(_ path: String) throws -> UInt64 {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    var total: UInt64 = 0
    data.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let end = min(off + 65536, raw.count)
            if !isAllZero(UnsafeRawBufferPointer(rebasing: raw[off..<end])) { total += UInt64(end - off) }
            off = end
        }
    }
    return total
}

/// Byte-exact comparison of the first `count` bytes (nil = whole files, sizes must match).
func sameBytes(_ a: String, _ b: String, count: Int? = nil) throws -> Bool {
    let fa = try FileHandle(forReadingFrom: URL(fileURLWithPath: a))
    let fb = try FileHandle(forReadingFrom: URL(fileURLWithPath: b))
    defer { try? fa.close(); try? fb.close() }
    var left = count ?? Int.max
    if count == nil {
        let sa = try FileManager.default.attributesOfItem(atPath: a)[.size] as? Int
        let sb = try FileManager.default.attributesOfItem(atPath: b)[.size] as? Int
        if sa != sb { return false }
    }
    while left > 0 {
        let n = min(left, 8 * MiB)
        let x = try fa.read(upToCount: n) ?? Data()
        let y = try fb.read(upToCount: n) ?? Data()
        if x != y { return false }
        if x.count < n { return count == nil || x.count == left }
        left -= n
    }
    return true
}

/// Runs a shell command, returning stdout (throws on failure).
@discardableResult
func sh(_ command: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw TestFailure("`\(command)` failed: \(String(decoding: e, as: UTF8.self))")
    }
    return String(decoding: o, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Loop devices, when this machine can make them (root and a working /dev/loop-control).
enum LoopDevice {
    static let available: Bool = {
        guard geteuid() == 0, FileManager.default.fileExists(atPath: "/dev/loop-control") else { return false }
        guard let s = try? Scratch() else { return false }
        let f = s.file("probe.img")
        guard (try? sh("truncate -s 1M \(f)")) != nil, let dev = try? sh("losetup -f --show \(f)") else { return false }
        _ = try? sh("losetup -d \(dev)")
        return true
    }()

    static func attach(_ file: String) throws -> String { try sh("losetup -f --show \(file)") }
    static func detach(_ device: String) { _ = try? sh("losetup -d \(device)") }
}

/// One `os-migrate copy` run through the harness's sshd.
struct CopyRun {
    var exitCode: Int32
    var stdout: String
    var stderr: String
    /// The final JSON result, when there is one.
    var result: CopyResult?
    var error: DataPlaneError?
    /// The progress events, in order.
    var progress: [CopyProgress]
    var progressEvents: Int { progress.count }
}

/// Checks a copy's progress events: at least `atLeast` of them, all for `total` bytes; bytesDone never
/// goes back, takes several values on the way and ends at the total; every tick that saw bytes
/// resolved since the previous one reports a rate > 0. Returns the problems found.
func progressProblems(_ events: [CopyProgress], total: UInt64, atLeast: Int) -> [String] {
    var problems: [String] = []
    if events.count < atLeast { problems.append("\(events.count) progress events, expected at least \(atLeast)") }
    if let bad = events.first(where: { $0.bytesTotal != total }) { problems.append("bytesTotal \(bad.bytesTotal) != \(total)") }
    for (a, b) in zip(events, events.dropFirst()) where b.bytesDone < a.bytesDone {
        problems.append("bytesDone went back from \(a.bytesDone) to \(b.bytesDone)")
    }
    let between = Set(events.map(\.bytesDone).filter { $0 > 0 && $0 < total })
    if between.count < 2 { problems.append("bytesDone took \(between.count) value(s) strictly between 0 and the total") }
    if events.last?.bytesDone != total { problems.append("the last event says \(events.last?.bytesDone ?? 0) bytes done of \(total)") }
    // The final event (the result's snapshot) carries no rate; every tick before it that moved does.
    for (a, b) in zip(events, events.dropFirst()).dropLast() where b.bytesDone > a.bytesDone && !(b.rate > 0) {
        problems.append("rate \(b.rate) while bytesDone rose from \(a.bytesDone) to \(b.bytesDone)")
    }
    if !events.contains(where: { $0.rate > 0 }) { problems.append("no event with a rate > 0") }
    return problems
}

/// The data-plane CLI against a private sshd.
final class Harness: @unchecked Sendable {
    let server: SSHServer
    let scratch: Scratch

    init() throws {
        server = try SSHServer()
        scratch = try Scratch()
    }

    var binary: String { CLIRunner.binaryPath }

    /// `root@127.0.0.1:path`.
    func remote(_ path: String) -> String { "\(server.destination):\(path)" }

    /// ssh pass-through flags for the CLI.
    var sshFlags: [String] {
        ["--port", String(server.port), "--identity", server.identityFile]
            + server.sshOptionValues.flatMap { ["--ssh-option", $0] }
    }

    func copy(_ source: String, _ destination: String, _ extra: [String] = [], env: [String: String] = [:],
              remoteCommand: Bool = true, state: Bool = true) async throws -> CopyRun {
        var args = ["copy", source, destination, "--json"] + sshFlags + extra
        if remoteCommand { args += ["--remote-command", binary] }
        if state { args += ["--state-dir", scratch.stateDir] }
        let r = try await CLIRunner.run(args, env: env, timeout: 240)
        var run = CopyRun(exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, result: nil, error: nil, progress: [])
        for line in r.stdout.split(separator: "\n") {
            switch AgentEvent.parse(String(line)) {
            case .result(let res)?: run.result = res
            case .error(let e)?: run.error = e
            case .progress(let p)?: run.progress.append(p)
            default: break
            }
        }
        return run
    }
}

extension CopyRun: CustomStringConvertible {
    var description: String { "exit \(exitCode)\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))" }
}
