import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What a `FaultProxy` does to the requests it sees.
public struct FaultPlan: Sendable {
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// Answer 503 Service Unavailable without forwarding.
        case status503
        /// Answer 429 Too Many Requests with `Retry-After: <seconds>` without forwarding.
        case status429(retryAfter: Int)
        /// Reset the client's connection (RST) without forwarding or answering.
        case reset
        /// Hold the request this many seconds without forwarding, then reset the connection.
        /// Make it longer than the client's request timeout.
        case stall(Double)

        /// The key used in `FaultStats.faults`: "503", "429", "reset", "stall".
        public var name: String {
            switch self {
            case .status503: return "503"
            case .status429: return "429"
            case .reset: return "reset"
            case .stall: return "stall"
            }
        }

        public var description: String { name }
    }

    /// Share of the requests (of `methods`) that get a fault, 0...1.
    public var rate: Double
    /// Faults to choose from, uniformly.
    public var kinds: [Kind]
    /// Seed of the proxy's deterministic random generator: the same sequence of requests gets
    /// the same faults.
    public var seed: UInt64
    /// Methods the faults apply to; other methods are forwarded untouched.
    public var methods: Set<String>
    /// Methods whose requests are forwarded, and then, once the service has answered, the client's
    /// connection is reset instead of passing the answer on: the request took effect, the caller
    /// cannot know it.
    public var resetAfterForwarding: Set<String>

    public init(rate: Double = 0, kinds: [Kind] = [], seed: UInt64 = 1, methods: Set<String> = ["GET", "HEAD"],
                resetAfterForwarding: Set<String> = [])
    {
        precondition((0...1).contains(rate), "rate must be within 0...1")
        self.rate = rate
        self.kinds = kinds
        self.seed = seed
        self.methods = methods
        self.resetAfterForwarding = resetAfterForwarding
    }

    /// Forward everything untouched.
    public static let none = FaultPlan()
}

/// What a `FaultProxy` saw and did.
public struct FaultStats: Sendable, Equatable, CustomStringConvertible {
    /// Requests received, per method (faulted or not).
    public var requests: [String: Int] = [:]
    /// Requests that reached the upstream service, per method.
    public var forwarded: [String: Int] = [:]
    /// Faults injected, per `FaultPlan.Kind.name` ("503", "429", "reset", "stall").
    public var faults: [String: Int] = [:]
    /// Requests forwarded whose answer was replaced by a connection reset.
    public var resetsAfterForwarding = 0
    /// Forwarding attempts that failed (the proxy answered 502).
    public var upstreamErrors = 0
    /// Every request as "METHOD /path?query", in arrival order.
    public var log: [String] = []

    public var totalRequests: Int { requests.values.reduce(0, +) }
    public var totalFaults: Int { faults.values.reduce(0, +) }
    /// POSTs that reached the service.
    public var postsForwarded: Int { forwarded["POST", default: 0] }

    public var description: String {
        "requests \(requests.sorted { $0.key < $1.key }), forwarded \(forwarded.sorted { $0.key < $1.key }), "
            + "faults \(faults.sorted { $0.key < $1.key }), resets after forwarding \(resetsAfterForwarding), "
            + "upstream errors \(upstreamErrors)"
    }
}

/// A loopback HTTP/1.1 proxy in front of one lab service that injects faults: 503, 429 with
/// `Retry-After`, connection resets, stalls, and resets after a request was forwarded.
///
/// Point a session at it with the profile's `endpointOverrides`
/// (`["network": proxy.url + "/v2.0"]`). Call `shutdown()` when done.
public final class FaultProxy: Sendable {
    typealias Conn = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    public let upstream: String
    public let plan: FaultPlan
    /// "http://127.0.0.1:<port>"
    public let url: String
    public let port: Int

    private let core: Core
    private let server: NIOAsyncChannel<Conn, Never>
    private let serverTask: Task<Void, Never>

    /// Listen on a free loopback port and forward to `upstream` ("http://127.0.0.1:9696").
    public init(upstream: String, faults: FaultPlan) async throws {
        var up = upstream
        while up.hasSuffix("/") { up.removeLast() }
        self.upstream = up
        self.plan = faults
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        config.timeout = .init(connect: .seconds(10), read: .seconds(120))
        config.decompression = .disabled
        config.httpVersion = .http1Only
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        let core = Core(upstream: up, plan: faults, client: client)
        self.core = core
        let server: NIOAsyncChannel<Conn, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .bind(host: "127.0.0.1", port: 0) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try Conn(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            try? await client.shutdown()
            throw error
        }
        self.server = server
        let port = server.channel.localAddress?.port ?? 0
        self.port = port
        self.url = "http://127.0.0.1:\(port)"
        serverTask = Task {
            try? await server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await conn in inbound {
                        group.addTask { await core.serve(conn) }
                    }
                }
            }
        }
    }

    public var stats: FaultStats { core.state.withLock { $0.stats } }

    /// Forget what was counted so far (the fault sequence goes on).
    public func resetStats() { core.state.withLock { $0.stats = FaultStats() } }

    /// Stop listening, drop open connections, shut the forwarding client down.
    public func shutdown() async throws {
        try? await server.channel.close()
        for c in core.state.withLock({ Array($0.open.values) }) { try? await c.close() }
        serverTask.cancel()
        await serverTask.value
        try await core.client.shutdown()
    }

    // MARK: -

    final class Core: Sendable {
        struct State {
            var rng: SplitMix64
            var stats = FaultStats()
            var open: [ObjectIdentifier: any Channel] = [:]
        }

        let upstream: String
        let plan: FaultPlan
        let client: HTTPClient
        let state: Mutex<State>

        init(upstream: String, plan: FaultPlan, client: HTTPClient) {
            self.upstream = upstream
            self.plan = plan
            self.client = client
            self.state = Mutex(State(rng: SplitMix64(seed: plan.seed)))
        }

        static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                                            "trailer", "upgrade", "content-length", "host"]

        func serve(_ conn: Conn) async {
            let channel = conn.channel
            let id = ObjectIdentifier(channel)
            state.withLock { $0.open[id] = channel }
            defer { _ = state.withLock { $0.open.removeValue(forKey: id) } }
            try? await conn.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = channel.allocator.buffer(capacity: 0)
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body.clear()
                    case .body(var b):
                        body.writeBuffer(&b)
                    case .end:
                        guard let h = head else { continue }
                        head = nil
                        let keepOpen = try await handle(h, body, channel: channel, outbound: outbound)
                        if !keepOpen { return }
                    }
                }
            }
        }

        /// Returns false when the connection is gone (reset) or must be closed.
        func handle(_ head: HTTPRequestHead, _ body: ByteBuffer, channel: any Channel,
                    outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws -> Bool
        {
            let method = head.method.rawValue
            let fault: FaultPlan.Kind? = state.withLock { s in
                s.stats.requests[method, default: 0] += 1
                s.stats.log.append("\(method) \(head.uri)")
                guard plan.methods.contains(method), !plan.kinds.isEmpty, plan.rate > 0 else { return nil }
                guard s.rng.nextDouble() < plan.rate else { return nil }
                let k = plan.kinds[Int(s.rng.next() % UInt64(plan.kinds.count))]
                s.stats.faults[k.name, default: 0] += 1
                return k
            }
            switch fault {
            case .status503?:
                try await respond(outbound, status: .serviceUnavailable, headers: [:],
                                  json: #"{"message": "FaultProxy: injected 503 Service Unavailable"}"#)
                return head.isKeepAlive
            case .status429(let after)?:
                try await respond(outbound, status: .tooManyRequests, headers: ["Retry-After": String(after)],
                                  json: #"{"message": "FaultProxy: injected 429 Too Many Requests"}"#)
                return head.isKeepAlive
            case .reset?:
                await Self.reset(channel)
                return false
            case .stall(let seconds)?:
                try? await Task.sleep(for: .seconds(seconds))
                await Self.reset(channel)
                return false
            case nil:
                break
            }

            // Forward.
            var req = HTTPClientRequest(url: upstream + head.uri)
            req.method = head.method
            for (name, value) in head.headers where !Self.hopByHop.contains(name.lowercased()) {
                req.headers.add(name: name, value: value)
            }
            if body.readableBytes > 0 { req.body = .bytes(body) }
            let status: HTTPResponseStatus
            let headers: HTTPHeaders
            let data: ByteBuffer
            do {
                let resp = try await client.execute(req, timeout: .seconds(120))
                status = resp.status
                headers = resp.headers
                data = try await resp.body.collect(upTo: 256 << 20)
                state.withLock { $0.stats.forwarded[method, default: 0] += 1 }
            } catch {
                state.withLock { $0.stats.upstreamErrors += 1 }
                try await respond(outbound, status: .badGateway, headers: [:],
                                  json: #"{"message": "FaultProxy: upstream failed"}"#)
                return false
            }
            if plan.resetAfterForwarding.contains(method) {
                state.withLock { $0.stats.resetsAfterForwarding += 1 }
                await Self.reset(channel)
                return false
            }
            var out = HTTPHeaders()
            for (name, value) in headers where !Self.hopByHop.contains(name.lowercased()) {
                out.add(name: name, value: value)
            }
            out.add(name: "Content-Length", value: String(data.readableBytes))
            if !head.isKeepAlive { out.add(name: "Connection", value: "close") }
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: status, headers: out)))
            if data.readableBytes > 0 { try await outbound.write(.body(.byteBuffer(data))) }
            try await outbound.write(.end(nil))
            return head.isKeepAlive
        }

        func respond(_ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, status: HTTPResponseStatus,
                     headers: [String: String], json: String) async throws
        {
            var h = HTTPHeaders()
            h.add(name: "Content-Type", value: "application/json")
            h.add(name: "Content-Length", value: String(json.utf8.count))
            for (k, v) in headers { h.add(name: k, value: v) }
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: h)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: json))))
            try await outbound.write(.end(nil))
        }

        /// Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN.
        static func reset(_ channel: any Channel) async {
            if let provider = channel as? any SocketOptionProvider {
                try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            }
            try? await channel.close()
        }
    }
}

/// A small deterministic generator (SplitMix64).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
