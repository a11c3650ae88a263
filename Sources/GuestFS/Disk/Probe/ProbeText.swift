import GuestFSBlock

/// How libblkid turns on-disk bytes into the LABEL and UUID strings it prints
/// (util-linux libblkid/src/probe.c and superblocks/superblocks.c; lib/encode.c).
enum ProbeText {
    /// `blkid_probe_set_label`: the bytes up to the first NUL, trailing white space removed
    /// (`blkid_rtrim_whitespace`, C `isspace`); nil when nothing is left.
    static func label(_ bytes: [UInt8]) -> String? {
        var b = Array(bytes.prefix(while: { $0 != 0 }))
        while let last = b.last, isSpace(last) { b.removeLast() }
        return b.isEmpty ? nil : String(decoding: b, as: UTF8.self)
    }

    /// `blkid_probe_set_utf8label`: `bytes` converted to UTF-8 (`ul_encode_to_utf8` into a
    /// buffer of `len * 3 + 1`), then as `label`.
    static func label(_ bytes: [UInt8], encoding: Encoding) -> String? {
        label(utf8(bytes, encoding: encoding, capacity: bytes.count * 3 + 1))
    }

    /// C `isspace` in the "C" locale.
    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (0x09 ... 0x0D).contains(c) }

    /// `blkid_probe_set_uuid`: 16 bytes as 8-4-4-4-12 lowercase hex; nil when all are zero
    /// (`blkid_uuid_is_empty`).
    static func uuid(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 16, !bytes.allSatisfy({ $0 == 0 }) else { return nil }
        var out = ""
        for (i, b) in bytes.enumerated() {
            if [4, 6, 8, 10].contains(i) { out += "-" }
            out += hex(b)
        }
        return out
    }

    /// `blkid_probe_strncpy_uuid`: a UUID stored as text, up to the first NUL; nil when empty.
    static func uuidString(_ bytes: [UInt8]) -> String? {
        let b = bytes.prefix(while: { $0 != 0 })
        return b.isEmpty ? nil : String(decoding: b, as: UTF8.self)
    }

    /// Two lowercase hex digits.
    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }

    /// `%02X%02X-%02X%02X` of a 4-byte little-endian serial (FAT, exFAT); nil when it is zero
    /// (`blkid_probe_sprintf_uuid` skips empty raw bytes).
    static func serial4(_ b: [UInt8]) -> String? {
        guard b.count == 4, !b.allSatisfy({ $0 == 0 }) else { return nil }
        return (hex(b[3]) + hex(b[2]) + "-" + hex(b[1]) + hex(b[0])).uppercased()
    }

    /// The encodings `ul_encode_to_utf8` knows (include/encode.h, `UL_ENCODE_*`).
    enum Encoding { case utf16LE, utf16BE, latin1 }

    /// `ul_encode_to_utf8(enc, dest, capacity, src, count)` (lib/encode.c): decodes `src`, stops at
    /// a NUL character, combines surrogate pairs, and writes at most `capacity - 1` bytes, never a
    /// partial character. A lone surrogate is written as its 3-byte form, as the C code does
    /// (Swift shows it as U+FFFD when the result becomes a String).
    static func utf8(_ src: [UInt8], encoding: Encoding, capacity: Int) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        func unit(_ at: Int) -> UInt32 {
            encoding == .utf16LE ? UInt32(src[at + 1]) << 8 | UInt32(src[at]) : UInt32(src[at]) << 8 | UInt32(src[at + 1])
        }
        while i < src.count {
            var c: UInt32
            if encoding == .latin1 {
                c = UInt32(src[i]); i += 1
            } else {
                guard i + 2 <= src.count else { break }
                c = unit(i); i += 2
                if (0xD800 ... 0xDBFF).contains(c), i + 2 <= src.count {
                    let low = unit(i)
                    if (0xDC00 ... 0xDFFF).contains(low) {
                        c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00)
                        i += 2
                    }
                }
            }
            if c == 0 { break }
            let encoded: [UInt8]
            switch c {
            case ..<0x80: encoded = [UInt8(c)]
            case ..<0x800: encoded = [UInt8(0xC0 | c >> 6), UInt8(0x80 | c & 0x3F)]
            case ..<0x10000: encoded = [UInt8(0xE0 | c >> 12), UInt8(0x80 | (c >> 6) & 0x3F), UInt8(0x80 | c & 0x3F)]
            default: encoded = [UInt8(0xF0 | c >> 18), UInt8(0x80 | (c >> 12) & 0x3F), UInt8(0x80 | (c >> 6) & 0x3F), UInt8(0x80 | c & 0x3F)]
            }
            if out.count + encoded.count >= capacity { break }
            out += encoded
        }
        return out
    }
}
