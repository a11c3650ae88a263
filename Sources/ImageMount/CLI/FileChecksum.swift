import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// The checksums `guestfs_checksum` computes, as virt-ls --checksum prints them: "crc" is the
/// first field of POSIX `cksum` (a decimal CRC), the others the lowercase hex digest that
/// md5sum, sha1sum, ... print (libguestfs daemon/checksum.c runs those programs on the file).
struct FileChecksum {
    static let types = ["crc"] + MessageDigest.names

    private var crc: POSIXCksum?
    private var digest: MessageDigest?

    /// nil when `type` is not one of `types`.
    init?(type: String) {
        if type == "crc" {
            crc = POSIXCksum()
        } else if let digest = MessageDigest(name: type) {
            self.digest = digest
        } else {
            return nil
        }
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        crc?.update(bytes)
        digest?.update(bytes)
    }

    func finish() -> String {
        if let crc { return String(crc.value) }
        let bytes = digest?.finish() ?? []
        let hex: [Character] = Array("0123456789abcdef")
        var out = ""
        for b in bytes {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 15)])
        }
        return out
    }
}

/// The CRC of POSIX `cksum` (the cksum utility's specification in POSIX.1-2017, and coreutils
/// `src/cksum.c`): CRC-32 with polynomial 0x04C11DB7 fed most significant bit first, starting
/// from 0, then fed the length in bytes (least significant byte first, only as many bytes as it
/// needs), and complemented.
struct POSIXCksum {
    private var crc: UInt32 = 0
    private var length: UInt64 = 0

    static let table: [UInt32] = (0 ..< 256).map { index -> UInt32 in
        var c = UInt32(index) << 24
        for _ in 0 ..< 8 { c = c & 0x8000_0000 != 0 ? (c << 1) ^ 0x04C1_1DB7 : c << 1 }
        return c
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let table = Self.table
        var c = crc
        for b in bytes { c = (c << 8) ^ table[Int((c >> 24) ^ UInt32(b))] }
        crc = c
        length &+= UInt64(bytes.count)
    }

    var value: UInt32 {
        let table = Self.table
        var c = crc
        var n = length
        while n != 0 {
            c = (c << 8) ^ table[Int((c >> 24) ^ UInt32(n & 0xFF))]
            n >>= 8
        }
        return ~c
    }
}
