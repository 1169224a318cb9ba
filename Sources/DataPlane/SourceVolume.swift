import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the sender reads: a local file/block device, or an NBD export (the fallback when the agent
/// cannot run on the source host: `qemu-nbd --read-only` there, reached through `ssh -L`).
protocol SourceVolume: AnyObject, Sendable {
    var size: UInt64 { get }
    var kind: VolumeKind { get }
    /// Thread-safe positional read of exactly `count` bytes.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: UInt64) throws
    /// Sorted data extents, nil when unknown (then everything is read).
    func dataExtents() -> [Extent]?
    func adviseSequential()
}

extension VolumeHandle: SourceVolume {}
