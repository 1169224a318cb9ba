import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The GNU build ID the linker writes into an ELF executable (`.note.gnu.build-id`): a digest of
/// the linked output, so it names a build without reading the whole (100 MB) file again.
public enum ELFBuildID {
    /// How much of the file's start is read: the program headers and the note live in the first
    /// page or two of every executable the Swift toolchain links.
    public static let prefixLength = 64 << 10

    /// The build ID's bytes in a 64-bit little-endian ELF file's first bytes, or nil (another
    /// format, no note, or a note beyond `prefix`). Every offset is checked against `prefix`.
    public static func parse(prefix: [UInt8]) -> [UInt8]? {
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= prefix.count else { return nil }
            return Int(prefix[at]) | Int(prefix[at + 1]) << 8
        }
        func u32(_ at: Int) -> Int? {
            guard at >= 0, at + 4 <= prefix.count else { return nil }
            return (0..<4).reduce(0) { $0 | Int(prefix[at + $1]) << (8 * $1) }
        }
        func u64(_ at: Int) -> Int? {
            guard at >= 0, at + 8 <= prefix.count else { return nil }
            let v = (0..<8).reduce(UInt64(0)) { $0 | UInt64(prefix[at + $1]) << (8 * UInt64($1)) }
            return v > UInt64(Int32.max) ? nil : Int(v)
        }
        guard prefix.count >= 64, prefix[0] == 0x7f, prefix[1] == 0x45, prefix[2] == 0x4c, prefix[3] == 0x46,
              prefix[4] == 2, prefix[5] == 1,  // ELFCLASS64, little-endian
              let phoff = u64(32), let phentsize = u16(54), let phnum = u16(56), phentsize >= 56
        else { return nil }
        for i in 0..<phnum {
            let ph = phoff + i * phentsize
            guard let type = u32(ph), let offset = u64(ph + 8), let size = u64(ph + 32) else { return nil }
            guard type == 4 /* PT_NOTE */ else { continue }
            var at = offset
            let end = offset + size
            while at + 12 <= end {
                guard let namesz = u32(at), let descsz = u32(at + 4), let noteType = u32(at + 8) else { break }
                let name = at + 12
                let desc = name + ((namesz + 3) & ~3)
                let next = desc + ((descsz + 3) & ~3)
                guard next <= end, desc + descsz <= prefix.count else { break }
                // NT_GNU_BUILD_ID, owner "GNU\0"
                if noteType == 3, namesz == 4, Array(prefix[name..<name + 4]) == [0x47, 0x4e, 0x55, 0], descsz >= 8 {
                    return Array(prefix[desc..<desc + descsz])
                }
                at = next
            }
        }
        return nil
    }

    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The build ID of the ELF file at `path`, reading only its first `prefixLength` bytes.
    public static func read(path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: prefixLength)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            filled += n
        }
        return parse(prefix: Array(bytes[0..<filled]))
    }
}
