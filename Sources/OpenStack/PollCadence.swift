/// How often a wait asks the cloud again. Quick operations (an attach, a stop, a small volume)
/// are seen soon after they finish: the first `briskFor` seconds poll at most every `brisk`
/// seconds (starting at `first`, growing by `factor`); after that the delay keeps growing up to
/// `interval`, so an hour-long volume copy is not asked about twice a second. Every wait of the
/// client (`Waiter`, a conversion host's attach and detach) uses it: a migration's downtime is a
/// chain of such waits, and a fixed 2 s step adds about a second to each.
public struct PollCadence: Sendable, Equatable {
    public var first: Double
    public var factor: Double
    public var brisk: Double
    public var briskFor: Double
    public var interval: Double

    public init(first: Double = 0.25, factor: Double = 1.6, brisk: Double = 0.5, briskFor: Double = 15, interval: Double = 2) {
        self.first = min(first, interval)
        self.factor = factor
        self.brisk = min(brisk, interval)
        self.briskFor = briskFor
        self.interval = interval
    }

    /// The delay after `previous` (nil: the first poll), `elapsed` seconds into the wait.
    public func next(after previous: Double?, elapsed: Double) -> Double {
        guard let previous else { return first }
        let grown = previous * factor
        return elapsed < briskFor ? min(brisk, grown) : min(interval, max(grown, brisk))
    }

    /// The delays of a wait that lasts `seconds` (for tests and docs).
    public func schedule(upTo seconds: Double) -> [Double] {
        var out: [Double] = []
        var t = 0.0
        var d: Double?
        while t < seconds {
            let n = next(after: d, elapsed: t)
            out.append(n)
            t += n
            d = n
        }
        return out
    }
}

/// One wait's clock under a cadence: `delay` is the next pause, `sleep()` takes it and works
/// out the one after, `elapsed` is the time since the wait began.
public struct Poll: Sendable {
    public let cadence: PollCadence
    public let started = ContinuousClock.now
    public private(set) var delay: Double

    public init(_ cadence: PollCadence) {
        self.cadence = cadence
        delay = cadence.next(after: nil, elapsed: 0)
    }

    public var elapsed: Double { (ContinuousClock.now - started).seconds }

    public mutating func sleep() async throws {
        try await Task.sleep(for: .seconds(delay))
        delay = cadence.next(after: delay, elapsed: elapsed)
    }
}

extension Duration {
    /// This duration in seconds, as a Double.
    public var seconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}
