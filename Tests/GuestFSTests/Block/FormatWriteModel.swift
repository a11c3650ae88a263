import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// The write tests every writable format other than qcow2 shares (VDI, VHD, ...): the model test
/// (random writes through our writer and to a raw copy, then `qemu-img compare` and `qemu-img
/// check`) and the crash test (the `qcow2-crash-writer` tool, which writes any format, killed
/// with SIGKILL at random points). The qcow2 versions are Qcow2WriterTests and Qcow2CrashTests.
enum FormatWriteModel {
    /// A raw disk of `megabytes` MiB with random data in scattered places, so that images made
    /// from it have allocated and unallocated blocks.
    static func sourceRaw(_ path: String, megabytes: Int, seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var script = "truncate -s \(megabytes)M \(Shell.quote(path))"
        for _ in 0 ..< 6 {
            let at = Int.random(in: 0 ..< (megabytes * 1024 - 600), using: &rng)
            script += " && head -c \(Int.random(in: 1 ... 500, using: &rng))K /dev/urandom | dd of=\(Shell.quote(path)) bs=1K seek=\(at) conv=notrunc status=none"
        }
        try Shell.check(script)
    }

    static func sha(_ path: String) throws -> String { try Shell.check("sha256sum \(Shell.quote(path)) | cut -c1-64") }

    /// `ops` random writes through imagemount's writer on `image` (a `format` image) and on a raw
    /// copy of it; then the two are identical for qemu-img, `qemu-img check` is clean when
    /// `qemuChecks`, and every file in `unchanged` (parents, backing files) kept its bytes.
    static func model(_ image: String, format: ImageFormat, block: Int, ops count: Int, seed: UInt64,
                      qemuChecks: Bool, unchanged: [String] = []) throws {
        let raw = image + ".model.raw"
        try Shell.check("qemu-img convert -f \(format.rawValue) -O raw \(Shell.quote(image)) \(Shell.quote(raw))")
        defer { try? FileManager.default.removeItem(atPath: raw) }
        let sums = try unchanged.map(sha)
        do {
            let device = try ImageOpener.open(path: image, format: format, writable: true)
            #expect(device.isWritable)
            let ops = Qcow2WriterTests.randomOps(count: count, size: device.size, cluster: block, subcluster: 4096, seed: seed)
            let model = try RawImage(path: raw, writable: true)
            try Qcow2WriterTests.apply(ops, to: device)
            try Qcow2WriterTests.apply(ops, to: model)
            for op in ops.suffix(50) {
                let got = try device.readBytes(at: op.offset, count: op.length)
                #expect(got == (try model.readBytes(at: op.offset, count: op.length)), "\(image): read-back at \(op.offset)+\(op.length)")
            }
            try device.flush()
        }
        let compare = try Shell.run("qemu-img compare -f \(format.rawValue) -F raw \(Shell.quote(image)) \(Shell.quote(raw))")
        #expect(compare.status == 0, "\(image): qemu-img compare: \(compare.text) \(compare.stderr)")
        if qemuChecks {
            let check = try Shell.run("qemu-img check -f \(format.rawValue) \(Shell.quote(image))")
            #expect(check.status == 0 && check.text.contains("No errors were found"), "\(image): qemu-img check: \(check.text) \(check.stderr)")
        }
        for (file, sum) in zip(unchanged, sums) {
            #expect(try sha(file) == sum, "\(image): \(file) changed")
        }
        // Our own check agrees.
        if let (_, ours) = try ImageFormatRegistry.check(try ImageOpener.open(path: image, format: format, writable: false)) {
            #expect(ours.corruptions == 0, "\(image): imagemount check: \(ours.messages.prefix(5))")
        }
    }

    /// `rounds` copies of `base` (a `format` image) each written by the crash tool and killed at a
    /// random point: `qemu-img check` finds no corruption (leaks allowed) when `qemuChecks`, every
    /// write a completed flush covered is there, nothing else changed, and the image opens for
    /// writing again.
    /// `uncleanClose`: the ERROR line qemu-img check prints for an image a writer left open (the
    /// format's own in-use flag, Parallels' inuse), which alone does not count as corruption.
    /// `afterKill`: what QEMU must do to the killed image before it reads it (VHDX: replay a log
    /// the writer left mid-update, which QEMU's read-only opens refuse).
    static func crash(_ base: String, format: ImageFormat, block: Int, rounds: Int, seed: UInt64, qemuChecks: Bool,
                      uncleanClose: String? = nil, afterKill: ((String) throws -> Void)? = nil) throws {
        var rng = SplitMix64(seed: seed)
        let size = try ImageOpener.open(path: base, format: format, writable: false).size
        let timing = base + ".timing"
        try Shell.check("cp \(Shell.quote(base)) \(Shell.quote(timing))")
        let sample = Qcow2CrashTests.script(size: size, cluster: block, seed: seed)
        let started = Date()
        _ = try Qcow2CrashTests.runAndKill(timing, lines: sample.lines, delay: 30)
        var span = max(0.002, Date().timeIntervalSince(started) * 0.8)
        try? FileManager.default.removeItem(atPath: timing)
        var killedMidway = 0
        var round = 0
        while round < rounds || (killedMidway < rounds / 2 && round < 3 * rounds) {
            defer { round += 1 }
            // The crash tool probes the format: the copy keeps the base's extension.
            let ext = base.split(separator: ".").last.map(String.init) ?? format.rawValue
            let image = base + "-crash\(round)." + ext
            try Shell.check("cp \(Shell.quote(base)) \(Shell.quote(image))")
            defer { try? Shell.check("rm -f \(Shell.quote(image)) \(Shell.quote(image)).raw") }
            let before = try ImageOpener.open(path: image, format: format, writable: false).readBytes(at: 0, count: Int(size))
            let (lines, writes) = Qcow2CrashTests.script(size: size, cluster: block, seed: rng.next())
            let done = try Qcow2CrashTests.runAndKill(image, lines: lines, delay: Double.random(in: 0.001 ... span, using: &rng))
            if done < lines.count - 1 { killedMidway += 1 } else { span = max(0.002, span * 0.6) }
            try afterKill?(image)
            if qemuChecks {
                let check = try Shell.run("qemu-img check -f \(format.rawValue) \(Shell.quote(image))")
                // 0: clean; 3: leaked clusters only. 2 would be corruption, unless its one error
                // is the in-use flag of a writer that never closed.
                let errors = (check.text + check.stderr).split(separator: "\n").filter { $0.hasPrefix("ERROR") && !$0.contains("space leaked") }
                let onlyUnclean = uncleanClose.map { u in check.status == 2 && errors.allSatisfy { $0.contains(u) } } ?? false
                #expect(check.status == 0 || check.status == 3 || onlyUnclean, "\(image) round \(round): qemu-img check exit \(check.status): \(check.text) \(check.stderr)")
            }
            try Shell.check("qemu-img convert -f \(format.rawValue) -O raw \(Shell.quote(image)) \(Shell.quote(image)).raw")
            let after = Array(try Data(contentsOf: URL(fileURLWithPath: image + ".raw")))
            #expect(after.count == before.count)
            guard after.count == before.count else { continue }
            for index in 0 ..< done {
                guard let w = writes[index] else { continue }
                let want = w.seed.map { Qcow2WriterTests.bytes($0, w.length) } ?? [UInt8](repeating: 0, count: w.length)
                #expect(Array(after[Int(w.offset) ..< (Int(w.offset) + w.length)]) == want, "\(image) round \(round): flushed write \(index) at \(w.offset)+\(w.length) missing")
            }
            let touched = writes.values.map { Int($0.offset) ..< (Int($0.offset) + $0.length) }.sorted { $0.lowerBound < $1.lowerBound }
            var pos = 0
            for r in touched + [after.count ..< after.count] {
                if pos < r.lowerBound, after[pos ..< r.lowerBound] != before[pos ..< r.lowerBound] {
                    Issue.record("\(image) round \(round): untouched bytes \(pos)..<\(r.lowerBound) changed")
                    break
                }
                pos = max(pos, r.upperBound)
            }
            let again = try ImageOpener.open(path: image, format: format, writable: true)
            try again.flush()
        }
        #expect(killedMidway >= rounds / 2, "\(base): the writer was killed before it finished in only \(killedMidway) of \(rounds) rounds")
    }
}
