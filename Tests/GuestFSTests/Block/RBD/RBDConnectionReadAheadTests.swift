import Foundation
import GuestFSBlock
import Testing
import TestSupport

/// Read-ahead over RBD (Block/RBD/RBDConnection+ReadAhead.swift) against the run's Ceph cluster:
/// sequential, interleaved and random reads, and reads after writes into the window, equal the
/// local bytes; what is read ahead is aligned requests (256 KiB, or whole objects when asked
/// for), past the reader and not past the end.
extension RBDSourceTests {
    @Test func readAheadMatchesTheLocalBytes() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (_, spec) = try c.importImage(raw, prefix: "readahead")
        var model = try Data(contentsOf: URL(fileURLWithPath: raw))
        // The default requests, then whole 4 MiB objects, over the same image.
        for request in [256 << 10, 4 << 20] {
            var settings = RBDSettings()
            settings.readAheadBytes = 16 << 20   // off by default (RBDSettings says why)
            settings.readAheadRequestBytes = request
            try Self.readAheadRound(spec, settings: settings, model: &model)
        }
    }

    static func readAheadRound(_ spec: String, settings: RBDSettings, model: inout Data) throws {
        let source = try Self.open(spec, writable: true, settings: settings)
        let object = UInt64(settings.readAheadRequestBytes ?? settings.requestBytes)
        var mismatches: [String] = []
        func check(_ offset: Int, _ count: Int, _ label: String) throws {
            if try Data(source.readBytes(at: UInt64(offset), count: count)) != model[offset..<(offset + count)] {
                mismatches.append("\(label) at \(offset)+\(count)")
            }
        }
        for i in 0..<6 { try check(i << 20, 1 << 20, "sequential") }
        let ahead = source.readAheadChunks
        #expect(!ahead.isEmpty && ahead.allSatisfy { $0.range.lowerBound % object == 0 && UInt64($0.range.count) == object },
                "read ahead: \(ahead.map(\.range)), requests of \(object)")
        #expect(ahead.contains { $0.range.lowerBound >= 6 << 20 })
        // Writes into what was read ahead (unaligned, and across an object boundary), then on.
        let writes: [(offset: Int, count: Int)] = [((9 << 20) + 3, 17), ((12 << 20) - 100, 300), (6 << 20, 1 << 20)]
        let seed = Int(object >> 18)
        for (n, w) in writes.enumerated() {
            let bytes = (0..<w.count).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ n &+ seed) }
            try source.writeBytes(bytes, at: UInt64(w.offset))
            model.replaceSubrange(w.offset..<(w.offset + w.count), with: bytes)
        }
        for i in 6..<16 { try check(i << 20, 1 << 20, "sequential after writes") }
        var a = 20 << 20, b = (40 << 20) + 513
        for _ in 0..<16 {
            try check(a, 65543, "stream A")
            try check(b, 65543, "stream B")
            a += 65543
            b += 65543
        }
        var rng = SplitMix64(seed: object)
        for _ in 0..<30 {
            let count = Int(rng.next() % (300 << 10)) + 1
            let offset = Int(rng.next() % UInt64(model.count - count))
            try check(offset, count, "random")
        }
        for offset in stride(from: model.count - (6 << 20), to: model.count, by: 1 << 20) { try check(offset, 1 << 20, "tail") }
        #expect(source.readAheadChunks.allSatisfy { $0.range.upperBound <= source.size })
        #expect(mismatches.isEmpty, "\(mismatches)")
    }
}
