import GuestFSBlock
import GuestFSFilesystem

/// What the Rock Ridge Interchange Protocol (RRIP, IEEE P1282 / "RRIP 1.12") entries of one
/// directory record say, read from its SUSP entries (ISO9660SystemUse.swift) as the Linux
/// kernel's fs/isofs/rock.c reads them.
struct RockRidgeInfo: Sendable {
    /// PX (RRIP 4.1.1): st_mode, st_nlink, st_uid, st_gid (and st_ino in RRIP 1.12, unused).
    var mode: UInt32?
    var links: UInt32?
    var uid: UInt32?
    var gid: UInt32?
    /// PN (4.1.2): the device number of a character or block device.
    var rdev: (major: UInt32, minor: UInt32)?
    /// SL (4.1.3): the symbolic link's target, assembled from its component records.
    var symlinkTarget: [UInt8]?
    /// Set when an SL could not be decoded (a component running past its entry, a target over
    /// `maxSymlinkLength`): readlink fails with EIO, as the kernel's does.
    var symlinkDamaged = false
    /// NM (4.1.4): the alternate name; nil when there is none (the ISO or Joliet name serves).
    var name: [UInt8]?
    /// NM pieces added up to more than NAME_MAX.
    var nameTooLong = false
    /// CL (4.1.5.1): this record stands for a directory relocated to this logical block.
    var childLink: UInt32?
    /// PL (4.1.5.2): in the ".." record of a relocated directory, the block of its real parent.
    var parentLink: UInt32?
    /// RE (4.1.5.3): this record is a relocated directory in the relocation directory; its CL
    /// record elsewhere is where it belongs, so it is not listed here.
    var relocated = false
    /// TF (4.1.6): the times recorded.
    var creation: Timestamp?
    var modification: Timestamp?
    var access: Timestamp?
    var attributeChange: Timestamp?
    /// ZF (zisofs): the file's data is compressed.
    var compressed = false
    /// Any RRIP entry at all was seen (PX, PN, SL, NM, CL, PL, RE, TF, RR).
    var present = false

    /// A target longer than this is refused (the kernel builds it in one page and fails past
    /// PAGE_SIZE - 1, rock_ridge_symlink_read_folio) — and PATH_MAX is 4096 with the NUL.
    static let maxSymlinkLength = 4095
    /// NAME_MAX (limits.h): the longest name a directory entry can carry.
    static let maxNameLength = 255

    /// ER identifiers (RRIP 5.1 and IEEE 1282) that mark a volume as Rock Ridge.
    static let extensionIdentifiers: Set<[UInt8]> = [Array("RRIP_1991A".utf8), Array("IEEE_P1282".utf8), Array("IEEE_1282".utf8)]

    init() {}

    /// Interprets `entries` in order. Entries of other extensions are ignored.
    init(_ entries: [SUSPEntry]) {
        var slCollector = SymlinkCollector()
        var sawSL = false
        for entry in entries {
            let d = ISO9660Bytes(entry.data)
            switch entry.signature {
            case SUSPEntry.PX:
                present = true
                // 36 bytes of entry (RRIP 1.10) or 44 (1.12, with the serial number).
                guard let m = d.u32both(0), let n = d.u32both(8), let u = d.u32both(16), let g = d.u32both(24) else { continue }
                mode = m; links = n; uid = u; gid = g
            case SUSPEntry.PN:
                present = true
                guard let high = d.u32both(0), let low = d.u32both(8) else { continue }
                rdev = Self.deviceNumber(high: high, low: low)
            case SUSPEntry.SL:
                present = true
                sawSL = true
                slCollector.add(entry.data)
            case SUSPEntry.NM:
                present = true
                guard let flags = d.u8(0) else { continue }
                // CURRENT (0x02) and PARENT (0x04) name "." and ".."; HOST (0x20) a host name:
                // the kernel ignores those and keeps the other name (get_rock_ridge_filename).
                if flags & 0x26 != 0 { continue }
                let piece = entry.data.dropFirst()
                let total = (name?.count ?? 0) + piece.count
                if total > Self.maxNameLength { nameTooLong = true; continue }
                name = (name ?? []) + piece
            case SUSPEntry.CL:
                present = true
                childLink = d.u32both(0)
            case SUSPEntry.PL:
                present = true
                parentLink = d.u32both(0)
            case SUSPEntry.RE:
                present = true
                relocated = true
            case SUSPEntry.TF:
                present = true
                decodeTimes(d)
            case SUSPEntry.RR:
                present = true
            case SUSPEntry.ZF:
                compressed = true
            default:
                continue
            }
        }
        if sawSL {
            if let target = slCollector.finish(), !target.isEmpty { symlinkTarget = target } else { symlinkDamaged = true }
        }
    }

    /// TF (RRIP 4.1.6): a flags byte, then one time per flag bit set, in bit order (CREATION,
    /// MODIFY, ACCESS, ATTRIBUTES, BACKUP, EXPIRATION, EFFECTIVE), each 7 bytes (ECMA-119 9.1.5)
    /// or 17 bytes (8.4.26.1) when LONG_FORM (0x80) is set.
    private mutating func decodeTimes(_ d: ISO9660Bytes) {
        guard let flags = d.u8(0) else { return }
        let width = flags & 0x80 != 0 ? 17 : 7
        var pos = 1
        for bit in 0..<7 where flags & (1 << bit) != 0 {
            guard let field = d.slice(pos, width) else { return }
            pos += width
            let time = width == 17 ? ISO9660Date.long(field) : ISO9660Date.short(field)
            switch bit {
            case 0: creation = time
            case 1: modification = time
            case 2: access = time
            case 3: attributeChange = time
            default: break
            }
        }
    }

    /// PN's two 32-bit halves as a (major, minor) pair. The kernel (rock.c, "Some writers may
    /// ignore this subtlety") takes a zero high half to mean the whole dev_t sits in the low
    /// half; we decode that half as a Linux dev_t (glibc's makedev layout: minor bits 0-7 and
    /// 20-31, major bits 8-19), which agrees with the kernel's MKDEV(low >> 8, low & 0xff) for
    /// every number below 256, and otherwise take the halves as major and minor.
    static func deviceNumber(high: UInt32, low: UInt32) -> (major: UInt32, minor: UInt32) {
        if high == 0 && low & ~0xff != 0 {
            return ((low >> 8) & 0xfff, (low & 0xff) | ((low >> 12) & 0xfff00))
        }
        return (high, low)
    }
}

/// SL component records (RRIP 4.1.3.1): each a flags byte, a length and that many bytes. The
/// target is built the way fs/isofs/rock.c (get_symlink_chunk) builds it: CURRENT (0x02) is ".",
/// PARENT (0x04) "..", ROOT (0x08) "/"; a component not marked CONTINUE (0x01) is followed by "/"
/// unless it ends the last SL entry; VOLROOT and HOST components add nothing.
struct SymlinkCollector {
    private var out: [UInt8] = []
    private var damaged = false

    mutating func add(_ data: ArraySlice<UInt8>) {
        guard !damaged else { return }
        let d = ISO9660Bytes(data)
        guard let slFlags = d.u8(0) else { damaged = true; return }
        var pos = 1
        while d.count - pos > 1 {
            guard let flags = d.u8(pos), let length8 = d.u8(pos + 1) else { damaged = true; return }
            let length = Int(length8)
            guard let text = d.slice(pos + 2, length) else { damaged = true; return }
            var root = false
            switch flags & ~1 {
            case 0: out += text
            case 0x02: out.append(0x2E)
            case 0x04: out += [0x2E, 0x2E]
            case 0x08: root = true; out.append(0x2F)
            default: break
            }
            pos += 2 + length
            let last = d.count - pos < 2
            // A component continued in the next record gets no "/"; the last component of an
            // SL entry gets one only when the link continues in another SL entry.
            if !root && flags & 1 == 0 && (!last || slFlags & 1 != 0) { out.append(0x2F) }
            if out.count > RockRidgeInfo.maxSymlinkLength { damaged = true; return }
            if last { break }
        }
    }

    func finish() -> [UInt8]? { damaged ? nil : out }
}
