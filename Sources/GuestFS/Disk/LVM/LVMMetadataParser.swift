import GuestFSBlock

/// The LVM2 metadata text format: the language of `vgcfgbackup` files and of the text in every
/// metadata area.
///
/// Grammar, as lvm2's config parser reads it (`libdm/libdm-config.c`: `_file`, `_section`,
/// `_value`, `_type`, `_get_token`) and as `lib/format_text/export.c` writes it:
///
/// ```
/// file    := entry*
/// entry   := NAME '=' value | NAME '{' entry* '}'
/// value   := STRING | INT | FLOAT | '[' (scalar (',' scalar)*)? ','? ']'
/// scalar  := STRING | INT | FLOAT
/// ```
/// `#` starts a comment to the end of the line. Strings are double-quoted; a backslash escapes
/// the next character (export.c escapes `"` and `\`). A NAME is any run of characters other than
/// white space and `{}[]=,"#`. lvm2's own lexer also accepts bare words as values; we keep them as
/// strings.
///
/// Metadata comes from disk, so the parser is bounded: the text size is capped by the caller
/// (`LVMMetadataArea.maxTextSize`), sections nest at most `maxDepth` deep, and at most
/// `maxValues` values are kept, whatever the text says.

/// A parsed value.
package indirect enum LVMConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case real(Double)
    case list([LVMConfigValue])
    case section(LVMConfigSection)

    package var string: String? { if case .string(let s) = self { s } else { nil } }
    package var integer: Int64? { if case .integer(let i) = self { i } else { nil } }
    package var list: [LVMConfigValue]? { if case .list(let l) = self { l } else { nil } }
    package var section: LVMConfigSection? { if case .section(let s) = self { s } else { nil } }
}

/// A `name { ... }` section, or the whole file: its entries in text order.
package struct LVMConfigSection: Sendable, Equatable {
    package struct Entry: Sendable, Equatable {
        package let key: String
        package let value: LVMConfigValue
    }

    package var entries: [Entry] = []

    package init(entries: [Entry] = []) { self.entries = entries }

    /// The value of the first entry named `key`.
    package subscript(key: String) -> LVMConfigValue? { entries.first { $0.key == key }?.value }

    package func string(_ key: String) -> String? { self[key]?.string }
    package func integer(_ key: String) -> Int64? { self[key]?.integer }
    package func section(_ key: String) -> LVMConfigSection? { self[key]?.section }
    package func list(_ key: String) -> [LVMConfigValue]? { self[key]?.list }

    /// The subsections, in text order.
    package var sections: [(name: String, section: LVMConfigSection)] {
        entries.compactMap { entry in entry.value.section.map { (entry.key, $0) } }
    }
}

/// Parses metadata text into an `LVMConfigSection`, or throws an `ImageError` naming the line.
package struct LVMMetadataParser {
    /// Deepest section nesting accepted. VG metadata nests four deep (VG, logical_volumes, LV,
    /// segment); lvm.conf-style files a little more.
    package static let maxDepth = 32
    /// Most values (scalars, list elements and sections together) kept from one text.
    package static let maxValues = 1 << 20

    private let text: [UInt8]
    private var position = 0
    private var line = 1
    private var values = 0
    /// Names the text in errors ("LVM metadata text on /dev/sda2").
    private let source: String?

    /// Parses `text`. `source` names where it was read from, for error messages.
    package static func parse(_ text: [UInt8], source: String? = nil) throws -> LVMConfigSection {
        var parser = LVMMetadataParser(text: text, source: source)
        let root = try parser.entries(depth: 0, closedBy: nil)
        return root
    }

    package static func parse(_ text: String, source: String? = nil) throws -> LVMConfigSection {
        try parse(Array(text.utf8), source: source)
    }

    private init(text: [UInt8], source: String?) {
        self.text = text
        self.source = source
    }

    private enum Token: Equatable {
        case word(String)      // a NAME, or a bare value
        case string(String)
        case symbol(UInt8)     // { } [ ] = ,
        case end
    }

    private func error(_ reason: String) -> ImageError {
        ImageError(path: source, offset: UInt64(position), structure: "LVM metadata text",
                   reason: "line \(line): \(reason)")
    }

    // MARK: Grammar

    /// `entry*` up to `}` (or the end of the text at depth 0).
    private mutating func entries(depth: Int, closedBy close: UInt8?) throws -> LVMConfigSection {
        var section = LVMConfigSection()
        while true {
            let token = try next()
            switch token {
            case .end:
                if close != nil { throw error("text ends inside a section (missing '}')") }
                return section
            case .symbol(let s) where s == close:
                return section
            case .word(let name), .string(let name):
                try count()
                switch try next() {
                case .symbol(UInt8(ascii: "=")):
                    section.entries.append(.init(key: name, value: try value()))
                case .symbol(UInt8(ascii: "{")):
                    guard depth + 1 <= Self.maxDepth else { throw error("sections nest deeper than \(Self.maxDepth)") }
                    let inner = try entries(depth: depth + 1, closedBy: UInt8(ascii: "}"))
                    section.entries.append(.init(key: name, value: .section(inner)))
                default:
                    throw error("expected '=' or '{' after \"\(name)\"")
                }
            case .symbol(let s):
                throw error("unexpected '\(Character(Unicode.Scalar(s)))'")
            }
        }
    }

    /// The right-hand side of `name = value`.
    private mutating func value() throws -> LVMConfigValue {
        let token = try next()
        if token == .symbol(UInt8(ascii: "[")) {
            var items: [LVMConfigValue] = []
            var expectValue = true
            while true {
                let t = try next()
                switch t {
                case .symbol(UInt8(ascii: "]")):
                    return .list(items)
                case .symbol(UInt8(ascii: ",")) where !expectValue:
                    expectValue = true
                case .word, .string:
                    guard expectValue else { throw error("expected ',' or ']' in a list") }
                    items.append(try scalar(t))
                    expectValue = false
                case .end:
                    throw error("text ends inside a list (missing ']')")
                default:
                    throw error("unexpected symbol in a list")
                }
            }
        }
        return try scalar(token)
    }

    /// A string, an integer, a real or a bare word.
    private mutating func scalar(_ token: Token) throws -> LVMConfigValue {
        try count()
        switch token {
        case .string(let s):
            return .string(s)
        case .word(let w):
            if let first = w.utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || (0x30...0x39).contains(first) {
                if let i = Int64(w) { return .integer(i) }
                let digits = w.utf8.dropFirst(first == UInt8(ascii: "-") || first == UInt8(ascii: "+") ? 1 : 0)
                if !digits.isEmpty, digits.allSatisfy({ (0x30...0x39).contains($0) }) {
                    throw error("integer \(w) does not fit 64 bits")
                }
                if let r = Double(w), r.isFinite { return .real(r) }
            }
            return .string(w)
        default:
            throw error("expected a value")
        }
    }

    private mutating func count() throws {
        values += 1
        if values > Self.maxValues { throw error("more than \(Self.maxValues) values") }
    }

    // MARK: Tokens

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x0b || c == 0x0c }
    private static func isSymbol(_ c: UInt8) -> Bool { "{}[]=,".utf8.contains(c) }

    private mutating func next() throws -> Token {
        // White space and comments.
        while position < text.count {
            let c = text[position]
            if c == 0x0a { line += 1; position += 1 }
            else if Self.isSpace(c) { position += 1 }
            else if c == UInt8(ascii: "#") {
                while position < text.count, text[position] != 0x0a { position += 1 }
            } else { break }
        }
        guard position < text.count else { return .end }
        let c = text[position]
        if Self.isSymbol(c) {
            position += 1
            return .symbol(c)
        }
        if c == UInt8(ascii: "\"") {
            position += 1
            var bytes: [UInt8] = []
            while true {
                guard position < text.count else { throw error("text ends inside a string") }
                var b = text[position]
                position += 1
                if b == UInt8(ascii: "\"") { break }
                if b == UInt8(ascii: "\\") {
                    guard position < text.count else { throw error("text ends inside a string") }
                    b = text[position]
                    position += 1
                }
                if b == 0x0a { line += 1 }
                bytes.append(b)
            }
            return .string(String(decoding: bytes, as: UTF8.self))
        }
        if c == 0 { throw error("NUL byte in the text") }
        let start = position
        while position < text.count {
            let b = text[position]
            if Self.isSpace(b) || Self.isSymbol(b) || b == UInt8(ascii: "\"") || b == UInt8(ascii: "#") || b == 0 { break }
            position += 1
        }
        return .word(String(decoding: text[start ..< position], as: UTF8.self))
    }
}
