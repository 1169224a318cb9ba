import DataPlane
import Foundation
import Testing

@Suite("ELF build ID")
struct ELFBuildIDTests {
    /// A minimal ELF64 LE: header, one PT_NOTE program header, then `notes`.
    static func elf(notes: [UInt8], noteSize: Int? = nil) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 64 + 56)
        b[0...5] = [0x7f, 0x45, 0x4c, 0x46, 2, 1]
        func put(_ v: Int, at: Int, width: Int) { for i in 0..<width { b[at + i] = UInt8((v >> (8 * i)) & 0xff) } }
        put(64, at: 32, width: 8)  // e_phoff
        put(56, at: 54, width: 2)  // e_phentsize
        put(1, at: 56, width: 2)  // e_phnum
        put(4, at: 64, width: 4)  // PT_NOTE
        put(120, at: 64 + 8, width: 8)  // p_offset
        put(noteSize ?? notes.count, at: 64 + 32, width: 8)  // p_filesz
        return b + notes
    }

    static func note(name: [UInt8], type: UInt8, desc: [UInt8]) -> [UInt8] {
        var n: [UInt8] = [UInt8(name.count), 0, 0, 0, UInt8(desc.count), 0, 0, 0, type, 0, 0, 0]
        n += name + [UInt8](repeating: 0, count: (4 - name.count % 4) % 4)
        n += desc + [UInt8](repeating: 0, count: (4 - desc.count % 4) % 4)
        return n
    }

    @Test func findsTheGNUNoteAfterAnotherNote() {
        let id: [UInt8] = Array(1...20)
        let abi = Self.note(name: Array("GNU\0".utf8), type: 1, desc: [0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        let bytes = Self.elf(notes: abi + Self.note(name: Array("GNU\0".utf8), type: 3, desc: id))
        #expect(ELFBuildID.parse(prefix: bytes) == id)
        #expect(ELFBuildID.hex(Array(id.prefix(3))) == "010203")
    }

    @Test func refusesWhatItCannotTrust() {
        let id: [UInt8] = Array(1...20)
        let good = Self.elf(notes: Self.note(name: Array("GNU\0".utf8), type: 3, desc: id))
        // Another owner, a too-short ID, a note running past the segment or the bytes read, not ELF64 LE.
        #expect(ELFBuildID.parse(prefix: Self.elf(notes: Self.note(name: Array("Go\0\0".utf8), type: 3, desc: id))) == nil)
        #expect(ELFBuildID.parse(prefix: Self.elf(notes: Self.note(name: Array("GNU\0".utf8), type: 3, desc: [1, 2, 3, 4]))) == nil)
        #expect(ELFBuildID.parse(prefix: Self.elf(notes: Self.note(name: Array("GNU\0".utf8), type: 3, desc: id), noteSize: 20)) == nil)
        #expect(ELFBuildID.parse(prefix: Array(good.dropLast(4))) == nil)
        var be = good
        be[5] = 2
        #expect(ELFBuildID.parse(prefix: be) == nil)
        #expect(ELFBuildID.parse(prefix: Array("#!/bin/sh\n".utf8)) == nil)
        #expect(ELFBuildID.parse(prefix: []) == nil)
    }

    /// This test binary was linked by the same toolchain as os-migrate: it must carry a build ID,
    /// the one `readelf -n` shows.
    @Test func readsThisExecutablesBuildID() throws {
        let id = try #require(ELFBuildID.read(path: "/proc/self/exe"))
        #expect(id.count >= 8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/readelf")
        p.arguments = ["-n", "/proc/self/exe".replacingOccurrences(of: "self", with: String(getpid()))]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text.contains("Build ID: " + ELFBuildID.hex(id)))
    }
}
