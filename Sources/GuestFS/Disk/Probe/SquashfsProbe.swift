import GuestFSBlock

/// SquashFS ("squashfs", and "squashfs3" for the version 3 and older formats).
///
/// Layout: Linux fs/squashfs/squashfs_fs.h, `struct squashfs_super_block`: magic "hsqs" at 0
/// (little-endian; "sqsh" is a big-endian v3 image), s_major u16 at 28, s_minor u16 at 30.
/// Checks as libblkid superblocks/squashfs.c: version 4 or later is squashfs, 3 or earlier
/// squashfs3. The format has no label or UUID.
enum SquashfsProbe {
    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let sb = r.bytes(0, 32), sb.has([UInt8](ascii: "hsqs"), at: 0), sb.le16(28) >= 4 else { return .noMatch }
        return .match()
    }

    static func probeVersion3(_ r: ProbeReader) -> ProbeResult {
        guard let sb = r.bytes(0, 32) else { return .noMatch }
        let major: UInt16
        if sb.has([UInt8](ascii: "sqsh"), at: 0) {
            major = sb.be16(28)
        } else if sb.has([UInt8](ascii: "hsqs"), at: 0) {
            major = sb.le16(28)
        } else {
            return .noMatch
        }
        return major <= 3 ? .match() : .noMatch
    }
}
