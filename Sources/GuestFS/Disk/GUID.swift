import GuestFSBlock

/// A GUID as GPT stores it: 16 bytes in the "mixed-endian" EFI_GUID layout.
///
/// UEFI spec 2.10, Appendix A "GUID and Time Formats": the first three fields (Data1: 32 bits,
/// Data2: 16 bits, Data3: 16 bits) are little-endian; the last eight bytes (Data4) are stored in
/// the order they are printed. So on-disk bytes `28 73 2a c1 1f f8 d2 11 ba 4b 00 a0 c9 3e c9 3b`
/// print as `C12A7328-F81F-11D2-BA4B-00A0C93EC93B` (the EFI System Partition type).
public struct GUID: Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes in on-disk order.
    public let bytes: [UInt8]

    /// `bytes` must hold exactly 16 bytes in on-disk order.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a GUID is 16 bytes, not \(bytes.count)")
        self.bytes = bytes
    }

    /// All zeros: the GPT "unused entry" partition type.
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// Canonical form, uppercase as sfdisk and sgdisk print it: `C12A7328-F81F-11D2-BA4B-00A0C93EC93B`.
    public var uppercased: String { formatted(uppercase: true) }

    /// Canonical form, lowercase as blkid prints it (`PARTUUID=`, `PTUUID=`).
    public var lowercased: String { formatted(uppercase: false) }

    public var description: String { uppercased }

    private func formatted(uppercase: Bool) -> String {
        // Data1..Data3 reversed (little-endian), Data4 as stored.
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        let digits: [Character] = Array(uppercase ? "0123456789ABCDEF" : "0123456789abcdef")
        var text = ""
        text.reserveCapacity(36)
        for index in order {
            if index < 0 { text.append("-"); continue }
            text.append(digits[Int(bytes[index] >> 4)])
            text.append(digits[Int(bytes[index] & 0x0F)])
        }
        return text
    }
}
