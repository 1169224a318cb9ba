import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `nbd://host:port[/export]` or `nbd+unix:///export?socket=PATH`.
public struct NBDAddress: Sendable, Equatable {
    public var host: String?
    public var port: Int = 10809
    public var socketPath: String?
    public var export: String = ""

    public init(host: String? = nil, port: Int = 10809, socketPath: String? = nil, export: String = "") {
        self.host = host
        self.port = port
        self.socketPath = socketPath
        self.export = export
    }

    public static func parse(_ uri: String) -> NBDAddress? {
        if uri.hasPrefix("nbd+unix://") {
            guard let q = uri.range(of: "?socket=") else { return nil }
            let pathPart = uri[uri.index(uri.startIndex, offsetBy: 11)..<q.lowerBound]
            var a = NBDAddress()
            a.socketPath = String(uri[q.upperBound...])
            a.export = pathPart.hasPrefix("/") ? String(pathPart.dropFirst()) : String(pathPart)
            return a
        }
        guard uri.hasPrefix("nbd://") else { return nil }
        var rest = uri.dropFirst(6)
        var a = NBDAddress()
        if let slash = rest.firstIndex(of: "/") {
            a.export = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
            a.port = p
            rest = rest[..<colon]
        }
        a.host = rest.hasPrefix("[") ? String(rest.dropFirst().dropLast()) : String(rest)
        return a.host?.isEmpty == false ? a : nil
    }
}

/// A minimal NBD client (fixed newstyle, NBD_OPT_GO, structured replies, base:allocation block
/// status). One connection per reading thread; read-only.
// @unchecked: `idle` is guarded by `lock`; each connection is used by one thread at a time.
final class NBDSource: SourceVolume, @unchecked Sendable {
    let address: NBDAddress
    let size: UInt64
    var kind: VolumeKind { .blockDevice }
    private let lock = NSLock()
    private var idle: [NBDConnection] = []
    private let first: NBDConnection

    init(_ address: NBDAddress) throws {
        self.address = address
        first = try NBDConnection(address)
        size = first.size
        idle = [first]
    }

    private func withConnection<R>(_ body: (NBDConnection) throws -> R) throws -> R {
        lock.lock()
        let c = idle.popLast()
        lock.unlock()
        let conn = try c ?? NBDConnection(address)
        defer {
            lock.lock()
            idle.append(conn)
            lock.unlock()
        }
        return try body(conn)
    }

    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        var done = 0
        while done < count {  // servers cap requests (32 MiB for qemu-nbd)
            let n = min(count - done, 32 << 20)
            try withConnection { try $0.read(into: buffer + done, count: n, at: offset + UInt64(done)) }
            done += n
        }
    }

    func dataExtents() -> [Extent]? {
        try? withConnection { c -> [Extent]? in
            guard c.hasAllocationContext else { return nil }
            var out: [Extent] = []
            var pos: UInt64 = 0
            while pos < size {
                let len = UInt32(min(size - pos, 1 << 30))
                let descs = try c.blockStatus(offset: pos, length: len)
                guard !descs.isEmpty else { return nil }
                for d in descs {
                    let l = min(UInt64(d.length), size - pos)
                    if d.flags & 2 == 0 {  // not NBD_STATE_ZERO: may hold data
                        if let last = out.last, last.end == pos {
                            out[out.count - 1].length += l
                        } else {
                            out.append(Extent(offset: pos, length: l))
                        }
                    }
                    pos += l
                    if pos >= size { break }
                }
            }
            return out
        } ?? nil
    }

    func adviseSequential() {}
}

/// One NBD connection in transmission phase.
// @unchecked: `cookie` and the socket belong to the one thread that took the connection from NBDSource.
final class NBDConnection: @unchecked Sendable {
    private let fd: Int32
    let size: UInt64
    let hasAllocationContext: Bool
    private let allocationContextID: UInt32
    private var cookie: UInt64 = 1

    private static let optMagic: UInt64 = 0x4948_4156_454F_5054  // "IHAVEOPT"
    private static let replyMagic: UInt64 = 0x3_e889_0455_65a9
    private static let requestMagic: UInt32 = 0x2560_9513
    private static let simpleReplyMagic: UInt32 = 0x6744_6698
    private static let structuredReplyMagic: UInt32 = 0x668e_33ef

    init(_ a: NBDAddress) throws {
        let fd = try NBDConnection.connect(a)
        do {
            var hello = [UInt8](repeating: 0, count: 18)
            try NBDConnection.recv(fd, &hello)
            guard Array(hello[0..<8]) == Array("NBDMAGIC".utf8), be64(hello, 8) == NBDConnection.optMagic else {
                throw DataPlaneError("not an NBD server (or an old-style one)", kind: .protocolError)
            }
            let serverFlags = be16(hello, 16)
            guard serverFlags & 1 != 0 else { throw DataPlaneError("NBD server without fixed newstyle", kind: .protocolError) }
            try NBDConnection.send(fd, u32be(serverFlags & 2 != 0 ? 3 : 1))  // FIXED_NEWSTYLE | NO_ZEROES
            // Structured replies, then the base:allocation context (both optional).
            try NBDConnection.sendOption(fd, 8, [])  // NBD_OPT_STRUCTURED_REPLY
            let structured = try NBDConnection.readOptionReplies(fd) { _, _ in }
            var contextID: UInt32?
            let name = Array(a.export.utf8)
            if structured {
                let ctx = Array("base:allocation".utf8)
                try NBDConnection.sendOption(fd, 10, u32be(UInt32(name.count)) + name + u32be(1) + u32be(UInt32(ctx.count)) + ctx)
                _ = try NBDConnection.readOptionReplies(fd) { type, data in
                    if type == 4, data.count >= 4 { contextID = be32(data, 0) }  // NBD_REP_META_CONTEXT
                }
            }
            try NBDConnection.sendOption(fd, 7, u32be(UInt32(name.count)) + name + [0, 0])  // NBD_OPT_GO
            var exportSize: UInt64?
            let ok = try NBDConnection.readOptionReplies(fd) { type, data in
                if type == 3, data.count >= 12, be16(data, 0) == 0 { exportSize = be64(data, 2) }  // NBD_INFO_EXPORT
            }
            guard ok, let exportSize else { throw DataPlaneError("the NBD server has no export \"\(a.export)\"", kind: .notFound) }
            self.fd = fd
            size = exportSize
            hasAllocationContext = contextID != nil
            allocationContextID = contextID ?? 0
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        // NBD_CMD_DISC (the server ignores its cookie), then close.
        _ = try? request(type: 2, offset: 0, length: 0)
        close(fd)
    }

    private static func connect(_ a: NBDAddress) throws -> Int32 {
        if let path = a.socketPath {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw DataPlaneError("socket path too long: \(path)") }
            withUnsafeMutableBytes(of: &addr.sun_path) { p in
                for (i, b) in bytes.enumerated() { p[i] = b }
            }
            let r = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if r != 0 {
                let e = errno
                close(fd)
                throw DataPlaneError.from(errno: e, "cannot connect to the NBD server at \(path): \(errnoString(e))")
            }
            return fd
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(a.host ?? "localhost", String(a.port), &hints, &res) == 0, let first = res else {
            throw DataPlaneError("cannot resolve \(a.host ?? "")", kind: .connect)
        }
        defer { freeaddrinfo(res) }
        var p: UnsafeMutablePointer<addrinfo>? = first
        var lastErr: Int32 = ECONNREFUSED
        while let ai = p {
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if fd >= 0 {
                if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(4))
                    return fd
                }
                lastErr = errno
                close(fd)
            }
            p = ai.pointee.ai_next
        }
        throw DataPlaneError("cannot connect to the NBD server at \(a.host ?? ""):\(a.port): \(errnoString(lastErr))", kind: .connect)
    }

    // MARK: options

    private static func sendOption(_ fd: Int32, _ option: UInt32, _ data: [UInt8]) throws {
        try send(fd, u64be(optMagic) + u32be(option) + u32be(UInt32(data.count)) + data)
    }

    /// Reads replies to the last option until ACK (true) or "unsupported" (false); other errors throw.
    private static func readOptionReplies(_ fd: Int32, _ body: (UInt32, [UInt8]) throws -> Void) throws -> Bool {
        while true {
            var h = [UInt8](repeating: 0, count: 20)
            try recv(fd, &h)
            guard be64(h, 0) == replyMagic else { throw DataPlaneError("bad NBD option reply", kind: .protocolError) }
            let type = be32(h, 12)
            let len = Int(be32(h, 16))
            guard len <= 1 << 20 else { throw DataPlaneError("NBD option reply too long", kind: .protocolError) }
            var data = [UInt8](repeating: 0, count: len)
            try recv(fd, &data)
            if type == 1 { return true }  // ACK
            if type & 0x8000_0000 != 0 {
                if type == 0x8000_0001 { return false }  // NBD_REP_ERR_UNSUP
                let msg = String(decoding: data, as: UTF8.self)
                throw DataPlaneError("NBD server refused: \(msg.isEmpty ? "error \(type & 0xFFFF)" : msg)", kind: .notFound)
            }
            try body(type, data)
        }
    }

    // MARK: transmission

    private func request(type: UInt16, offset: UInt64, length: UInt32, flags: UInt16 = 0) throws -> UInt64 {
        cookie += 1
        try send(u32be(NBDConnection.requestMagic) + u16be(flags) + u16be(type) + u64be(cookie) + u64be(offset) + u32be(length))
        return cookie
    }

    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws {
        let c = try request(type: 0, offset: offset, length: UInt32(count))
        var simple = [UInt8](repeating: 0, count: 4)
        try recv(&simple)
        let magic = be32(simple, 0)
        if magic == NBDConnection.simpleReplyMagic {
            var rest = [UInt8](repeating: 0, count: 12)
            try recv(&rest)
            let err = be32(rest, 0)
            if err != 0 { throw DataPlaneError("NBD read at \(offset) failed: \(errnoString(Int32(err)))") }
            try recvRaw(buffer, count)
            return
        }
        // Structured: chunks until the DONE flag.
        var header = simple
        while true {
            guard be32(header, 0) == NBDConnection.structuredReplyMagic else { throw DataPlaneError("bad NBD reply", kind: .protocolError) }
            var rest = [UInt8](repeating: 0, count: 16)
            try recv(&rest)
            let flags = be16(rest, 0), type = be16(rest, 2), len = Int(be32(rest, 12))
            guard be64(rest, 4) == c else { throw DataPlaneError("NBD reply for another request", kind: .protocolError) }
            switch type {
            case 0: break  // NONE
            case 1:  // OFFSET_DATA
                var o = [UInt8](repeating: 0, count: 8)
                try recv(&o)
                let at = Int(be64(o, 0) &- offset)
                guard at >= 0, at + len - 8 <= count else { throw DataPlaneError("NBD data outside the request", kind: .protocolError) }
                try recvRaw(buffer + at, len - 8)
            case 2:  // OFFSET_HOLE
                var o = [UInt8](repeating: 0, count: 12)
                try recv(&o)
                let at = Int(be64(o, 0) &- offset), n = Int(be32(o, 8))
                guard at >= 0, at + n <= count else { throw DataPlaneError("NBD hole outside the request", kind: .protocolError) }
                memset(buffer + at, 0, n)
            default:
                var d = [UInt8](repeating: 0, count: len)
                try recv(&d)
                if type & 0x8000 != 0 {
                    let err = d.count >= 4 ? be32(d, 0) : 5
                    throw DataPlaneError("NBD read at \(offset) failed: \(errnoString(Int32(err)))")
                }
            }
            if flags & 1 != 0 { return }
            header = [UInt8](repeating: 0, count: 4)
            try recv(&header)
        }
    }

    /// base:allocation descriptors (length, flags) from `offset`.
    func blockStatus(offset: UInt64, length: UInt32) throws -> [(length: UInt32, flags: UInt32)] {
        let c = try request(type: 7, offset: offset, length: length)
        var out: [(UInt32, UInt32)] = []
        while true {
            var h = [UInt8](repeating: 0, count: 20)
            try recv(&h)
            guard be32(h, 0) == NBDConnection.structuredReplyMagic, be64(h, 8) == c else {
                throw DataPlaneError("bad NBD block status reply", kind: .protocolError)
            }
            let flags = be16(h, 4), type = be16(h, 6), len = Int(be32(h, 16))
            var d = [UInt8](repeating: 0, count: len)
            try recv(&d)
            if type == 5, d.count >= 4, be32(d, 0) == allocationContextID {
                var i = 4
                while i + 8 <= d.count {
                    out.append((be32(d, i), be32(d, i + 4)))
                    i += 8
                }
            } else if type & 0x8000 != 0 {
                return []
            }
            if flags & 1 != 0 { return out }
        }
    }

    // MARK: bytes

    private func send(_ bytes: [UInt8]) throws { try NBDConnection.send(fd, bytes) }
    private func recv(_ bytes: inout [UInt8]) throws { try NBDConnection.recv(fd, &bytes) }
    private func recvRaw(_ p: UnsafeMutableRawPointer, _ n: Int) throws { try NBDConnection.recvRaw(fd, p, n) }

    private static func send(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeFully(fd, [$0]) }
    }

    private static func recv(_ fd: Int32, _ bytes: inout [UInt8]) throws {
        let n = bytes.count
        try bytes.withUnsafeMutableBytes { try recvRaw(fd, $0.baseAddress!, n) }
    }

    private static func recvRaw(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) throws {
        if n == 0 { return }
        let complete: Bool
        do { complete = try readFully(fd, p, n) } catch is ConnectionLost { complete = false }
        guard complete else { throw DataPlaneError("the NBD server closed the connection", kind: .connect) }
    }
}

private func be16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
private func be32(_ b: [UInt8], _ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(b[i + $1]) } }
private func be64(_ b: [UInt8], _ i: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(b[i + $1]) } }
private func u16be(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
private func u32be(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
private func u64be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
