import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import OpenStack

@Suite struct RetryPolicyTests {
    @Test("one set of rules: a connect failure connect_retries times, a timeout once more, a TLS failure never, writes only before they left")
    func retryState() {
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: 0.01, maxDelay: 0.02)
        var connect = RetryState(policy)
        for _ in 0..<5 { #expect(connect.next(after: .beforeSend, idempotent: false) != nil) }
        #expect(connect.next(after: .beforeSend, idempotent: false) == nil)
        var once = RetryState(RetryPolicy(connectRetries: 1))
        #expect(once.next(after: .beforeSend, idempotent: false) != nil)
        #expect(once.next(after: .beforeSend, idempotent: false) == nil)
        var queued = RetryState(policy)
        #expect(queued.next(after: .queued, idempotent: false) != nil)
        #expect(queued.next(after: .queued, idempotent: false) == nil)
        var never = RetryState(.none)
        #expect(never.next(after: .beforeSend, idempotent: true) == nil)
        var write = RetryState(policy)
        #expect(write.next(after: .timeout, idempotent: false) == nil)
        var timeout = RetryState(policy)
        #expect(timeout.next(after: .timeout, idempotent: true) != nil)
        #expect(timeout.next(after: .timeout, idempotent: true) == nil)
        var tls = RetryState(policy)
        #expect(tls.next(after: .tls, idempotent: true) == nil)
        var lost = RetryState(policy)
        #expect(lost.next(after: .afterSend, idempotent: false) == nil)
        for _ in 0..<5 { #expect(lost.next(after: .afterSend, idempotent: true) != nil) }
        #expect(lost.next(after: .afterSend, idempotent: true) == nil, "six attempts in all")
        var status = RetryState(policy)
        #expect(status.next(afterStatus: 503, retryAfter: nil, idempotent: false) == nil)
        #expect(status.next(afterStatus: 429, retryAfter: "1", idempotent: false) == 1)
        #expect(status.next(afterStatus: 503, retryAfter: "3600", idempotent: true) == nil, "longer than we wait")
        #expect(status.next(afterStatus: 500, retryAfter: nil, idempotent: true) == nil)
    }

    @Test("a TLS handshake failure is told apart, and a plain-http answer says the server did not speak TLS")
    func tlsFailures() {
        struct Fake: Error, CustomStringConvertible { var description: String }
        let wrong = Fake(description: "handshakeFailed(NIOSSL.BoringSSLError.sslError([Error: 268435703 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER]))")
        #expect(TransportFailure.classify(wrong) == .tls)
        #expect(TransportFailure.tlsMessage(wrong).hasPrefix("the server did not speak TLS (is the URL https:// on a plain http port?)"))
        let eof = Fake(description: "handshakeFailed(NIOSSL.BoringSSLError.sslError([Error:  EOF during handshake]))")
        #expect(TransportFailure.classify(eof) == .tls)
        #expect(TransportFailure.tlsMessage(eof).hasPrefix("the server closed the connection during the TLS handshake (is the URL https:// on a plain http port, "))
        #expect(TransportFailure.classify(Fake(description: "connectionRefused")) == .beforeSend)
    }

    @Test func retryAfterSeconds() {
        #expect(RetryPolicy.retryAfterSeconds("1") == 1)
        #expect(RetryPolicy.retryAfterSeconds(" 120 ") == 120)
        #expect(RetryPolicy.retryAfterSeconds("2.5") == 2.5)
        #expect(RetryPolicy.retryAfterSeconds("-3") == 0)
        #expect(RetryPolicy.retryAfterSeconds(nil) == nil)
        #expect(RetryPolicy.retryAfterSeconds("") == nil)
        #expect(RetryPolicy.retryAfterSeconds("soon") == nil)
    }

    @Test func retryAfterHTTPDate() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryPolicy.retryAfterSeconds("Sun, 06 Nov 1994 08:50:07 GMT", now: now) == 30)
        #expect(RetryPolicy.retryAfterSeconds("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(RetryPolicy.retryAfterSeconds("Sat, 05 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(RetryPolicy.retryAfterSeconds("Mon, 07 Nov 1994 08:49:37 GMT", now: now) == 86400)
    }

    @Test func delayBoundsGrowExponentiallyUpToTheMaximum() {
        let p = RetryPolicy(maxAttempts: 6, baseDelay: 0.5, maxDelay: 20)
        for (attempt, cap) in [(0, 0.5), (1, 1.0), (3, 4.0), (5, 16.0), (6, 20.0), (30, 20.0)] {
            var seen: Set<Double> = []
            for _ in 0..<200 {
                let d = p.delay(afterAttempt: attempt)
                #expect(d >= cap / 2 && d <= cap + 0.001, "attempt \(attempt): \(d) outside [\(cap / 2), \(cap)]")
                seen.insert(d)
            }
            #expect(seen.count > 100, "attempt \(attempt): no jitter")
        }
        let fast = RetryPolicy(maxAttempts: 8, baseDelay: 0.05, maxDelay: 0.5)
        for attempt in 0..<20 { #expect(fast.delay(afterAttempt: attempt) <= 0.501) }
    }

    @Test func defaultsAndNone() {
        let p = RetryPolicy()
        #expect(p.maxAttempts == 6)
        #expect(p.baseDelay == 0.5)
        #expect(p.maxDelay == 20)
        #expect(p.maxRetryAfter == 120)
        #expect(RetryPolicy.none.maxAttempts == 1)
    }

    @Test func retryableStatuses() {
        for s in [429, 502, 503, 504] { #expect(RetryPolicy.isRetryableStatus(s), "\(s)") }
        for s in [200, 400, 401, 404, 409, 413, 500, 501] { #expect(!RetryPolicy.isRetryableStatus(s), "\(s)") }
    }

    @Test func whichRequestsAreSafeToRepeat() {
        #expect(APIRequest("network", .GET, "/networks").isIdempotent)
        #expect(APIRequest("network", .PUT, "/networks/x").isIdempotent)
        #expect(APIRequest("network", .DELETE, "/networks/x").isIdempotent)
        #expect(APIRequest("network", .HEAD, "/networks/x").isIdempotent)
        #expect(!APIRequest("network", .POST, "/networks").isIdempotent)
        #expect(!APIRequest("image", .PATCH, "/images/x").isIdempotent)
        #expect(APIRequest("compute", .POST, "/servers/x/action", idempotent: true).isIdempotent)
        #expect(!APIRequest("network", .GET, "/networks", idempotent: false).isIdempotent)
    }

    @Test func transportFailureClassification() {
        #expect(TransportFailure.classify(HTTPClientError.connectTimeout) == .beforeSend)
        #expect(TransportFailure.classify(HTTPClientError.getConnectionFromPoolTimeout) == .beforeSend)
        #expect(TransportFailure.classify(HTTPClientError.deadlineExceeded) == .timeout)
        #expect(TransportFailure.classify(HTTPClientError.readTimeout) == .timeout)
        #expect(TransportFailure.classify(HTTPClientError.remoteConnectionClosed) == .afterSend)
        #expect(TransportFailure.classify(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .beforeSend)
        #expect(TransportFailure.classify(IOError(errnoCode: ECONNRESET, reason: "read")) == .afterSend)
        #expect(TransportFailure.classify(ChannelError.connectTimeout(.seconds(1))) == .beforeSend)
        #expect(TransportFailure.classify(ChannelError.ioOnClosedChannel) == .afterSend)
    }
}
