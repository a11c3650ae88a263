import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// Names as the kernel's vfat makes them (fs/fat/namei_vfat.c): which names are allowed, the
/// long name stored, and the 8.3 alias with its "~1" numeric tail under the default
/// shortname=mixed (create the Windows 95 way: an all-upper-case 8.3 name is stored alone,
/// anything else gets a long name and an upper-cased alias). The OEM code page is 437.
enum VfatName {
    /// FAT_LFN_LEN: the longest long name, in UTF-16 units (fatgen103 §7: 255 characters).
    static let maxLongName = 255

    /// vfat_bad_char: never in a long name.
    static func isBad(_ u: UInt16) -> Bool {
        u < 0x20 || [0x2A, 0x3F, 0x3C, 0x3E, 0x7C, 0x22, 0x3A, 0x2F, 0x5C].contains(u)  // * ? < > | " : / \
    }

    /// vfat_replace_char: allowed in a long name, replaced by '_' in the alias.
    static func isReplaced(_ u: UInt16) -> Bool { [0x5B, 0x5D, 0x3B, 0x2C, 0x2B, 0x3D].contains(u) }  // [ ] ; , + =

    /// vfat_skip_char: dropped from the alias.
    static func isSkipped(_ u: UInt16) -> Bool { u == 0x2E || u == 0x20 }

    /// The name `name` (UTF-8 bytes) as it is stored: trailing dots dropped (vfat_striptail_len),
    /// in UTF-16. EINVAL for bytes that are not UTF-8 or characters a long name cannot hold,
    /// ENOENT when nothing is left, ENAMETOOLONG past 255 units.
    static func longName(_ name: [UInt8]) throws -> [UInt16] {
        func fail(_ errno: Errno, _ reason: String) -> ImageError {
            ImageError(structure: "name \(String(decoding: name, as: UTF8.self))", reason: reason, errno: errno)
        }
        guard name != [0x2E], name != [0x2E, 0x2E] else { throw fail(.invalidArgument, "reserved name") }
        var bytes = name[...]
        while bytes.last == 0x2E { bytes.removeLast() }
        guard !bytes.isEmpty else { throw fail(.noSuchFileOrDirectory, "name of dots only") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw fail(.invalidArgument, "not UTF-8") }
        let units = Array(text.utf16)
        guard units.count <= maxLongName else { throw fail(.fileNameTooLong, "longer than 255 UTF-16 units") }
        guard !units.contains(where: isBad) else { throw fail(.invalidArgument, "a character FAT names cannot hold") }
        return units
    }

    /// What the kernel's vfat_create_shortname gives for long name `units`: the 11-byte alias and
    /// whether a long name must go with it. `taken` says whether an alias is already used in the
    /// directory (vfat_find_form). EEXIST when the plain alias of a valid 8.3 name is taken.
    static func shortName(for units: [UInt16], taken: ([UInt8]) -> Bool) throws -> (name: [UInt8], needsLongName: Bool) {
        struct Info { var valid = true, lower = true, upper = true }
        // The alias character for one unit (to_shortname_char): nil when skipped.
        func convert(_ u: UInt16, _ info: inout Info) -> UInt8? {
            if isSkipped(u) { info.valid = false; return nil }
            if isReplaced(u) { info.valid = false; return 0x5F }
            guard var c = VfatCodePage.encode(u) else { info.valid = false; return 0x5F }
            let previous = c
            if c >= 0x7F { info.lower = false; info.upper = false }
            if c >= 0x61 && c <= 0x7A { c -= 0x20 } else if let up = VfatCodePage.upper[c] { c = up }
            if (c >= 0x41 && c <= 0x5A) {
                if c == previous { info.lower = false } else { info.upper = false }
            }
            return c
        }
        // The extension starts after the last dot, unless the dot ends the name or only dots
        // and spaces come before it (Windows 95 takes "...test" as a base, not an extension).
        var baseEnd = units.count
        var extStart: Int?
        if let dot = units.lastIndex(of: 0x2E), dot != units.count - 1 {
            if units[..<dot].contains(where: { !isSkipped($0) }) {
                baseEnd = dot
                extStart = dot + 1
            }
        }
        var baseInfo = Info(), extInfo = Info()
        var base: [UInt8] = []
        var isShort = true
        // Every alias character is one byte here, so the kernel's numtail_baselen stays 6 and
        // numtail2_baselen 2.
        let numtailBase = 6, numtail2Base = 2
        var i = 0
        while i < baseEnd {
            defer { i += 1 }
            guard let c = convert(units[i], &baseInfo) else { continue }
            base.append(c)
            if base.count >= 8 {
                if i + 1 < baseEnd { isShort = false }
                break
            }
        }
        guard !base.isEmpty else {
            throw ImageError(structure: "name", reason: "no character usable in a short name", errno: .invalidArgument)
        }
        var ext: [UInt8] = []
        if let extStart {
            var j = extStart
            while j < units.count, ext.count < 3 {
                defer { j += 1 }
                guard let c = convert(units[j], &extInfo) else { continue }
                ext.append(c)
                if ext.count >= 3 {
                    if j + 1 != units.count { isShort = false }
                    break
                }
            }
        }
        if base[0] == VfatShortEntry.deletedMark { base[0] = 0x05 }
        var result = [UInt8](repeating: 0x20, count: 11)
        result.replaceSubrange(0 ..< base.count, with: base)
        result.replaceSubrange(8 ..< 8 + ext.count, with: ext)
        if isShort && baseInfo.valid && extInfo.valid {
            if taken(result) {
                throw ImageError(structure: "name", reason: "short name already in use", errno: .fileExists)
            }
            return (result, !(baseInfo.upper && extInfo.upper))
        }
        // The numeric tail: ~1 … ~9 after at most six characters, then four hex digits and ~N
        // after two (the kernel starts those from jiffies; we start from a hash of the name).
        var baseLength = base.count
        if baseLength > 6 { baseLength = numtailBase; result[7] = 0x20 }
        result[baseLength] = 0x7E
        for n in 1...9 {
            result[baseLength + 1] = UInt8(0x30 + n)
            if !taken(result) { return (result, true) }
        }
        var seed: UInt32 = 2_166_136_261
        for u in units { seed = (seed ^ UInt32(u)) &* 16_777_619 }
        let tail = UInt8(0x31 + (seed >> 16) & 7)
        if baseLength > 2 { baseLength = numtail2Base; result[7] = 0x20 }
        result[baseLength + 4] = 0x7E
        result[baseLength + 5] = tail
        var value = seed
        let hex = Array("0123456789ABCDEF".utf8)
        for _ in 0 ..< 0x10000 {
            for k in 0..<4 { result[baseLength + k] = hex[Int(value >> (12 - 4 * UInt32(k)) & 0xF)] }
            if !taken(result) { return (result, true) }
            value = value &- 11
        }
        throw ImageError(structure: "name", reason: "no free short name", errno: .fileExists)
    }

    /// Lookups fold ASCII case (the kernel compares names case-insensitively through its
    /// iocharset; we fold only ASCII letters).
    static func folded(_ name: [UInt8]) -> [UInt8] {
        name.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
    }
}
