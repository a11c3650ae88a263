/// The text descriptor (spec, "The Descriptor File"): a standalone file or the text embedded in a
/// sparse extent at the header's descriptorOffset. Parsed as QEMU's vmdk.c parses it: the first
/// occurrences of `CID`, `parentCID`, `createType="…"` and `parentFileNameHint="…"`, and every
/// `RW <sectors> <TYPE> "<file>" [<offset>]` line as an extent (other access modes are skipped).
struct VmdkDescriptor {
    struct Extent: Equatable {
        enum Kind: String { case flat = "FLAT", sparse = "SPARSE", vmfs = "VMFS", vmfsSparse = "VMFSSPARSE", seSparse = "SESPARSE" }
        var kind: Kind
        var sectors: UInt64
        var file: String
        /// Sectors into the file where a flat extent's data starts.
        var offset: UInt64
    }

    var cid: UInt32?
    var parentCID: UInt32?
    var createType: String?
    var parentFileNameHint: String?
    var extents: [Extent] = []

    init(_ bytes: [UInt8]) throws(VmdkFormatError) {
        // The text stops at its first NUL, as a C string does (embedded descriptors are padded).
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        cid = Self.hexValue(text, after: "CID")
        parentCID = Self.hexValue(text, after: "parentCID")
        createType = Self.quotedValue(text, named: "createType")
        parentFileNameHint = Self.quotedValue(text, named: "parentFileNameHint")
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            guard let extent = try Self.extent(Substring(line)) else { continue }
            guard extents.count < VmdkFormat.maxExtents else { throw .init("more than \(VmdkFormat.maxExtents) extents") }
            extents.append(extent)
        }
    }

    /// Where the first occurrence of `needle` in `text` ends (QEMU uses strstr).
    private static func end(of needle: String, in text: String) -> String.Index? {
        let n = Array(needle.utf8)
        let t = text.utf8
        var i = t.startIndex
        while i != t.endIndex {
            var j = i, k = 0
            while k < n.count, j != t.endIndex, t[j] == n[k] { j = t.index(after: j); k += 1 }
            if k == n.count { return j }
            i = t.index(after: i)
        }
        return nil
    }

    /// The hex number after the first "name=" (QEMU: strstr then sscanf "%x").
    private static func hexValue(_ text: String, after name: String) -> UInt32? {
        guard let start = end(of: name + "=", in: text) else { return nil }
        let digits = text[start...].prefix { $0.isHexDigit }.prefix(8)
        return UInt32(digits, radix: 16)
    }

    /// The text between `name="` and the next quote.
    private static func quotedValue(_ text: String, named name: String) -> String? {
        guard let start = end(of: name + "=\"", in: text) else { return nil }
        let rest = text[start...]
        guard let close = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<close])
    }

    /// One extent line, or nil when the line is not an RW extent of a known type.
    private static func extent(_ line: Substring) throws(VmdkFormatError) -> Extent? {
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        guard trimmed.hasPrefix("RW ") || trimmed.hasPrefix("RW\t") else { return nil }
        guard let q1 = trimmed.firstIndex(of: "\"") else { return nil }
        let head = trimmed[..<q1].split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard head.count == 3, let sectors = Int64(head[1]) else { return nil }
        let afterQuote = trimmed[trimmed.index(after: q1)...]
        guard let q2 = afterQuote.firstIndex(of: "\"") else { throw .init("invalid extent line: \(line)") }
        let file = String(afterQuote[..<q2])
        let tail = afterQuote[afterQuote.index(after: q2)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let kind = Extent.Kind(rawValue: String(head[2])), sectors > 0, !file.isEmpty else { return nil }
        var offset: UInt64 = 0
        switch kind {
        case .flat:
            guard tail.count >= 1, let value = UInt64(tail[0]) else { throw .init("invalid extent line: \(line)") }
            offset = value
        default:
            guard tail.isEmpty else { throw .init("invalid extent line: \(line)") }
        }
        return Extent(kind: kind, sectors: UInt64(sectors), file: file, offset: offset)
    }
}

extension VmdkDescriptor {
    /// Where the hex digits of the first "CID=" lie in `bytes` (a descriptor's text, up to its
    /// first NUL), the same occurrence `cid` is parsed from; nil when there is none.
    static func cidDigits(in bytes: [UInt8]) -> Range<Int>? {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        let needle = Array("CID=".utf8)
        guard end >= needle.count else { return nil }
        for i in 0 ... (end - needle.count) where Array(bytes[i ..< i + needle.count]) == needle {
            var j = i + needle.count
            while j < end, j - (i + needle.count) < 8, Character(UnicodeScalar(bytes[j])).isHexDigit { j += 1 }
            return j > i + needle.count ? (i + needle.count) ..< j : nil
        }
        return nil
    }

    /// `cid` as exactly `width` lowercase hex digits (zero-padded, high digits dropped), so that
    /// a new CID replaces the old one in place without moving the rest of the text.
    static func cidText(_ cid: UInt32, width: Int) -> [UInt8] {
        let digits = Array(String(cid, radix: 16).utf8)
        let padded = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - digits.count)) + digits
        return Array(padded.suffix(width))
    }
}
