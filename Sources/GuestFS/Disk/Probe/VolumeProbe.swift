import GuestFSBlock

/// What a block device holds, as blkid would name it (`TYPE=`), with its label and UUID.
public struct VolumeContent: Sendable, Equatable {
    /// blkid's TYPE: "ext2", "ext3", "ext4", "ext4dev", "jbd", "xfs", "btrfs", "ntfs", "vfat", "exfat",
    /// "iso9660", "udf", "squashfs", "squashfs3", "swap", "LVM2_member", "crypto_LUKS",
    /// "BitLocker", or nil when nothing is recognised (or the signatures are ambivalent).
    public let type: String?
    /// blkid's LABEL (the volume name as the format stores it, converted to UTF-8).
    public let label: String?
    /// blkid's UUID, in the form blkid prints for that type (RFC 4122 text, LVM's dashed
    /// 32 characters, FAT's XXXX-XXXX, NTFS's 16 hex digits, ISO 9660's date…).
    public let uuid: String?
    /// blkid's USAGE for `type`: what kind of thing the signature belongs to.
    public let usage: VolumeUsage?
    /// When `type` is nil because blkid's safe probe would call the result ambivalent, the
    /// types whose signatures were all found (in probing order); empty otherwise.
    public let ambivalentTypes: [String]

    public init(type: String?, label: String?, uuid: String?, usage: VolumeUsage? = nil, ambivalentTypes: [String] = []) {
        self.type = type
        self.label = label
        self.uuid = uuid
        self.usage = usage
        self.ambivalentTypes = ambivalentTypes
    }

    public var isExt: Bool { type == "ext2" || type == "ext3" || type == "ext4" }
}

/// blkid's USAGE values (libblkid `BLKID_USAGE_*`).
public enum VolumeUsage: String, Sendable, Equatable {
    case filesystem, raid, crypto, other
}

/// Recognises the content of a block device the way `blkid -p` (libblkid's safe probe,
/// util-linux 2.38) does, reading a few sectors.
///
/// The probers run in libblkid's order (`idinfos[]` in libblkid/src/superblocks/superblocks.c,
/// restricted to the types below), and the answer follows `superblocks_safeprobe`:
/// - the first RAID or crypto signature found (LVM2 PV, LUKS, BitLocker) ends the probe and wins,
///   whatever filesystem signatures also remain on the device;
/// - otherwise every filesystem prober runs; one match is the answer, and several matches are
///   *ambivalent* (type nil, `ambivalentTypes` set) unless all but one are "tolerant" types
///   (iso9660 and udf, `BLKID_IDINFO_TOLERANT`), in which case the first match wins. So a UDF
///   bridge disc is udf, and a vfat boot sector at 0 over an ISO 9660 at 32 KiB is ambivalent,
///   as blkid reports it;
/// - on a tiny device (≤ 1440 KiB) RAID signatures are not looked for and the first match wins;
///   devices of 1024 bytes or less hold nothing.
///
/// Reads past the end or failing reads mean "not this type", never an error: probing must work
/// on damaged devices. Each prober's file cites the layout it decodes and the libblkid file whose
/// checks it follows; where a check is bounded more tightly than libblkid's, that file says so.
public enum VolumeProbe {
    public static func probe(_ device: any BlockDevice) -> VolumeContent {
        let reader = ProbeReader(device: device)
        let none = VolumeContent(type: nil, label: nil, uuid: nil)
        // superblocks_probe: "ignore very very small block devices or regular files".
        guard device.size > 1024 else { return none }
        var matches: [(prober: VolumeProber, found: ProbeMatch)] = []
        for prober in VolumeProber.all {
            if device.size < prober.minimumSize { continue }
            if prober.usage == .raid && reader.isTiny { continue }
            switch prober.probe(reader) {
            case .noMatch:
                continue
            case .failed:
                // A prober's I/O error ends libblkid's probing loop with no result.
                return none
            case .match(let found):
                if reader.isTiny && matches.isEmpty { return content(prober, found) }
                matches.append((prober, found))
            }
            if prober.usage == .raid || prober.usage == .crypto { break }
        }
        guard let first = matches.first else { return none }
        if matches.count > 1 && matches.contains(where: { !$0.prober.tolerant }) {
            return VolumeContent(type: nil, label: nil, uuid: nil, ambivalentTypes: matches.map(\.prober.name))
        }
        return content(first.prober, first.found)
    }

    private static func content(_ prober: VolumeProber, _ found: ProbeMatch) -> VolumeContent {
        VolumeContent(type: prober.name, label: found.label, uuid: found.uuid, usage: prober.usage)
    }
}

/// What one prober found: the label and UUID it read (either may be absent).
struct ProbeMatch {
    var label: String?
    var uuid: String?
}

/// A prober's answer, as libblkid's probe functions return it: 0 (match), 1 (no match) or a
/// negative errno (an I/O error, which ends the whole probe).
enum ProbeResult {
    case match(ProbeMatch)
    case noMatch
    case failed

    static func match(label: String? = nil, uuid: String? = nil) -> ProbeResult { .match(ProbeMatch(label: label, uuid: uuid)) }
}

/// One entry of the probing table: libblkid's `struct blkid_idinfo` for one type.
struct VolumeProber: Sendable {
    let name: String
    let usage: VolumeUsage
    /// `BLKID_IDINFO_TOLERANT`: may coexist with another filesystem signature.
    var tolerant = false
    /// `minsz`: devices smaller than this are not probed for this type.
    var minimumSize: UInt64 = 0
    let probe: @Sendable (ProbeReader) -> ProbeResult

    /// The probers in libblkid's `idinfos[]` order (superblocks.c), the types we know.
    static let all: [VolumeProber] = [
        VolumeProber(name: "LVM2_member", usage: .raid, probe: LVMProbe.probe),
        VolumeProber(name: "crypto_LUKS", usage: .crypto, probe: LUKSProbe.probe),
        VolumeProber(name: "BitLocker", usage: .crypto, probe: BitLockerProbe.probe),
        VolumeProber(name: "vfat", usage: .filesystem, probe: FatProbe.probe),
        VolumeProber(name: "swap", usage: .other, minimumSize: SwapProbe.minimumSize, probe: SwapProbe.probe),
        VolumeProber(name: "xfs", usage: .filesystem, probe: XfsProbe.probe),
        VolumeProber(name: "ext4dev", usage: .filesystem, probe: ExtProbe.probeExt4Dev),
        VolumeProber(name: "ext4", usage: .filesystem, probe: ExtProbe.probeExt4),
        VolumeProber(name: "ext3", usage: .filesystem, probe: ExtProbe.probeExt3),
        VolumeProber(name: "ext2", usage: .filesystem, probe: ExtProbe.probeExt2),
        VolumeProber(name: "jbd", usage: .other, probe: ExtProbe.probeJournalDevice),
        VolumeProber(name: "udf", usage: .filesystem, tolerant: true, probe: UdfProbe.probe),
        VolumeProber(name: "iso9660", usage: .filesystem, tolerant: true, probe: Iso9660Probe.probe),
        VolumeProber(name: "ntfs", usage: .filesystem, probe: NtfsProbe.probe),
        VolumeProber(name: "squashfs", usage: .filesystem, probe: SquashfsProbe.probe),
        VolumeProber(name: "squashfs3", usage: .filesystem, probe: SquashfsProbe.probeVersion3),
        VolumeProber(name: "btrfs", usage: .filesystem, minimumSize: BtrfsProbe.minimumSize, probe: BtrfsProbe.probe),
        VolumeProber(name: "exfat", usage: .filesystem, probe: ExfatProbe.probe),
    ]
}
