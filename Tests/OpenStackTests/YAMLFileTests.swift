import Foundation
import OpenStack
import Testing
import TestSupport

@Suite("YAML files: reading and expanding")
struct YAMLFileTests {
    func readError(_ path: String) -> String? { errorText { _ = try YAMLValue.readFile(path) } }

    @Test("unreadable, foreign-encoded, looping and oversized files each say what is wrong")
    func readErrors() throws {
        try withTempDir { dir in
            #expect(readError(dir.path + "/none.yml") == "file not found")
            #expect(readError(dir.path) == "is a directory, not a file")
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/loop.yml", withDestinationPath: dir.path + "/loop.yml")
            #expect(readError(dir.path + "/loop.yml") == "cannot be read: a symbolic link that loops")
            let utf16 = dir.path + "/utf16.yml"
            try "a: b\n".write(toFile: utf16, atomically: true, encoding: .utf16)
            #expect(readError(utf16) == "is UTF-16 text: save it as UTF-8")
            let latin1 = dir.path + "/latin1.yml"
            try "name: réseau\n".write(toFile: latin1, atomically: true, encoding: .isoLatin1)
            #expect(readError(latin1) == "is not UTF-8 text (Latin-1 or another encoding?): save it as UTF-8")
            let big = dir.path + "/big.yml"
            _ = FileManager.default.createFile(atPath: big, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
            try h.truncate(atOffset: UInt64(YAMLValue.maximumFileBytes) + 1)
            try h.close()
            #expect(readError(big) == "is 64 MiB: files over 64 MiB are refused")
            let bom = try dir.write("bom.yml", "\u{FEFF}a: b\n")
            #expect(try YAMLValue.readFile(bom) == "a: b\n")
        }
    }

    @Test("malformed YAML says where, what was expected, in what, and what was found there")
    func malformedSaysWhat() {
        func error(_ text: String) -> String? { errorText { _ = try YAMLValue.parse(text) } }
        #expect(error("resources:\n- name: a\n  params:\n    x: 1\n   y: 2\n")
            == "malformed YAML at line 5, column 4: did not find expected key (while parsing a block mapping that starts at line 2, column 3); found `y: 2`")
        #expect(error("os_migrate_version: 1.0.5\nresources: [\n")
            == "malformed YAML at line 3, column 1: did not find expected node content (while parsing a flow node that starts at line 3, column 1); found the end of the file")
        #expect(error("a:\n\tb: c\n")
            == "malformed YAML at line 2, column 1: found character that cannot start any token (while scanning for the next token that starts at line 2, column 1); found `\tb: c`")
    }

    @Test("ten anchors of ten aliases are refused at once instead of expanded; a few aliases are fine")
    func aliasBomb() throws {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in 1..<10 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
        let start = Date()
        #expect(errorText { _ = try YAMLValue.parse(lines.joined(separator: "\n")) }
            == "the YAML expands to too many values (aliases repeated within aliases?): refused")
        #expect(Date().timeIntervalSince(start) < 5)
        let ok = try YAMLValue.parse("base: &b {x: 1}\none: *b\ntwo: *b\n")
        #expect(ok?["two"]?["x"] == 1)
    }
}
