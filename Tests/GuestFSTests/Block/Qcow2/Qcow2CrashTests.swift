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

/// A writer (the `qcow2-crash-writer` tool) killed with SIGKILL at random points, many times over:
/// afterwards `qemu-img check` finds no corruption (leaks are allowed) and every write that a
/// completed flush covered is there.
@Suite(.serialized) struct Qcow2CrashTests {
    /// The tool, built next to the test runner (`swift build` builds every executable target).
    static func writerPath() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["QCOW2_CRASH_WRITER"], !explicit.isEmpty { return explicit }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("qcow2-crash-writer").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ImageError(path: path, reason: "missing: run swift build (it builds every executable target) first")
        }
        return path
    }

    /// One script line that writes: data of `seed`, or zeros when nil.
    struct Write { var offset: UInt64; var length: Int; var seed: UInt64? }

    /// Writes to disjoint slots of the disk (so a later write never hides an earlier one), with a
    /// flush every few writes.
    static func script(size: UInt64, cluster: Int, seed: UInt64) -> (lines: [String], writes: [Int: Write]) {
        var rng = SplitMix64(seed: seed)
        let slot = max(4096, min(UInt64(cluster * 3 + 1000), size / 300))
        let slots = Int(size / slot)
        var order = Array(0..<slots)
        order.shuffle(using: &rng)
        var lines: [String] = []
        var writes: [Int: Write] = [:]
        for s in order.prefix(min(slots, 300)) {
            let offset = UInt64(s) * slot + UInt64.random(in: 0..<(slot / 3), using: &rng)
            let length = Int.random(in: 1...Int(slot / 2), using: &rng)
            let zero = Int.random(in: 0..<4, using: &rng) == 0
            let w = Write(offset: offset, length: length, seed: zero ? nil : rng.next() >> 1)
            writes[lines.count] = w
            lines.append(zero ? "z \(offset) \(length)" : "w \(offset) \(length) \(w.seed!)")
            if Int.random(in: 0..<6, using: &rng) == 0 { lines.append("f") }
        }
        lines.append("f")
        lines.append("c")
        return (lines, writes)
    }

    /// Runs the tool on `image`, kills it after `delay` seconds, and returns how many script
    /// lines a completed flush covered.
    static func runAndKill(_ image: String, lines: [String], delay: Double) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try writerPath())
        process.arguments = [image]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
        // Kill at `delay`, or stop waiting as soon as the writer has finished by itself.
        let deadline = Date().addingTimeInterval(delay)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.0005) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.split(separator: "\n").compactMap { $0.hasPrefix("flushed ") ? Int($0.dropFirst(8)) : nil }.max() ?? 0
    }

    func crashMany(_ name: String, create: String, rounds: Int, seed: UInt64) throws {
        let f = try Qcow2Fixtures.get()
        let base = f.path("crash-base-\(name)")
        try Shell.check("cd \(Shell.quote(f.dir.path)) && \(create) && mv -f out.qcow2 \(Shell.quote(base))")
        defer { try? FileManager.default.removeItem(atPath: base) }
        var rng = SplitMix64(seed: seed)
        var killedMidway = 0
        // How long one script takes here, uninterrupted: kills are spread over that time, so
        // they land mid-script however fast the writer or the machine is.
        let timing = f.path("crash-\(name)-timing.qcow2")
        try Shell.check("cp \(Shell.quote(base)) \(Shell.quote(timing))")
        let probeSize = try Qcow2Image(device: try RawImage(path: timing, writable: false))
        let sample = Self.script(size: probeSize.size, cluster: probeSize.metadata.geometry.clusterSize, seed: seed)
        let started = Date()
        _ = try Self.runAndKill(timing, lines: sample.lines, delay: 30)
        var span = max(0.002, Date().timeIntervalSince(started) * 0.8)
        try? FileManager.default.removeItem(atPath: timing)
        // The machine's load changes while tests run in parallel: a round the writer finished
        // before its kill shortens the span, and rounds go on (up to three times as many) until
        // half of the planned ones were killed midway.
        var round = 0
        while round < rounds || (killedMidway < rounds / 2 && round < 3 * rounds) {
            defer { round += 1 }
            let image = f.path("crash-\(name)-\(round).qcow2")
            try Shell.check("cp \(Shell.quote(base)) \(Shell.quote(image))")
            defer { try? Shell.check("rm -f \(Shell.quote(image)) \(Shell.quote(image)).raw") }
            let probe = try Qcow2Image(device: try RawImage(path: image, writable: false))
            let (lines, writes) = Self.script(size: probe.size, cluster: probe.metadata.geometry.clusterSize, seed: rng.next())
            let before = try probe.readBytes(at: 0, count: Int(probe.size))
            let done = try Self.runAndKill(image, lines: lines, delay: Double.random(in: 0.001...span, using: &rng))
            if done < lines.count - 1 { killedMidway += 1 } else { span = max(0.002, span * 0.6) }

            let check = try Shell.run("qemu-img check \(Shell.quote(image))")
            // 0: clean; 3: leaked clusters only. 2 would be corruption.
            #expect(check.status == 0 || check.status == 3, "\(name) round \(round): qemu-img check exit \(check.status): \(check.text) \(check.stderr)")
            try Shell.check("qemu-img convert -O raw \(Shell.quote(image)) \(Shell.quote(image)).raw")
            let after = Array(try Data(contentsOf: URL(fileURLWithPath: image + ".raw")))
            for index in 0..<done {
                guard let w = writes[index] else { continue }
                // The tool's `pattern` is the writer tests' byte stream (SplitMix64 from the seed).
                let want = w.seed.map { Qcow2WriterTests.bytes($0, w.length) } ?? [UInt8](repeating: 0, count: w.length)
                let got = Array(after[Int(w.offset)..<(Int(w.offset) + w.length)])
                #expect(got == want, "\(name) round \(round): flushed write \(index) at \(w.offset)+\(w.length) missing")
            }
            // What no write touched is as it was.
            let touched = writes.values.map { Int($0.offset)..<(Int($0.offset) + $0.length) }.sorted { $0.lowerBound < $1.lowerBound }
            var pos = 0
            for r in touched + [after.count..<after.count] {
                if pos < r.lowerBound, after[pos..<r.lowerBound] != before[pos..<r.lowerBound] {
                    Issue.record("\(name) round \(round): untouched bytes \(pos)..<\(r.lowerBound) changed")
                    break
                }
                pos = max(pos, r.upperBound)
            }
            // And the image opens for writing again.
            let again = try ImageOpener.open(path: image, format: nil, writable: true)
            try (again as! Qcow2Image).close()
        }
        #expect(killedMidway >= rounds / 2, "\(name): the writer was killed before it finished in only \(killedMidway) of \(rounds) rounds")
    }

    @Test func plain() throws {
        try crashMany("plain", create: "qemu-img convert -O qcow2 src.raw out.qcow2", rounds: 12, seed: 1)
    }

    @Test func smallClustersGrowingRefcounts() throws {
        try crashMany("small", create: "qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=16 out.qcow2 4M", rounds: 10, seed: 2)
    }

    @Test func extendedL2OverBacking() throws {
        try crashMany("extl2", create: "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=32768 -b back.raw -F raw out.qcow2 5M", rounds: 10, seed: 3)
    }

    @Test func snapshotAndCompressed() throws {
        try crashMany("snapshot", create: "qemu-img convert -c -O qcow2 src.raw out.qcow2 && qemu-img snapshot -c s1 out.qcow2", rounds: 10, seed: 4)
    }

    @Test func lazyRefcounts() throws {
        try crashMany("lazy", create: "qemu-img convert -O qcow2 -o lazy_refcounts=on src.raw out.qcow2", rounds: 8, seed: 5)
    }
}
