import CCrypto

/// A streaming message digest through libcrypto's EVP (`EVP_DigestInit_ex2`, `EVP_DigestUpdate`,
/// `EVP_DigestFinal_ex`), for the digests `guestfs_checksum` offers: md5, sha1, sha224, sha256,
/// sha384 and sha512 (RFC 1321, FIPS 180-4). `imagemount ls --checksum` hashes guest files with it.
package final class MessageDigest {
    /// The names accepted, as libguestfs spells them; nothing else reaches `EVP_get_digestbyname`.
    package static let names = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]

    private let context: OpaquePointer
    package let name: String

    /// A fresh digest of the kind `name` names, or nil when it is not one of `names`.
    package init?(name: String) {
        guard CryptoLibrary.isLoaded, Self.names.contains(name), let md = ccrypto_EVP_get_digestbyname(name), let context = ccrypto_EVP_MD_CTX_new() else { return nil }
        guard ccrypto_EVP_DigestInit_ex2(context, md, nil) == 1 else {
            ccrypto_EVP_MD_CTX_free(context)
            return nil
        }
        self.context = context
        self.name = name
    }

    deinit { ccrypto_EVP_MD_CTX_free(context) }

    /// Adds `bytes` to the digest (`EVP_DigestUpdate`).
    package func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let ok = ccrypto_EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
        precondition(ok == 1, "ccrypto_EVP_DigestUpdate(\(name)) failed")
    }

    /// The digest of everything added (`EVP_DigestFinal_ex`); the object is spent afterwards.
    package func finish() -> [UInt8] {
        // EVP_MAX_MD_SIZE (openssl/evp.h): 64 bytes, enough for SHA-512.
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { ccrypto_EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        precondition(ok == 1 && Int(length) <= out.count, "ccrypto_EVP_DigestFinal_ex(\(name)) failed")
        return Array(out.prefix(Int(length)))
    }
}
