import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The destination: checked and prepared before the copy, then each chunk landed on it (written,
/// zeroed or verified) and resolved.
extension ReceiveSession {
    // MARK: target

    func describeTarget(_ error: Error) -> DataPlaneError {
        if let e = error as? SystemCallError {
            return DataPlaneError.from(errno: e.errno, "destination \(config.target): \(errnoString(e.errno))")
        }
        if let e = error as? DataPlaneError { return e }
        return DataPlaneError("destination \(config.target): \(error)")
    }

    /// Checks the destination before anything is written (or any connection made). Returns the open
    /// target when it exists; nil when a new file will be created.
    func preflightTarget() throws -> VolumeHandle? {
        let path = config.target
        var st = stat()
        if stat(path, &st) == 0 {
            let fmt = st.st_mode & S_IFMT
            guard fmt == S_IFREG || fmt == S_IFBLK else {
                throw DataPlaneError("destination \(path): not a regular file or block device", kind: .usage)
            }
            let handle: VolumeHandle
            do {
                handle = try VolumeHandle.open(path, writable: config.mode != .verify)
            } catch {
                throw describeTarget(error)
            }
            if config.mode != .verify && !handle.lockExclusive() {
                throw DataPlaneError("destination \(path) is in use by another copy", kind: .other)
            }
            return handle
        }
        let e = errno
        if e != ENOENT || config.mode == .verify || path.hasPrefix("/dev/") {
            throw DataPlaneError.from(errno: e, "destination \(path): \(errnoString(e))")
        }
        let parent = (path as NSString).deletingLastPathComponent
        let dir = parent.isEmpty ? "." : parent
        if access(dir, W_OK) != 0 {
            let e2 = errno
            throw DataPlaneError.from(errno: e2, "destination \(path): \(errnoString(e2))")
        }
        return nil
    }

    func prepareTarget(existing: VolumeHandle?, sourceSize: UInt64) throws {
        if let t = existing {
            switch t.kind {
            case .blockDevice:
                if t.size < sourceSize {
                    throw DataPlaneError("destination \(config.target) is smaller than the source (\(t.size) < \(sourceSize) bytes)", kind: .tooSmall)
                }
            case .file:
                if config.mode == .verify {
                    if t.size < sourceSize {
                        throw DataPlaneError("destination \(config.target) is smaller than the source (\(t.size) < \(sourceSize) bytes)", kind: .tooSmall)
                    }
                } else if t.size != sourceSize {
                    let old = t.size
                    do { try t.truncate(to: sourceSize) } catch { throw describeTarget(error) }
                    if old < sourceSize { zeroFrom = old }
                }
            }
            target = t
        } else {
            do {
                target = try VolumeHandle.create(config.target)
                _ = target.lockExclusive()
                try target.truncate(to: sourceSize)
            } catch {
                throw describeTarget(error)
            }
            targetKnownZero = true
        }
        if config.targetIsZero { targetKnownZero = true }
        if config.mode != .verify { target.enableDirectIO(writable: true) }
    }

    func targetIdentity() -> ChunkDigest {
        if let key = config.targetKey { return Array("key:\(key)".utf8).withUnsafeBytes { DigestScheme.leaf($0) } }
        var real = config.target
        if let p = realpath(config.target, nil) {
            real = String(validatingCString: p) ?? real
            free(p)
        }
        let id = target.kind == .file ? "file:\(real):\(target.device):\(target.inode)" : "block:\(real):\(target.device)"
        return Array(id.utf8).withUnsafeBytes { DigestScheme.leaf($0) }
    }

    private func knownZero(_ offset: UInt64, _ length: Int) -> Bool {
        targetKnownZero || offset >= zeroFrom
    }

    // MARK: working

    private typealias Resolution = ReceivePlan.Resolution

    /// `source`: verify mode, the source's digest of the chunk.
    private func resolve(_ index: Int, digest: ChunkDigest, how: Resolution, entry: ChunkMap.Entry?, source: ChunkDigest? = nil) {
        cond.lock()
        defer { cond.unlock() }
        guard tally.resolve(index, digest: digest, how: how, entry: entry, source: source) else {
            if failure == nil { failure = DataPlaneError("protocol error: chunk \(index) resolved twice", kind: .protocolError) }
            cond.broadcast()
            return
        }
        if tally.isComplete { cond.broadcast() }
    }

    func workerLoop() {
        let scratch = AlignedBuffer(capacity: geometry.chunkSize)
        while let job = queue.pop() {
            if failed != nil {
                if case .data(_, _, let b, _) = job { pool.give(b) }
                continue
            }
            do {
                switch job {
                case .data(let s, let h, let b, let mask):
                    defer { pool.give(b) }
                    try landData(stream: s, header: h, buffer: b, zeroMask: mask)
                case .zero(let first, let count):
                    try landZeros(first: first, count: count, scratch: scratch)
                case .verify(let s, let i, let expected, let reuse):
                    try verifyTarget(stream: s, index: i, expected: expected, reuse: reuse, scratch: scratch)
                }
            } catch let e as DataPlaneError {
                fail(e)
            } catch {
                fail(describeTarget(error))
            }
        }
    }

    private func landData(stream: Int, header h: DataFrameHeader, buffer: AlignedBuffer, zeroMask: BlockMask) throws {
        let i = h.index
        let length = geometry.chunkLength(i)
        let bytes = UnsafeRawBufferPointer(start: buffer.pointer, count: length)
        var digest = ChunkDigest.zero
        if config.mode != .unverified {
            digest = zeroMask.setCount == zeroMask.count ? scheme.zeroChunkDigest(i) : scheme.chunkDigest(index: i, buffer: bytes, zeroBlocks: zeroMask)
            cond.lock()
            let failures = Int(attempts[i])
            cond.unlock()
            switch ReceivePlan.onData(sent: h.digest, computed: digest, failedAttempts: failures) {
            case .write: break
            case .rerequest:
                cond.lock()
                attempts[i] += 1
                tally.result.chunksRetried += 1
                cond.unlock()
                log("chunk \(i) failed verification on arrival; requesting it again")
                try streams[stream].writer.send(.request([i]))
                return
            case .fail:
                throw DataPlaneError("chunk \(i) (offset \(geometry.chunkOffset(i))) failed verification \(ReceivePlan.maxAttempts) times: the data arriving does not match the source's digest", kind: .verification)
            }
        }
        let base = geometry.chunkOffset(i)
        var dataBytes = 0
        var zeroBytes = 0
        for seg in h.segments {
            let r = seg.byteRange(chunkLength: length)
            let off = base + UInt64(r.lowerBound)
            if seg.isData {
                try target.write(from: buffer.pointer + r.lowerBound, count: r.count, at: off)
                dataBytes += r.count
            } else {
                if !knownZero(off, r.count) {
                    try target.zeroRange(offset: off, length: UInt64(r.count), scratch: buffer.pointer + r.lowerBound, scratchCount: r.count)
                }
                zeroBytes += r.count
            }
        }
        let allZero = dataBytes == 0
        let entry: ChunkMap.Entry? = config.mode == .unverified ? .unknown : (allZero ? .zero : .data(digest))
        resolve(i, digest: digest, how: .copied(data: dataBytes, zero: zeroBytes), entry: entry)
        if let e = entry, e != .unknown {
            journal?.append([allZero ? .zero(first: i, count: 1, stride: 1) : .data(index: i, digest: digest)])
        }
        if let limit = config.hooks.killAfterBytes {
            cond.lock()
            let copied = tally.progress.bytesCopied
            cond.unlock()
            if copied >= limit { kill(getpid(), SIGKILL) }
        }
    }

    private func landZeros(first: Int, count: Int, scratch: AlignedBuffer) throws {
        let stride = streams.count
        var pendingStart: UInt64? = nil
        var pendingEnd: UInt64 = 0
        var pendingChunks: [Int] = []
        func flush() throws {
            if let s = pendingStart {
                try target.zeroRange(offset: s, length: pendingEnd - s, scratch: zeroScratch.pointer, scratchCount: zeroScratch.capacity)
                for c in pendingChunks {
                    resolve(c, digest: scheme.zeroChunkDigest(c), how: .zero(geometry.chunkLength(c)), entry: .zero)
                }
            }
            pendingStart = nil
            pendingChunks = []
        }
        var i = first
        for _ in 0..<count {
            let off = geometry.chunkOffset(i)
            let len = geometry.chunkLength(i)
            if config.mode == .verify {
                let equal = try targetChunkIsZero(i, scratch: scratch)
                let d = equal ? scheme.zeroChunkDigest(i) : try targetChunkDigest(i, scratch: scratch)
                resolve(i, digest: d, how: .verified(equal: equal), entry: nil, source: scheme.zeroChunkDigest(i))
                i += stride
                continue
            }
            var action = ReceivePlan.onZero(entry: mapEntry(i), targetKnownZero: knownZero(off, len))
            if action == .verifyZero {
                action = try targetChunkIsZero(i, scratch: scratch) ? .skip : .zero
            }
            switch action {
            case .skip, .verifyZero:
                resolve(i, digest: scheme.zeroChunkDigest(i), how: .zero(len), entry: .zero)
            case .zero:
                if let _ = pendingStart, pendingEnd == off {
                    pendingEnd = off + UInt64(len)
                } else {
                    try flush()
                    pendingStart = off
                    pendingEnd = off + UInt64(len)
                }
                pendingChunks.append(i)
            }
            i += stride
        }
        try flush()
        if config.mode != .verify {
            journal?.append([.zero(first: first, count: count, stride: stride)])
        }
    }

    private func targetChunkIsZero(_ i: Int, scratch: AlignedBuffer) throws -> Bool {
        let off = geometry.chunkOffset(i)
        let len = geometry.chunkLength(i)
        if target.isHole(offset: off, length: len) { return true }
        try target.read(into: scratch.pointer, count: len, at: off)
        return isAllZero(UnsafeRawBufferPointer(start: scratch.pointer, count: len))
    }

    private func targetChunkDigest(_ i: Int, scratch: AlignedBuffer) throws -> ChunkDigest {
        let len = geometry.chunkLength(i)
        try target.read(into: scratch.pointer, count: len, at: geometry.chunkOffset(i))
        let bytes = UnsafeRawBufferPointer(start: scratch.pointer, count: len)
        let mask = ExtentPlanner.zeroBlocks(of: bytes)
        return mask.setCount == mask.count ? scheme.zeroChunkDigest(i) : scheme.chunkDigest(index: i, buffer: bytes, zeroBlocks: mask)
    }

    private func verifyTarget(stream: Int, index i: Int, expected: ChunkDigest, reuse: Bool, scratch: AlignedBuffer) throws {
        if reuse && config.trustMap {
            // The map's word (a target only these copies wrote): not read again.
            resolve(i, digest: expected, how: .reused(geometry.chunkLength(i)), entry: .data(expected))
            return
        }
        let actual = try targetChunkDigest(i, scratch: scratch)
        if !reuse {
            resolve(i, digest: actual, how: .verified(equal: actual == expected), entry: nil, source: expected)
            return
        }
        switch ReceivePlan.onRehash(claimed: expected, actual: actual) {
        case .reuse:
            resolve(i, digest: actual, how: .reused(geometry.chunkLength(i)), entry: .data(actual))
        case .repair:
            cond.lock()
            tally.repair(i)
            cond.unlock()
            log("chunk \(i) no longer holds what the chunk map says (modified outside the copy); fetching it again")
            try streams[stream].writer.send(.request([i]))
        }
    }
}
