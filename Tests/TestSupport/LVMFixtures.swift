import Foundation

/// Builds LVM2 images with the real lvm tools, at test time.
///
/// Device-mapper is missing on the test machines (DESIGN.md §6), so volumes are never
/// activated: the PVs are attached as loop devices, `pvcreate`/`vgcreate` write labels and
/// metadata, `vgcfgbackup -f` dumps the VG, a `logical_volumes` section is added to the text,
/// and `vgcfgrestore -f` writes it back. File systems are then put into the LVs' extents by
/// writing the image files directly.
///
/// The host stays untouched: `LVM_SYSTEM_DIR` points at a private `lvm.conf` (no backups, no
/// udev, no devices file), and every command's device filter accepts exactly the loop devices
/// of this builder, so parallel tests never see each other's PVs. Loop devices are always
/// detached, on failure paths too.
public final class LVMImageBuilder: @unchecked Sendable {
    /// A PV: a whole image file or a byte range of one (a partition).
    public struct PV: Sendable {
        public let image: String
        public let offset: UInt64
        public let size: UInt64?
        public init(image: String, offset: UInt64 = 0, size: UInt64? = nil) {
            self.image = image; self.offset = offset; self.size = size
        }
    }

    public let dir: TempDir
    private let etc: String

    public init() throws {
        dir = try TempDir("imagemount-lvm")
        etc = dir.file("etc")
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        try """
            devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 }
            activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
            backup { backup = 0 archive = 0 }
            global { use_lvmpolld = 0 }
            """.write(toFile: etc + "/lvm.conf", atomically: true, encoding: .utf8)
    }

    public var environment: [String: String] { ["LVM_SYSTEM_DIR": etc, "LVM_SUPPRESS_FD_WARNINGS": "1"] }

    /// Attaches every PV as a loop device (`losetup -f --show -o OFFSET --sizelimit SIZE`, `-r`
    /// when `readOnly`), runs `body` with their paths, and detaches them all, whatever happens.
    public func withLoops<T>(_ pvs: [PV], readOnly: Bool = false, _ body: ([String]) throws -> T) throws -> T {
        var loops: [String] = []
        defer { for loop in loops { _ = try? Shell.run("losetup -d \(loop)") } }
        for pv in pvs {
            let size = pv.size.map { " --sizelimit \($0)" } ?? ""
            let loop = try Shell.check("losetup -f --show\(readOnly ? " -r" : "") -o \(pv.offset)\(size) \(Shell.quote(pv.image))")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            loops.append(loop)
        }
        return try body(loops)
    }

    /// Runs `tool ARGS` (an lvm command) with a device filter that accepts only `loops`.
    @discardableResult
    public func lvm(_ tool: String, _ arguments: String, loops: [String]) throws -> String {
        let accept = loops.map { "\"a|^\($0)$|\"" }.joined(separator: ", ")
        let config = "devices { filter = [ \(accept), \"r|.*|\" ] }"
        let command = "\(tool) --config \(Shell.quote(config)) \(arguments)"
        let result = try Shell.run(command, environment: environment)
        guard result.status == 0 else { throw Shell.Failure(command: command, status: result.status, stderr: result.stderr) }
        return result.text
    }

    /// `pvcreate` + `vgcreate -s EXTENT` on `loops`; returns the `vgcfgbackup` text.
    public func createVG(_ name: String, extentSize: String = "1M", loops: [String], pvcreateOptions: String = "") throws -> String {
        try lvm("pvcreate", "-y -q \(pvcreateOptions) " + loops.joined(separator: " "), loops: loops)
        try lvm("vgcreate", "-q -s \(extentSize) \(name) " + loops.joined(separator: " "), loops: loops)
        return try backup(name, loops: loops)
    }

    /// `vgcfgbackup -f` of the VG, as text.
    public func backup(_ name: String, loops: [String]) throws -> String {
        let file = dir.file("backup-\(name).vg")
        try lvm("vgcfgbackup", "-q -f \(Shell.quote(file)) \(name)", loops: loops)
        return try String(contentsOfFile: file, encoding: .utf8)
    }

    /// Adds `logicalVolumes` (the inside of a `logical_volumes { }` section) to `backup` and
    /// restores it with `vgcfgrestore -f`.
    public func restore(_ name: String, backup: String, logicalVolumes: String, loops: [String]) throws {
        guard let close = backup.range(of: "}", options: .backwards) else { throw Shell.Failure(command: "restore", status: 1, stderr: "no VG section") }
        let text = backup[..<close.lowerBound] + "\n\tlogical_volumes {\n" + logicalVolumes + "\n\t}\n" + backup[close.lowerBound...]
        let file = dir.file("restore-\(name).vg")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        try lvm("vgcfgrestore", "-q -f \(Shell.quote(file)) \(name)", loops: loops)
    }

    /// The first integer after `key = ` in the section of `pvKey` (`pv0`) of a backup text.
    public static func pvField(_ backup: String, pv pvKey: String, _ key: String) -> UInt64? {
        guard let section = backup.range(of: "\t\(pvKey) {") else { return nil }
        let rest = backup[section.upperBound...]
        guard let field = rest.range(of: "\(key) = ") else { return nil }
        return UInt64(rest[field.upperBound...].prefix { $0.isNumber })
    }
}

/// An LV as tests lay it out: segments of extents over PVs given by index (`pv0`, `pv1`…).
public struct LVMTestVolume: Sendable {
    public struct Segment: Sendable {
        public let extents: Int
        /// (PV index, first extent) of each stripe.
        public let stripes: [(pv: Int, start: Int)]
        /// Chunk size in sectors when striped.
        public let stripeSectors: Int
        public init(extents: Int, stripes: [(pv: Int, start: Int)], stripeSectors: Int = 0) {
            self.extents = extents; self.stripes = stripes; self.stripeSectors = stripeSectors
        }
    }

    public let name: String
    public let uuid: String
    public let segments: [Segment]

    public init(name: String, uuid: String, segments: [Segment]) {
        self.name = name; self.uuid = uuid; self.segments = segments
    }

    public var extents: Int { segments.reduce(0) { $0 + $1.extents } }

    /// The LV as metadata text (lvm2 export.c layout).
    public var metadata: String {
        var text = "\t\t\(name) {\n\t\t\tid = \"\(uuid)\"\n\t\t\tstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n\t\t\tflags = []\n"
        text += "\t\t\tsegment_count = \(segments.count)\n"
        var start = 0
        for (i, s) in segments.enumerated() {
            text += "\t\t\tsegment\(i + 1) {\n\t\t\t\tstart_extent = \(start)\n\t\t\t\textent_count = \(s.extents)\n"
            text += "\t\t\t\ttype = \"striped\"\n\t\t\t\tstripe_count = \(s.stripes.count)\n"
            if s.stripes.count > 1 { text += "\t\t\t\tstripe_size = \(s.stripeSectors)\n" }
            text += "\t\t\t\tstripes = [\n" + s.stripes.map { "\t\t\t\t\t\"pv\($0.pv)\", \($0.start)" }.joined(separator: ",\n") + "\n\t\t\t\t]\n\t\t\t}\n"
            start += s.extents
        }
        return text + "\t\t}\n"
    }

    /// Writes `content` (the LV's bytes) into the PVs' extents, one dm chunk at a time: chunk
    /// `c` of a striped segment goes to stripe `c % n`, row `c / n` (Linux dm-stripe.c).
    /// `pvs[i]` is PV `i`; `peStart[i]` its `pe_start` in bytes.
    public func write(_ content: Data, pvs: [LVMImageBuilder.PV], peStart: [UInt64], extentBytes: Int) throws {
        precondition(content.count == extents * extentBytes, "content is not the LV's size")
        var handles: [String: FileHandle] = [:]
        defer { for h in handles.values { try? h.close() } }
        func put(_ bytes: Data, pv: Int, at offset: UInt64) throws {
            let image = pvs[pv].image
            let handle = try handles[image] ?? FileHandle(forUpdating: URL(fileURLWithPath: image))
            handles[image] = handle
            try handle.seek(toOffset: pvs[pv].offset + peStart[pv] + offset)
            try handle.write(contentsOf: bytes)
        }
        var lvOffset = 0
        for segment in segments {
            let length = segment.extents * extentBytes
            let n = segment.stripes.count
            let chunk = n == 1 ? length : segment.stripeSectors * 512
            for c in 0 ..< length / chunk {
                let stripe = segment.stripes[c % n]
                let row = c / n
                let source = content.subdata(in: lvOffset + c * chunk ..< lvOffset + (c + 1) * chunk)
                try put(source, pv: stripe.pv, at: UInt64(stripe.start * extentBytes + row * chunk))
            }
            lvOffset += length
        }
    }
}

/// LVM images built once per run and shared by the suites.
public enum LVMFixtures {
    /// Two drives laid out the CentOS way, VG `centos` over both:
    /// - `sda` (64 MiB, MBR): `sda1` ext2 `/boot` (16 MiB, label BOOT); `sda2` type 8e = PV `pv0`.
    /// - `sdb` (48 MiB, no partition table): the whole disk is PV `pv1`.
    ///
    /// LVs (1 MiB extents): `root` ext4, linear in three segments (pv0 10+8, pv1 5+6, pv0 30+6);
    /// `data-vol` ext4, striped over pv0@38 and pv1@20 (16 extents, 64 KiB chunks); `simple`
    /// ext4 (label SIMPLE), one segment pv1 36+4, made in place with `mke2fs -E offset=`;
    /// `snap`, a snapshot of root (COW store pv0 0+2, hidden `snapshot0`), which must be skipped.
    public struct CentOS: @unchecked Sendable {
        public let builder: LVMImageBuilder
        /// `sda` and `sdb` image paths.
        public let disks: [String]
        public let pvs: [LVMImageBuilder.PV]
        /// `pe_start` of each PV, in bytes.
        public let peStart: [UInt64]
        public let extentBytes: Int
        /// root, data-vol, simple.
        public let volumes: [LVMTestVolume]
        /// LV name → a file holding exactly the bytes the LV must read back.
        public let contents: [String: String]
        public let vgName = "centos"
    }

    public static let sda1 = (start: UInt64(2048 * 512), size: UInt64(32_768 * 512))
    public static let sda2 = (start: UInt64(34_816 * 512), size: UInt64(96_256 * 512))

    private static let cache = Locked<CentOS?>(nil)

    public static func centos() throws -> CentOS {
        try cache.withValue { cached in
            if let cached { return cached }
            let built = try buildCentOS()
            cached = built
            return built
        }
    }

    private static func buildCentOS() throws -> CentOS {
        let builder = try LVMImageBuilder()
        let sda = builder.dir.file("sda.img"), sdb = builder.dir.file("sdb.img")
        try Shell.check("truncate -s 64M \(Shell.quote(sda)) && truncate -s 48M \(Shell.quote(sdb))")
        try Shell.check("sfdisk -q --no-reread --no-tell-kernel \(Shell.quote(sda))",
                        stdin: Data("label: dos\nlabel-id: 0xc0ffee01\nstart=2048, size=32768, type=83\nstart=34816, type=8e\n".utf8))
        try DiskFixtures.makeFS(sda, sda1, type: "ext2", source: try DiskFixtures.smallTree("centos-boot"), extra: "-L BOOT")
        let pvs = [LVMImageBuilder.PV(image: sda, offset: sda2.start, size: sda2.size), LVMImageBuilder.PV(image: sdb)]

        let volumes = [
            LVMTestVolume(name: "root", uuid: "R00tLV-aaaa-bbbb-cccc-dddd-eeee-ffff01", segments: [
                .init(extents: 8, stripes: [(0, 10)]), .init(extents: 6, stripes: [(1, 5)]), .init(extents: 6, stripes: [(0, 30)]),
            ]),
            LVMTestVolume(name: "data-vol", uuid: "DataLV-aaaa-bbbb-cccc-dddd-eeee-ffff02", segments: [
                .init(extents: 16, stripes: [(0, 38), (1, 20)], stripeSectors: 128),
            ]),
            LVMTestVolume(name: "simple", uuid: "SimpLV-aaaa-bbbb-cccc-dddd-eeee-ffff03", segments: [
                .init(extents: 4, stripes: [(1, 36)]),
            ]),
        ]
        let snapshot = """
            \t\tsnap {
            \t\t\tid = "SnapLV-aaaa-bbbb-cccc-dddd-eeee-ffff04"
            \t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
            \t\t\tflags = []
            \t\t\tsegment_count = 1
            \t\t\tsegment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = [ "pv0", 0 ] }
            \t\t}
            \t\tsnapshot0 {
            \t\t\tid = "Snap0L-aaaa-bbbb-cccc-dddd-eeee-ffff05"
            \t\t\tstatus = ["READ", "WRITE"]
            \t\t\tflags = []
            \t\t\tsegment_count = 1
            \t\t\tsegment1 { start_extent = 0 extent_count = 20 type = "snapshot" chunk_size = 8 origin = "root" cow_store = "snap" }
            \t\t}
            """
        let backup = try builder.withLoops(pvs) { loops in
            let backup = try builder.createVG("centos", loops: loops)
            try builder.restore("centos", backup: backup, logicalVolumes: volumes.map(\.metadata).joined() + snapshot, loops: loops)
            return backup
        }
        let peStart = try ["pv0", "pv1"].map { key -> UInt64 in
            guard let sectors = LVMImageBuilder.pvField(backup, pv: key, "pe_start") else {
                throw Shell.Failure(command: "vgcfgbackup", status: 1, stderr: "no pe_start for \(key)")
            }
            return sectors * 512
        }
        let extentBytes = 1 << 20

        var contents: [String: String] = [:]
        for (volume, host) in [(volumes[0], "centos-root"), (volumes[1], "centos-data")] {
            let file = builder.dir.file(volume.name + ".ext4")
            let tree = try DiskFixtures.smallTree(host)
            try Shell.check("mkdir -p \(Shell.quote(tree))/boot")   // where sda1 mounts
            if volume.name == "root" {
                // An installed-looking CentOS 7 root, for inspection: /boot by label, / by mapper name.
                _ = try GuestFixtures.rootTree(tree, hostname: host,
                    osRelease: "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
                    fstab: "/dev/mapper/centos-root /     ext4 defaults 0 0\nLABEL=BOOT /boot ext2 defaults 0 0\n/dev/mapper/centos-swap swap swap defaults 0 0\n")
            }
            try Shell.check("mke2fs -F -q -t ext4 -L \(volume.name.uppercased()) -d \(Shell.quote(tree)) "
                            + "\(Shell.quote(file)) \(volume.extents * extentBytes / 1024)k")
            try volume.write(try Data(contentsOf: URL(fileURLWithPath: file)), pvs: pvs, peStart: peStart, extentBytes: extentBytes)
            contents[volume.name] = file
        }
        // `simple`: made in place, then copied out for comparison.
        let simpleStart = peStart[1] + UInt64(36 * extentBytes)
        try DiskFixtures.makeFS(sdb, (simpleStart, UInt64(4 * extentBytes)), type: "ext4",
                                source: try DiskFixtures.smallTree("centos-simple"), extra: "-L SIMPLE")
        let simple = builder.dir.file("simple.ext4")
        try Shell.check("dd if=\(Shell.quote(sdb)) of=\(Shell.quote(simple)) bs=1M skip=\(simpleStart / UInt64(extentBytes)) count=4 status=none")
        contents["simple"] = simple
        return CentOS(builder: builder, disks: [sda, sdb], pvs: pvs, peStart: peStart, extentBytes: extentBytes,
                      volumes: volumes, contents: contents)
    }
}
