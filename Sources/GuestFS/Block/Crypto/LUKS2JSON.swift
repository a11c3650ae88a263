/// A small, bounded JSON reader (RFC 8259) for the LUKS2 metadata area (LUKS2 spec, "JSON area").
///
/// Why not a library: GuestFS does not link Foundation (its JSONSerialization would add the
/// Foundation runtime to every command's start-up, and the release build links the Swift runtime
/// statically to keep `cat` fast), and no C JSON library is already a dependency (`libjson-c-dev`
/// is not in scripts/install-deps.sh). The LUKS2 area is at most 4 MiB and its grammar is plain
/// JSON, so a reader of ~150 lines with a depth cap is the smaller risk. It keeps numbers as their
/// text (LUKS2 stores 64-bit offsets as strings and small counts as numbers) and refuses anything
/// that is not strict JSON.
package indirect enum LUKS2JSON: Sendable, Equatable {
    case object([String: LUKS2JSON])
    case array([LUKS2JSON])
    case string(String)
    /// A number, as written (no precision is lost to Double).
    case number(String)
    case bool(Bool)
    case null

    /// Nesting deeper than this is refused (LUKS2 metadata nests four levels deep).
    package static let maxDepth = 32

    /// Parses `bytes` up to the first NUL (the area is zero-padded to its size).
    package static func parse(_ bytes: some Collection<UInt8>) throws(LUKS2JSONError) -> LUKS2JSON {
        var parser = Parser(bytes: Array(bytes.prefix { $0 != 0 }))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.pos == parser.bytes.count else { throw parser.error("trailing bytes after the JSON value") }
        return value
    }

    package subscript(key: String) -> LUKS2JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    package var objectValue: [String: LUKS2JSON]? { if case .object(let o) = self { return o }; return nil }
    package var arrayValue: [LUKS2JSON]? { if case .array(let a) = self { return a }; return nil }
    package var stringValue: String? { if case .string(let s) = self { return s }; return nil }

    /// An unsigned integer given as a JSON number or as a decimal string (LUKS2 writes offsets
    /// and sizes as strings because JSON numbers lose precision above 2^53).
    package var uint64Value: UInt64? {
        switch self {
        case .number(let s), .string(let s): return UInt64(s)
        default: return nil
        }
    }

    private struct Parser {
        let bytes: [UInt8]
        var pos = 0

        func error(_ reason: String) -> LUKS2JSONError { LUKS2JSONError(offset: pos, reason: reason) }

        mutating func skipSpace() {
            while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
        }

        mutating func expect(_ literal: String) throws(LUKS2JSONError) {
            for c in literal.utf8 {
                guard pos < bytes.count, bytes[pos] == c else { throw error("expected '\(literal)'") }
                pos += 1
            }
        }

        mutating func value(depth: Int) throws(LUKS2JSONError) -> LUKS2JSON {
            guard depth < LUKS2JSON.maxDepth else { throw error("nested deeper than \(LUKS2JSON.maxDepth) levels") }
            guard pos < bytes.count else { throw error("unexpected end of JSON") }
            switch bytes[pos] {
            case UInt8(ascii: "{"):
                pos += 1
                var members: [String: LUKS2JSON] = [:]
                skipSpace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                    let key = try string()
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    guard members[key] == nil else { throw error("duplicate member '\(key)'") }
                    members[key] = try value(depth: depth + 1)
                    skipSpace()
                    guard pos < bytes.count else { throw error("unterminated object") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
                    throw error("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                pos += 1
                var items: [LUKS2JSON] = []
                skipSpace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard pos < bytes.count else { throw error("unterminated array") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                    throw error("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw error("unexpected byte 0x\(String(bytes[pos], radix: 16))")
            }
        }

        /// RFC 8259 §6: -? int frac? exp?
        mutating func number() throws(LUKS2JSONError) -> String {
            let start = pos
            func digits() -> Int {
                let s = pos
                while pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) { pos += 1 }
                return pos - s
            }
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            let intStart = pos
            let n = digits()
            guard n > 0 else { throw error("bad number") }
            if n > 1, bytes[intStart] == UInt8(ascii: "0") { throw error("number with a leading zero") }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits() > 0 else { throw error("bad fraction") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits() > 0 else { throw error("bad exponent") }
            }
            return String(decoding: bytes[start..<pos], as: UTF8.self)
        }

        /// RFC 8259 §7, with \u escapes (surrogate pairs joined); control characters refused.
        mutating func string() throws(LUKS2JSONError) -> String {
            pos += 1   // the opening quote
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() { if !raw.isEmpty { scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars); raw.removeAll() } }
            while true {
                guard pos < bytes.count else { throw error("unterminated string") }
                let c = bytes[pos]
                pos += 1
                switch c {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    guard pos < bytes.count else { throw error("unterminated escape") }
                    let e = bytes[pos]
                    pos += 1
                    switch e {
                    case UInt8(ascii: "\""): raw.append(0x22)
                    case UInt8(ascii: "\\"): raw.append(0x5C)
                    case UInt8(ascii: "/"): raw.append(0x2F)
                    case UInt8(ascii: "b"): raw.append(0x08)
                    case UInt8(ascii: "f"): raw.append(0x0C)
                    case UInt8(ascii: "n"): raw.append(0x0A)
                    case UInt8(ascii: "r"): raw.append(0x0D)
                    case UInt8(ascii: "t"): raw.append(0x09)
                    case UInt8(ascii: "u"):
                        flush()
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            try expect("\\u")
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                        scalars.append(scalar)
                    default: throw error("unknown escape")
                    }
                case 0..<0x20:
                    throw error("control character in a string")
                default:
                    raw.append(c)
                }
            }
        }

        mutating func hex4() throws(LUKS2JSONError) -> UInt32 {
            guard pos + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[pos..<(pos + 4)], as: UTF8.self), radix: 16) else {
                throw error("bad \\u escape")
            }
            pos += 4
            return v
        }
    }
}

/// Where and why the LUKS2 JSON area does not parse.
package struct LUKS2JSONError: Error, Sendable, CustomStringConvertible {
    /// Byte offset in the JSON area.
    package let offset: Int
    package let reason: String
    package var description: String { "JSON at byte \(offset): \(reason)" }
}
