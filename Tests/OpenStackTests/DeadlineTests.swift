import Foundation
import OpenStack
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A server that accepts and never answers, and one that answers TLS with plain HTTP: the
/// session gives up within its deadline and says what happened, naming the cloud and the URL.
@Suite("Deadlines: nothing hangs")
struct DeadlineTests {
    /// A listening socket on 127.0.0.1 that nobody accepts from: the kernel completes each
    /// connection, and no byte ever comes back.
    final class SilentListener {
        let fd: Int32
        let port: Int
        init() throws {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
            guard bound == 0, listen(s, 16) == 0 else {
                close(s)
                throw POSIXError(.EADDRINUSE)
            }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
            fd = s
            port = Int(UInt16(bigEndian: addr.sin_port))
        }
        deinit { close(fd) }
    }

    @Test("an auth_url that accepts and never answers fails after api_timeout (one retry), naming the cloud and the URL")
    func silentKeystone() async throws {
        let listener = try SilentListener()
        let transport = HTTPTransport()
        var profile = CloudProfile(name: "silent", origin: "test", auth: [
            "auth_url": "http://127.0.0.1:\(listener.port)/v3", "username": "u", "password": "p", "project_name": "x",
        ])
        profile.apiTimeout = 1
        let session = try CloudSession(profile: profile, transport: transport)
        let start = Date()
        var message = ""
        do { _ = try await session.authenticate() } catch { message = "\(error)" }
        let elapsed = Date().timeIntervalSince(start)
        await transport.shutdown()
        #expect(elapsed < 8, "took \(elapsed) s")
        #expect(message.contains("cannot reach http://127.0.0.1:\(listener.port)/v3/auth/tokens for cloud 'silent': no answer within 1 s (api_timeout)"),
                "\(message)")
    }
}
