import GuestFSBlock
import GuestFSFilesystem

/// Joliet (Microsoft's "Joliet Specification", 1995): a Supplementary Volume Descriptor whose
/// directory tree names files in UCS-2 big endian, up to 64 characters. Names are given as the
/// kernel's fs/isofs/joliet.c (get_joliet_filename) gives them with iocharset=utf8: UTF-16BE
/// turned into UTF-8 (surrogate pairs joined, a stray surrogate or an odd trailing byte dropped
/// as utf16s_to_utf8s drops them), then ";1" and trailing dots removed.
enum ISO9660Joliet {
    /// A Joliet file identifier as UTF-8 bytes, as the kernel lists it.
    static func name(_ identifier: [UInt8]) -> [UInt8] {
        var out = utf8(identifier[...])
        if out.count > 2, out[out.count - 2] == 0x3B, out[out.count - 1] == 0x31 { out.removeLast(2) }
        // "Windows doesn't like periods at the end of a name, so neither do we" (joliet.c).
        while out.count >= 2, out[out.count - 1] == 0x2E { out.removeLast() }
        return out
    }

    /// A UCS-2 identifier field of a volume descriptor (Joliet 2.3), padding (spaces, NULs) trimmed.
    static func text(_ field: ArraySlice<UInt8>) -> String {
        var s = String(decoding: utf8(field), as: UTF8.self)
        while let last = s.unicodeScalars.last, last == " " || last == "\u{0}" { s.unicodeScalars.removeLast() }
        return s
    }

    /// UTF-16BE bytes to UTF-8; unpaired surrogates and an odd last byte are left out.
    static func utf8(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var units: [UInt16] = []
        units.reserveCapacity(bytes.count / 2)
        var i = bytes.startIndex
        while bytes.endIndex - i >= 2 {
            units.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
            i += 2
        }
        var out: [UInt8] = []
        var iterator = units.makeIterator()
        var decoder = UTF16()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): out += Array(String(Character(scalar)).utf8)
            case .error: continue
            case .emptyInput: break loop
            }
        }
        return out
    }
}

/// Plain ISO 9660 file identifiers (ECMA-119 7.5 and 7.6: "NAME.EXT;VERSION" of d-characters)
/// as the kernel lists them with its default map=normal (fs/isofs/dir.c, isofs_name_translate):
/// lower case, a trailing ";1" or ".;1" dropped, any other ';' (and a '/', from broken Acorn
/// images) turned into '.', cut at a NUL.
enum ISO9660FileIdentifier {
    static func name(_ identifier: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let n = identifier.count
        for i in 0..<n {
            var c = identifier[i]
            if c == 0 { break }
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c == 0x2E && i == n - 3 && identifier[i + 1] == 0x3B && identifier[i + 2] == 0x31 { break }
            if c == 0x3B && i == n - 2 && identifier[i + 1] == 0x31 { break }
            if c == 0x3B || c == 0x2F { c = 0x2E }
            out.append(c)
        }
        return out
    }

    /// Whether a name read from the image may be served: not empty, not "." or "..", no '/' and
    /// no NUL, at most NAME_MAX bytes (STYLE.md rule 14).
    static func isServable(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.count <= RockRidgeInfo.maxNameLength && name != [0x2E] && name != [0x2E, 0x2E]
            && !name.contains(0x2F) && !name.contains(0)
    }
}
