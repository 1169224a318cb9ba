import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

// Bulk data through the APIs without holding it: a download's body is read as it arrives and an
// upload's body is produced as the connection can take it, so memory stays bounded by the
// HTTP client's buffers whatever the size. Used for Glance image data.

/// Running digests of a byte stream: MD5 (Glance's `checksum`) and SHA-512 (`os_hash_value`).
public final class StreamDigest: Sendable {
    struct State {
        var md5 = Insecure.MD5()
        var sha512 = SHA512()
        var count: Int64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { raw in
            state.withLock {
                $0.md5.update(bufferPointer: raw)
                $0.sha512.update(bufferPointer: raw)
                $0.count += Int64(raw.count)
            }
        }
    }

    public var byteCount: Int64 { state.withLock { $0.count } }

    /// Hex digests of everything seen so far.
    public func finalize() -> StreamDigests {
        state.withLock { s in
            StreamDigests(md5: s.md5.finalize().map { String(format: "%02x", $0) }.joined(),
                          sha512: s.sha512.finalize().map { String(format: "%02x", $0) }.joined(), size: s.count)
        }
    }
}

public struct StreamDigests: Sendable, Equatable {
    public var md5: String
    public var sha512: String
    public var size: Int64

    /// The digest Glance names by `os_hash_algo`, when we compute it.
    public func hash(_ algo: String?) -> String? { algo?.lowercased() == "sha512" ? sha512 : nil }
}

/// Reports bytes done at most once per `interval` seconds or per `step` of the total, and at the end.
public final class ProgressMeter: Sendable {
    struct State {
        var done: Int64 = 0
        var lastReport: ContinuousClock.Instant
        var lastBytes: Int64 = 0
    }

    let total: Int64?
    let interval: Double
    let step: Int64
    let start = ContinuousClock.now
    let report: @Sendable (_ done: Int64, _ total: Int64?, _ rate: Double) -> Void
    private let state: Mutex<State>

    public init(total: Int64?, interval: Double = 1, stepFraction: Double = 0.05,
                report: @escaping @Sendable (_ done: Int64, _ total: Int64?, _ rate: Double) -> Void)
    {
        self.total = total
        self.interval = interval
        step = total.map { max(Int64(Double($0) * stepFraction), 1 << 20) } ?? Int64.max
        self.report = report
        state = Mutex(State(lastReport: ContinuousClock.now))
    }

    public func add(_ n: Int) {
        let now = ContinuousClock.now
        let due: Int64? = state.withLock { s in
            s.done += Int64(n)
            if s.done - s.lastBytes >= step || now - s.lastReport >= .seconds(interval) {
                s.lastReport = now
                s.lastBytes = s.done
                return s.done
            }
            return nil
        }
        if let d = due { report(d, total, rate(d, now)) }
    }

    public func finish() {
        let d = state.withLock { $0.done }
        report(d, total, rate(d, ContinuousClock.now))
    }

    func rate(_ done: Int64, _ now: ContinuousClock.Instant) -> Double {
        let e = now - start
        let secs = e.seconds
        return secs > 0 ? Double(done) / secs : 0
    }
}

/// A byte stream passed through a digest and a progress meter on its way.
struct DigestingSequence<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let digest: StreamDigest
    let meter: ProgressMeter?

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let digest: StreamDigest
        let meter: ProgressMeter?

        mutating func next() async throws -> ByteBuffer? {
            guard let b = try await base.next() else { return nil }
            digest.update(b)
            meter?.add(b.readableBytes)
            return b
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), digest: digest, meter: meter) }
}

/// A file read in chunks, as it is consumed.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String
    let chunkSize: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let path: String
        let chunkSize: Int
        var handle: FileHandle?
        var done = false

        mutating func next() async throws -> ByteBuffer? {
            if done { return nil }
            if handle == nil { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) }
            guard let data = try handle?.read(upToCount: chunkSize), !data.isEmpty else {
                try? handle?.close()
                done = true
                return nil
            }
            return ByteBuffer(data: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(path: path, chunkSize: chunkSize) }
}

/// A download whose body has not been read yet.
public struct DataDownload: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    let body: HTTPClientResponse.Body
    /// The connection's place in the transport's gate, given back when the download goes away.
    let lease: ConnectionLease

    /// `Content-Length`, when the service sent one.
    public var contentLength: Int64? { headers.first(name: "Content-Length").flatMap { Int64($0) } }
}

extension CloudSession {
    /// GET with the body left unread, for streaming. Like `send`, retried until the response head
    /// arrives (a GET is safe to repeat); non-2xx answers throw.
    public func openDownload(_ request: APIRequest) async throws -> DataDownload {
        let ep = try await endpoint(request.service)
        let url = Self.join(ep.url, request.path, request.query)
        var retry = RetryState(options.retry)
        var reauthenticated = false
        while true {
            let token = try await authenticator.token()
            let req = httpRequest(request, url: url, endpoint: ep, token: token)
            requests.record(method: request.method.rawValue)
            let response: HTTPClientResponse
            let lease: ConnectionLease
            do {
                (response, lease) = try await transport.execute(req, timeout: request.timeout ?? options.requestTimeout)
            } catch {
                if error is CancellationError { throw error }
                let failure = TransportFailure.classify(error)
                if let wait = retry.next(after: failure, idempotent: true) {
                    logger.notice("\(ep.service) GET \(URLRedaction.redact(url)): \(error); retrying")
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                throw OpenStackError(kind: failure == .timeout ? .timeout : .transport, service: ep.service,
                                     method: request.method.rawValue, url: url,
                                     message: failure == .tls ? TransportFailure.tlsMessage(error) : "\(error)")
            }
            let status = Int(response.status.code)
            if (200..<300).contains(status) {
                return DataDownload(status: status, headers: response.headers, body: response.body, lease: lease)
            }
            let errorBody = (try? await response.body.collect(upTo: 1 << 20)).map { Data(buffer: $0) } ?? Data()
            lease.release()
            if status == 401 && !reauthenticated {
                reauthenticated = true
                _ = try await authenticator.token(rejected: token.value)
                continue
            }
            if let wait = retry.next(afterStatus: status, retryAfter: response.headers.first(name: "Retry-After"), idempotent: true) {
                try await Task.sleep(for: .seconds(wait))
                continue
            }
            throw OpenStackError(kind: .http(status: status), service: ep.service, method: request.method.rawValue, url: url,
                                 requestID: response.headers.first(name: "x-openstack-request-id"),
                                 message: OpenStackError.serviceMessage(from: errorBody))
        }
    }

    /// Send a request whose body is a stream of known length. Sent once, never retried here: the
    /// stream cannot be read twice, so a caller that wants another attempt starts over from its
    /// source. A 401 refreshes the token for that next attempt.
    func upload<S: AsyncSequence & Sendable>(_ request: APIRequest, body: S, length: Int64, contentType: String,
                                              timeout: Double) async throws -> HTTPResult where S.Element == ByteBuffer
    {
        let ep = try await endpoint(request.service)
        let url = Self.join(ep.url, request.path, request.query)
        let token = try await authenticator.token()
        var req = httpRequest(request, url: url, endpoint: ep, token: token)
        req.headers.replaceOrAdd(name: "Content-Type", value: contentType)
        req.body = .stream(body, length: .known(length))
        requests.record(method: request.method.rawValue)
        let start = ContinuousClock.now
        let result: HTTPResult
        do {
            let (resp, lease) = try await transport.execute(req, timeout: timeout)
            defer { lease.release() }
            result = HTTPResult(status: Int(resp.status.code), headers: resp.headers, body: Data(buffer: try await resp.body.collect(upTo: 4 << 20)))
        } catch let e as OpenStackError {
            throw e
        } catch {
            if error is CancellationError { throw error }
            let failure = TransportFailure.classify(error)
            throw OpenStackError(kind: failure == .timeout ? .timeout : .transport, service: ep.service, method: request.method.rawValue,
                                 url: url, message: "\(error) (not retried: the data stream is restarted from the source)")
        }
        logger.debug("\(request.method.rawValue) \(URLRedaction.redact(url)) -> \(result.status) (\(Self.ms(since: start)) ms)")
        if result.status == 401 { _ = try? await authenticator.token(rejected: token.value) }
        guard (200..<300).contains(result.status) else {
            throw OpenStackError(kind: .http(status: result.status), service: ep.service, method: request.method.rawValue, url: url,
                                 requestID: result.requestID, message: OpenStackError.serviceMessage(from: result.body))
        }
        return result
    }

    /// A generous deadline for moving `size` bytes (stalls are caught by the client's read timeout).
    static func dataTimeout(_ size: Int64) -> Double { max(600, Double(size) / Double(1 << 20)) }
}

// MARK: Glance image data

/// What went through: digests of the bytes, and what the source said about them.
public struct ImageDataTransfer: Sendable, Equatable {
    public var digests: StreamDigests
    /// The source's `Content-MD5` header, when it sent one.
    public var sourceContentMD5: String?
}

extension CloudSession {
    /// Stream image data from `source`'s Glance into image `imageID` of this session's Glance
    /// (which must be `queued`), hashing it on the way. Nothing lands on disk; memory is bounded.
    public func copyImageData(into imageID: String, from source: CloudSession, sourceImageID: String, size: Int64,
                              progress: ProgressMeter? = nil) async throws -> ImageDataTransfer
    {
        let download = try await source.openDownload(APIRequest(ServiceType.image, .GET, Glance.images.itemPath(sourceImageID) + "/file"))
        if download.status == 204 {
            throw OpenStackError(kind: .notFound, service: ServiceType.image, message: "source image \(sourceImageID) has no data")
        }
        if let len = download.contentLength, len != size {
            throw OpenStackError(kind: .decoding, service: ServiceType.image,
                                 message: "source image \(sourceImageID) sends \(len) bytes, its size is \(size)")
        }
        let digest = StreamDigest()
        let body = DigestingSequence(base: download.body, digest: digest, meter: progress)
        _ = try await upload(APIRequest(ServiceType.image, .PUT, Glance.images.itemPath(imageID) + "/file"), body: body, length: size,
                             contentType: "application/octet-stream", timeout: Self.dataTimeout(size))
        progress?.finish()
        return ImageDataTransfer(digests: digest.finalize(), sourceContentMD5: download.headers.first(name: "Content-MD5"))
    }

    /// Download image data into a file (written as `<path>.part`, renamed when complete).
    public func downloadImageData(_ imageID: String, to path: String, progress: ProgressMeter? = nil) async throws -> ImageDataTransfer {
        let download = try await openDownload(APIRequest(ServiceType.image, .GET, Glance.images.itemPath(imageID) + "/file"))
        if download.status == 204 {
            throw OpenStackError(kind: .notFound, service: ServiceType.image, message: "image \(imageID) has no data")
        }
        let part = path + ".part"
        _ = FileManager.default.createFile(atPath: part, contents: nil, attributes: [.posixPermissions: 0o640])
        let digest = StreamDigest()
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: part))
            defer { try? handle.close() }
            for try await buffer in download.body {
                digest.update(buffer)
                progress?.add(buffer.readableBytes)
                try buffer.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
            }
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: part)
            throw error
        }
        progress?.finish()
        let result = ImageDataTransfer(digests: digest.finalize(), sourceContentMD5: download.headers.first(name: "Content-MD5"))
        if let len = download.contentLength, len != result.digests.size {
            try? FileManager.default.removeItem(atPath: part)
            throw OpenStackError(kind: .decoding, service: ServiceType.image,
                                 message: "image \(imageID): received \(result.digests.size) of \(len) bytes")
        }
        if rename(part, path) != 0 {
            let e = errno
            try? FileManager.default.removeItem(atPath: part)
            throw ConfigError("\(path): cannot be written: \(String(cString: strerror(e)))")
        }
        return result
    }

    /// Upload a file's bytes into image `imageID` (which must be `queued`), hashing them on the way.
    public func uploadImageData(_ imageID: String, fromFile path: String, progress: ProgressMeter? = nil) async throws -> ImageDataTransfer {
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attrs[.size] as? NSNumber)?.int64Value ?? 0
        let digest = StreamDigest()
        let body = DigestingSequence(base: FileChunks(path: path, chunkSize: 1 << 20), digest: digest, meter: progress)
        _ = try await upload(APIRequest(ServiceType.image, .PUT, Glance.images.itemPath(imageID) + "/file"), body: body, length: size,
                             contentType: "application/octet-stream", timeout: Self.dataTimeout(size))
        progress?.finish()
        return ImageDataTransfer(digests: digest.finalize(), sourceContentMD5: nil)
    }
}
