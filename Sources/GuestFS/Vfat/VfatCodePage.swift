import GuestFSBlock
import GuestFSFilesystem

/// Code page 437, the OEM code page short names are stored in (the kernel's default
/// codepage=437, fs/nls/nls_cp437.c): the high half as Unicode, and the few upper-case pairs
/// of its Latin letters that short-name generation folds.
enum VfatCodePage {
    /// Bytes 0x80–0xFF.
    static let high: [Character] = Array(
        "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{A0}")
    /// Lower-case letter → upper-case letter, both in code page 437.
    static let upper: [UInt8: UInt8] = [0x87: 0x80, 0x81: 0x9A, 0x82: 0x90, 0x84: 0x8E, 0x86: 0x8F, 0x91: 0x92,
                                        0x94: 0x99, 0xA4: 0xA5]
    static let lower: [UInt8: UInt8] = Dictionary(uniqueKeysWithValues: upper.map { ($0.value, $0.key) })
    /// Unicode scalar → byte, for the high half.
    static let encoding: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (k, c) in high.enumerated() { if let s = c.unicodeScalars.first { map[s] = UInt8(0x80 + k) } }
        return map
    }()

    static func decode(_ bytes: [UInt8]) -> String {
        var s = ""
        for b in bytes {
            if b < 0x80 { s.unicodeScalars.append(Unicode.Scalar(b)) } else { s.append(high[Int(b) - 0x80]) }
        }
        return s
    }

    /// The byte for one UTF-16 unit, or nil when code page 437 has none (the kernel's uni2char failing).
    static func encode(_ unit: UInt16) -> UInt8? {
        if unit < 0x80 { return UInt8(unit) }
        guard let s = Unicode.Scalar(unit) else { return nil }
        return encoding[s]
    }
}
