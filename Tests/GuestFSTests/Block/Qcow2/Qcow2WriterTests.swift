import Dispatch
import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// The writer against a model: the same random writes applied to a qcow2 image and to a raw copy
/// of it must leave `qemu-img compare` saying identical and `qemu-img check` clean, with snapshots
/// and backing files untouched.
@Suite(.serialized) struct Qcow2WriterTests {
    /// One random write: data from a seed, or zeros.
    struct Op {
        var offset: UInt64
        var length: Int
        var seed: UInt64?
    }

    /// Writes that straddle (sub)clusters, cover whole ones, hit the last bytes of the disk, and
    /// write zeros a third of the time.
    static func randomOps(count: Int, size: UInt64, cluster: Int, subcluster: Int, seed: UInt64) -> [Op] {
        var rng = SplitMix64(seed: seed)
        var ops: [Op] = []
        for _ in 0..<count {
            let offset: UInt64, length: Int
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: // whole clusters
                let n = Int.random(in: 1...4, using: &rng)
                let c = UInt64.random(in: 0..<(size / UInt64(cluster)), using: &rng)
                offset = c * UInt64(cluster)
                length = n * cluster
            case 1: // whole subclusters
                let c = UInt64.random(in: 0..<(size / UInt64(subcluster)), using: &rng)
                offset = c * UInt64(subcluster)
                length = subcluster * Int.random(in: 1...3, using: &rng)
            case 2: // straddling a cluster edge
                let edge = UInt64.random(in: 1..<(size / UInt64(cluster)), using: &rng) * UInt64(cluster)
                offset = edge - UInt64.random(in: 1...UInt64(min(cluster, 5000)), using: &rng)
                length = Int.random(in: 2...(2 * cluster), using: &rng)
            case 3: // the end of the disk
                length = Int.random(in: 1...9000, using: &rng)
                offset = size - UInt64(length)
            case 4: // larger
                offset = UInt64.random(in: 0..<size, using: &rng)
                length = Int.random(in: 1...(300 << 10), using: &rng)
            default: // small, anywhere
                offset = UInt64.random(in: 0..<size, using: &rng)
                length = Int.random(in: 1...3000, using: &rng)
            }
            let clipped = Int(min(UInt64(length), size - min(offset, size - 1)))
            let zero = Int.random(in: 0..<3, using: &rng) == 0
            ops.append(Op(offset: min(offset, size - 1), length: max(1, clipped), seed: zero ? nil : rng.next()))
        }
        return ops
    }

    static func bytes(_ seed: UInt64, _ count: Int) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            let v = rng.next()
            for b in 0..<8 where i < count { out[i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * b)); i += 1 }
        }
        return out
    }

    static func apply(_ ops: [Op], to device: any BlockDevice, flushEvery: Int = 97) throws {
        for (i, op) in ops.enumerated() {
            if let seed = op.seed {
                try device.writeBytes(bytes(seed, op.length), at: op.offset)
            } else {
                try device.writeZeros(at: op.offset, length: op.length)
            }
            if i % flushEvery == flushEvery - 1 { try device.flush() }
        }
    }

    static func sha(_ path: String) throws -> String { try Shell.check("sha256sum \(Shell.quote(path)) | cut -c1-64") }

    /// How qemu-img names a copy of a fixture: its path, or for encrypted fixtures the secret
    /// object and `--image-opts` (Qcow2EncryptedFixtures' passphrase).
    static func qemuName(_ path: String, encrypted: Bool) -> String {
        guard encrypted else { return Shell.quote(path) }
        return "\(Qcow2EncryptedFixtures.secretObject()) --image-opts driver=qcow2,file.filename=\(Shell.quote(path)),encrypt.key-secret=sec0"
    }

    /// Copies fixture `name` under a new name in the fixture folder (so relative backing names
    /// still resolve), runs `ops` on it and on a raw copy, and checks everything qemu-img can.
    /// `encrypted`: the fixture is one of Qcow2EncryptedFixtures, opened with its passphrase.
    func run(_ name: String, ops count: Int, seed: UInt64, snapshots: [String] = [], backingFiles: [String] = [],
             encrypted: Bool = false) throws {
        let folder = encrypted ? try Qcow2EncryptedFixtures.get().dir : try Qcow2Fixtures.get().dir
        let path = { (file: String) in folder.file(file) }
        let copy = path("w-\(seed)-\(name)")
        let raw = copy + ".model.raw"
        let q = Self.qemuName(copy, encrypted: encrypted)
        try Shell.check("cp \(Shell.quote(path(name))) \(Shell.quote(copy)) && qemu-img convert \(q) -O raw \(Shell.quote(raw))")
        defer { try? Shell.check("rm -f \(Shell.quote(copy)) \(Shell.quote(raw)) \(Shell.quote(copy)).snap-*") }
        for s in snapshots {
            try Shell.check("qemu-img convert -l snapshot.name=\(s) \(q) -O raw \(Shell.quote(copy)).snap-\(s)")
        }
        let backingSums = try backingFiles.map { try Self.sha(path($0)) }

        do {
            let options = ImageOpenOptions(writable: true, keys: encrypted ? Qcow2EncryptionTests.keys() : nil)
            let image = try ImageOpener.open(path: copy, options: options)
            #expect(image.isWritable)
            let g = (image as! Qcow2Image).metadata.geometry
            let ops = Self.randomOps(count: count, size: image.size, cluster: g.clusterSize, subcluster: g.subclusterSize, seed: seed)
            let model = try RawImage(path: raw, writable: true)
            try Self.apply(ops, to: image)
            try Self.apply(ops, to: model)
            try model.flush()
            // Reads through the writer's caches agree with the model before close too.
            for op in ops.suffix(50) {
                let got = try image.readBytes(at: op.offset, count: op.length)
                let want = try model.readBytes(at: op.offset, count: op.length)
                #expect(got == want, "\(name): read-back at \(op.offset)+\(op.length)")
            }
            try (image as! Qcow2Image).close()
        }
        // With --image-opts, qemu-img compare takes both images as option strings.
        let rawName = encrypted ? "driver=raw,file.filename=\(Shell.quote(raw))" : "-f qcow2 -F raw \(q) \(Shell.quote(raw))"
        let compare = try Shell.run("qemu-img compare \(encrypted ? q + " " + rawName : rawName)")
        #expect(compare.status == 0, "\(name): qemu-img compare: \(compare.text) \(compare.stderr)")
        let check = try Shell.run("qemu-img check \(q)")
        #expect(check.status == 0, "\(name): qemu-img check: \(check.text) \(check.stderr)")
        #expect(check.text.contains("No errors were found"), "\(name): \(check.text)")
        for s in snapshots {
            let now = "\(copy).snapnow-\(s)"
            let r = try Shell.run("qemu-img convert -l snapshot.name=\(s) \(q) -O raw \(Shell.quote(now)) && cmp \(Shell.quote(copy)).snap-\(s) \(Shell.quote(now)); rm -f \(Shell.quote(now))")
            #expect(r.status == 0, "\(name): snapshot \(s) changed: \(r.text) \(r.stderr)")
        }
        for (file, sum) in zip(backingFiles, backingSums) {
            #expect(try Self.sha(path(file)) == sum, "\(name): backing file \(file) changed")
        }
        // Our own check agrees with qemu-img's (metadata only: no key needed, as for qemu-img check).
        var checkOptions = ImageOpenOptions()
        checkOptions.metadataOnly = true
        let ours = try Qcow2Image(device: try RawImage(path: copy, writable: false), options: checkOptions).check()
        #expect(ours.corruptions == 0 && ours.leaks == 0, "\(name): imagemount check: \(ours.messages.prefix(5))")
    }

    @Test func plain64k() throws { try run("v3-64k.qcow2", ops: 1500, seed: 1) }
    @Test func smallClusters() throws { try run("v3-512.qcow2", ops: 800, seed: 2) }
    @Test func version2() throws { try run("v2-64k.qcow2", ops: 800, seed: 3) }
    @Test func hugeClusters() throws { try run("v3-2m.qcow2", ops: 200, seed: 4) }
    @Test func compressed() throws { try run("zlib-64k.qcow2", ops: 1500, seed: 5) }
    @Test func compressedZstd4k() throws { try run("zlib-4k.qcow2", ops: 800, seed: 6) }
    @Test func extendedL2() throws { try run("extl2-64k.qcow2", ops: 1000, seed: 7) }
    @Test func extendedL2WithBacking() throws { try run("extl2-backed.qcow2", ops: 1500, seed: 8, backingFiles: ["back.raw"]) }
    @Test func backingChain() throws { try run("top.qcow2", ops: 1500, seed: 9, backingFiles: ["mid.qcow2", "base.raw"]) }
    @Test func internalSnapshots() throws { try run("snap.qcow2", ops: 1500, seed: 10, snapshots: ["one", "two"]) }

    // LUKS-encrypted images: every data write is encrypted under its host offset, and copies on
    // write (from a backing file, a snapshot's shared cluster, a subcluster's neighbours) are
    // encrypted again at their new place.
    @Test(arguments: Qcow2EncryptedFixtures.luksImages.map(\.name))
    func encrypted(_ name: String) throws { try run(name, ops: 600, seed: 11, encrypted: true) }
    @Test func encryptedExtendedL2WithBacking() throws {
        try run(Qcow2EncryptedFixtures.extendedL2Image, ops: 800, seed: 12, backingFiles: ["src.raw"], encrypted: true)
    }
    @Test func encryptedWithSnapshot() throws {
        try run(Qcow2EncryptedFixtures.snapshotImage, ops: 800, seed: 13, snapshots: ["one"], encrypted: true)
    }

    /// refcount_bits from 1 to 64, and a refcount table that must grow (512-byte clusters, a
    /// one-cluster table that covers little).
    @Test(arguments: [1, 2, 8, 32, 64]) func refcountWidths(bits: Int) throws {
        let f = try Qcow2Fixtures.get()
        let name = "rc\(bits).qcow2"
        try Shell.check("cd \(Shell.quote(f.dir.path)) && rm -f \(name) && qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=\(bits) \(name) 8M")
        try run(name, ops: 600, seed: UInt64(100 + bits))
    }

    /// A corrupt image is never opened for writing, and the message says why.
    @Test func refusesCorruptImage() throws {
        let f = try Qcow2Fixtures.get()
        let path = f.path("corrupt-w.qcow2")
        try Shell.check("cp \(Shell.quote(f.path("v3-64k.qcow2"))) \(Shell.quote(path))")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try RawImage(path: path, writable: true).writeBytes([0, 0, 0, 0, 0, 0, 0, 2], at: 72)
        #expect {
            _ = try ImageOpener.open(path: path, format: nil, writable: true)
        } throws: { error in
            "\(error)".contains("marked corrupt")
        }
        // Read-only still works.
        _ = try ImageOpener.open(path: path, format: nil, writable: false)
    }

    /// Writes from several threads at once (FUSE writes arrive in parallel), each in its own
    /// quarter of the disk, with readers running alongside.
    @Test func parallelWriters() throws {
        let f = try Qcow2Fixtures.get()
        let path = f.path("parallel-w.qcow2"), raw = path + ".raw"
        try Shell.check("rm -f \(Shell.quote(path)) && qemu-img create -q -f qcow2 -o cluster_size=4096 \(Shell.quote(path)) 32M && truncate -s 32M \(Shell.quote(raw))")
        defer { try? Shell.check("rm -f \(Shell.quote(path)) \(Shell.quote(raw))") }
        let quarter = UInt64(32 << 20) / 4
        let lists = (0..<4).map { t in
            Self.randomOps(count: 300, size: quarter, cluster: 4096, subcluster: 4096, seed: 500 + UInt64(t))
                .map { Op(offset: $0.offset + UInt64(t) * quarter, length: $0.length, seed: $0.seed) }
        }
        let failures = Locked<[String]>([])
        do {
        let image = try ImageOpener.open(path: path, format: nil, writable: true)
        DispatchQueue.concurrentPerform(iterations: 6) { t in
            do {
                if t < 4 { try Self.apply(lists[t], to: image, flushEvery: 50) } else {
                    for i in 0..<300 { _ = try image.readBytes(at: UInt64(i * 100_003) % (image.size - 70_000), count: 70_000) }
                }
            } catch { failures.withValue { $0.append("\(error)") } }
        }
        #expect(failures.value.isEmpty, "\(failures.value)")
        try (image as! Qcow2Image).close()
        }
        let model = try RawImage(path: raw, writable: true)
        for list in lists { try Self.apply(list, to: model) }
        #expect(try Shell.run("qemu-img compare -f qcow2 -F raw \(Shell.quote(path)) \(Shell.quote(raw))").status == 0)
        #expect(try Shell.run("qemu-img check \(Shell.quote(path))").status == 0)
    }

    /// An image left dirty with a refcount that is too low and a leaked cluster gets its
    /// refcounts rebuilt when opened for writing, as `qemu-img check -r all` would.
    @Test func dirtyImageIsRepairedBeforeWriting() throws {
        let f = try Qcow2Fixtures.get()
        let path = f.path("dirty-w.qcow2")
        try Shell.check("rm -f \(Shell.quote(path)) && qemu-img create -q -f qcow2 \(Shell.quote(path)) 16M && qemu-io -f qcow2 -c 'write -P 0x42 1M 128k' \(Shell.quote(path)) >/dev/null")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let file = try RawImage(path: path, writable: true)
            let table = UInt64(bigEndian: try file.readBytes(at: 48, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            let block = UInt64(bigEndian: try file.readBytes(at: table, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            let mapped = try Qcow2Image(device: try RawImage(path: path, writable: false)).mapping(guestOffset: 1 << 20, length: 1)
            guard case .data(let host) = mapped.kind else { Issue.record("1 MiB is not allocated: \(mapped)"); return }
            try file.writeBytes([0, 0], at: block + (host >> 16) * 2)               // 0 for a cluster in use
            try file.writeBytes([0, 0, 0, 0, 0, 0, 0, 1], at: 72)                  // dirty
        }
        #expect(try Shell.run("qemu-img check \(Shell.quote(path))").status == 2)
        do {
            let image = try ImageOpener.open(path: path, format: nil, writable: true)
            try image.writeBytes([1, 2, 3], at: 5 << 20)
            try (image as! Qcow2Image).close()
        }
        let check = try Shell.run("qemu-img check \(Shell.quote(path))")
        #expect(check.status == 0, "\(check.text) \(check.stderr)")
        #expect(try Shell.check("qemu-io -f qcow2 -c 'read -P 0x42 1M 128k' \(Shell.quote(path))").contains("read 131072/131072"))
    }

    /// A copy of the default LUKS fixture (in its folder) whose first LUKS header cluster has
    /// refcount 0, with the dirty bit set when `dirty`.
    static func luksCopyWithHeaderRefcountZeroed(_ name: String, dirty: Bool) throws -> (String, Qcow2EncryptionHeaderPointer) {
        let f = try Qcow2EncryptedFixtures.get()
        let path = f.path(name)
        try Shell.check("rm -f \(Shell.quote(path)) && cp \(Shell.quote(f.path("luks-default.qcow2"))) \(Shell.quote(path))")
        let file = try RawImage(path: path, writable: true)
        let meta = try Qcow2Metadata.read(from: file)
        let header = try #require(meta.extensions.encryptionHeader)
        let table = UInt64(bigEndian: try file.readBytes(at: 48, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let block = UInt64(bigEndian: try file.readBytes(at: table, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        try file.writeBytes([0, 0], at: block + (header.offset >> UInt64(meta.geometry.clusterBits)) * 2)
        if dirty { try file.writeBytes([0, 0, 0, 0, 0, 0, 0, 1], at: 72) }
        try file.flush()
        return (path, header)
    }

    /// A dirty LUKS image whose LUKS header cluster lost its refcount: the repair before writing
    /// counts the header's clusters (from the FDE header extension) and restores it, and the
    /// image still opens with its key afterwards.
    @Test func dirtyEncryptedImageKeepsItsLUKSHeader() throws {
        let (path, _) = try Self.luksCopyWithHeaderRefcountZeroed("dirty-luks-w.qcow2", dirty: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let q = Self.qemuName(path, encrypted: true)
        #expect(try Shell.run("qemu-img check \(q)").status == 2)
        do {
            let image = try ImageOpener.open(path: path, options: ImageOpenOptions(writable: true, keys: Qcow2EncryptionTests.keys()))
            try image.writeBytes([UInt8](repeating: 0xE5, count: 70_000), at: 2 << 20)
            try (image as! Qcow2Image).close()
        }
        let check = try Shell.run("qemu-img check \(q)")
        #expect(check.status == 0, "\(check.text) \(check.stderr)")
        #expect(try Shell.check("qemu-io \(q) -c 'read -P 0xe5 2M 70000'").contains("read 70000/70000"))
    }

    /// A clean (not dirty) LUKS image whose header cluster lost its refcount: the allocator hands
    /// that cluster out, and the overlap check refuses the data write before the key material is
    /// overwritten; the image is marked corrupt and still unlocks and reads with qemu-io.
    @Test func damagedRefcountNeverLetsDataOverwriteTheLUKSHeader() throws {
        let (path, header) = try Self.luksCopyWithHeaderRefcountZeroed("header-guard-w.qcow2", dirty: false)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let q = Self.qemuName(path, encrypted: true)
        let before = try RawImage(path: path, writable: false).readBytes(at: header.offset, count: Int(header.length))
        do {    // closed (and its image locks dropped) before qemu-io looks
            let image = try ImageOpener.open(path: path, options: ImageOpenOptions(writable: true, corruptionLog: { _ in },
                                                                                    keys: Qcow2EncryptionTests.keys()))
            #expect {
                try image.writeBytes([UInt8](repeating: 0xE5, count: 65536), at: 2 << 20)
                try image.flush()
            } throws: { error in
                (error as? ImageError)?.description.contains("LUKS encryption header") == true
            }
            try? (image as! Qcow2Image).close()
        }
        #expect(try RawImage(path: path, writable: false).readBytes(at: header.offset, count: Int(header.length)) == before)
        let read = try Shell.run("qemu-io -r \(q) -c 'read 0 64k'")
        #expect(read.status == 0, "\(read.text) \(read.stderr)")
        #expect(read.text.contains("read 65536/65536"), "\(read.text) \(read.stderr)")
    }

    /// Lazy refcounts: dirty while open, clean after close; a dirty image gets its refcounts
    /// rebuilt when opened for writing.
    @Test func lazyRefcountsAndDirtyBit() throws {
        let f = try Qcow2Fixtures.get()
        let path = f.path("lazy-w.qcow2")
        try Shell.check("rm -f \(Shell.quote(path)) && qemu-img create -q -f qcow2 -o lazy_refcounts=on \(Shell.quote(path)) 16M")
        defer { try? FileManager.default.removeItem(atPath: path) }
        func dirty() throws -> Bool { try RawImage(path: path, writable: false).readBytes(at: 79, count: 1)[0] & 1 != 0 }
        do {
            let image = try ImageOpener.open(path: path, format: nil, writable: true)
            #expect(try dirty())
            try image.writeBytes([UInt8](repeating: 7, count: 100_000), at: 12345)
            try (image as! Qcow2Image).close()
        }
        #expect(try !dirty())
        #expect(try Shell.run("qemu-img check \(Shell.quote(path))").status == 0)
        // Leak a cluster's worth of refcount by hand, mark dirty: opening for writing repairs it.
        try Shell.check("qemu-io -f qcow2 -c 'write -P 9 1M 64k' \(Shell.quote(path)) >/dev/null")
        try RawImage(path: path, writable: true).writeBytes([0, 0, 0, 0, 0, 0, 0, 1], at: 72)
        let image = try Qcow2Image(device: try RawImage(path: path, writable: false))
        _ = image
        do {
            let w = try ImageOpener.open(path: path, format: nil, writable: true)
            try (w as! Qcow2Image).close()
        }
        let check = try Shell.run("qemu-img check \(Shell.quote(path))")
        #expect(check.status == 0, "\(check.text)")
        #expect(try !dirty())
    }
}
