// Thin, blocking POSIX wrappers used at the I/O edges of the data plane (Linux).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// GNU-only symbols the Swift Glibc module does not import (it is built without _GNU_SOURCE).
@_silgen_name("fallocate64")
private func c_fallocate(_ fd: Int32, _ mode: Int32, _ offset: Int64, _ len: Int64) -> Int32
@_silgen_name("pipe2")
private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

enum LinuxConstants {
    #if arch(arm64) || arch(arm)
    static let oDirect: Int32 = 0o200000
    #else
    static let oDirect: Int32 = 0o40000
    #endif
    /// Alignment used for O_DIRECT (offset, length and buffer address).
    static let directAlignment = 4096
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4
    static let fallocKeepSize: Int32 = 0x01
    static let fallocPunchHole: Int32 = 0x02
    static let fallocZeroRange: Int32 = 0x10
    static let blkGetSize64: UInt = 0x8008_1272
    static let blkZeroOut: UInt = 0x127F
    static let fSetPipeSize: Int32 = 1031
}

/// An `errno`-carrying failure of one system call on one path.
struct SystemCallError: Error, CustomStringConvertible {
    var call: String
    var path: String
    var errno: Int32
    var description: String { "\(path): \(errnoString(errno))" }
}

func errnoString(_ code: Int32) -> String {
    guard let s = strerror(code) else { return "error \(code)" }
    return String(cString: s)
}

/// What a path turned out to be.
public enum VolumeKind: String, Sendable, Codable {
    case file
    case blockDevice = "block"
}

/// An open file descriptor of a volume (a regular file or a block device).
// @unchecked: `directFD` is guarded by `directLock`; `size` changes only in `truncate`, before the handle is shared.
final class VolumeHandle: @unchecked Sendable {
    let fd: Int32
    let path: String
    let kind: VolumeKind
    private(set) var size: UInt64
    let device: UInt64
    let inode: UInt64
    /// A second descriptor with O_DIRECT for aligned bulk I/O (no page-cache copy, no cache
    /// pollution on the conversion hosts); -1 when unavailable or disabled (OSM_DIRECT_IO=0).
    private var directFD: Int32 = -1
    private let directLock = NSLock()

    private init(fd: Int32, path: String, kind: VolumeKind, size: UInt64, device: UInt64, inode: UInt64) {
        self.fd = fd
        self.path = path
        self.kind = kind
        self.size = size
        self.device = device
        self.inode = inode
    }

    deinit {
        close(fd)
        if directFD >= 0 { close(directFD) }
    }

    /// Opens the O_DIRECT descriptor (best effort).
    func enableDirectIO(writable: Bool) {
        // OSM_DIRECT_IO=0 (never), =read / =write (only that side); default: both.
        let knob = ProcessInfo.processInfo.environment["OSM_DIRECT_IO"] ?? "1"
        if knob == "0" || (knob == "read" && writable) || (knob == "write" && !writable) { return }
        let d = Glibc.open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | LinuxConstants.oDirect)
        guard d >= 0 else { return }
        var st = stat()
        // Make sure it is the same file we opened first.
        if fstat(d, &st) == 0, UInt64(kind == .file ? st.st_ino : 0) == inode,
           UInt64(kind == .file ? st.st_dev : st.st_rdev) == device {
            directFD = d
        } else {
            close(d)
        }
    }

    private func directDescriptor(_ p: UnsafeRawPointer, _ count: Int, _ offset: UInt64) -> Int32 {
        let a = LinuxConstants.directAlignment
        guard count % a == 0, offset % UInt64(a) == 0, Int(bitPattern: p) % a == 0 else { return -1 }
        directLock.lock()
        defer { directLock.unlock() }
        return directFD
    }

    /// O_DIRECT refused at I/O time (some file systems): use the page cache from now on.
    private func disableDirect() {
        directLock.lock()
        if directFD >= 0 { close(directFD); directFD = -1 }
        directLock.unlock()
    }

    /// Opens an existing regular file or block device.
    static func open(_ path: String, writable: Bool) throws -> VolumeHandle {
        let flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        return try adopt(Glibc.open(path, flags), path: path)
    }

    /// Creates a new regular file (fails if it exists).
    static func create(_ path: String) throws -> VolumeHandle {
        try adopt(Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644), path: path)
    }

    /// The handle of a descriptor `open` just returned (-1: its errno is thrown); the descriptor is
    /// closed when it is no volume.
    private static func adopt(_ fd: Int32, path: String) throws -> VolumeHandle {
        if fd < 0 { throw SystemCallError(call: "open", path: path, errno: errno) }
        do {
            return try wrap(fd: fd, path: path)
        } catch {
            close(fd)
            throw error
        }
    }

    private static func wrap(fd: Int32, path: String) throws -> VolumeHandle {
        var st = stat()
        if fstat(fd, &st) != 0 { throw SystemCallError(call: "fstat", path: path, errno: errno) }
        let mode = st.st_mode & S_IFMT
        if mode == S_IFREG {
            return VolumeHandle(fd: fd, path: path, kind: .file, size: UInt64(st.st_size),
                                device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        } else if mode == S_IFBLK {
            var size: UInt64 = 0
            if ioctl(fd, LinuxConstants.blkGetSize64, &size) != 0 {
                throw SystemCallError(call: "ioctl(BLKGETSIZE64)", path: path, errno: errno)
            }
            return VolumeHandle(fd: fd, path: path, kind: .blockDevice, size: size,
                                device: UInt64(st.st_rdev), inode: 0)
        }
        throw DataPlaneError("\(path): not a regular file or block device")
    }

    /// Sets a regular file's length.
    func truncate(to length: UInt64) throws {
        precondition(kind == .file)
        if ftruncate(fd, off_t(length)) != 0 { throw SystemCallError(call: "ftruncate", path: path, errno: errno) }
        size = length
    }

    func adviseSequential() {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    /// Reads exactly `count` bytes at `offset` (short only at end of file, where the rest is zero-filled).
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        var done = 0
        if offset + UInt64(count) <= size {
            let d = directDescriptor(buffer, count, offset)
            if d >= 0 {
                // O_DIRECT refused at any point: read it all again through the page cache.
                done = try transferDirect("pread", count: count, endsAtZero: true, refusable: { _ in true }) {
                    pread(d, buffer + $0, count - $0, off_t(offset) + off_t($0))
                }
                if done == count { return }
            }
        }
        done = try transfer("pread", from: done, count: count, endsAtZero: true) {
            pread(fd, buffer + $0, count - $0, off_t(offset) + off_t($0))
        }
        if done < count { memset(buffer + done, 0, count - done) }
    }

    func write(from buffer: UnsafeRawPointer, count: Int, at offset: UInt64) throws {
        var done = 0
        let d = directDescriptor(buffer, count, offset)
        if d >= 0 {
            // O_DIRECT refused before the first byte only (after it, EINVAL is an error).
            done = try transferDirect("pwrite", count: count, endsAtZero: false, refusable: { $0 == 0 }) {
                pwrite(d, buffer + $0, count - $0, off_t(offset) + off_t($0))
            }
            if done == count { return }
        }
        _ = try transfer("pwrite", from: done, count: count, endsAtZero: false) {
            pwrite(fd, buffer + $0, count - $0, off_t(offset) + off_t($0))
        }
    }

    /// Moves bytes `done..<count` with `op(done)` (a pread or pwrite of the rest), retrying EINTR
    /// and short transfers; returns the bytes done, fewer only when `op` returns 0 and `endsAtZero`
    /// (a read at end of file).
    private func transfer(_ call: String, from start: Int, count: Int, endsAtZero: Bool, _ op: (Int) -> Int) throws -> Int {
        var done = start
        while done < count {
            let n = op(done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemCallError(call: call, path: path, errno: errno)
            }
            if n == 0 && endsAtZero { break }
            done += n
        }
        return done
    }

    /// `transfer` on the O_DIRECT descriptor from byte 0: it also stops at a short transfer off the
    /// alignment (the page cache finishes), and on EINVAL where `refusable(done)` gives O_DIRECT up
    /// and returns 0 (O_DIRECT refused at I/O time by some file systems).
    private func transferDirect(_ call: String, count: Int, endsAtZero: Bool, refusable: (Int) -> Bool,
                                _ op: (Int) -> Int) throws -> Int {
        var done = 0
        while done < count {
            let n = op(done)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EINVAL && refusable(done) { disableDirect(); return 0 }
            if n < 0 { throw SystemCallError(call: call, path: path, errno: errno) }
            if n == 0 && endsAtZero { break }
            done += n
            if done < count && (done % LinuxConstants.directAlignment) != 0 { break }  // the rest buffered
        }
        return done
    }

    /// Data extents (SEEK_DATA/SEEK_HOLE) of a regular file, or nil when the file system
    /// cannot tell (then every byte is to be treated as data).
    func dataExtents() -> [Extent]? {
        guard kind == .file else { return nil }
        var extents: [Extent] = []
        var pos: off_t = 0
        let end = off_t(size)
        while pos < end {
            let data = lseek(fd, pos, LinuxConstants.seekData)
            if data < 0 {
                if errno == ENXIO { break }  // no more data
                return nil
            }
            var hole = lseek(fd, data, LinuxConstants.seekHole)
            if hole < 0 { return nil }
            if hole > end { hole = end }
            if hole > data { extents.append(Extent(offset: UInt64(data), length: UInt64(hole - data))) }
            pos = hole
        }
        return extents
    }

    /// True when the range is known to hold only zeros without reading it (a hole in a file).
    func isHole(offset: UInt64, length: Int) -> Bool {
        guard kind == .file else { return false }
        let data = lseek(fd, off_t(offset), LinuxConstants.seekData)
        if data < 0 { return errno == ENXIO }
        return UInt64(data) >= offset + UInt64(length)
    }

    /// Makes the range read as zeros with the cheapest correct means.
    func zeroRange(offset: UInt64, length: UInt64, scratch: UnsafeRawPointer, scratchCount: Int) throws {
        if length == 0 { return }
        switch kind {
        case .file:
            if c_fallocate(fd, LinuxConstants.fallocPunchHole | LinuxConstants.fallocKeepSize,
                           Int64(offset), Int64(length)) == 0 { return }
            if c_fallocate(fd, LinuxConstants.fallocZeroRange | LinuxConstants.fallocKeepSize,
                           Int64(offset), Int64(length)) == 0 { return }
        case .blockDevice:
            var range: (UInt64, UInt64) = (offset, length)
            let r = withUnsafeMutablePointer(to: &range) {
                ioctl(fd, LinuxConstants.blkZeroOut, UnsafeMutableRawPointer($0))
            }
            if r == 0 { return }
        }
        // Fallback: write zeros from a zero-filled scratch buffer.
        var pos = offset
        let end = offset + length
        while pos < end {
            let n = Int(min(UInt64(scratchCount), end - pos))
            try write(from: scratch, count: n, at: pos)
            pos += UInt64(n)
        }
    }

    /// An exclusive advisory lock, so two copies never write the same target at once.
    func lockExclusive() -> Bool {
        flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    func syncData() throws {
        if fdatasync(fd) != 0 { throw SystemCallError(call: "fdatasync", path: path, errno: errno) }
    }
}

/// A page-aligned heap buffer.
// @unchecked: the memory has one owner at a time, handed over through BufferPool/BlockingQueue.
final class AlignedBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let capacity: Int
    init(capacity: Int) {
        self.capacity = capacity
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 4096)
    }
    deinit { pointer.deallocate() }
    var raw: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: capacity) }
}

/// Creates a pipe whose two ends are close-on-exec.
func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    if c_pipe2(&fds, O_CLOEXEC) != 0 { throw SystemCallError(call: "pipe2", path: "pipe", errno: errno) }
    return (fds[0], fds[1])
}

/// Enlarges a pipe's kernel buffer (fewer wake-ups at high throughput); best effort.
func enlargePipe(_ fd: Int32, to bytes: Int = 1 << 20) {
    _ = fcntl(fd, LinuxConstants.fSetPipeSize, Int32(bytes))
}

/// One read(2) from a stream, retried on EINTR: the bytes read, 0 at end of file.
func readSome(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
    while true {
        let n = Glibc.read(fd, buffer, count)
        if n >= 0 { return n }
        if errno != EINTR { throw SystemCallError(call: "read", path: "stream", errno: errno) }
    }
}

/// Whether a stream may end here: a read of `n` bytes after `done` bytes of one frame. False at a
/// clean end of file (before the first byte); `ConnectionLost` at an end of file inside the frame.
func continuesAfterRead(_ n: Int, done: Int) throws -> Bool {
    if n > 0 { return true }
    if done == 0 { return false }
    throw ConnectionLost()
}

/// Reads exactly `count` bytes from a stream; returns false on EOF before the first byte, throws
/// `ConnectionLost` on a short read.
func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws -> Bool {
    var done = 0
    while done < count {
        let n = try readSome(fd, buffer + done, count - done)
        guard try continuesAfterRead(n, done: done) else { return false }
        done += n
    }
    return true
}

/// Writes a set of buffers completely (handles short writes).
func writeFully(_ fd: Int32, _ parts: [UnsafeRawBufferPointer]) throws {
    var iov = parts.filter { $0.count > 0 }.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
    var index = 0
    while index < iov.count {
        let n = iov.withUnsafeMutableBufferPointer { buf in
            writev(fd, buf.baseAddress! + index, Int32(min(buf.count - index, 512)))
        }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemCallError(call: "write", path: "stream", errno: errno)
        }
        var left = n
        while left > 0 && index < iov.count {
            if left >= iov[index].iov_len {
                left -= iov[index].iov_len
                index += 1
            } else {
                iov[index].iov_base = iov[index].iov_base! + left
                iov[index].iov_len -= left
                left = 0
            }
        }
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Default reading/hashing/writing threads of an agent: the cores, at least 4, at most 8. Each worker
/// does its chunk's I/O and hashing in turn, so with fewer than 4 the disk's queue runs dry while
/// workers hash (measured: 2 workers 4.8 s, 4 workers 3.1 s for 1 GiB on 2 cores).
public func defaultWorkerCount() -> Int { min(max(processorCount(), 4), 8) }

public func processorCount() -> Int {
    let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    return n > 0 ? n : 1
}
