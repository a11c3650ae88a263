import Foundation
import GuestFSBlock
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `NBDSource` (Block/NBD) against real servers: every byte read equals `qemu-img convert -O
/// raw` of the image the server serves; writes land in the image as the same writes applied to
/// a raw copy; read-only exports, dead and silent servers fail with one line naming the URI.
@Suite struct NBDSourceTests {
    /// The ext4 sample image and its qcow2 conversion (64 MiB).
    static func images() throws -> (raw: String, qcow2: String) {
        let raw = try Fixtures.image("ext4", type: "ext4")
        return (raw, try Fixtures.qcow2(raw))
    }

    /// What `qemu-img convert -O raw` makes of `image` (the oracle of DESIGN.md §5).
    static func oracle(_ image: String, in dir: TempDir) throws -> Data {
        let out = dir.file("oracle-\(UUID().uuidString).raw")
        try Shell.check("qemu-img convert -O raw \(Shell.quote(image)) \(Shell.quote(out))")
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }

    /// Reads all of `device` in uneven pieces (an odd offset, sizes from 1 byte to 3 MiB, so
    /// both single requests and pipelined ones are used) and compares with `expected`.
    static func expectSameBytes(_ device: any BlockDevice, _ expected: Data, _ label: String) throws {
        #expect(device.size == UInt64(expected.count), "\(label): size")
        let sizes = [4096, 1, 3 << 20, 65536 + 7, 1 << 20, 511, 256 << 10]
        var offset = 0, i = 0
        var buffer = [UInt8](repeating: 0, count: 3 << 20)
        var mismatches = 0
        while offset < expected.count {
            let n = min(sizes[i % sizes.count], expected.count - offset)
            try buffer.withUnsafeMutableBytes { try device.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<n]), at: UInt64(offset)) }
            if buffer[..<n].elementsEqual(expected[offset..<(offset + n)]) == false { mismatches += 1 }
            offset += n
            i += 1
        }
        #expect(mismatches == 0, "\(label): \(mismatches) pieces differ from qemu-img convert -O raw")
    }

    /// The servers of the brief, each serving the sample image one way: (label, server, the
    /// format to give, the image whose conversion is expected).
    @Test(arguments: ["qemu-nbd -f qcow2", "nbdkit file raw", "nbdkit file qcow2 --format=qcow2",
                      "nbdkit file qcow2 probed", "nbdkit delay", "nbdkit tcp"])
    func readsEqualQemuImgConvert(_ kind: String) throws {
        let (raw, qcow2) = try Self.images()
        let dir = try TempDir()
        let server: NBDServer, format: ImageFormat?, served: String
        switch kind {
        case "qemu-nbd -f qcow2": (server, format, served) = (try .qemuNBD(qcow2, format: "qcow2", writable: false), nil, qcow2)
        case "nbdkit file raw": (server, format, served) = (try .nbdkit("file file=\(Shell.quote(raw))"), .raw, raw)
        case "nbdkit file qcow2 --format=qcow2": (server, format, served) = (try .nbdkit("file file=\(Shell.quote(qcow2))"), .qcow2, qcow2)
        case "nbdkit file qcow2 probed": (server, format, served) = (try .nbdkit("file file=\(Shell.quote(qcow2))"), nil, qcow2)
        case "nbdkit delay": (server, format, served) = (try .nbdkit("--filter=delay file file=\(Shell.quote(raw)) rdelay=1ms"), nil, raw)
        default: (server, format, served) = (try .nbdkit("file file=\(Shell.quote(raw))", tcp: true), nil, raw)
        }
        defer { server.stop() }
        let device = try ImageOpener.open(path: server.uri, options: ImageOpenOptions(format: format))
        try Self.expectSameBytes(device, try Self.oracle(served, in: dir), kind)
        #expect(!device.isWritable)
    }

    /// Many requests in flight (the default 16) and one at a time read the same bytes; with a
    /// 40 ms delay per read request, 16 requests of 256 KiB take one round trip or so pipelined
    /// and sixteen one at a time: the pipelined read must be several times faster.
    @Test func pipelinedReadsOverlapTheirRoundTrips() throws {
        let (raw, _) = try Self.images()
        let server = try NBDServer.nbdkit("--filter=delay file file=\(Shell.quote(raw)) rdelay=40ms")
        defer { server.stop() }
        var one = NBDSettings(), many = NBDSettings()
        one.inFlight = 1
        many.inFlight = 16
        // Every byte read (the range holds holes, which block status would not read at all).
        one.blockStatus = false
        many.blockStatus = false
        let serial = try NBDSource(uri: server.uri, writable: false, settings: one)
        let pipelined = try NBDSource(uri: server.uri, writable: false, settings: many)
        var a = [UInt8](repeating: 0, count: 4 << 20), b = a
        let clock = ContinuousClock()
        let tSerial = try clock.measure { try a.withUnsafeMutableBytes { try serial.read(into: $0, at: 8 << 20) } }
        let tPipelined = try clock.measure { try b.withUnsafeMutableBytes { try pipelined.read(into: $0, at: 8 << 20) } }
        #expect(a == b)
        #expect(a == Array(try Data(contentsOf: URL(fileURLWithPath: raw))[(8 << 20)..<(12 << 20)]))
        // Serial: 16 × 40 ms at least. Pipelined: about 40 ms; a third of serial leaves room for a busy machine.
        #expect(tSerial >= .milliseconds(640), "\(tSerial)")
        #expect(tPipelined * 3 < tSerial, "pipelined \(tPipelined) vs one at a time \(tSerial)")
    }

    /// Writes through a writable qemu-nbd export of a raw copy land exactly as the same writes
    /// applied to another copy with pwrite (compared byte for byte once the server has exited).
    @Test func writesLandAsOnARawCopy() throws {
        let (raw, _) = try Self.images()
        let dir = try TempDir()
        let served = dir.file("served.raw"), reference = dir.file("reference.raw")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(served)) && cp \(Shell.quote(raw)) \(Shell.quote(reference))")
        let server = try NBDServer.qemuNBD(served, format: "raw", writable: true)
        defer { server.stop() }
        let device = try ImageOpener.open(path: server.uri, options: ImageOpenOptions(format: .raw, writable: true))
        #expect(device.isWritable)
        let handle = try #require(FileHandle(forUpdatingAtPath: reference))
        var rng = SplitMix64(seed: 21)
        // Small and unaligned, and one of 5 MiB + 3 (pipelined writes).
        let writes: [(offset: UInt64, count: Int)] = [(0, 512), (1_000_001, 17), (4 << 20, (5 << 20) + 3), (63 << 20, 1 << 20), (12345, 1)]
        for w in writes {
            let bytes = (0..<w.count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            try device.writeBytes(bytes, at: w.offset)
            try handle.seek(toOffset: w.offset)
            handle.write(Data(bytes))
        }
        try device.flush()
        try handle.close()
        // Read back through the server before it goes.
        try Self.expectSameBytes(device, try Data(contentsOf: URL(fileURLWithPath: reference)), "read back")
        server.stop()
        let cmp = try Shell.run("cmp \(Shell.quote(served)) \(Shell.quote(reference))")
        #expect(cmp.status == 0, "\(cmp.text)\(cmp.stderr)")
    }

    /// nbdkit's memory plugin: a blank writable export; what is written reads back, the rest is zeros.
    @Test func memoryExportReadsBackWhatWasWritten() throws {
        let server = try NBDServer.nbdkit("memory 64M")
        defer { server.stop() }
        let device = try NBDSource(uri: server.uri, writable: true)
        #expect(device.size == 64 << 20)
        let pattern = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try device.writeBytes(pattern, at: 777)
        try device.flush()
        #expect(try device.readBytes(at: 777, count: pattern.count) == pattern)
        #expect(try device.readBytes(at: 0, count: 777) == [UInt8](repeating: 0, count: 777))
        #expect(try device.readBytes(at: (64 << 20) - 10, count: 10) == [UInt8](repeating: 0, count: 10))
        // Past the end: refused before anything is sent.
        #expect(throws: ImageError.self) { try device.readBytes(at: (64 << 20) - 1, count: 2) }
    }

    /// A writable open of an export the server serves read-only (qemu-nbd -r) is refused at once.
    @Test func readOnlyExportRefusesAWritableOpen() throws {
        let (_, qcow2) = try Self.images()
        let server = try NBDServer.qemuNBD(qcow2, format: "qcow2", writable: false)
        defer { server.stop() }
        do {
            _ = try ImageOpener.open(path: server.uri, options: ImageOpenOptions(writable: true))
            Issue.record("a read-only export was opened for writing")
        } catch let e as ImageError {
            #expect(e.errno == .readOnlyFileSystem)
            #expect(e.description.contains(server.uri) && e.description.contains("read-only"), "\(e.description)")
            #expect(!e.description.contains("\n"))
        }
        // Read-only it opens (and the server, --persistent, takes the second client).
        let device = try ImageOpener.open(path: server.uri, options: ImageOpenOptions())
        #expect(!device.isWritable)
        #expect(throws: ImageError.self) { try device.writeBytes([1], at: 0) }
    }

    /// A server killed mid-session: the next read fails at once (no hang) with one line naming
    /// the URI, and so does every read after it.
    @Test func killedServerFailsTheNextReadQuickly() throws {
        let (raw, _) = try Self.images()
        let server = try NBDServer.nbdkit("file file=\(Shell.quote(raw))")
        defer { server.stop() }
        let device = try NBDSource(uri: server.uri, writable: false)
        _ = try device.readBytes(at: 0, count: 4096)
        server.kill()
        let clock = ContinuousClock()
        for _ in 0..<2 {
            let start = clock.now
            do {
                _ = try device.readBytes(at: 1 << 20, count: 1 << 20)
                Issue.record("a read from a dead server succeeded")
            } catch let e as ImageError {
                #expect(e.errno == .ioError)
                #expect(e.description.hasPrefix(server.uri), "\(e.description)")
                #expect(!e.description.contains("\n"))
            }
            #expect(clock.now - start < .seconds(5))
        }
    }

    /// A server that stops answering (SIGSTOP, socket still open) fails the read after the
    /// timeout instead of hanging it; later reads fail at once.
    @Test func silentServerTimesOut() throws {
        let (raw, _) = try Self.images()
        let server = try NBDServer.nbdkit("file file=\(Shell.quote(raw))")
        defer { server.stop() }
        var settings = NBDSettings()
        settings.timeoutMilliseconds = 1000
        let device = try NBDSource(uri: server.uri, writable: false, settings: settings)
        _ = try device.readBytes(at: 0, count: 4096)
        server.pause()
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try device.readBytes(at: 1 << 20, count: 1 << 20)
            Issue.record("a read from a stopped server succeeded")
        } catch let e as ImageError {
            #expect(e.description.contains(server.uri) && e.description.contains("no reply"), "\(e.description)")
        }
        let waited = clock.now - start
        #expect(waited >= .milliseconds(900) && waited < .seconds(10), "\(waited)")
        #expect(throws: ImageError.self) { try device.readBytes(at: 0, count: 512) }
    }

    /// The probing policy over NBD: a probed qcow2 on an export may not open the host backing
    /// file it names (whatever the export is called: its name is the server's), `--format`
    /// allows it, and a relative backing name has nothing to resolve against and is refused.
    @Test func probedQcow2OnAnExportOpensNoHostBackingFile() throws {
        let (raw, _) = try Self.images()
        let dir = try TempDir()
        let absolute = dir.file("abs.qcow2"), relative = dir.file("rel.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 -b \(Shell.quote(raw)) -F raw \(Shell.quote(absolute))")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(dir.file("base.raw"))) && cd \(Shell.quote(dir.path)) && qemu-img create -q -f qcow2 -b base.raw -F raw rel.qcow2")
        let server = try NBDServer.nbdkit("file file=\(Shell.quote(absolute))")
        defer { server.stop() }
        do {
            _ = try ImageOpener.open(path: server.uri(export: "vm.qcow2"), options: ImageOpenOptions())
            Issue.record("a probed qcow2 on an export opened its host backing file")
        } catch let e as ImageError {
            #expect(e.errno == .notPermitted && e.description.contains("--format=qcow2"), "\(e.description)")
        }
        let vouched = try ImageOpener.open(path: server.uri, options: ImageOpenOptions(format: .qcow2))
        try Self.expectSameBytes(vouched, try Self.oracle(absolute, in: dir), "--format=qcow2 with a backing file")

        let relServer = try NBDServer.nbdkit("file file=\(Shell.quote(relative))")
        defer { relServer.stop() }
        do {
            _ = try ImageOpener.open(path: relServer.uri, options: ImageOpenOptions(format: .qcow2))
            Issue.record("a relative backing name of an image on an export was opened")
        } catch let e as ImageError {
            #expect(e.errno == .notSupported, "\(e.description)")
            #expect(e.description.contains("backing file"), "\(e.description)")
        }
    }

    /// qcow2 on an export is read-only (its writer grows the file; an export cannot grow).
    @Test func writableQcow2OnAnExportIsRefused() throws {
        let (_, qcow2) = try Self.images()
        let dir = try TempDir()
        let copy = dir.file("w.qcow2")
        try Shell.check("cp \(Shell.quote(qcow2)) \(Shell.quote(copy))")
        let server = try NBDServer.nbdkit("file file=\(Shell.quote(copy))")
        defer { server.stop() }
        do {
            _ = try ImageOpener.open(path: server.uri, options: ImageOpenOptions(format: .qcow2, writable: true))
            Issue.record("a qcow2 on an export was opened for writing")
        } catch let e as ImageError {
            #expect(e.errno == .notSupported && e.description.contains("qemu-nbd -f qcow2"), "\(e.description)")
        }
    }

    /// What libnbd may not be asked for: vsock, ssh, other schemes; too long, control characters.
    @Test(arguments: ["nbd+vsock:///", "nbds+vsock://2/x", "nbd+ssh://host/x", "nbd+unix:///x?socket=/tmp/a\nb"])
    func refusedURIs(_ uri: String) throws {
        do {
            _ = try ImageOpener.open(path: uri, options: ImageOpenOptions())
            Issue.record("\(uri) was opened")
        } catch let e as ImageError {
            #expect(e.errno == .invalidArgument, "\(e.description)")
            #expect(e.structure == "NBD URI")
        }
        #expect(throws: ImageError.self) { try NBDSource(uri: "nbd://" + String(repeating: "a", count: 9000), writable: false) }
    }

    /// No server there: a one-line error naming the URI, quickly.
    @Test func nothingListeningFailsToConnect() throws {
        let dir = try TempDir()
        let uri = "nbd+unix:///?socket=\(dir.file("none.sock"))"
        do {
            _ = try NBDSource(uri: uri, writable: false)
            Issue.record("connected to nothing")
        } catch let e as ImageError {
            #expect(e.description.hasPrefix(uri) && e.structure == "NBD connect", "\(e.description)")
        }
    }
}
