import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A scripted loopback HTTP server standing in for a cloud: Keystone issues a token whose
/// catalog points back here, and `route` answers everything else. Every request is recorded.
final class FakeCloud: Sendable {
    typealias Conn = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
    }

    struct Response: Sendable {
        var status: Int
        var body: String
        var headers: [String: String] = [:]
        static func json(_ status: Int, _ body: String) -> Response { Response(status: status, body: body) }
    }

    let url: String
    private let server: NIOAsyncChannel<Conn, Never>
    private let task: Task<Void, Never>
    final class Log: Sendable {
        let requests = Mutex<[Request]>([])
    }

    private let log: Log

    /// `route`: the answer to a request (other than the token request); it may count calls.
    /// `tokenDelay`: how long each token request takes to be answered (a slow Keystone).
    init(catalog: @escaping @Sendable (String) -> [(type: String, url: String)], tokenDelay: Duration = .zero,
         route: @escaping @Sendable (Request) -> Response) async throws
    {
        let log = Log()
        self.log = log
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Conn(wrappingChannelSynchronously: channel)
                }
            }
        self.server = server
        let base = "http://127.0.0.1:\(server.channel.localAddress?.port ?? 0)"
        self.url = base
        task = Task {
            try? await server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await conn in inbound {
                        group.addTask {
                            try? await conn.executeThenClose { input, output in
                                for try await part in input {
                                    guard case .head(let head) = part else { continue }
                                    var headers: [String: String] = [:]
                                    for (k, v) in head.headers { headers[k.lowercased()] = v }
                                    let req = Request(method: head.method.rawValue, path: head.uri, headers: headers)
                                    log.requests.withLock { $0.append(req) }
                                    let resp: Response
                                    if req.method == "POST", req.path.hasSuffix("/auth/tokens") {
                                        if tokenDelay > .zero { try await Task.sleep(for: tokenDelay) }
                                        resp = Self.token(catalog(base))
                                    } else {
                                        resp = route(req)
                                    }
                                    var h = HTTPHeaders()
                                    h.add(name: "Content-Type", value: "application/json")
                                    h.add(name: "Content-Length", value: String(resp.body.utf8.count))
                                    for (k, v) in resp.headers { h.add(name: k, value: v) }
                                    try await output.write(.head(HTTPResponseHead(version: .http1_1,
                                                                                  status: HTTPResponseStatus(statusCode: resp.status), headers: h)))
                                    try await output.write(.body(.byteBuffer(ByteBuffer(string: resp.body))))
                                    try await output.write(.end(nil))
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    var requests: [Request] { log.requests.withLock { $0 } }

    func shutdown() async {
        try? await server.channel.close()
        task.cancel()
        await task.value
    }

    static func token(_ catalog: [(type: String, url: String)]) -> Response {
        let services = catalog.map { c in
            #"{"type": "\#(c.type)", "name": "\#(c.type)", "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": "\#(c.url)"}]}"#
        }.joined(separator: ", ")
        let body = """
            {"token": {"methods": ["password"], "expires_at": "2999-01-01T00:00:00.000000Z", "issued_at": "2020-01-01T00:00:00.000000Z",
             "user": {"id": "u1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
             "project": {"id": "p1", "name": "proj", "domain": {"id": "default", "name": "Default"}},
             "roles": [{"id": "r1", "name": "member"}], "catalog": [\(services)]}}
            """
        return Response(status: 201, body: body, headers: ["X-Subject-Token": "fake-token"])
    }
}
