import Foundation
import GuestFSBlock
import Testing
import TestSupport

/// Block status over a real server: nbdkit's file plugin (holes from SEEK_HOLE) behind its log
/// filter, which logs every request with its size. A full read of a 64 MiB export holding
/// 3 MiB of data asks for about 3 MiB of reads with block status and 64 MiB without, and the
/// bytes equal `qemu-img convert -O raw` of the same export either way.
@Suite struct NBDSourceBlockStatusTests {
    /// Data (offset, length) in the sparse export, in KiB: 3 MiB in all, some pieces not on a
    /// 64 KiB boundary.
    static let data: [(UInt64, UInt64)] = [(0, 64), (1000, 1024), (20004, 512), (40000, 1024), (65532, 4)]

    static func sparseExport(in dir: TempDir) throws -> String {
        let path = dir.file("sparse.raw")
        try Shell.check("truncate -s 64M \(Shell.quote(path))")
        for (offset, length) in data {
            try Shell.check("dd if=/dev/urandom of=\(Shell.quote(path)) bs=1024 seek=\(offset) count=\(length) conv=notrunc status=none")
        }
        return path
    }

    /// The bytes of the reads nbdkit's log filter logged ("Read id=N offset=0x… count=0x…").
    static func bytesRead(log: String) throws -> UInt64 {
        let text = try String(contentsOfFile: log, encoding: .utf8)
        var total: UInt64 = 0
        for line in text.split(separator: "\n") where line.contains(" Read ") {
            guard let field = line.split(separator: " ").first(where: { $0.hasPrefix("count=0x") }),
                  let count = UInt64(field.dropFirst("count=0x".count), radix: 16) else { continue }
            total += count
        }
        return total
    }

    static func readAll(_ device: NBDSource, chunk: Int) throws -> Data {
        var out = Data(count: Int(device.size))
        try out.withUnsafeMutableBytes { all in
            var offset = 0
            while offset < all.count {
                let n = min(chunk, all.count - offset)
                try device.read(into: UnsafeMutableRawBufferPointer(rebasing: all[offset..<(offset + n)]), at: UInt64(offset))
                offset += n
            }
        }
        return out
    }

    @Test(arguments: [true, false])
    func aSparseExportIsReadOnlyWhereItHoldsData(_ blockStatus: Bool) throws {
        let dir = try TempDir()
        let image = try Self.sparseExport(in: dir)
        let log = dir.file("nbdkit.log")
        let server = try NBDServer.nbdkit("--filter=log file file=\(Shell.quote(image)) logfile=\(Shell.quote(log))")
        defer { server.stop() }
        let oracle = dir.file("oracle.raw")
        try Shell.check("qemu-img convert -f raw -O raw \(Shell.quote(server.uri)) \(Shell.quote(oracle))")
        let before = try Self.bytesRead(log: log)
        var settings = NBDSettings()
        settings.blockStatus = blockStatus
        let device = try NBDSource(uri: server.uri, writable: false, settings: settings)
        #expect(device.usesBlockStatus == blockStatus)
        // 1 MiB reads, as the FUSE server and copy-out issue them, and a second pass served
        // from the cached extents.
        let first = try Self.readAll(device, chunk: 1 << 20)
        let second = try Self.readAll(device, chunk: 3 << 20)
        #expect(first == (try Data(contentsOf: URL(fileURLWithPath: oracle))), "bytes differ from qemu-img convert -O raw")
        #expect(first == second)
        server.stop()
        let read = try Self.bytesRead(log: log) - before
        let data = Self.data.reduce(0) { $0 + $1.1 } << 10
        if blockStatus {
            // Each pass reads the data, rounded to the 4 KiB blocks holes are made of.
            #expect(read >= 2 * data && read <= 2 * (data + (256 << 10)), "\(read) bytes read for \(data) of data")
        } else {
            #expect(read == 2 * (64 << 20), "\(read)")
        }
    }

    /// Writes forget what block status said: a hole written to reads back as what was written.
    @Test func writesToAHoleReadBack() throws {
        let server = try NBDServer.nbdkit("memory 64M")
        defer { server.stop() }
        let device = try NBDSource(uri: server.uri, writable: true, settings: NBDSettings())
        #expect(device.usesBlockStatus)
        #expect(try device.readBytes(at: 0, count: 8 << 20) == [UInt8](repeating: 0, count: 8 << 20))
        let pattern = (0..<(300 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        try device.writeBytes(pattern, at: (2 << 20) + 5)
        let back = try device.readBytes(at: 0, count: 8 << 20)
        #expect(Array(back[((2 << 20) + 5)..<((2 << 20) + 5 + pattern.count)]) == pattern)
        #expect(back[..<((2 << 20) + 5)].allSatisfy { $0 == 0 })
        try device.writeZeros(at: (2 << 20) + 5, length: 100)
        #expect(try device.readBytes(at: (2 << 20), count: 1 << 20)[5..<105].allSatisfy { $0 == 0 })
    }
}
