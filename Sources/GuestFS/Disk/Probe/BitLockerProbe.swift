import GuestFSBlock

/// BitLocker volumes ("BitLocker").
///
/// Layout: libyal libbde, "BitLocker Drive Encryption (BDE) format", volume header: the boot
/// sector's first 11 bytes are the signature (Vista "\xEB\x52\x90-FVE-FS-", Windows 7
/// "\xEB\x58\x90-FVE-FS-", To Go "\xEB\x58\x90MSWIN4.1"); Windows 7 keeps the volume serial u32 at
/// 67 and the first FVE metadata block offset u64 at 176, To Go that offset at 440; the metadata
/// block starts with "-FVE-FS-". Checks as libblkid superblocks/bitlocker.c: Vista headers match
/// on the signature alone, the others need a non-zero offset to a metadata block with its
/// signature. The UUID is the Windows 7 serial as 16 decimal digits (blkid's "%016d"), absent
/// when zero, which it usually is. There is no label.
enum BitLockerProbe {
    static let vista: [UInt8] = [0xEB, 0x52, 0x90] + [UInt8](ascii: "-FVE-FS-")
    static let windows7: [UInt8] = [0xEB, 0x58, 0x90] + [UInt8](ascii: "-FVE-FS-")
    static let toGo: [UInt8] = [0xEB, 0x58, 0x90] + [UInt8](ascii: "MSWIN4.1")
    static let metadataSignature = [UInt8](ascii: "-FVE-FS-")

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let h = r.bytes(0, 512) else { return .noMatch }
        let metadataOffset: UInt64
        if h.has(vista, at: 0) {
            return .match()
        } else if h.has(windows7, at: 0) {
            metadataOffset = h.le64(176)
        } else if h.has(toGo, at: 0) {
            metadataOffset = h.le64(440)
        } else {
            return .noMatch
        }
        guard metadataOffset != 0 else { return .noMatch }
        guard let fve = r.bytes(metadataOffset, 12) else { return .noMatch }
        guard fve.has(metadataSignature, at: 0) else { return .noMatch }
        guard h.has(windows7, at: 0) else { return .match() }
        let serial = h.le32(67)
        guard serial != 0 else { return .match() }
        // "%016d" of a le32 read as int: negative values keep their sign.
        let value = Int(Int32(bitPattern: serial))
        let digits = String(value.magnitude)
        let width = value < 0 ? 15 : 16
        let padded = String(repeating: "0", count: max(0, width - digits.count)) + digits
        return .match(uuid: (value < 0 ? "-" : "") + padded)
    }
}
