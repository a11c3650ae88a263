import Foundation
import GuestFSBlock
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `RBDSource` (Block/RBD) against the run's one-node Ceph cluster (`CephCluster`): every byte
/// read equals the file that was `rbd import`ed (and what `rbd export` gives back); writes land
/// as the same writes applied to a local copy; snapshots read as they were taken and refuse
/// writing; the exclusive lock refuses a second writer both ways; a missing pool, image or
/// snapshot is one line naming the image.
@Suite(.serialized) struct RBDSourceTests {
    static func cluster() throws -> CephCluster { try CephCluster.shared() }

    static var client: RBDClientOptions {
        get throws { let c = try cluster(); return RBDClientOptions(configurationFile: c.conf, keyring: c.keyring) }
    }

    /// The ext4 sample image (64 MiB) and its qcow2 conversion.
    static func images() throws -> (raw: String, qcow2: String) {
        let raw = try Fixtures.image("ext4", type: "ext4")
        return (raw, try Fixtures.qcow2(raw))
    }

    static func open(_ spec: String, writable: Bool = false, settings: RBDSettings = RBDSettings()) throws -> RBDSource {
        try RBDSource(name: RBDImageName.parse(spec), client: client, writable: writable, settings: settings)
    }

    /// Reads all of `device` in uneven pieces (odd offsets, 1 byte to 3 MiB) and compares.
    static func expectSameBytes(_ device: any BlockDevice, _ expected: Data, _ label: String) throws {
        #expect(device.size == UInt64(expected.count), "\(label): size")
        let sizes = [4096, 1, 3 << 20, 65536 + 7, 1 << 20, 511, 256 << 10]
        var offset = 0, i = 0, mismatches = 0
        var buffer = [UInt8](repeating: 0, count: 3 << 20)
        while offset < expected.count {
            let n = min(sizes[i % sizes.count], expected.count - offset)
            try buffer.withUnsafeMutableBytes { try device.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<n]), at: UInt64(offset)) }
            if !buffer[..<n].elementsEqual(expected[offset..<(offset + n)]) { mismatches += 1 }
            offset += n
            i += 1
        }
        #expect(mismatches == 0, "\(label): \(mismatches) pieces differ from the imported file")
    }

    @Test func readsEqualTheImportedFileAndRbdExport() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "read")
        let dir = try TempDir()
        try c.exportImage(name, to: dir.file("export.raw"))
        let exported = try Data(contentsOf: URL(fileURLWithPath: dir.file("export.raw")))
        let local = try Data(contentsOf: URL(fileURLWithPath: raw))
        #expect(exported == local)
        for inFlight in [1, 16] {
            var settings = RBDSettings()
            settings.inFlight = inFlight
            let source = try Self.open(spec, settings: settings)
            #expect(!source.isWritable && source.displayName == spec)
            try Self.expectSameBytes(source, local, "\(inFlight) in flight")
        }
        // Through the opener, probed as raw: the same bytes.
        var options = ImageOpenOptions()
        options.rbdClient = try Self.client
        try Self.expectSameBytes(try ImageOpener.open(path: spec, options: options), local, "ImageOpener")
    }

    /// Eight threads reading different places at once (the FUSE server's parallel reads): each
    /// gets its own bytes.
    @Test func concurrentReadersEachGetTheirBytes() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (_, spec) = try c.importImage(raw, prefix: "parallel")
        let source = try Self.open(spec)
        let local = try Data(contentsOf: URL(fileURLWithPath: raw))
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            for round in 0..<8 {
                let offset = (t * 8 + round) * (1 << 20) % (local.count - (2 << 20)) + t * 513
                let ok = (try? buffer.withUnsafeMutableBytes { try source.read(into: $0, at: UInt64(offset)) }) != nil
                if !ok || !buffer.elementsEqual(local[offset..<(offset + (1 << 20))]) { failures.withValue { $0 += 1 } }
            }
        }
        #expect(failures.value == 0)
    }

    /// A qcow2 file stored in RBD as it is: opened over the RBD image, its guest bytes equal
    /// qemu-img convert's; given or probed alike; opened read-only even when writing is asked.
    @Test func qcow2StoredInRBD() throws {
        let c = try Self.cluster()
        let (raw, qcow2) = try Self.images()
        let (_, spec) = try c.importImage(qcow2, prefix: "qcow2")
        let local = try Data(contentsOf: URL(fileURLWithPath: raw))
        for format in [ImageFormat.qcow2, nil] {
            var options = ImageOpenOptions(format: format)
            options.rbdClient = try Self.client
            try Self.expectSameBytes(try ImageOpener.open(path: spec, options: options), local, "qcow2 \(format == nil ? "probed" : "given")")
        }
        var writable = ImageOpenOptions(format: .qcow2, writable: true)
        writable.rbdClient = try Self.client
        #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: spec, options: writable) }
    }

    /// Writes through a writable open (unaligned, across object boundaries, pipelined), then
    /// flush and close: `rbd export` equals the same writes applied to a local copy.
    @Test func writesEqualTheSameWritesOnALocalCopy() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "write")
        var expected = try Data(contentsOf: URL(fileURLWithPath: raw))
        let writes: [(offset: Int, count: Int, seed: UInt8)] = [(0, 512, 1), ((4 << 20) - 100, 200, 2), (7, 3 << 20, 3),
                                                                (60 << 20, 1, 4), ((64 << 20) - 4096, 4096, 5)]
        do {
            let source = try Self.open(spec, writable: true)
            #expect(source.isWritable && source.ownsExclusiveLock)
            for w in writes {
                let bytes = (0..<w.count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(w.seed)) }
                try source.writeBytes(bytes, at: UInt64(w.offset))
                expected.replaceSubrange(w.offset..<(w.offset + w.count), with: bytes)
            }
            try source.flush()
            // Reads see the writes at once.
            try Self.expectSameBytes(source, expected, "after writes")
        }
        let dir = try TempDir()
        try c.exportImage(name, to: dir.file("export.raw"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("export.raw"))) == expected)
    }

    /// `rbd snap create`, then writes to the head: the snapshot reads as it was, the head as
    /// written; a writable open of the snapshot is refused in one line.
    @Test func snapshotsReadAsTakenAndAreReadOnly() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "snap")
        try c.rbd("snap create rbd/\(name)@before")
        let original = try Data(contentsOf: URL(fileURLWithPath: raw))
        do {
            let head = try Self.open(spec, writable: true)
            try head.writeBytes([UInt8](repeating: 0xAB, count: 1 << 20), at: 1 << 20)
            try head.flush()
        }
        let snapshot = try Self.open(spec + "@before")
        #expect(!snapshot.isWritable)
        try Self.expectSameBytes(snapshot, original, "snapshot")
        let head = try Self.open(spec)
        #expect(try head.readBytes(at: 1 << 20, count: 16) == [UInt8](repeating: 0xAB, count: 16))
        let refused = #expect(throws: ImageError.self) { _ = try Self.open(spec + "@before", writable: true) }
        #expect(refused?.errno == .readOnlyFileSystem && refused?.description.contains(spec + "@before") == true
                && refused?.description.contains("\n") == false, "\(String(describing: refused))")
    }

    /// The exclusive lock, both ways: while a writable open holds it, a second writable open is
    /// refused and so is `rbd lock add`; a lock added with `rbd lock add` refuses a writable
    /// open until `rbd lock rm`; read-only opens go on meanwhile.
    @Test func exclusiveLockRefusesASecondWriterBothWays() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "lock")
        do {
            let writer = try Self.open(spec, writable: true)
            #expect(writer.ownsExclusiveLock)
            let second = #expect(throws: ImageError.self) { _ = try Self.open(spec, writable: true) }
            #expect(second?.errno == .resourceBusy && second?.description.contains(spec) == true, "\(String(describing: second))")
            let add = try c.rbdResult("lock add rbd/\(name) manual")
            #expect(add.status != 0, "rbd lock add succeeded while imagemount held the lock")
            // A reader is not a writer: it opens, and reads.
            _ = try Self.open(spec).readBytes(at: 0, count: 512)
            // The writer keeps its lock and writes on.
            try writer.writeBytes([1, 2, 3], at: 4096)
            #expect(writer.ownsExclusiveLock)
        }
        // Closed: the lock is free again; an advisory lock then refuses writers.
        try c.rbd("lock add rbd/\(name) manual")
        let advisory = #expect(throws: ImageError.self) { _ = try Self.open(spec, writable: true) }
        #expect(advisory?.errno == .resourceBusy && advisory?.description.contains("rbd lock") == true, "\(String(describing: advisory))")
        let lockers = try c.rbd("lock ls --format json rbd/\(name)")
        let client = try #require(lockers.range(of: #"client\.[0-9]+"#, options: .regularExpression).map { String(lockers[$0]) })
        try c.rbd("lock rm rbd/\(name) manual \(client)")
        _ = try Self.open(spec, writable: true)
    }

    /// An image created without the exclusive-lock feature opens for writing with no lock (as
    /// QEMU's does), and still refuses an advisory lock's image.
    @Test func imagesWithoutExclusiveLockOpenUnlocked() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "nolock", features: "layering")
        do {
            let writer = try Self.open(spec, writable: true)
            #expect(!writer.ownsExclusiveLock)
            try writer.writeBytes([9], at: 0)
        }
        try c.rbd("lock add rbd/\(name) manual")
        #expect(throws: ImageError.self) { _ = try Self.open(spec, writable: true) }
    }

    @Test(arguments: [("rbd:nosuchpool/x", "pool 'nosuchpool' does not exist"),
                      ("rbd:rbd/no-such-image", "image 'no-such-image' does not exist in pool 'rbd'")])
    func missingPoolOrImageIsOneLine(_ spec: String, _ reason: String) throws {
        _ = try Self.cluster()
        let error = #expect(throws: ImageError.self) { _ = try Self.open(spec) }
        #expect(error?.errno == .noSuchFileOrDirectory && error?.description == "\(spec): RBD open: \(reason)", "\(String(describing: error))")
    }

    @Test func missingSnapshotIsNamed() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (_, spec) = try c.importImage(raw, prefix: "nosnap")
        let error = #expect(throws: ImageError.self) { _ = try Self.open(spec + "@nope") }
        #expect(error?.description.contains("has no snapshot 'nope'") == true, "\(String(describing: error))")
    }

    /// A monitor that is not there: connecting gives up within the timeout, in one line.
    @Test func unreachableMonitorTimesOut() throws {
        var settings = RBDSettings()
        settings.timeoutSeconds = 3
        let start = ContinuousClock.now
        let error = #expect(throws: ImageError.self) {
            _ = try RBDSource(name: RBDImageName.parse("rbd://127.0.0.1:9/rbd/x"), client: RBDClientOptions(configurationFile: "/dev/null"),
                              writable: false, settings: settings)
        }
        #expect(ContinuousClock.now - start < .seconds(20))
        #expect(error?.description.hasPrefix("rbd://127.0.0.1:9/rbd/x: RBD connect: cannot connect") == true, "\(String(describing: error))")
    }
}
