import GuestFSBlock
import GuestFSFilesystem

/// The name hash directory and attribute B+trees are ordered by.
///
/// xfs_da_btree.c `xfs_da_hashname`: four bytes at a time, each shifted by 21/14/7/0 and
/// XORed with the running hash rotated left by 28; a 1–3 byte tail rotates by 7 per byte.
/// ascii-ci filesystems (`xfs_ascii_ci_hashname`, xfs_dir2.c) hash the name with A–Z folded to
/// a–z (`xfs_ascii_ci_xfrm`: ASCII only, the kernel stopped using the Latin-1 tolower in 6.3).
enum XFSNameHash {
    static func hash(_ name: [UInt8], caseFold: Bool = false) -> UInt32 {
        @inline(__always) func byte(_ i: Int) -> UInt32 { UInt32(caseFold ? fold(name[i]) : name[i]) }
        @inline(__always) func rol(_ v: UInt32, _ n: UInt32) -> UInt32 { (v << n) | (v >> (32 - n)) }
        var hash: UInt32 = 0
        var i = 0
        while name.count - i >= 4 {
            hash = (byte(i) << 21) ^ (byte(i + 1) << 14) ^ (byte(i + 2) << 7) ^ byte(i + 3) ^ rol(hash, 28)
            i += 4
        }
        switch name.count - i {
        case 3: return (byte(i) << 14) ^ (byte(i + 1) << 7) ^ byte(i + 2) ^ rol(hash, 21)
        case 2: return (byte(i) << 7) ^ byte(i + 1) ^ rol(hash, 14)
        case 1: return byte(i) ^ rol(hash, 7)
        default: return hash
        }
    }

    /// `xfs_ascii_ci_xfrm`: A–Z to a–z, every other byte unchanged.
    @inline(__always) static func fold(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c ^ 0x20 : c }

    /// Names equal byte for byte, or (caseFold) equal once A–Z are folded.
    static func equal(_ a: [UInt8], _ b: [UInt8], caseFold: Bool) -> Bool {
        guard a.count == b.count else { return false }
        if !caseFold { return a == b }
        for i in 0 ..< a.count where fold(a[i]) != fold(b[i]) { return false }
        return true
    }
}
