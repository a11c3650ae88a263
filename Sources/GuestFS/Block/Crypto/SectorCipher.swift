import Synchronization
import CCrypto

/// A payload cipher as LUKS names it: algorithm, chaining mode and IV generator, plus the key size
/// (LUKS1 spec 1.2.3, "cipher-name" / "cipher-mode" and §A "Cipher and hash specification
/// registry"; LUKS2 spec, "segments.encryption", in dm-crypt's `aes-xts-plain64` spelling;
/// QEMU crypto/block-luks.c, qcrypto_block_luks_parse_cipher_mode / _ivgen).
package struct SectorCipherSpec: Sendable, Equatable, CustomStringConvertible {
    package enum Mode: String, Sendable { case xts, cbc, ecb }
    package enum IVGenerator: Sendable, Equatable {
        /// No IV (ecb).
        case none
        /// The low 32 bits of the sector number, little-endian, zero-padded.
        case plain
        /// The sector number, 64-bit little-endian, zero-padded.
        case plain64
        /// The sector number (as plain64) encrypted with ECB under hash(key) (dm-crypt ESSIV).
        case essiv(LUKSHash)
    }

    package let mode: Mode
    package let ivgen: IVGenerator
    /// Length of the whole key in bytes (both halves for XTS).
    package let keyBytes: Int

    package var description: String {
        let iv: String
        switch ivgen {
        case .none: iv = ""
        case .plain: iv = "-plain"
        case .plain64: iv = "-plain64"
        case .essiv(let h): iv = "-essiv:\(h.name)"
        }
        return "aes-\(mode.rawValue)\(iv) (\(keyBytes * 8)-bit key)"
    }

    /// The cipher named by LUKS1's `cipher-name` and `cipher-mode` fields ("aes", "xts-plain64").
    package static func parse(cipherName: String, cipherMode: String, keyBytes: Int) throws(SectorCipherError) -> SectorCipherSpec {
        guard cipherName.lowercased() == "aes" else {
            throw .unsupported("cipher '\(cipherName)' is not supported (only aes; serpent, twofish and cast5 are not offered by libcrypto)")
        }
        let parts = cipherMode.split(separator: "-", maxSplits: 1).map(String.init)
        guard let mode = Mode(rawValue: parts.first?.lowercased() ?? "") else {
            throw .unsupported("cipher mode '\(cipherMode)' is not supported (xts, cbc or ecb)")
        }
        let ivgen: IVGenerator
        switch parts.count > 1 ? parts[1].lowercased() : "" {
        case "" where mode == .ecb: ivgen = .none
        case "plain": ivgen = .plain
        case "plain64": ivgen = .plain64
        case let s where s.hasPrefix("essiv:"):
            guard let hash = LUKSHash(name: String(s.dropFirst(6))) else {
                throw .unsupported("ESSIV hash in '\(cipherMode)' is not supported")
            }
            ivgen = .essiv(hash)
        default:
            throw .unsupported("IV generator of cipher mode '\(cipherMode)' is not supported (plain, plain64 or essiv:HASH)")
        }
        if mode == .ecb, ivgen != .none { throw .unsupported("ecb takes no IV generator ('\(cipherMode)')") }
        if mode != .ecb, ivgen == .none { throw .unsupported("cipher mode '\(cipherMode)' names no IV generator") }
        let spec = SectorCipherSpec(mode: mode, ivgen: ivgen, keyBytes: keyBytes)
        guard spec.evpName != nil else {
            throw .unsupported("a \(keyBytes)-byte key does not fit aes-\(mode.rawValue) (16, 24 or 32 bytes; twice that for xts)")
        }
        if case .essiv(let h) = ivgen, ![16, 24, 32].contains(h.digestLength) {
            throw .unsupported("ESSIV hash \(h.name) gives a \(h.digestLength)-byte key, which fits no AES key size")
        }
        return spec
    }

    /// The cipher named by a LUKS2 `encryption` string ("aes-xts-plain64", "aes-cbc-essiv:sha256").
    package static func parse(encryption: String, keyBytes: Int) throws(SectorCipherError) -> SectorCipherSpec {
        let parts = encryption.split(separator: "-", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw .unsupported("encryption '\(encryption)' is not of the form CIPHER-MODE-IV") }
        return try parse(cipherName: parts[0], cipherMode: parts[1], keyBytes: keyBytes)
    }

    /// libcrypto's name of the block cipher with this mode and key length.
    var evpName: String? {
        let bits: Int
        switch mode {
        case .xts:
            guard keyBytes == 32 || keyBytes == 64 else { return nil }
            bits = keyBytes * 4
        case .cbc, .ecb:
            guard [16, 24, 32].contains(keyBytes) else { return nil }
            bits = keyBytes * 8
        }
        return "AES-\(bits)-\(mode.rawValue.uppercased())"
    }
}

/// Why a cipher cannot be set up.
package enum SectorCipherError: Error, CustomStringConvertible, Sendable {
    case unsupported(String)
    package var description: String {
        switch self { case .unsupported(let s): return s }
    }
}

/// Encrypts and decrypts whole sectors in place, each with the IV of its sector number
/// (dm-crypt's and QEMU's crypto/block.c model). IV sector numbers count 512-byte units whatever
/// the sector size, as dm-crypt does without `iv_large_sectors` (cryptsetup does not set it for
/// LUKS2): the encryption sector `n` of a run starting at IV sector `firstSector` gets the IV of
/// `firstSector + n * sectorSize / 512`. Safe to use from many threads at once: every call takes
/// keyed cipher contexts of its own from a small pool (or keys new ones) and gives them back.
package final class SectorCipher: @unchecked Sendable {
    // @unchecked: `cipher` and `essivCipher` are libcrypto EVP_CIPHER objects, immutable and
    // documented as safe to share between threads; the keys are read-only SecretBytes.
    package let spec: SectorCipherSpec
    /// Bytes per sector: 512, or what a LUKS2 segment says (512…4096).
    package let sectorSize: Int
    private let key: SecretBytes
    private let cipher: OpaquePointer
    private let essivKey: SecretBytes?
    private let essivCipher: OpaquePointer?

    /// A cipher for `spec` keyed with `key` (whose length must be `spec.keyBytes`).
    package init(spec: SectorCipherSpec, key: SecretBytes, sectorSize: Int = 512) throws(SectorCipherError) {
        precondition(key.count == spec.keyBytes, "key length does not match the cipher spec")
        guard [512, 1024, 2048, 4096].contains(sectorSize) else {
            throw .unsupported("sector size \(sectorSize) is not one of 512, 1024, 2048, 4096")
        }
        if let why = CryptoLibrary.loadError { throw .unsupported(why) }
        guard let name = spec.evpName, let cipher = ccrypto_EVP_CIPHER_fetch(nil, name, nil) else {
            throw .unsupported("libcrypto does not offer \(spec)")
        }
        if spec.mode == .xts {
            // OpenSSL refuses an XTS key whose halves are equal; so does the kernel, which makes
            // such a key unusable for a real volume too.
            let same = key.withBytes { b in
                (0..<(b.count / 2)).allSatisfy { b[$0] == b[$0 + b.count / 2] }
            }
            if same { ccrypto_EVP_CIPHER_free(cipher); throw .unsupported("the XTS key has two equal halves") }
        }
        self.spec = spec
        self.sectorSize = sectorSize
        self.key = key
        self.cipher = cipher
        if case .essiv(let hash) = spec.ivgen {
            let salt = SecretBytes(count: hash.digestLength) { out in key.withBytes { hash.digest($0, into: out) } }
            guard let ecb = ccrypto_EVP_CIPHER_fetch(nil, "AES-\(hash.digestLength * 8)-ECB", nil) else {
                ccrypto_EVP_CIPHER_free(cipher)
                throw .unsupported("libcrypto does not offer the ESSIV cipher")
            }
            essivKey = salt
            essivCipher = ecb
        } else {
            essivKey = nil
            essivCipher = nil
        }
    }

    deinit {
        idle.withLock { lists in
            for c in lists.encrypt + lists.decrypt { c.free() }
            lists = ([], [])
        }
        ccrypto_EVP_CIPHER_free(cipher)
        if let essivCipher { ccrypto_EVP_CIPHER_free(essivCipher) }
    }

    /// A keyed cipher context (padding off) and, for ESSIV, the keyed context that makes IVs.
    private struct Contexts: @unchecked Sendable {
        // @unchecked: a context is used by one thread at a time (taken from `idle`, given back).
        let main: OpaquePointer
        let essiv: OpaquePointer?
        func free() {
            ccrypto_EVP_CIPHER_CTX_free(main)   // frees and cleanses the key schedule
            if let essiv { ccrypto_EVP_CIPHER_CTX_free(essiv) }
        }
    }
    /// Keyed contexts not in use, per direction, for reuse: keying a context through libcrypto's
    /// provider layer costs as much as encrypting a few sectors, and libext2fs writes a block
    /// (8 sectors) at a time. At most `maxIdleContexts` per direction are kept.
    private let idle = Mutex<(encrypt: [Contexts], decrypt: [Contexts])>(([], []))
    static let maxIdleContexts = 8

    private func takeContexts(encrypt: Bool) -> Contexts {
        if let reused = idle.withLock({ encrypt ? $0.encrypt.popLast() : $0.decrypt.popLast() }) { return reused }
        let enc: Int32 = encrypt ? 1 : 0
        let ctx = ccrypto_EVP_CIPHER_CTX_new()!
        let ok = key.withBytes {
            ccrypto_EVP_CipherInit_ex2(ctx, cipher, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, enc, nil)
        }
        precondition(ok == 1, "ccrypto_EVP_CipherInit_ex2(\(spec)) failed")
        ccrypto_EVP_CIPHER_CTX_set_padding(ctx, 0)
        var essivCtx: OpaquePointer?
        if let essivCipher, let essivKey {
            essivCtx = ccrypto_EVP_CIPHER_CTX_new()!
            let ok = essivKey.withBytes {
                ccrypto_EVP_CipherInit_ex2(essivCtx, essivCipher, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, 1, nil)
            }
            precondition(ok == 1, "ccrypto_EVP_CipherInit_ex2(ESSIV) failed")
            ccrypto_EVP_CIPHER_CTX_set_padding(essivCtx, 0)
        }
        return Contexts(main: ctx, essiv: essivCtx)
    }

    private func giveBack(_ contexts: Contexts, encrypt: Bool) {
        let kept = idle.withLock { lists in
            if encrypt, lists.encrypt.count < Self.maxIdleContexts { lists.encrypt.append(contexts); return true }
            if !encrypt, lists.decrypt.count < Self.maxIdleContexts { lists.decrypt.append(contexts); return true }
            return false
        }
        if !kept { contexts.free() }
    }

    /// Decrypts `buffer` (a whole number of sectors) in place; large buffers on several threads
    /// unless the caller already runs on one of several (`parallel: false`).
    package func decrypt(_ buffer: UnsafeMutableRawBufferPointer, firstSector: UInt64, parallel: Bool = true) {
        if parallel {
            runInParallel(buffer, firstSector: firstSector, encrypt: false)
        } else {
            run(buffer, firstSector: firstSector, encrypt: false)
        }
    }

    /// Encrypts `buffer` (a whole number of sectors) in place.
    package func encrypt(_ buffer: UnsafeMutableRawBufferPointer, firstSector: UInt64) {
        runInParallel(buffer, firstSector: firstSector, encrypt: true)
    }

    /// Threads one large request is split over (each takes a contiguous run of sectors).
    static let poolWidth = 4
    /// Requests below this size run on the calling thread.
    static let parallelMinBytes = 256 << 10

    private func runInParallel(_ buffer: UnsafeMutableRawBufferPointer, firstSector: UInt64, encrypt: Bool) {
        let sectors = buffer.count / sectorSize
        // No more threads than CPUs: the cipher is pure computation (WorkerThreads.processorCount).
        let width = min(Self.poolWidth, sectors, WorkerThreads.processorCount)
        guard buffer.count >= Self.parallelMinBytes, width > 1 else {
            run(buffer, firstSector: firstSector, encrypt: encrypt)
            return
        }
        // Each worker owns a disjoint part of `buffer`; WorkerThreads.perform returns after all ran.
        let shared = SendableBuffer(buffer: buffer)
        WorkerThreads.perform(iterations: width, polling: true) { worker in
            let lower = sectors * worker / width, upper = sectors * (worker + 1) / width
            let part = UnsafeMutableRawBufferPointer(rebasing: shared.buffer[(lower * sectorSize)..<(upper * sectorSize)])
            run(part, firstSector: firstSector &+ UInt64(lower) &* UInt64(sectorSize / 512), encrypt: encrypt)
        }
    }

    private func run(_ buffer: UnsafeMutableRawBufferPointer, firstSector: UInt64, encrypt: Bool) {
        precondition(buffer.count % sectorSize == 0, "sector cipher given a partial sector")
        guard buffer.count > 0, let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let contexts = takeContexts(encrypt: encrypt)
        defer { giveBack(contexts, encrypt: encrypt) }
        let ctx = contexts.main, essivCtx = contexts.essiv
        let enc: Int32 = encrypt ? 1 : 0

        var iv = (UInt64(0), UInt64(0))
        let sectors = buffer.count / sectorSize
        withUnsafeMutableBytes(of: &iv) { ivBytes in
            let ivPtr = ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for n in 0..<sectors {
                let sector = firstSector &+ UInt64(n) &* UInt64(sectorSize / 512)
                switch spec.ivgen {
                case .none:
                    break
                case .plain:
                    ivBytes.storeBytes(of: UInt64(UInt32(truncatingIfNeeded: sector)).littleEndian, toByteOffset: 0, as: UInt64.self)
                    ivBytes.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
                case .plain64:
                    ivBytes.storeBytes(of: sector.littleEndian, toByteOffset: 0, as: UInt64.self)
                    ivBytes.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
                case .essiv:
                    ivBytes.storeBytes(of: sector.littleEndian, toByteOffset: 0, as: UInt64.self)
                    ivBytes.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
                    var outLength: Int32 = 0
                    let ok = ccrypto_EVP_CipherUpdate(essivCtx, ivPtr, &outLength, ivPtr, 16)
                    precondition(ok == 1 && outLength == 16, "ESSIV encryption failed")
                }
                if spec.ivgen != .none {
                    let ok = ccrypto_EVP_CipherInit_ex2(ctx, nil, nil, ivPtr, enc, nil)
                    precondition(ok == 1, "EVP_CipherInit_ex2 (IV) failed")
                }
                let p = base + n * sectorSize
                var outLength: Int32 = 0
                // XTS needs the whole data unit in one update; in-place operation is allowed.
                let ok = ccrypto_EVP_CipherUpdate(ctx, p, &outLength, p, Int32(sectorSize))
                precondition(ok == 1 && Int(outLength) == sectorSize, "ccrypto_EVP_CipherUpdate(\(spec)) failed")
            }
        }
    }
}

/// A buffer handed to the workers of one `WorkerThreads.perform`, each touching its own part.
private struct SendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
}
