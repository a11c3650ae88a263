import Foundation
import Testing
import TestSupport

/// `imagemount check` against `qemu-img check` on damaged states QEMU's iotests build (271:
/// extended L2 subcluster bitmaps): the same text on stdout and the same exit status.
@Suite struct CheckHostileTests {
    func compare(_ path: String, _ label: String, expect status: Int32) throws {
        let ours = try ImageMountBinary.run(["check", "-a", path])
        let theirs = try Shell.run("qemu-img check \(Shell.quote(path))")
        #expect(theirs.status == status, "\(label): qemu-img check exited \(theirs.status): \(theirs.text)\(theirs.stderr)")
        #expect(ours.status == theirs.status, "\(label): exit \(ours.status) vs qemu-img \(theirs.status); ours: \(ours.stderr)")
        #expect(ours.text == theirs.text, "\(label): ours\n\(ours.text)\nqemu-img\n\(theirs.text)")
    }

    /// Where the L2 entry of guest cluster `index` is (L1 entry 0's table), in a 64 KiB-cluster image.
    func l2Entry(_ path: String, _ index: Int, extended: Bool) throws -> UInt64 {
        func be64(_ at: UInt64) throws -> UInt64 {
            UInt64(try Shell.check("od -An -tx8 --endian=big -j\(at) -N8 \(Shell.quote(path))").trimmingCharacters(in: .whitespacesAndNewlines), radix: 16) ?? 0
        }
        let l1 = try be64(40)
        let l2 = try be64(l1) & 0x00FF_FFFF_FFFF_FE00
        return l2 + UInt64(index * (extended ? 16 : 8))
    }

    func patch(_ path: String, _ offset: UInt64, _ value: UInt64) throws {
        let hex = (0..<8).map { String(format: "\\%03o", UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0)))) }.joined()
        try Shell.check("printf '\(hex)' | dd of=\(Shell.quote(path)) bs=1 seek=\(offset) conv=notrunc status=none")
    }

    func image(_ dir: TempDir, _ name: String, options: String, io: String) throws -> String {
        let path = dir.file(name)
        try Shell.check("qemu-img create -q -f qcow2 -o \(options) \(Shell.quote(path)) 1M && qemu-io -f qcow2 \(io) \(Shell.quote(path)) >/dev/null")
        return path
    }

    @Test func compressedClusterWithASubclusterBitmap() throws {
        let dir = try TempDir("imagemount-check-hostile")
        let path = try image(dir, "c.qcow2", options: "extended_l2=on,cluster_size=64k",
                             io: "-c 'write -c -P 1 0 64k' -c 'write -P 2 64k 64k'")
        try compare(path, "clean", expect: 0)
        // iotest 271: the bitmap word (bytes 8-15) of a compressed cluster's entry gets bit 0.
        try patch(path, try l2Entry(path, 0, extended: true) + 8, 1)
        try compare(path, "compressed with bitmap", expect: 2)
    }

    @Test func allocatedAndZeroBitsAndAllocatedBitsWithoutACluster() throws {
        let dir = try TempDir("imagemount-check-hostile")
        let both = try image(dir, "both.qcow2", options: "extended_l2=on,cluster_size=64k", io: "-c 'write -P 1 0 64k'")
        // Subcluster 0 both allocated (bit 0) and zero (bit 32).
        try patch(both, try l2Entry(both, 0, extended: true) + 8, 0x0000_0001_FFFF_FFFF)
        try compare(both, "allocated and zero", expect: 2)
        let none = try image(dir, "none.qcow2", options: "extended_l2=on,cluster_size=64k", io: "-c 'write -P 1 0 64k'")
        // Guest cluster 1 has no host cluster, but allocation bits.
        try patch(none, try l2Entry(none, 1, extended: true) + 8, 0x0000_0000_0000_0003)
        try compare(none, "unallocated with allocation bits", expect: 2)
    }

    @Test func compressedClustersCountAsFragmented() throws {
        let dir = try TempDir("imagemount-check-hostile")
        let path = try image(dir, "z.qcow2", options: "cluster_size=64k",
                             io: "-c 'write -c -P 1 0 64k' -c 'write -c -P 2 64k 64k' -c 'write -P 3 128k 64k'")
        try compare(path, "compressed", expect: 0)
    }

    /// Damaged states of QEMU's iotests 060 and 271 and their neighbours, each a patch of one
    /// table entry of a fresh 1 MiB image (64 KiB clusters, guest clusters 0 and 1 written).
    /// Arguments: label, exit status qemu-img check gives, and the patch.
    static let damages: [(String, Int32)] = [
        ("data cluster offset not cluster-aligned", 2), ("L1 entry with reserved bits", 2),
        ("data cluster past the end of the file", 2), ("COPIED on a compressed cluster", 2),
        ("refcount 2 on a data cluster", 2), ("L2 entry with reserved bits", 2),
        ("L2 table past the end of the file", 2), ("L2 table not cluster-aligned", 2),
        ("refcount block not cluster-aligned", 1), ("refcount block past the end of the file", 2),
        ("data cluster at offset 0 with COPIED", 3), ("two L2 entries share a cluster", 2),
    ]

    @Test(arguments: 0..<12)
    func damagedTablesAsQemuImgSeesThem(_ which: Int) throws {
        let (label, status) = Self.damages[which]
        let dir = try TempDir("imagemount-check-hostile")
        let path = dir.file("d.qcow2")
        let io = which == 3 ? "-c 'write -c -P 1 0 64k'" : "-c 'write -P 1 0 64k' -c 'write -P 2 64k 64k'"
        try Shell.check("qemu-img create -q -f qcow2 -o cluster_size=64k \(Shell.quote(path)) 1M && qemu-io -f qcow2 \(io) \(Shell.quote(path)) >/dev/null")
        func be64(_ at: UInt64) throws -> UInt64 {
            UInt64(try Shell.check("od -An -tx8 --endian=big -j\(at) -N8 \(Shell.quote(path))").trimmingCharacters(in: .whitespacesAndNewlines), radix: 16) ?? 0
        }
        let l1 = try be64(40)                                // header: l1_table_offset
        let l2 = try be64(l1) & 0x00FF_FFFF_FFFF_FE00        // L1 entry 0
        let reftable = try be64(48)                          // header: refcount_table_offset
        let copied: UInt64 = 1 << 63
        switch which {
        case 0: try patch(path, l2, try be64(l2) + 0x200)
        case 1: try patch(path, l1, try be64(l1) | 0x100)
        case 2: try patch(path, l2, copied | 0x1000_0000)
        case 3: try patch(path, l2, try be64(l2) | copied)
        case 4:
            // The refcount block's entry for cluster 4 (16-bit entries) = 2.
            let block = try be64(reftable)
            try Shell.check("printf '\\000\\002' | dd of=\(Shell.quote(path)) bs=1 seek=\(block + 8) conv=notrunc status=none")
        case 5: try patch(path, l2, try be64(l2) | 0x2)
        case 6: try patch(path, l1, copied | 0x100_0000)
        case 7: try patch(path, l1, try be64(l1) + 0x200)
        case 8: try patch(path, reftable, try be64(reftable) + 0x200)
        case 9: try patch(path, reftable, 0x1000_0000)
        case 10:
            try patch(path, l2, copied)
            try patch(path, l2 + 8, copied)
        default: try patch(path, l2 + 8, try be64(l2))
        }
        try compare(path, label, expect: status)
    }
}
