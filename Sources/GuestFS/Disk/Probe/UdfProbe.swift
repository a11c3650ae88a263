import GuestFSBlock

/// UDF ("udf").
///
/// Layout: ECMA-167 and OSTA UDF 2.60. The volume recognition sequence from 32 KiB (2/9.1:
/// descriptors of 2048 bytes or one block, identifier at 1: "BEA01", "NSR02"/"NSR03", "TEA01",
/// also "CD001", "BOOT2", "CDW02"); the anchor volume descriptor pointer at block 256 (3/10.2:
/// descriptor tag (3/7.2) with identifier u16 at 0 and tag location u32 at 12, main volume
/// descriptor sequence extent length u32 at 16 and location u32 at 20); in that sequence the
/// primary volume descriptor (tag 1, 3/10.1: volume set identifier dstring[128] at 72, its
/// descriptor character set (charspec, 1/7.2.1) at 200) and the logical volume descriptor (tag 6,
/// 3/10.6: descriptor character set at 20, logical volume identifier dstring[128] at 84); a
/// terminating descriptor is tag 8. A descriptor's identifiers are read only when its character
/// set is UDF's (type 0, "OSTA Compressed Unicode", UDF 2.1.2), as blkid 2.38 does. A dstring (1/7.2.12) is a compression id (8: Latin-1, 16:
/// UTF-16BE) followed by characters, its used length in the last byte.
/// Checks as libblkid superblocks/udf.c: block sizes 512, 1024, 2048 and 4096 are tried (an image
/// file's sector size is 512); LABEL is the logical volume identifier, UUID derives from the
/// first 16 characters of the volume set identifier (`gen_uuid_from_volset_id`). Tighter than
/// blkid: at most `maxSequence` descriptors of the sequence are read.
enum UdfProbe {
    static let vsdOffset: UInt64 = 0x8000
    static let blockSizes: [UInt64] = [512, 1024, 2048, 4096]
    static let maxSequence: UInt32 = 4096
    static let descriptorSize = 440
    static let recognised = ["BEA01", "BOOT2", "CD001", "CDW02", "TEA01"].map { [UInt8](ascii: $0) }
    static let nsr = ["NSR02", "NSR03"].map { [UInt8](ascii: $0) }
    static let magics = recognised + nsr

    static func probe(_ r: ProbeReader) -> ProbeResult {
        // udf_idinfo's magics: one of the identifiers in the first descriptor at 32 KiB.
        guard let first = r.bytes(vsdOffset + 1, 5), magics.contains(first.bytes) else { return .noMatch }
        guard let blockSize = findAnchor(r) else { return .noMatch }
        guard let anchor = r.bytes(256 * blockSize, descriptorSize) else { return .noMatch }
        let count = UInt32(UInt64(anchor.le32(16)) / blockSize)
        let location = anchor.le32(20)
        var label: String?, uuid: String?, haveLabel = false, haveUUID = false
        for b in 0 ..< min(count, maxSequence) {
            let block = location &+ b
            guard let vd = r.bytes(UInt64(block) * blockSize, descriptorSize) else { return .noMatch }
            let tag = vd.le16(0)
            if tag == 0 || vd.le32(12) != block || tag == 8 { break }
            if tag == 1 && !haveUUID && isUDFCharset(vd.slice(200, 64)) {
                if let generated = volumeSetUUID(vd.slice(72, 128)) {
                    uuid = generated
                    haveUUID = true
                }
            } else if tag == 6 && !haveLabel && isUDFCharset(vd.slice(20, 64)) {
                if let (chars, encoding) = dstring(vd.slice(84, 128)) {
                    label = ProbeText.label(chars, encoding: encoding)
                    haveLabel = true
                }
            }
            if haveLabel && haveUUID { break }
        }
        return .match(label: label, uuid: uuid)
    }

    /// The block size whose volume recognition sequence has an NSR descriptor and whose block
    /// 256 is an anchor naming itself. Sequences of 2048-byte descriptors are read once.
    static func findAnchor(_ r: ProbeReader) -> UInt64? {
        var valid2048: Bool?
        for bs in blockSizes {
            let vsdLength = max(bs, 2048)
            var hasNSR = false
            if vsdLength == 2048, let known = valid2048 {
                guard known else { continue }
                hasNSR = true
            } else {
                for b in 0 ..< UInt64(64) {
                    guard let vsd = r.bytes(vsdOffset + b * vsdLength, 7) else { return nil }
                    let id = vsd.slice(1, 5)
                    if id[0] == 0 { break }
                    if nsr.contains(id) { hasNSR = true; break }
                    if !recognised.contains(id) { break }
                }
                if vsdLength == 2048 { valid2048 = hasNSR }
                guard hasNSR else { continue }
            }
            guard let anchor = r.bytes(256 * bs, descriptorSize) else { return nil }
            if anchor.le32(12) == 256 && anchor.le16(0) == 2 { return bs }
        }
        return nil
    }

    /// A charspec of type 0 whose information (63 bytes, compared as a C string) is
    /// "OSTA Compressed Unicode".
    static func isUDFCharset(_ charspec: [UInt8]) -> Bool {
        let name = [UInt8](ascii: "OSTA Compressed Unicode")
        return charspec[0] == 0 && charspec[1 ..< 1 + name.count].elementsEqual(name) && charspec[1 + name.count] == 0
    }

    /// A dstring's characters (its used length less the compression id byte, at most the field)
    /// and their encoding; nil for an unknown compression id.
    static func dstring(_ d: [UInt8]) -> ([UInt8], ProbeText.Encoding)? {
        var length = Int(d[d.count - 1])
        if length > 0 { length -= 1 }
        length = min(length, d.count - 2)
        let encoding: ProbeText.Encoding
        switch d[0] {
        case 8: encoding = .latin1
        case 16: encoding = .utf16BE
        default: return nil
        }
        return (Array(d[1 ..< 1 + length]), encoding)
    }

    /// gen_uuid_from_volset_id: the first 16 UTF-8 bytes of the volume set identifier; all hex
    /// digits are used as they are (lowercased); a non-hex byte among the first 8 makes the UUID
    /// the hex of those 8; among the next 8, the first 8 lowercased and the hex of bytes 8..<12.
    static func volumeSetUUID(_ d: [UInt8]) -> String? {
        guard let (chars, encoding) = dstring(d) else { return nil }
        let text = ProbeText.utf8(chars, encoding: encoding, capacity: 17)
        guard text.count >= 8 else { return nil }
        let buf = text + [UInt8](repeating: 0, count: 17 - text.count)
        func isHex(_ c: UInt8) -> Bool { (0x30 ... 0x39).contains(c) || (0x41 ... 0x46).contains(c) || (0x61 ... 0x66).contains(c) }
        func lower(_ c: UInt8) -> UInt8 { (0x41 ... 0x5A).contains(c) ? c + 0x20 : c }
        let nonHex = (0 ..< 16).first(where: { !isHex(buf[$0]) }) ?? 16
        let out: [UInt8]
        if nonHex < 8 {
            out = Array(buf[0 ..< 8].map(ProbeText.hex).joined().utf8)
        } else if nonHex < 16 {
            out = buf[0 ..< 8].map(lower) + Array(buf[8 ..< 12].map(ProbeText.hex).joined().utf8)
        } else {
            out = buf[0 ..< 16].map(lower)
        }
        return ProbeText.uuidString(out)
    }
}
