import CCrypto

/// A hash named by a LUKS header (LUKS1 spec 1.2.3, "hash-spec" and Table 2 of the spec's
/// supported hashes; LUKS2 spec, "af.hash", "kdf.hash", "digests.hash"; QEMU's
/// QCryptoHashAlgorithm names the same set). Every computation goes through libcrypto's EVP.
package struct LUKSHash: Sendable, Equatable, CustomStringConvertible {
    /// The name as the header spells it ("sha256").
    package let name: String
    /// Digest length in bytes.
    package let digestLength: Int

    /// The hashes LUKS headers name that libcrypto offers; anything else is refused by name
    /// (a header string is never passed to `EVP_get_digestbyname` unchecked).
    static let supported = ["sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160"]

    /// The hash `name` names (case-insensitive), or nil when unsupported.
    package init?(name: String) {
        let lower = name.lowercased()
        guard CryptoLibrary.isLoaded, Self.supported.contains(lower), let md = ccrypto_EVP_get_digestbyname(lower) else { return nil }
        self.name = lower
        self.digestLength = Int(ccrypto_EVP_MD_get_size(md))
    }

    package var description: String { name }

    var md: OpaquePointer {
        // Checked in init: the name is one libcrypto knows.
        ccrypto_EVP_get_digestbyname(name)!
    }

    /// The digest of `data` (`EVP_Digest`).
    func digest(_ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= digestLength)
        var length: UInt32 = 0
        let ok = ccrypto_EVP_Digest(data.baseAddress, data.count, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, md, nil)
        precondition(ok == 1 && Int(length) == digestLength, "ccrypto_EVP_Digest(\(name)) failed")
    }

    /// Runs `body` with a function that digests like `digest` through one reused context: the AF
    /// merge hashes thousands of 20-64 byte blocks, and a fresh context per block (`EVP_Digest`)
    /// cost more than the hashing.
    func withDigester<R>(_ body: ((UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Void) -> R) -> R {
        let ctx = ccrypto_EVP_MD_CTX_new()!
        defer { ccrypto_EVP_MD_CTX_free(ctx) }   // cleanses the context
        let md = self.md, name = self.name, length = digestLength
        return body { data, out in
            precondition(out.count >= length)
            var written: UInt32 = 0
            let ok = ccrypto_EVP_DigestInit_ex2(ctx, md, nil) == 1 && ccrypto_EVP_DigestUpdate(ctx, data.baseAddress, data.count) == 1
                && ccrypto_EVP_DigestFinal_ex(ctx, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &written) == 1
            precondition(ok && Int(written) == length, "EVP digest (\(name)) failed")
        }
    }

    /// PBKDF2-HMAC with this hash (`PKCS5_PBKDF2_HMAC`; RFC 2898 §5.2, as LUKS1 spec 1.2.3 §2.3 and
    /// the LUKS2 "pbkdf2" kdf use it). `iterations` must already be checked against a cap.
    func pbkdf2(password: UnsafeRawBufferPointer, salt: UnsafeRawBufferPointer, iterations: UInt32,
                keyLength: Int) -> SecretBytes {
        precondition(iterations >= 1 && iterations <= LUKSLimits.maxPBKDF2Iterations)
        return SecretBytes(count: keyLength) { out in
            let ok = ccrypto_PKCS5_PBKDF2_HMAC(
                password.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(password.count),
                salt.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(salt.count),
                Int32(iterations), md, Int32(keyLength), out.baseAddress?.assumingMemoryBound(to: UInt8.self))
            precondition(ok == 1, "ccrypto_PKCS5_PBKDF2_HMAC(\(name)) failed")
        }
    }
}

/// Caps on numbers read from LUKS headers (STYLE.md rule 5: a hostile header must not hang the
/// process or exhaust its memory). Each says where the real-world value comes from.
package enum LUKSLimits {
    /// PBKDF2 iterations. cryptsetup and QEMU benchmark for 1–2 s, which gives a few million on
    /// current CPUs (QEMU here: ~7 M for sha256); 50 M is well above that and still bounded.
    package static let maxPBKDF2Iterations: UInt32 = 50_000_000
    /// Argon2 memory in KiB: 4 GiB is cryptsetup's own hard maximum (`LUKS2_PBKDF_MAX_MEMORY`…
    /// its default cap is 1 GiB); more is refused.
    package static let maxArgon2MemoryKiB: UInt32 = 4 * 1024 * 1024
    /// Argon2 passes: cryptsetup's benchmark picks 4–10; anything in the thousands is hostile.
    package static let maxArgon2Time: UInt32 = 1000
    /// Argon2 lanes: cryptsetup caps threads at 4 (`LUKS2_PBKDF_MAX_THREADS`); allow some slack.
    package static let maxArgon2Lanes: UInt32 = 16
    /// AF stripes: LUKS1 spec 1.2.3 fixes 4000 (`LUKS_STRIPES`), and cryptsetup and QEMU refuse others.
    package static let stripes: UInt32 = 4000
    /// Master key bytes: 64 is aes-256-xts, the largest key of any cipher we offer.
    package static let maxKeyBytes = 64
    /// Salt bytes for LUKS2 keyslots and digests (cryptsetup writes 32; LUKS1's is fixed at 32).
    package static let maxSaltBytes = 256
}
