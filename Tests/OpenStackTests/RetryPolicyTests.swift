import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import OpenStack

@Suite struct RetryPolicyTests {
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
