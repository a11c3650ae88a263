// qcow2-bench: reads a disk image end to end through GuestFS's ImageOpener, as bench/qcow2-read.sh
// times it against `qemu-img convert -O raw`. Not installed; a measuring tool only.
//
// usage: qcow2-bench IMAGE [--snapshot NAME] [--chunk BYTES] [--key-file FILE] [--format NAME]
// (--format: open as this format instead of probing, e.g. vpc for a fixed VHD; bench/formats-read.sh)
// (--key-file: the passphrase of an encrypted image, for bench/luks-read.sh)
//        qcow2-bench --write-from SOURCE IMAGE [--chunk BYTES] [--key-file FILE]
// The second form copies SOURCE (read as raw) into the existing qcow2 IMAGE (encrypted: with
// --key-file) with sequential writes of --chunk bytes (1 MiB by default), then flushes and
// closes: bench/qcow2-write.sh.
import GuestFSBlock
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

var arguments = Array(CommandLine.arguments.dropFirst())
var snapshot: String?
var chunk = 4 << 20
var writeSource: String?
var path: String?
var keyFile: String?
var format: ImageFormat?
while !arguments.isEmpty {
    let a = arguments.removeFirst()
    switch a {
    case "--snapshot": snapshot = arguments.isEmpty ? nil : arguments.removeFirst()
    case "--chunk": chunk = arguments.isEmpty ? chunk : Int(arguments.removeFirst()) ?? chunk
    case "--format": format = arguments.isEmpty ? nil : ImageFormat(rawValue: arguments.removeFirst())
    case "--key-file": keyFile = arguments.isEmpty ? nil : arguments.removeFirst()
    case "--write-from":
        writeSource = arguments.isEmpty ? nil : arguments.removeFirst()
        if chunk == 4 << 20 { chunk = 1 << 20 }
    default: path = a
    }
}
guard let path else {
    _ = try? FileDescriptor.standardError.writeAll("usage: qcow2-bench IMAGE [--snapshot NAME] [--chunk BYTES] [--key-file FILE]\n".utf8)
    exit(2)
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

if let writeSource {
    do {
        let start = now()
        let source = try ImageOpener.open(path: writeSource, format: .raw, writable: false)
        let keys = try keyFile.map { KeyStore(entries: [try KeyStore.parseSelector("all:file:" + $0)]) }
        let device = try ImageOpener.open(path: path, options: ImageOpenOptions(format: format ?? .qcow2, writable: true, keys: keys))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var offset: UInt64 = 0
        let end = min(source.size, device.size)
        while offset < end {
            let n = Int(min(UInt64(chunk), end - offset))
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[..<n])
            try source.read(into: part, at: offset)
            try device.write(UnsafeRawBufferPointer(part), at: offset)
            offset += UInt64(n)
        }
        // qcow2 closes explicitly; the other formats write their tables at flush.
        if let q = device as? Qcow2Image { try q.close() } else { try device.flush() }
        let seconds = now() - start
        print("wrote \(offset) bytes in \(String(Int(seconds * 1000))) ms (\(Int(Double(offset) / seconds / 1_048_576)) MiB/s)")
    } catch {
        _ = try? FileDescriptor.standardError.writeAll("qcow2-bench: \(error)\n".utf8)
        exit(1)
    }
    exit(0)
}

do {
    let start = now()
    let keys = try keyFile.map { KeyStore(entries: [try KeyStore.parseSelector("all:file:" + $0)]) }
    let device = try ImageOpener.open(path: path, options: ImageOpenOptions(format: format, snapshot: snapshot, keys: keys))
    let opened = now()
    let sink = try FileDescriptor.open("/dev/null", .writeOnly)
    defer { try? sink.close() }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
    defer { buffer.deallocate() }
    var offset: UInt64 = 0
    while offset < device.size {
        let n = Int(min(UInt64(chunk), device.size - offset))
        let part = UnsafeMutableRawBufferPointer(rebasing: buffer[..<n])
        try device.read(into: part, at: offset)
        _ = try sink.writeAll(UnsafeRawBufferPointer(part))
        offset += UInt64(n)
    }
    let seconds = now() - start
    print("opened in \(Int((opened - start) * 1000)) ms")
    print("read \(offset) bytes in \(String(Int(seconds * 1000))) ms (\(Int(Double(offset) / seconds / 1_048_576)) MiB/s)")
} catch {
    _ = try? FileDescriptor.standardError.writeAll("qcow2-bench: \(error)\n".utf8)
    exit(1)
}
