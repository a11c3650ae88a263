import SystemArgon2

/// How a keyslot turns a passphrase into the key of its key material area.
/// LUKS1 spec 1.2.3 §2.3 (PBKDF2 only); LUKS2 spec, "kdf" object (pbkdf2, argon2i, argon2id).
package enum LUKSKDF: Sendable, Equatable {
    case pbkdf2(hash: LUKSHash, iterations: UInt32, salt: [UInt8])
    /// `argon2id` when `id`, else argon2i. `memoryKiB` is argon2's m_cost, `lanes` its parallelism.
    case argon2(id: Bool, time: UInt32, memoryKiB: UInt32, lanes: UInt32, salt: [UInt8])

    /// Checks the numbers against `LUKSLimits` (a hostile header must not hang us or take all memory).
    func validate() throws(LUKSError) {
        switch self {
        case .pbkdf2(_, let iterations, let salt):
            guard iterations >= 1, iterations <= LUKSLimits.maxPBKDF2Iterations else {
                throw .damaged("PBKDF2 iteration count \(iterations) is outside 1...\(LUKSLimits.maxPBKDF2Iterations)")
            }
            guard salt.count <= LUKSLimits.maxSaltBytes else { throw .damaged("salt of \(salt.count) bytes is too long") }
        case .argon2(_, let time, let memory, let lanes, let salt):
            guard time >= 1, time <= LUKSLimits.maxArgon2Time else {
                throw .damaged("argon2 time cost \(time) is outside 1...\(LUKSLimits.maxArgon2Time)")
            }
            guard memory >= 8 * max(lanes, 1), memory <= LUKSLimits.maxArgon2MemoryKiB else {
                throw .damaged("argon2 memory \(memory) KiB is outside \(8 * max(lanes, 1))...\(LUKSLimits.maxArgon2MemoryKiB) KiB")
            }
            guard lanes >= 1, lanes <= LUKSLimits.maxArgon2Lanes else {
                throw .damaged("argon2 parallelism \(lanes) is outside 1...\(LUKSLimits.maxArgon2Lanes)")
            }
            guard salt.count >= 8, salt.count <= LUKSLimits.maxSaltBytes else { throw .damaged("argon2 salt of \(salt.count) bytes") }
        }
    }

    /// The derived key of `length` bytes (PKCS5_PBKDF2_HMAC, or libargon2's argon2i/argon2id_hash_raw,
    /// Argon2 version 0x13 as cryptsetup uses it).
    func derive(passphrase: SecretBytes, length: Int) throws(LUKSError) -> SecretBytes {
        try validate()
        switch self {
        case .pbkdf2(let hash, let iterations, let salt):
            return passphrase.withBytes { p in
                salt.withUnsafeBytes { s in hash.pbkdf2(password: p, salt: s, iterations: iterations, keyLength: length) }
            }
        case .argon2(let id, let time, let memory, let lanes, let salt):
            var status: Int32 = 0
            let key = passphrase.withBytes { p in
                salt.withUnsafeBytes { s in
                    SecretBytes(count: length) { out in
                        let f = id ? argon2id_hash_raw : argon2i_hash_raw
                        status = f(time, memory, lanes, p.baseAddress, p.count, s.baseAddress, s.count, out.baseAddress, out.count)
                    }
                }
            }
            guard status == ARGON2_OK.rawValue else {
                let message = argon2_error_message(status).map { String(cString: $0) } ?? "error \(status)"
                throw .damaged("argon2 key derivation failed: \(message)")
            }
            return key
        }
    }
}

/// The master-key digest: PBKDF2 of the candidate master key must equal a stored value
/// (LUKS1 spec 1.2.3 §2.4 mk-digest, 20 bytes; LUKS2 spec, "digests" object of type pbkdf2).
package struct LUKSDigest: Sendable, Equatable {
    package let hash: LUKSHash
    package let iterations: UInt32
    package let salt: [UInt8]
    package let digest: [UInt8]

    func matches(_ masterKey: SecretBytes) throws(LUKSError) -> Bool {
        try LUKSKDF.pbkdf2(hash: hash, iterations: iterations, salt: salt).validate()
        guard !digest.isEmpty, digest.count <= 64 else { throw .damaged("master key digest of \(digest.count) bytes") }
        let computed = masterKey.withBytes { mk in
            salt.withUnsafeBytes { hash.pbkdf2(password: mk, salt: $0, iterations: iterations, keyLength: digest.count) }
        }
        return digest.withUnsafeBytes { computed.constantTimeEquals($0) }
    }
}

/// One keyslot: where its anti-forensic split key material lies, how it is encrypted, and the KDF.
/// LUKS1 spec 1.2.3 §2.4 ("key slot" fields), LUKS2 spec "keyslots" (type luks2, af type luks1,
/// area type raw).
package struct LUKSKeyslot: Sendable {
    package let index: Int
    package let kdf: LUKSKDF
    /// Byte offset of the key material from the start of the LUKS header.
    package let areaOffset: UInt64
    /// Bytes reserved for the key material (LUKS2 "area.size"; LUKS1: up to the next slot).
    package let areaSize: UInt64?
    /// The cipher the key material is encrypted with (sector 0 at `areaOffset`, 512-byte sectors).
    package let areaCipher: SectorCipherSpec
    /// Master key length in bytes.
    package let keyBytes: Int
    package let stripes: UInt32
    package let afHash: LUKSHash
    /// LUKS2 "priority": 0 means "use only when asked by number" (cryptsetup skips it).
    package let priority: Int

    /// Bytes of key material: keyBytes × stripes, rounded up to whole 512-byte sectors.
    var materialBytes: Int {
        let n = keyBytes * Int(stripes)
        return (n + 511) / 512 * 512
    }

    /// Recovers the candidate master key with `passphrase`: derive the area key, decrypt the
    /// split material, merge it (LUKS1 spec §2.4, "AFmerge"). The caller checks the digest.
    func candidateKey(passphrase: SecretBytes, header: any BlockDevice) throws(LUKSError) -> SecretBytes {
        guard stripes == LUKSLimits.stripes else { throw .damaged("keyslot \(index): \(stripes) AF stripes, LUKS uses \(LUKSLimits.stripes)") }
        guard keyBytes > 0, keyBytes <= LUKSLimits.maxKeyBytes else { throw .damaged("keyslot \(index): master key of \(keyBytes) bytes") }
        let length = materialBytes
        let (end, overflow) = areaOffset.addingReportingOverflow(UInt64(length))
        guard !overflow, end <= header.size else {
            throw .damaged("keyslot \(index): key material (\(length) bytes at 0x\(String(areaOffset, radix: 16))) runs past the end of the device")
        }
        if let areaSize, UInt64(length) > areaSize {
            throw .damaged("keyslot \(index): key material of \(length) bytes does not fit its area of \(areaSize) bytes")
        }
        let areaKey = try kdf.derive(passphrase: passphrase, length: areaCipher.keyBytes)
        let cipher: SectorCipher
        do { cipher = try SectorCipher(spec: areaCipher, key: areaKey) } catch {
            // A wrong passphrase can produce an XTS key with equal halves only with negligible
            // probability; treat it as "does not unlock".
            throw .unsupported("keyslot \(index): \(error)")
        }
        var material = [UInt8](repeating: 0, count: length)
        defer { SecretBytes.wipe(&material) }
        do {
            try material.withUnsafeMutableBytes { try header.read(into: $0, at: areaOffset) }
        } catch {
            throw .io("keyslot \(index): cannot read key material: \(error)")
        }
        material.withUnsafeMutableBytes { cipher.decrypt($0, firstSector: 0) }
        return material.withUnsafeBytes { AntiForensic.merge($0, keyBytes: keyBytes, stripes: Int(stripes), hash: afHash) }
    }
}

/// The anti-forensic information splitter's merge (LUKS1 spec 1.2.3 §2.4, "AFmerge", and the
/// hash diffusion H of its Figure 5; LUKS2 uses the same with af type "luks1").
enum AntiForensic {
    /// d₀ = 0; dᵢ = H(dᵢ₋₁ ⊕ sᵢ) for i < stripes-1; key = d ⊕ s_last.
    static func merge(_ material: UnsafeRawBufferPointer, keyBytes: Int, stripes: Int, hash: LUKSHash) -> SecretBytes {
        precondition(material.count >= keyBytes * stripes)
        return SecretBytes(count: keyBytes) { d in
            d.initializeMemory(as: UInt8.self, repeating: 0)
            // One digest context and one pair of scratch blocks for all stripes.
            var input = [UInt8](repeating: 0, count: 4 + hash.digestLength)
            var output = [UInt8](repeating: 0, count: 64)
            defer { SecretBytes.wipe(&input); SecretBytes.wipe(&output) }
            hash.withDigester { digest in
                for i in 0..<(stripes - 1) {
                    for j in 0..<keyBytes { d[j] ^= material[i * keyBytes + j] }
                    diffuse(d, size: hash.digestLength, input: &input, output: &output, digest: digest)
                }
            }
            for j in 0..<keyBytes { d[j] ^= material[(stripes - 1) * keyBytes + j] }
        }
    }

    /// H: the buffer in digest-sized blocks, block j replaced by hash(be32(j) ‖ block j), the last
    /// block by the first bytes of its hash. `input` (4 + size bytes) and `output` (64) are scratch.
    static func diffuse(_ d: UnsafeMutableRawBufferPointer, size: Int, input: inout [UInt8], output: inout [UInt8],
                        digest: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Void) {
        var block = 0, start = 0
        while start < d.count {
            let n = min(size, d.count - start)
            input[0] = UInt8(truncatingIfNeeded: block >> 24); input[1] = UInt8(truncatingIfNeeded: block >> 16)
            input[2] = UInt8(truncatingIfNeeded: block >> 8); input[3] = UInt8(truncatingIfNeeded: block)
            for k in 0..<n { input[4 + k] = d[start + k] }
            input.withUnsafeBytes { i in
                output.withUnsafeMutableBytes { o in digest(UnsafeRawBufferPointer(rebasing: i[..<(4 + n)]), o) }
            }
            for k in 0..<n { d[start + k] = output[k] }
            block += 1
            start += n
        }
    }
}

/// What can go wrong opening a LUKS volume; `LUKSVolume` turns these into `ImageError`s.
package enum LUKSError: Error, Sendable, CustomStringConvertible {
    /// The header or a keyslot is malformed or out of bounds.
    case damaged(String)
    /// A valid header asks for something we do not implement (cipher, KDF, requirement flag).
    case unsupported(String)
    /// Reading the device failed.
    case io(String)

    package var description: String {
        switch self {
        case .damaged(let s), .unsupported(let s), .io(let s): return s
        }
    }
}
