import Engine
import Testing

@Suite("Names printed on a terminal")
struct TerminalTextTests {
    @Test("newlines, escape sequences, NUL and bidi overrides are written as escapes; plain text is unchanged")
    func escapes() {
        #expect(TerminalText.escaped("web-net") == "web-net")
        #expect(TerminalText.escaped("réseau ü 网络") == "réseau ü 网络")
        #expect(TerminalText.escaped("a\nok       networks: FAKE  (created)") == "a\\nok       networks: FAKE  (created)")
        #expect(TerminalText.escaped("\u{1B}[2Jx\r\t\0") == "\\u{1B}[2Jx\\r\\t\\u{0}")
        #expect(TerminalText.escaped("a\u{202E}b\u{2028}c\u{7F}\u{85}") == "a\\u{202E}b\\u{2028}c\\u{7F}\\u{85}")
    }

    @Test("a long value is cut, saying how much was left out")
    func cut() {
        #expect(TerminalText.escaped(String(repeating: "x", count: 10), limit: 4) == "xxxx…(6 more characters)")
        #expect(TerminalText.escaped(String(repeating: "x", count: 50_000_000)).count < 400)
    }
}
