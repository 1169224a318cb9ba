/// Text from data files, clouds and flags, made safe to print on one line of a terminal: a name
/// with a newline must not forge another output line, an escape sequence must not reach the
/// terminal, and a huge value must not flood it.
public enum TerminalText {
    /// Control characters (C0, DEL, C1), line and paragraph separators and bidirectional
    /// overrides written as escapes (`\n`, `\r`, `\t`, `\u{1B}`); cut after `limit` characters,
    /// saying how many more there were.
    public static func escaped(_ s: String, limit: Int = 300) -> String {
        var out = ""
        var count = 0
        var rest = 0
        for scalar in s.unicodeScalars {
            if count >= limit {
                rest += 1
                continue
            }
            count += 1
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if needsEscape(scalar.value) {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        if rest > 0 { out += "…(\(rest) more characters)" }
        return out
    }

    /// At most `limit` characters (unicode scalars), saying how many more there were: for JSON,
    /// which escapes control characters itself.
    public static func capped(_ s: String, limit: Int = 2000) -> String {
        let count = s.unicodeScalars.count
        guard count > limit else { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.prefix(limit))) + "…(\(count - limit) more characters)"
    }

    public static func needsEscape(_ v: UInt32) -> Bool {
        v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029
            || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
    }
}
