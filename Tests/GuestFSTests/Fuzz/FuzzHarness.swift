@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFSNTFS
@testable import GuestFS
@testable import GuestFSInspect
@testable import GuestFSInspect

/// What each libFuzzer target under `fuzz/` does with one input, shared with the unit test that
/// replays every committed crasher (`FuzzCrasherReplayTests`), so a crasher is replayed through
/// exactly the code path that found it.
///
/// A harness never traps on its own: parse errors are the expected outcome for most inputs and are
/// dropped. Every loop is bounded, and nothing here opens a host file (qcow2 backing files are
/// served from memory, images naming an external data file are parsed but not opened) or runs an
/// expensive KDF (LUKS unlock is tried only when every cost in the header is tiny).
enum FuzzHarness {
    /// The targets by name: `fuzz/Sources/fuzz-NAME` and `fuzz/crashers/NAME/`.
    static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "format-probe": formatProbe,
        "qcow2": qcow2,
        "vpc": vpc,
        "vdi": vdi,
        "vhdx": vhdx,
        "vmdk": vmdk,
        "qcow": qcow,
        "qed": qed,
        "parallels": parallels,
        "partitions": partitions,
        "lvm": lvm,
        "lvm-metadata": lvmMetadata,
        "luks": luks,
        "luks2-json": luks2JSON,
        "volume-probe": volumeProbe,
        "ext": ext,
        "journal": journal,
        "vfat": vfat,
        "iso9660": iso9660,
        "xfs": xfs,
        "xfs-log": xfsLog,
        "ntfs": ntfs,
        "hive": hive,
        "rbd-name": rbdName,
        "nbd-block-status": nbdBlockStatus,
    ]

    /// Runs target `name` on `data` (the fuzz entry points and the replay test call this).
    static func run(_ name: String, _ data: [UInt8]) {
        guard let target = targets[name] else { preconditionFailure("no fuzz target '\(name)'") }
        target(data)
    }

    // MARK: Block

    /// Block/RBD/RBDImageName.swift: `-a rbd:…` and `rbd://…` names (user input, but parsed by
    /// hand: escapes, percent-decoding, options). Nothing connects.
    static func rbdName(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        _ = try? RBDImageName.parse(text)
        _ = try? RBDImageName.parse("rbd:" + text)
        _ = try? RBDImageName.parse("rbd://" + text)
    }

    /// Block/NBD/NBDBlockStatus.swift and NBDAllocationCache.swift: a server's base:allocation
    /// answer (the first 24 bytes: the request's offset and length and the export size, little
    /// endian; then (length, flags) pairs) clipped, then cached and looked up. Whatever comes
    /// back must lie inside the request and the export, start at the request, be contiguous and
    /// have no empty extent.
    static func nbdBlockStatus(_ data: [UInt8]) {
        guard data.count >= 24 else { return }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(data[at + $1]) << (8 * $1) } }
        let start = u64(0), length = u64(8) & 0xFFFF_FFFF, exportSize = u64(16)
        guard start <= UInt64.max - length else { return }
        let entries = stride(from: 24, to: data.count - 3, by: 4).map { at in
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[at + $1]) << (8 * $1) }
        }
        let request = start..<(start + length)
        guard let extents = try? NBDBlockStatus.extents(entries: entries, start: start, request: request, exportSize: exportSize) else { return }
        var at = start
        for e in extents {
            precondition(e.offset == at && e.length > 0 && e.end <= request.upperBound && e.end <= exportSize, "extent outside the request")
            at = e.end
        }
        var cache = NBDAllocationCache()
        cache.insert(extents, generation: cache.generation)
        let found = cache.lookup(from: start, to: request.upperBound)
        precondition(found.first?.offset == start && found.last?.end == at, "cache lookup differs from the answer")
        cache.invalidate(request)
        precondition(cache.lookup(from: start, to: request.upperBound).isEmpty, "a write left its range cached")
    }

    /// Block/ImageFormat.swift: the header probe.
    static func formatProbe(_ data: [UInt8]) {
        _ = ImageFormat.probe(header: data)
        _ = ImageFormat.probe(header: Array(data.prefix(512)))
    }

    /// Block/Qcow2: header and extensions, the snapshot table, L1/L2 mapping and compressed
    /// clusters through reads, refcounts through check, then each of a few snapshots.
    static func qcow2(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.qcow2")
        guard let meta = try? Qcow2Metadata.read(from: file) else { return }
        if meta.header.incompatible.contains(.externalDataFile), meta.extensions.externalDataFile != nil {
            return  // opening it would open a host file by a name the input chose
        }
        let backing = FuzzDevice(bytes: [UInt8](repeating: 0xA5, count: 64 << 10), name: "/nonexistent-fuzz/backing")
        func open(snapshot: String?) -> Qcow2Image? {
            var options = ImageOpenOptions(snapshot: snapshot, l2CacheBytes: 256 << 10, corruptionLog: { _ in })
            options.metadataOnly = meta.header.cryptMethod != 0
            return try? Qcow2Image(file: file, options: options) { _, _ in backing }
        }
        guard let image = open(snapshot: nil) else { return }
        readSome(image, step: UInt64(meta.geometry.clusterSize), count: 24)
        _ = try? image.mapping(guestOffset: 0, length: 4096)
        _ = try? image.refcount(ofHostOffset: 0)
        // check visits every host cluster: only on small files, so that the fuzzer keeps its pace.
        if file.size / UInt64(meta.geometry.clusterSize) <= 2048 { _ = try? image.check() }
        for snapshot in meta.snapshots.prefix(3) {
            guard let view = open(snapshot: snapshot.id) else { continue }
            readSome(view, step: UInt64(meta.geometry.clusterSize), count: 4)
        }
    }

    /// Reads `count` small pieces `step` bytes apart from the start, and the last piece.
    static func readSome(_ device: any BlockDevice, step: UInt64, count: Int) {
        var offset: UInt64 = 0
        for _ in 0..<count {
            guard offset < device.size else { break }
            _ = device.fuzzRead(at: offset, count: 4096)
            let (next, overflow) = offset.addingReportingOverflow(max(step, 4096))
            if overflow { break }
            offset = next
        }
        if device.size > 4096 { _ = device.fuzzRead(at: device.size - 4096, count: 4096) }
    }

    /// PBKDF2 iterations a harness may run: cryptsetup's minimum (1000, what `--pbkdf-force-iterations`
    /// seeds use), a millisecond or so.
    static let cheapIterations: UInt32 = 1000

    /// Block/Crypto: LUKS1 and LUKS2 headers; unlock and a payload read only when it is cheap.
    static func luks(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/luks")
        guard let header = try? LUKSHeader.read(from: device) else { return }
        let cheap = header.keyslots.allSatisfy { slot in
            switch slot.kdf {
            case .pbkdf2(_, let iterations, _): return iterations <= cheapIterations
            case .argon2(_, let time, let memoryKiB, let lanes, _): return time <= 4 && memoryKiB <= 1024 && lanes <= 2
            }
        } && header.digests.allSatisfy { $0.digest.iterations <= cheapIterations } && header.keyslots.count <= 8
        guard cheap, let volume = try? LUKSVolume.open(device, passphrases: [SecretBytes(utf8: "fuzz")], name: "fuzz")
        else { return }
        readSome(volume, step: 64 << 10, count: 4)
    }

    /// Block/Crypto/LUKS2JSON.swift and the JSON half of LUKS2Header's decoder.
    static func luks2JSON(_ data: [UInt8]) {
        guard let json = try? LUKS2JSON.parse(data) else { return }
        var binary = [UInt8](repeating: 0, count: 4096)
        binary.replaceSubrange(0..<8, with: LUKS1Header.magic + [0, 2])
        _ = try? LUKS2Header.decode(json, binary: binary, deviceSize: 16 << 20)
    }

    // MARK: Disk

    /// Disk/: MBR (with logical partitions) and GPT, then a read from each partition.
    static func partitions(_ data: [UInt8]) {
        let disk = FuzzDevice(input: data, name: "/nonexistent-fuzz/disk")
        guard let table = try? PartitionTable.read(from: disk, diskName: "/dev/sda") else { return }
        for partition in table.partitions.prefix(64) {
            _ = partition.device.fuzzRead(at: 0, count: 512)
        }
    }

    /// Disk/LVM: label, metadata area, metadata text, VG assembly, then reads from every LV.
    static func lvm(_ data: [UInt8]) {
        let pv = FuzzDevice(input: data, name: "/nonexistent-fuzz/pv")
        let result = LVM.scan(pvs: [(name: "/dev/sda", device: pv)])
        for lv in result.logicalVolumes.prefix(16) {
            readSome(lv, step: 1 << 20, count: 4)
        }
    }

    /// Disk/LVM/LVMMetadataParser.swift and LVMVolumeGroup's decoder, on metadata text alone.
    static func lvmMetadata(_ data: [UInt8]) {
        guard let root = try? LVMMetadataParser.parse(data, source: "fuzz"),
              let (name, section) = LVMVolumeGroup.vgSection(of: root) else { return }
        _ = try? LVMVolumeGroup(name: name, section: section, source: "fuzz")
    }

    // MARK: Disk/Probe

    /// Disk/Probe: every prober in blkid's order, on the whole input and on its first 1440 KiB
    /// (the "tiny device" rules: no RAID probing, first match wins).
    static func volumeProbe(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/volume")
        _ = VolumeProbe.probe(device)
        if device.size > ProbeReader.tinySize,
           let tiny = try? SliceDevice(base: device, start: 0, size: ProbeReader.tinySize, name: "/nonexistent-fuzz/tiny") {
            _ = VolumeProbe.probe(tiny)
        }
    }

    // MARK: Ext

    /// Ext/ through libext2fs and our io_manager: open (with journal recovery into memory), statfs,
    /// a bounded walk of the tree, reads of files, symlinks and xattrs.
    static func ext(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/ext")
        guard let fs = try? Ext2Filesystem(device: device, writable: false) else { return }
        defer { try? fs.close() }
        _ = fs.usage()
        var pending: [(inode: UInt32, depth: Int)] = [(Ext2Filesystem.rootInode, 0)]
        var visited = Set<UInt32>()
        var budget = 200   // inodes looked at, in all
        while let (dir, depth) = pending.popLast(), budget > 0 {
            guard visited.insert(dir).inserted, let entries = try? fs.directoryEntries(dir) else { continue }
            _ = try? fs.lookup(dir, Array("lost+found".utf8))
            for entry in entries.prefix(64) where entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
                budget -= 1
                if budget <= 0 { break }
                guard let inode = try? fs.inode(entry.inode) else { continue }
                _ = try? fs.xattrs(entry.inode)
                if inode.isDirectory {
                    if depth < 8 { pending.append((entry.inode, depth + 1)) }
                } else if inode.isSymlink {
                    _ = try? fs.readlink(entry.inode)
                } else if inode.isRegular, let file = try? fs.openFile(entry.inode) {
                    readFile(file, size: inode.size)
                }
            }
        }
        // diff's fast path (Ext2ChangeScopeScan.swift): every inode slot and every unchanged
        // directory's blocks read straight from the device, with a changed window where the
        // input's first byte puts it.
        let window = UInt64(data.first ?? 0) * (device.size / 256)
        _ = try? fs.changeScope(comparedWith: fs, differing: [window..<min(device.size, window + 4096)], content: true,
                                reach: [UInt64(Ext2Filesystem.rootInode)])
    }

    /// Reads the start and the end of a file (never all of it: sizes come from the input).
    static func readFile(_ file: Ext2File, size: UInt64) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        buffer.withUnsafeMutableBytes { b in
            _ = try? file.read(into: b, at: 0)
            if size > UInt64(b.count) { _ = try? file.read(into: b, at: size - UInt64(b.count)) }
        }
        _ = try? file.dataRanges()
    }

    /// Ext/Journal: JBD2 journal recovery (superblock, descriptor, revoke and commit blocks,
    /// checksums, replay) into a memory overlay, then a look at the recovered superblock.
    static func journal(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/journal")
        guard let outcome = try? Ext2Filesystem.recoverJournal(device: device, writable: false) else { return }
        _ = try? ExtSuperblockPatch.read(from: outcome.device)
        _ = outcome.device.fuzzRead(at: 0, count: 8192)
    }

    // MARK: ISO9660

    /// ISO9660/: volume descriptors, El Torito, a bounded walk of the tree (directory records,
    /// SUSP with CE chains, Rock Ridge, Joliet names, the loop guard), symlinks and file reads.
    static func iso9660(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/iso")
        guard let fs = try? ISO9660Filesystem(device: device, damageLog: { _ in }) else { return }
        _ = try? fs.usage()
        var pending: [(node: UInt64, depth: Int)] = [(fs.rootNode, 0)]
        var budget = 300   // nodes looked at, in all
        while let (dir, depth) = pending.popLast(), budget > 0 {
            guard let entries = try? fs.entries(dir) else { continue }
            _ = try? fs.lookup(dir, entries.first?.name ?? [0x61])
            for entry in entries.prefix(64) {
                budget -= 1
                if budget <= 0 { break }
                guard let a = try? fs.attributes(entry.node) else { continue }
                if a.isDirectory {
                    if depth < 8 { pending.append((entry.node, depth + 1)) }
                } else if a.isSymlink {
                    _ = try? fs.readlink(entry.node)
                } else if a.isRegular, let file = try? fs.openFile(entry.node) {
                    readGuestFile(file)
                }
            }
        }
    }

    /// Reads the start and the end of a file (never all of it: sizes come from the input).
    static func readGuestFile(_ file: any GuestFile) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        buffer.withUnsafeMutableBytes { b in
            _ = try? file.read(into: b, at: 0)
            if file.size > UInt64(b.count) { _ = try? file.read(into: b, at: file.size - UInt64(b.count)) }
        }
        _ = try? file.dataRanges()
    }
}

extension FuzzHarness {
    /// Block/VMDK: the sparse header (and a stream-optimized footer), the embedded or standalone
    /// descriptor, the grain directory and tables, compressed grains, through describe and reads;
    /// `check` when the disk has at most 64 Ki grains (it visits every one, as QEMU's does).
    /// Extent and parent files are never opened: the input's format counts as probed.
    static func vmdk(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.vmdk")
        _ = VmdkFormat.probe(Array(data.prefix(512)))
        _ = try? VmdkDescriptor(Array(data.prefix(64 << 10)))
        var options = ImageOpenOptions(corruptionLog: { _ in })
        options.mayOpenReferencedFiles = false
        guard let image = try? VmdkImage(file: file, options: options, openBacking: { path, _ in
            throw ImageError(path: path, reason: "the fuzz harness opens no parent")
        }) else { return }
        var grains: UInt64 = 0
        for extent in image.extents {
            if case let .sparse(sparse) = extent.storage { grains = grains.saturatingAdd(sparse.size / sparse.grainBytes) }
        }
        if grains <= 1 << 16 { _ = image.check() }
        for extent in image.extents.prefix(4) {
            if case let .sparse(sparse) = extent.storage { readSome(image, step: sparse.grainBytes, count: 24) }
        }
        readSome(image, step: 1 << 20, count: 8)
    }
}
