/// The LUKS1 partition header (LUKS1 On-Disk Format Specification 1.2.3, §2.4 "The LUKS
/// partition header" — the `phdr` layout, big-endian — and §2.5 "key slots"). QEMU's
/// crypto/block-luks.c writes the same layout (QCryptoBlockLUKSHeader) for `qemu-img -O luks`
/// and inside qcow2 images.
package enum LUKS1Header {
    /// "LUKS\xba\xbe" (spec §2.4, LUKS_MAGIC).
    package static let magic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]
    /// Size of the phdr: 208 bytes of fields and 8 key slots of 48 bytes.
    package static let size = 592
    static let slotCount = 8
    /// Key slot states (spec §2.4, LUKS_KEY_ENABLED / LUKS_KEY_DISABLED).
    static let keyEnabled: UInt32 = 0x00AC_71F3
    static let keyDisabled: UInt32 = 0x0000_DEAD
    /// mk-digest is 20 bytes (LUKS_DIGESTSIZE), its salt and each slot's salt 32 (LUKS_SALTSIZE).
    static let digestSize = 20
    static let saltSize = 32

    /// Decodes and checks the phdr at the start of `device`.
    package static func read(from device: any BlockDevice) throws(LUKSError) -> LUKSHeader {
        guard device.size >= UInt64(size) else { throw .damaged("device is smaller than a LUKS1 header") }
        let h: [UInt8]
        do { h = try device.readBytes(at: 0, count: size) } catch { throw .io("cannot read the LUKS header: \(error)") }
        guard Array(h[0..<6]) == magic else { throw .damaged("bad magic, not a LUKS header") }
        let version = be16(h, 6)
        guard version == 1 else { throw .unsupported("LUKS version \(version) read as LUKS1") }
        let cipherName = text(h[8..<40]), cipherMode = text(h[40..<72]), hashSpec = text(h[72..<104])
        let payloadSectors = be32(h, 104), keyBytes = Int(be32(h, 108))
        guard let hash = LUKSHash(name: hashSpec) else { throw .unsupported("hash '\(hashSpec)' is not supported") }
        guard keyBytes > 0, keyBytes <= LUKSLimits.maxKeyBytes else { throw .damaged("key-bytes \(keyBytes) is outside 1...\(LUKSLimits.maxKeyBytes)") }
        let cipher: SectorCipherSpec
        do { cipher = try SectorCipherSpec.parse(cipherName: cipherName, cipherMode: cipherMode, keyBytes: keyBytes) } catch {
            throw .unsupported(error.description)
        }
        let digest = LUKSDigest(hash: hash, iterations: be32(h, 164), salt: Array(h[132..<164]), digest: Array(h[112..<132]))
        let payloadOffset = UInt64(payloadSectors) * 512
        var slots: [LUKSKeyslot] = []
        var metadataEnd = UInt64(size)
        for i in 0..<slotCount {
            let o = 208 + i * 48
            let active = be32(h, o)
            guard active == keyEnabled || active == keyDisabled else {
                throw .damaged("key slot \(i) state 0x\(String(active, radix: 16)) is neither enabled nor disabled")
            }
            guard active == keyEnabled else { continue }
            let materialSector = UInt64(be32(h, o + 40))
            let slot = LUKSKeyslot(
                index: i, kdf: .pbkdf2(hash: hash, iterations: be32(h, o + 4), salt: Array(h[(o + 8)..<(o + 40)])),
                areaOffset: materialSector * 512, areaSize: nil, areaCipher: cipher, keyBytes: keyBytes,
                stripes: be32(h, o + 44), afHash: hash, priority: 1)
            guard slot.areaOffset >= UInt64(size) else { throw .damaged("key slot \(i): key material at sector \(materialSector) overlaps the header") }
            metadataEnd = max(metadataEnd, slot.areaOffset + UInt64(slot.materialBytes))
            slots.append(slot)
        }
        return LUKSHeader(version: 1, uuid: text(h[168..<208]), label: nil, payloadCipher: cipher,
                          payloadOffset: payloadOffset, payloadSize: nil, sectorSize: 512, keyslots: slots,
                          digests: [(digest, Set(slots.map(\.index)))], metadataEnd: metadataEnd)
    }

    static func be16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
    static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
    static func be64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(be32(b, o)) << 32 | UInt64(be32(b, o + 4)) }
    /// A NUL-terminated string field.
    static func text(_ b: ArraySlice<UInt8>) -> String { String(decoding: b.prefix { $0 != 0 }, as: UTF8.self) }
}
