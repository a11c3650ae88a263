import CCrypto

/// The LUKS2 header (LUKS2 On-Disk Format Specification, cryptsetup docs/on-disk-format-luks2.pdf):
/// §2 "binary header" (4096 bytes, big-endian, in two copies: primary at 0, secondary at
/// hdr_size), followed by the JSON area (§3), whose "keyslots", "segments", "digests" and
/// "config" objects this decoder reads.
package enum LUKS2Header {
    /// Magic of the primary and the secondary binary header (spec §2, LUKS2_MAGIC_1ST/2ND).
    static let primaryMagic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]
    static let secondaryMagic: [UInt8] = [0x53, 0x4B, 0x55, 0x4C, 0xBA, 0xBE]
    static let binarySize = 4096
    /// hdr_size (binary header + JSON area) may only take these values (spec §2, Table 1 note:
    /// 16 KiB to 4 MiB, powers of two); they are also where a secondary header may start.
    static let headerSizes: [UInt64] = (14...22).map { UInt64(1) << $0 }

    /// Reads the newest valid copy of the header (checksums verified; the secondary is used when
    /// the primary is damaged), then decodes its JSON metadata.
    package static func read(from device: any BlockDevice) throws(LUKSError) -> LUKSHeader {
        var candidates: [(seqid: UInt64, json: LUKS2JSON, binary: [UInt8])] = []
        var problems: [String] = []
        var offsets: [UInt64] = [0]
        offsets += headerSizes
        for offset in offsets {
            do {
                if let copy = try readCopy(device, at: offset, primary: offset == 0) { candidates.append(copy) }
            } catch {
                problems.append("\(offset == 0 ? "primary" : "secondary") header at 0x\(String(offset, radix: 16)): \(error)")
            }
        }
        guard let best = candidates.max(by: { $0.seqid < $1.seqid }) else {
            throw .damaged(problems.isEmpty ? "no valid LUKS2 header" : problems.joined(separator: "; "))
        }
        return try decode(best.json, binary: best.binary, deviceSize: device.size)
    }

    /// One copy: nil when there is no header of that kind at `offset`; throws when there is one
    /// but it is damaged (bad checksum, bad size, JSON that does not parse).
    static func readCopy(_ device: any BlockDevice, at offset: UInt64, primary: Bool)
        throws(LUKSError) -> (seqid: UInt64, json: LUKS2JSON, binary: [UInt8])? {
        guard offset + UInt64(binarySize) <= device.size else { return nil }
        let b: [UInt8]
        do { b = try device.readBytes(at: offset, count: binarySize) } catch { throw .io("\(error)") }
        guard Array(b[0..<6]) == (primary ? primaryMagic : secondaryMagic) else { return nil }
        guard LUKS1Header.be16(b, 6) == 2 else { throw .unsupported("version \(LUKS1Header.be16(b, 6))") }
        let hdrSize = LUKS1Header.be64(b, 8), seqid = LUKS1Header.be64(b, 16), hdrOffset = LUKS1Header.be64(b, 256)
        guard headerSizes.contains(hdrSize) else { throw .damaged("hdr_size \(hdrSize) is not a power of two in 16 KiB...4 MiB") }
        guard hdrOffset == offset else { throw .damaged("hdr_offset 0x\(String(hdrOffset, radix: 16)) does not match where the header is") }
        guard offset + hdrSize <= device.size else { throw .damaged("header of \(hdrSize) bytes runs past the end of the device") }
        var area: [UInt8]
        do { area = try device.readBytes(at: offset + UInt64(binarySize), count: Int(hdrSize) - binarySize) } catch { throw .io("\(error)") }
        // Checksum (spec §2, "csum"): the hash named by checksum_alg over the binary header with
        // the csum field zeroed, followed by the whole JSON area.
        let algorithm = LUKS1Header.text(b[72..<104])
        guard let hash = LUKSHash(name: algorithm) else { throw .unsupported("header checksum algorithm '\(algorithm)'") }
        var zeroed = b
        for i in 448..<512 { zeroed[i] = 0 }
        let ctx = ccrypto_EVP_MD_CTX_new()!
        defer { ccrypto_EVP_MD_CTX_free(ctx) }
        var sum = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let ok = ccrypto_EVP_DigestInit_ex(ctx, hash.md, nil) == 1
            && zeroed.withUnsafeBytes { ccrypto_EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) } == 1
            && area.withUnsafeBytes { ccrypto_EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) } == 1
            && sum.withUnsafeMutableBufferPointer { ccrypto_EVP_DigestFinal_ex(ctx, $0.baseAddress, &length) } == 1
        precondition(ok, "EVP digest of the LUKS2 header failed")
        guard Array(sum[0..<Int(length)]) == Array(b[448..<(448 + Int(length))]) else { throw .damaged("checksum mismatch") }
        let json: LUKS2JSON
        do { json = try LUKS2JSON.parse(area) } catch { throw .damaged("metadata: \(error)") }
        area.removeAll()
        return (seqid, json, b)
    }

    /// The keyslots, the one crypt segment and the digests of the metadata (spec §3).
    static func decode(_ json: LUKS2JSON, binary b: [UInt8], deviceSize: UInt64) throws(LUKSError) -> LUKSHeader {
        if let mandatory = json["config"]?["requirements"]?["mandatory"]?.arrayValue, !mandatory.isEmpty {
            let names = mandatory.compactMap(\.stringValue).joined(separator: ", ")
            throw .unsupported("the volume has mandatory requirements we do not implement (\(names); e.g. an unfinished reencryption)")
        }
        guard let segments = json["segments"]?.objectValue, let keyslotObjects = json["keyslots"]?.objectValue,
              let digestObjects = json["digests"]?.objectValue else {
            throw .damaged("metadata lacks the keyslots, segments or digests object")
        }
        guard segments.count == 1, let (segmentID, segment) = segments.first else {
            throw .unsupported("\(segments.count) segments (only a single crypt segment is supported; reencryption in progress?)")
        }
        guard segment["type"]?.stringValue == "crypt" else { throw .unsupported("segment \(segmentID) is of type \(segment["type"]?.stringValue ?? "?")") }
        guard let offset = segment["offset"]?.uint64Value, let encryption = segment["encryption"]?.stringValue,
              let sectorSize = segment["sector_size"]?.uint64Value, let sizeText = segment["size"]?.stringValue else {
            throw .damaged("segment \(segmentID) lacks offset, size, encryption or sector_size")
        }
        guard [512, 1024, 2048, 4096].contains(sectorSize), offset % sectorSize == 0 else {
            throw .damaged("segment sector_size \(sectorSize) or offset \(offset) is invalid")
        }
        guard (segment["iv_tweak"]?.uint64Value ?? 0) == 0 else { throw .unsupported("segment iv_tweak other than 0") }
        let size: UInt64? = sizeText == "dynamic" ? nil : UInt64(sizeText)
        if sizeText != "dynamic", size == nil { throw .damaged("segment size '\(sizeText)'") }
        guard offset <= deviceSize, (size ?? 0) <= deviceSize - offset else {
            throw .damaged("segment (offset \(offset), size \(sizeText)) runs past the end of the device")
        }

        var digests: [(LUKSDigest, Set<Int>)] = []
        var masterKeyBytes: Int?
        for (id, d) in digestObjects {
            guard d["type"]?.stringValue == "pbkdf2" else { throw .unsupported("digest \(id) type \(d["type"]?.stringValue ?? "?")") }
            guard let segs = d["segments"]?.arrayValue?.compactMap(\.stringValue), segs.contains(segmentID) else { continue }
            guard let hashName = d["hash"]?.stringValue, let hash = LUKSHash(name: hashName),
                  let iterations = d["iterations"]?.uint64Value, iterations <= UInt64(UInt32.max),
                  let salt = base64(d["salt"]?.stringValue), let value = base64(d["digest"]?.stringValue),
                  let slots = d["keyslots"]?.arrayValue?.compactMap({ $0.stringValue.flatMap { Int($0) } }) else {
                throw .damaged("digest \(id) is incomplete or malformed")
            }
            digests.append((LUKSDigest(hash: hash, iterations: UInt32(iterations), salt: salt, digest: value), Set(slots)))
        }
        guard !digests.isEmpty else { throw .damaged("no digest covers segment \(segmentID)") }

        var keyslots: [LUKSKeyslot] = []
        var metadataEnd = UInt64(binarySize)
        for (id, k) in keyslotObjects.sorted(by: { (Int($0.key) ?? 0) < (Int($1.key) ?? 0) }) {
            guard let index = Int(id), index >= 0, index < 32 else { throw .damaged("keyslot name '\(id)'") }
            guard k["type"]?.stringValue == "luks2" else { continue }   // e.g. reencrypt slots: not for unlocking
            guard let keySize = k["key_size"]?.uint64Value, keySize > 0, keySize <= UInt64(LUKSLimits.maxKeyBytes),
                  let af = k["af"], af["type"]?.stringValue == "luks1", let stripes = af["stripes"]?.uint64Value,
                  stripes <= UInt64(UInt32.max),
                  let afHashName = af["hash"]?.stringValue,
                  let area = k["area"], area["type"]?.stringValue == "raw",
                  let areaOffset = area["offset"]?.uint64Value, let areaSize = area["size"]?.uint64Value,
                  let areaEncryption = area["encryption"]?.stringValue, let areaKeySize = area["key_size"]?.uint64Value,
                  areaKeySize > 0, areaKeySize <= UInt64(LUKSLimits.maxKeyBytes),
                  let kdfObject = k["kdf"], let kdfType = kdfObject["type"]?.stringValue,
                  let salt = base64(kdfObject["salt"]?.stringValue) else {
                throw .damaged("keyslot \(id) is incomplete or malformed")
            }
            guard let afHash = LUKSHash(name: afHashName) else { throw .unsupported("keyslot \(id): AF hash '\(afHashName)'") }
            let areaCipher: SectorCipherSpec
            do { areaCipher = try SectorCipherSpec.parse(encryption: areaEncryption, keyBytes: Int(areaKeySize)) } catch {
                throw .unsupported("keyslot \(id): \(error)")
            }
            let kdf: LUKSKDF
            switch kdfType {
            case "pbkdf2":
                guard let hashName = kdfObject["hash"]?.stringValue, let hash = LUKSHash(name: hashName),
                      let iterations = kdfObject["iterations"]?.uint64Value, iterations <= UInt64(UInt32.max) else {
                    throw .damaged("keyslot \(id): pbkdf2 kdf lacks hash or iterations")
                }
                kdf = .pbkdf2(hash: hash, iterations: UInt32(iterations), salt: salt)
            case "argon2i", "argon2id":
                guard let time = kdfObject["time"]?.uint64Value, let memory = kdfObject["memory"]?.uint64Value,
                      let cpus = kdfObject["cpus"]?.uint64Value,
                      time <= UInt64(UInt32.max), memory <= UInt64(UInt32.max), cpus <= UInt64(UInt32.max) else {
                    throw .damaged("keyslot \(id): argon2 kdf lacks time, memory or cpus")
                }
                kdf = .argon2(id: kdfType == "argon2id", time: UInt32(time), memoryKiB: UInt32(memory), lanes: UInt32(cpus), salt: salt)
            default:
                throw .unsupported("keyslot \(id): kdf '\(kdfType)'")
            }
            let priority = Int(clamping: k["priority"]?.uint64Value ?? 1)
            let slot = LUKSKeyslot(index: index, kdf: kdf, areaOffset: areaOffset, areaSize: areaSize, areaCipher: areaCipher,
                                   keyBytes: Int(keySize), stripes: UInt32(stripes), afHash: afHash, priority: priority)
            let (end, overflow) = areaOffset.addingReportingOverflow(areaSize)
            guard !overflow else { throw .damaged("keyslot \(id): area offset/size overflow") }
            metadataEnd = max(metadataEnd, end)
            if let m = masterKeyBytes, m != Int(keySize) { throw .unsupported("keyslots with different master key sizes") }
            masterKeyBytes = Int(keySize)
            keyslots.append(slot)
        }
        guard let keyBytes = masterKeyBytes else {
            throw .damaged("no luks2 keyslot to unlock the volume with")
        }
        let payloadCipher: SectorCipherSpec
        do { payloadCipher = try SectorCipherSpec.parse(encryption: encryption, keyBytes: keyBytes) } catch {
            throw .unsupported(error.description)
        }
        guard metadataEnd <= offset || offset == 0 else {
            throw .damaged("keyslot areas (up to 0x\(String(metadataEnd, radix: 16))) overlap the payload at 0x\(String(offset, radix: 16))")
        }
        let label = LUKS1Header.text(b[24..<72])
        return LUKSHeader(version: 2, uuid: LUKS1Header.text(b[168..<208]), label: label.isEmpty ? nil : label,
                          payloadCipher: payloadCipher, payloadOffset: offset, payloadSize: size, sectorSize: Int(sectorSize),
                          keyslots: keyslots, digests: digests, metadataEnd: metadataEnd)
    }

    /// Standard base64 (RFC 4648 §4) with padding, as LUKS2 stores salts and digests
    /// (`EVP_DecodeBlock`, which counts padding as zero bytes: those are taken off again).
    static func base64(_ text: String?) -> [UInt8]? {
        guard CryptoLibrary.isLoaded, let text, !text.isEmpty, text.utf8.count % 4 == 0, text.utf8.count <= 4096 else { return nil }
        let input = Array(text.utf8)
        var out = [UInt8](repeating: 0, count: input.count / 4 * 3)
        let n = ccrypto_EVP_DecodeBlock(&out, input, Int32(input.count))
        guard n >= 0 else { return nil }
        let padding = input.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        guard padding <= 2 else { return nil }
        return Array(out[0..<(Int(n) - padding)])
    }
}
