#if canImport(Glibc)
import Glibc
#endif

/// A MiB of zeros, allocated once and never written: the zero parts of a block a writer appends
/// (VDI, VHD, QED, Parallels) point at it in a `pwritev(2)` instead of being built, with the data
/// copied in, in a buffer of the block's size for every block.
enum ZeroBytes {
    /// Bytes in the shared region; longer runs repeat it.
    static let regionBytes = 1 << 20

    /// The region, from calloc: the kernel maps its pages to the zero page as they are first
    /// read, so it costs no memory it does not use.
    private struct Region: @unchecked Sendable {
        let bytes: UnsafeRawBufferPointer
    }

    private static let region: Region = {
        // calloc failing here is the process failing to get one MiB: the same as any
        // allocation of Swift's failing, which traps too.
        let pointer = calloc(1, ZeroBytes.regionBytes)!
        return Region(bytes: UnsafeRawBufferPointer(start: pointer, count: ZeroBytes.regionBytes))
    }()

    /// `count` zero bytes as pieces of the shared region (none for 0).
    static func pieces(_ count: Int) -> [UnsafeRawBufferPointer] {
        var left = max(count, 0)
        var out: [UnsafeRawBufferPointer] = []
        out.reserveCapacity((left + regionBytes - 1) / regionBytes)
        while left > 0 {
            let n = min(left, regionBytes)
            out.append(UnsafeRawBufferPointer(rebasing: region.bytes[..<n]))
            left -= n
        }
        return out
    }
}
