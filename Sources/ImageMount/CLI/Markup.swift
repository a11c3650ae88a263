import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// Escaping for the XML and JSON imagemount prints (no Foundation needed for either).
enum Markup {
    /// XML character data and attribute values (XML 1.0 §2.4, §3.3.3).
    static func xml(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters other than tab/newline are not allowed in XML 1.0.
                if c.value < 0x20 && c != "\t" && c != "\n" { out += "?" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    /// A JSON string literal (RFC 8259 §7), quoted by the same code as `info --json`.
    static func json(_ text: String) -> String { ImageInfo.quote(text) }

    static func json(_ value: String?) -> String { value.map { json($0) } ?? "null" }
}
