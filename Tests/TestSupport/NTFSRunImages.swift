import Foundation

/// An NTFS volume whose files exercise the direct read path (NTFSRunMap) and its fallbacks,
/// built with `mkntfs` and filled through an ntfs-3g mount like NTFSImages: three files written
/// into a volume whose free space is all 16 KiB gaps (fragmented, hundreds of runs each);
/// a sparse file with data between holes; a file whose initialized_size is then patched below
/// its data_size (bytes past it read as zeros in ntfs-3g); a compressed file, an EFS-less
/// resident one and an empty one. Built once per run.
public final class NTFSRunImages: @unchecked Sendable {
    public let dir: TempDir
    public var image: String { dir.file("runs.img") }
    /// Fragmented files (written into the gaps of a filled volume).
    public static let fragmented = ["frag/a.bin", "frag/b.bin", "frag/c.bin"]
    /// The file whose initialized_size is patched down to `initializedSize` (data_size stays 1 MiB).
    public static let uninitialized = "init.bin"
    public static let initializedSize: UInt64 = 300_001
    public static let sparse = "holes.bin"
    public static let compressed = "comp/text.txt"
    public static let resident = "small.txt"
    public static let empty = "empty.bin"
    public static var all: [String] { fragmented + [uninitialized, sparse, compressed, resident, empty] }

    public init() throws {
        dir = try TempDir("imagemount-ntfs-runs")
        try NTFSImages.volume(at: image, megabytes: 64, label: "RUNS", script: """
            mkdir fill frag comp
            # Fill the volume with 16 KiB files and delete every other one: ntfs-3g then finds
            # free space only in 16 KiB gaps, and larger files written next are fragmented.
            i=0
            while head -c 16384 /dev/zero > fill/$i 2>/dev/null; do i=$((i + 1)); done
            rm -f fill/$i
            for j in $(seq 0 2 $i); do rm -f fill/$j; done
            head -c 1000003 /dev/urandom > frag/a.bin
            head -c 1234567 /dev/urandom > frag/b.bin
            head -c 987001 /dev/urandom > frag/c.bin
            truncate -s 8M holes.bin
            head -c 70000 /dev/urandom | dd of=holes.bin bs=1 seek=3000000 conv=notrunc status=none
            printf 'early' | dd of=holes.bin bs=1 seek=100000 conv=notrunc status=none
            printf 'tail' >> holes.bin
            head -c 1048576 /dev/urandom > init.bin
            setfattr -h -v 0x00000810 -n system.ntfs_attrib_be comp
            yes 'compressible line of text' | head -c 400000 > comp/text.txt
            echo small > small.txt
            : > empty.bin
            """)
        let listed = try Shell.check("ntfsls -i \(Shell.quote(image))").split(separator: "\n")
            .first { $0.split(separator: " ").last == Substring(Self.uninitialized) }
        guard let record = listed?.split(separator: " ").first.flatMap({ UInt64($0) }) else {
            throw Shell.Failure(command: "ntfsls -i", status: 1, stderr: "no \(Self.uninitialized)")
        }
        uninitializedRecord = record
        patched = try patchInitializedSize(record: record, to: Self.initializedSize)
    }

    /// The MFT record of `uninitialized`, and what its sizes were before the patch.
    public private(set) var uninitializedRecord: UInt64 = 0
    public private(set) var patched = ""

    /// Sets the initialized_size of the unnamed $DATA of MFT record `record` to `size`, in the
    /// image file itself: the record is found by its "FILE" magic and record number (0x2C,
    /// NTFS 3.1 MFT_RECORD), its attributes walked with the update sequence applied (fixups:
    /// the last two bytes of each 512-byte sector are the sequence number; the real bytes are in
    /// the update sequence array), and the field at 0x38 of the non-resident ATTR_RECORD
    /// (ntfs-3g/layout.h) rewritten. Returns "allocated data initialized" before the change.
    @discardableResult
    public func patchInitializedSize(record: UInt64, to size: UInt64) throws -> String {
        let script = """
            import struct, sys
            path, number, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
            data = open(path, 'rb').read()
            size = 1024
            for at in range(0, len(data) - size, size):
                if data[at:at + 4] != b'FILE' or struct.unpack_from('<I', data, at + 0x2C)[0] != number:
                    continue
                rec = bytearray(data[at:at + size])
                usa, count = struct.unpack_from('<HH', rec, 4)
                for i in range(1, count):
                    rec[i * 512 - 2:i * 512] = rec[usa + 2 * i:usa + 2 * i + 2]
                p = struct.unpack_from('<H', rec, 0x14)[0]
                while p + 16 <= size:
                    kind, length = struct.unpack_from('<II', rec, p)
                    if kind == 0xFFFFFFFF or length == 0:
                        break
                    if kind == 0x80 and rec[p + 8] == 1 and rec[p + 9] == 0:
                        field = p + 0x38
                        assert all(x % 512 < 510 for x in range(field, field + 8)), 'field under a fixup'
                        alloc, dsize, init = struct.unpack_from('<qqq', rec, p + 0x28)
                        assert new < init <= dsize <= alloc
                        with open(path, 'r+b') as f:
                            f.seek(at + field)
                            f.write(struct.pack('<q', new))
                        print(alloc, dsize, init)
                        sys.exit(0)
                    p += length
            sys.exit('record %d with a non-resident unnamed $DATA not found' % number)
            """
        let file = dir.file("patch-init.py")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        return try Shell.check("python3 \(Shell.quote(file)) \(Shell.quote(image)) \(record) \(size)")
    }
}
