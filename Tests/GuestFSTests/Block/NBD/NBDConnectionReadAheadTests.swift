import Foundation
import GuestFSBlock
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Read-ahead over NBD (Block/NBD/NBDConnection+ReadAhead.swift) against real nbdkit servers:
/// sequential, interleaved and random reads, and reads after writes into the window, equal the
/// bytes read locally; nbdkit's log shows requests in flight past the read being served and
/// none past the end of the export; a prefetch that failed is not reported unless its bytes are
/// read, and a server stopped mid-prefetch fails the read after the timeout.
@Suite struct NBDConnectionReadAheadTests {
    /// Reads of every byte (block status off: the sample image holds holes, which it would skip).
    static var settings: NBDSettings {
        var s = NBDSettings()
        s.blockStatus = false
        return s
    }

    static func read(_ device: NBDSource, _ offset: Int, _ count: Int) throws -> Data {
        Data(try device.readBytes(at: UInt64(offset), count: count))
    }

    @Test func sequentialInterleavedRandomAndAfterWritesEqualTheLocalBytes() throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        let dir = try TempDir()
        let served = dir.file("served.raw")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(served))")
        var model = try Data(contentsOf: URL(fileURLWithPath: raw))
        let server = try NBDServer.nbdkit("file file=\(Shell.quote(served))")
        defer { server.stop() }
        let device = try NBDSource(uri: server.uri, writable: true, settings: Self.settings)
        var mismatches: [String] = []
        func check(_ offset: Int, _ count: Int, _ label: String) throws {
            if try Self.read(device, offset, count) != model[offset..<(offset + count)] { mismatches.append("\(label) at \(offset)+\(count)") }
        }
        // Sequential, 1 MiB at a time (FUSE's reads): the window runs ahead.
        for i in 0..<6 { try check(i << 20, 1 << 20, "sequential") }
        let ahead = device.readAheadChunks
        #expect(ahead.contains { $0.range.lowerBound >= 6 << 20 }, "nothing read ahead: \(ahead.map(\.range))")
        // Writes inside the window (one unaligned, one a whole chunk, one across two), then on.
        let writes: [(offset: Int, count: Int)] = [((7 << 20) + 3, 17), (8 << 20, 256 << 10), ((9 << 20) - 100, 300)]
        for (n, w) in writes.enumerated() {
            let bytes = (0..<w.count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ n &+ 1) }
            try device.writeBytes(bytes, at: UInt64(w.offset))
            model.replaceSubrange(w.offset..<(w.offset + w.count), with: bytes)
        }
        for i in 6..<12 { try check(i << 20, 1 << 20, "sequential after writes") }
        // Two streams interleaved, in uneven sizes (65 KiB + 7 bytes, not chunk-aligned).
        var a = 20 << 20, b = (40 << 20) + 513
        for _ in 0..<24 {
            try check(a, 65543, "stream A")
            try check(b, 65543, "stream B")
            a += 65543
            b += 65543
        }
        // Random reads.
        var rng = SplitMix64(seed: 7)
        for _ in 0..<40 {
            let count = Int(rng.next() % (300 << 10)) + 1
            let offset = Int(rng.next() % UInt64(model.count - count))
            try check(offset, count, "random")
        }
        // And the end of the export, read sequentially to its last byte.
        for offset in stride(from: model.count - (3 << 20), to: model.count, by: 1 << 20) { try check(offset, 1 << 20, "tail") }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    /// One request of nbdkit's log filter: its id, range, and whether its reply was logged.
    struct Logged { var id: Int; var range: Range<UInt64>; var returned: Bool }

    static func requests(_ log: String) throws -> [Logged] {
        var byId: [Int: Logged] = [:]
        let request = try Regex(#"connection=\d+ Read id=(\d+) offset=0x([0-9a-fA-F]+) count=0x([0-9a-fA-F]+)"#)
        let reply = try Regex(#"connection=\d+ \.\.\.Read id=(\d+) "#)
        for line in log.split(separator: "\n") {
            if let m = line.firstMatch(of: request), let id = Int(m[1].substring ?? ""),
               let offset = UInt64(m[2].substring ?? "", radix: 16), let count = UInt64(m[3].substring ?? "", radix: 16) {
                byId[id] = Logged(id: id, range: offset..<(offset + count), returned: byId[id]?.returned ?? false)
            } else if let m = line.firstMatch(of: reply), let id = Int(m[1].substring ?? "") {
                byId[id, default: Logged(id: id, range: 0..<0, returned: true)].returned = true
            }
        }
        return byId.values.sorted { $0.id < $1.id }
    }

    /// nbdkit's pattern plugin (each 8-byte word holds its offset, big-endian) behind a 150 ms
    /// delay and the log filter: while a sequential reader is away, requests past its last read
    /// are on the server; at the end, every byte was asked for once and none past the end.
    @Test func theLogShowsRequestsAheadAndNonePastTheEnd() throws {
        let dir = try TempDir()
        let log = dir.file("nbdkit.log")
        let size = 6 << 20
        let server = try NBDServer.nbdkit("--filter=log --filter=delay pattern \(size) logfile=\(Shell.quote(log)) rdelay=150ms")
        defer { server.stop() }
        let device = try NBDSource(uri: server.uri, writable: false, settings: Self.settings)
        func expected(_ offset: Int, _ count: Int) -> Data {
            var d = Data(capacity: count)
            for word in stride(from: offset / 8 * 8, to: offset + count, by: 8) {
                withUnsafeBytes(of: UInt64(word).bigEndian) { d.append(contentsOf: $0) }
            }
            return d[(offset % 8)..<(offset % 8 + count)]
        }
        var aheadSeen = false
        for i in 0..<(size >> 19) {
            let got = try Self.read(device, i << 19, 1 << 19)
            #expect(got == expected(i << 19, 1 << 19), "bytes at \(i << 19)")
            if i == 2 {
                // The reader is "away": the server holds requests for later bytes, unanswered.
                usleep(50_000)
                let end = UInt64((i + 1) << 19)
                let ahead = try Self.requests(String(contentsOfFile: log, encoding: .utf8)).filter { $0.range.lowerBound >= end && !$0.returned }
                aheadSeen = !ahead.isEmpty
                #expect(aheadSeen, "no request in flight past \(end)")
            }
        }
        usleep(300_000)
        let all = try Self.requests(String(contentsOfFile: log, encoding: .utf8))
        #expect(!all.isEmpty, "the log filter logged no reads")
        #expect(all.allSatisfy { $0.range.upperBound <= UInt64(size) }, "a request past the end")
        #expect(all.reduce(0) { $0 + $1.range.count } == size, "bytes asked for: \(all.map(\.range))")
        #expect(device.readAheadChunks.isEmpty)
    }

    /// Prefetches that fail (nbdkit's error filter, while its error file exists) are not
    /// reported; the read that needs their bytes asks again: it succeeds once the errors stop,
    /// and reports the server's error while they go on.
    @Test func failedPrefetchesAreRetriedByTheReadThatNeedsThem() throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        let local = try Data(contentsOf: URL(fileURLWithPath: raw))
        let dir = try TempDir()
        let errorFile = dir.file("fail")
        let server = try NBDServer.nbdkit("--filter=delay --filter=error file file=\(Shell.quote(raw)) rdelay=200ms error-pread=EIO error-pread-rate=100% error-file=\(Shell.quote(errorFile))")
        defer { server.stop() }
        // Four in flight: a 1 MiB read's own four requests take them all, so read-ahead is sent
        // as they complete, just before the read returns (and reaches the error filter later).
        var settings = Self.settings
        settings.inFlight = 4
        let device = try NBDSource(uri: server.uri, writable: false, settings: settings)
        _ = try Self.read(device, 0, 1 << 20)
        _ = try Self.read(device, 1 << 20, 1 << 20)
        #expect(device.readAheadChunks.contains { $0.inFlight && $0.range.lowerBound >= 2 << 20 })
        // The prefetches reach the error filter after the delay: they fail.
        FileManager.default.createFile(atPath: errorFile, contents: nil)
        usleep(400_000)
        try FileManager.default.removeItem(atPath: errorFile)
        #expect(try Self.read(device, 2 << 20, 1 << 20) == local[(2 << 20)..<(3 << 20)])
        // Failing on: the read of bytes whose prefetch failed reports the server's error.
        FileManager.default.createFile(atPath: errorFile, contents: nil)
        usleep(400_000)
        do {
            _ = try Self.read(device, 3 << 20, 1 << 20)
            Issue.record("a read during injected errors succeeded")
        } catch let e as ImageError {
            #expect(e.errno == .ioError && e.description.hasPrefix(server.uri) && !e.description.contains("\n"), "\(e.description)")
        }
        try FileManager.default.removeItem(atPath: errorFile)
        #expect(try Self.read(device, 3 << 20, 1 << 20) == local[(3 << 20)..<(4 << 20)])
    }

    /// SIGSTOP while prefetches are in flight: the read that waits for them fails after the
    /// timeout with the one-line "no reply" error; later reads fail at once.
    @Test func serverStoppedMidPrefetchTimesOut() throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        let server = try NBDServer.nbdkit("--filter=delay file file=\(Shell.quote(raw)) rdelay=100ms")
        defer { server.stop() }
        var settings = Self.settings
        settings.timeoutMilliseconds = 1000
        // As above: read-ahead is sent as a read's own requests complete.
        settings.inFlight = 4
        let device = try NBDSource(uri: server.uri, writable: false, settings: settings)
        for i in 0..<3 { _ = try Self.read(device, i << 20, 1 << 20) }
        #expect(device.readAheadChunks.contains { $0.inFlight })
        server.pause()
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try Self.read(device, 3 << 20, 1 << 20)
            Issue.record("a read from a stopped server succeeded")
        } catch let e as ImageError {
            #expect(e.description.hasPrefix(server.uri) && e.description.contains("no reply") && !e.description.contains("\n"), "\(e.description)")
        }
        let waited = clock.now - start
        #expect(waited >= .milliseconds(900) && waited < .seconds(10), "\(waited)")
        #expect(device.readAheadChunks.isEmpty)
        let again = clock.now
        #expect(throws: ImageError.self) { _ = try Self.read(device, 4 << 20, 1 << 20) }
        #expect(clock.now - again < .milliseconds(500))
    }
}
