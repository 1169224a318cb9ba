// The blocking thread primitives of the data plane: a queue, a buffer pool, a joinable thread.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking FIFO for worker threads.
// @unchecked: `items`, `head` and `closed` are guarded by `cond`.
final class BlockingQueue<Element>: @unchecked Sendable {
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private let cond = NSCondition()

    func push(_ e: Element) {
        cond.lock()
        items.append(e)
        cond.signal()
        cond.unlock()
    }

    /// Nil once closed and drained.
    func pop() -> Element? {
        cond.lock()
        defer { cond.unlock() }
        while head == items.count && !closed { cond.wait() }
        if head == items.count { return nil }
        let e = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }

    func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }
}

/// A bounded pool of chunk buffers (the bound on memory in flight).
// @unchecked: `free`, `created` and `closed` are guarded by `cond`.
final class BufferPool: @unchecked Sendable {
    private var free: [AlignedBuffer] = []
    private var created = 0
    private let limit: Int
    private let size: Int
    private var closed = false
    private let cond = NSCondition()

    init(bufferSize: Int, limit: Int) {
        size = bufferSize
        self.limit = limit
    }

    /// Nil when the pool was closed (the session is failing).
    func take() -> AlignedBuffer? {
        cond.lock()
        defer { cond.unlock() }
        while free.isEmpty && created >= limit && !closed { cond.wait() }
        if closed { return nil }
        if let b = free.popLast() { return b }
        created += 1
        return AlignedBuffer(capacity: size)
    }

    func give(_ b: AlignedBuffer) {
        cond.lock()
        free.append(b)
        cond.signal()
        cond.unlock()
    }

    func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }
}

/// A joinable thread.
final class WorkerThread: Sendable {
    private let done = DispatchSemaphore(value: 0)
    init(name: String, _ body: @escaping @Sendable () -> Void) {
        let t = Thread { [done] in
            body()
            done.signal()
        }
        t.name = name
        t.stackSize = 1 << 20
        t.start()
    }
    func join() {
        done.wait()
        done.signal()
    }
}
