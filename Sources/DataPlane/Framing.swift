// Frames on a byte stream: buffered reading and serialised writing (the wire format is in Protocol.swift).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The peer's byte stream ended inside a frame: ssh, or the agent at the other end, went away in the
/// middle of the transfer. A lost connection, not a protocol violation: the receiver reports it as one
/// line naming the source, with ssh's last stderr line (`DataPlaneError.Kind.connect`).
struct ConnectionLost: Error, CustomStringConvertible {
    var description: String { "the connection closed in the middle of a frame" }
}

/// Buffered reading of frames from a stream descriptor.
// @unchecked: `bytesRead` is guarded by `countLock`; `start`/`end` and the buffer belong to the one thread reading.
final class FrameReader: @unchecked Sendable {
    let fd: Int32
    private let buffer: AlignedBuffer
    private var start = 0
    private var end = 0
    private var bytesRead: UInt64 = 0
    private let countLock = NSLock()
    var bytesReadLocked: UInt64 {
        countLock.lock()
        defer { countLock.unlock() }
        return bytesRead
    }
    private func addRead(_ n: Int) {
        countLock.lock()
        bytesRead += UInt64(n)
        countLock.unlock()
    }

    init(fd: Int32, bufferSize: Int = 256 * 1024) {
        self.fd = fd
        buffer = AlignedBuffer(capacity: bufferSize)
    }

    /// Reads exactly `count` bytes into `dest`; false on a clean EOF before any byte, `ConnectionLost`
    /// on an EOF after some.
    func read(into dest: UnsafeMutableRawPointer, count: Int) throws -> Bool {
        var done = 0
        let buffered = min(end - start, count)
        if buffered > 0 {
            dest.copyMemory(from: buffer.pointer + start, byteCount: buffered)
            start += buffered
            done = buffered
        }
        while done < count {
            let want = count - done
            if want >= buffer.capacity / 2 {
                let n = try readSome(fd, dest + done, want)
                guard try continuesAfterRead(n, done: done) else { return false }
                done += n
                addRead(n)
            } else {
                let n = try readSome(fd, buffer.pointer, buffer.capacity)
                guard try continuesAfterRead(n, done: done) else { return false }
                addRead(n)
                start = 0
                end = n
                let take = min(n, want)
                (dest + done).copyMemory(from: buffer.pointer, byteCount: take)
                start = take
                done += take
            }
        }
        return true
    }

    /// The next frame header, or nil at EOF.
    func header(maxLength: Int) throws -> FrameHeader? {
        var raw = [UInt8](repeating: 0, count: FrameHeader.size)
        let ok = try raw.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: FrameHeader.size) }
        if !ok { return nil }
        let h: FrameHeader
        do {
            h = try raw.withUnsafeBytes { try FrameHeader.decode($0) }
        } catch {
            throw ProtocolError("unexpected bytes from the peer: \(printable(raw))")
        }
        guard h.length <= maxLength else {
            throw ProtocolError("frame too long (\(h.length) bytes) from the peer: \(printable(raw))")
        }
        return h
    }

    /// The payload of a frame whose header was read (so an EOF here is `ConnectionLost`).
    func payload(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 {
            let ok = try out.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: count) }
            if !ok { throw ConnectionLost() }
        }
        return out
    }

    /// A whole non-data frame.
    func message(maxLength: Int) throws -> Message? {
        guard let h = try header(maxLength: maxLength) else { return nil }
        guard h.type != .data else { throw ProtocolError("unexpected data frame") }
        let p = try payload(h.length)
        return try p.withUnsafeBytes { try Message.decode(type: h.type, payload: $0) }
    }

    private func printable(_ bytes: [UInt8]) -> String {
        let s = String(decoding: bytes.map { (32..<127).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
        return "\"\(s)…\" (is the remote shell printing to stdout?)"
    }
}

/// Serialised frame writing on a stream descriptor.
// @unchecked: `bytesWritten` and the stream are guarded by `lock` (one frame at a time).
final class FrameWriter: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLock()
    private(set) var bytesWritten: UInt64 = 0

    init(fd: Int32) { self.fd = fd }

    func send(_ m: Message) throws {
        let bytes = m.encode()
        try bytes.withUnsafeBytes { try send(parts: [$0]) }
    }

    func send(parts: [UnsafeRawBufferPointer]) throws {
        lock.lock()
        defer { lock.unlock() }
        try writeFully(fd, parts)
        bytesWritten += UInt64(parts.reduce(0) { $0 + $1.count })
    }

    var written: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return bytesWritten
    }

    /// Test hook: writes only the first `count` bytes of the frame in `parts`, then runs `then` (which
    /// does not return) while still holding the lock, so no other frame follows the torn one.
    func sendTruncated(parts: [UnsafeRawBufferPointer], count: Int, then: () -> Never) -> Never {
        lock.lock()
        var left = count
        var cut: [UnsafeRawBufferPointer] = []
        for p in parts where left > 0 {
            let n = min(p.count, left)
            cut.append(UnsafeRawBufferPointer(rebasing: p[0..<n]))
            left -= n
        }
        try? writeFully(fd, cut)
        then()
    }
}

extension FrameReader {
    var totalRead: UInt64 { bytesReadLocked }
}
