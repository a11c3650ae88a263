// qcow2-crash-writer: applies a script of writes to an image (of any writable format, probed)
// through GuestFS's ImageOpener, for the crash tests (Tests/GuestFSTests/Block/Qcow2/Qcow2CrashTests.swift,
// Tests/GuestFSTests/Block/FormatWriteModel.swift), which kill it with SIGKILL at random points.
// Not installed; a test tool only.
//
// usage: qcow2-crash-writer IMAGE < SCRIPT
// Script lines: "w OFFSET LENGTH SEED" writes LENGTH bytes of pattern SEED (see `pattern`),
// "z OFFSET LENGTH" writes zeros, "f" flushes, "c" closes. After each flush it prints
// "flushed N" (N = lines done so far) on standard output, unbuffered; "closed" after a close.
import GuestFSBlock
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of a write: a SplitMix64 stream from SEED, so a test can recompute them.
func pattern(seed: UInt64, count: Int) -> [UInt8] {
    var state = seed
    var out = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        for b in 0..<8 where i < count {
            out[i] = UInt8(truncatingIfNeeded: z >> UInt64(8 * b))
            i += 1
        }
    }
    return out
}

func say(_ line: String) { _ = try? FileDescriptor.standardOutput.writeAll((line + "\n").utf8) }

guard CommandLine.arguments.count == 2 else {
    _ = try? FileDescriptor.standardError.writeAll("usage: qcow2-crash-writer IMAGE < SCRIPT\n".utf8)
    exit(2)
}
do {
    var device: (any BlockDevice)? = try ImageOpener.open(path: CommandLine.arguments[1], format: nil, writable: true)
    var done = 0
    while let line = readLine() {
        let f = line.split(separator: " ")
        guard let op = f.first else { continue }
        switch op {
        case "w":
            let bytes = pattern(seed: UInt64(f[3])!, count: Int(f[2])!)
            try device?.writeBytes(bytes, at: UInt64(f[1])!)
        case "z":
            try device?.writeZeros(at: UInt64(f[1])!, length: Int(f[2])!)
        case "f":
            try device?.flush()
            say("flushed \(done + 1)")
        case "c":
            // qcow2 closes explicitly; the other formats close (flush, clear their dirty flags)
            // when the last reference goes.
            if let q = device as? Qcow2Image { try q.close() } else { try device?.flush() }
            device = nil
            say("closed")
        default:
            throw ImageError(reason: "bad script line '\(line)'")
        }
        done += 1
    }
} catch {
    _ = try? FileDescriptor.standardError.writeAll("qcow2-crash-writer: \(error)\n".utf8)
    exit(1)
}
