import Foundation
import Synchronization
import Testing
import TestSupport

/// Reads of NTFS file data from many threads at once through our FUSE mount (the direct path:
/// runs mapped once, the device read outside the libntfs-3g lock), compared with ntfs-3g's
/// mount of the same image: fragmented, sparse, partly initialized and compressed files, at
/// random offsets and lengths, with O_DIRECT so every read reaches the server.
@Suite(.serialized) struct NTFSConcurrentReadTests {
    static let images = Result { try NTFSRunImages() }

    @Test func concurrentReadsThroughTheMount() throws {
        let f = try Self.images.get()
        let oracle = try TempDir("imagemount-ntfs-conc-oracle")
        try NTFSImages.mountNtfs3g(f.image, at: oracle.path, options: "ro")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(oracle.path)) || fusermount -u -z \(Shell.quote(oracle.path))") }
        let paths = NTFSRunImages.fragmented + [NTFSRunImages.sparse, NTFSRunImages.uninitialized, NTFSRunImages.compressed]
        let want = try paths.map { try [UInt8](Data(contentsOf: URL(fileURLWithPath: oracle.file($0)))) }
        let m = try FuseMount(images: [f.image], arguments: ["-m", "/dev/sda", "--ro", "-o", "direct_io"])
        defer { m.close() }
        try #require(m.output.status == 0, "\(m.output.stderr)")
        let mismatches = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let fds = paths.map { open(m.path + "/" + $0, O_RDONLY) }
            defer { for fd in fds where fd >= 0 { close(fd) } }
            var seed = UInt64(worker + 1) &* 0x9E37_79B9_7F4A_7C15
            for _ in 0 ..< 150 {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let which = Int(seed >> 59) % paths.count
                let expected = want[which]
                let start = Int((seed >> 20) % UInt64(expected.count))
                let length = Int((seed >> 8) % 300_000) + 1
                var buffer = [UInt8](repeating: 0xA5, count: length)
                let n = buffer.withUnsafeMutableBytes { pread(fds[which], $0.baseAddress, length, off_t(start)) }
                let end = min(start + length, expected.count)
                if n != end - start || buffer[..<max(n, 0)] != expected[start ..< end] {
                    mismatches.withLock { $0.append("\(paths[which]) at \(start)+\(length): read \(n)") }
                }
            }
        }
        let failed = mismatches.withLock { $0 }
        #expect(failed.isEmpty, "\(failed.prefix(5))")
    }
}
