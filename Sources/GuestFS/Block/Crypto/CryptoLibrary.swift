import CCrypto

/// libcrypto, loaded on first use instead of linked (Sources/CCrypto/include/CCrypto.h says
/// why). Every type here that calls libcrypto asks `isLoaded` first (LUKSHash, MessageDigest,
/// SectorCipher, LUKS2's base64), so no `ccrypto_` call is made before the library is there;
/// those calls all happen while images are opened and options checked, before the sandbox.
package enum CryptoLibrary {
    /// nil once libcrypto is loaded, else the one-line reason it could not be.
    package static let loadError: String? = {
        var error: UnsafePointer<CChar>?
        guard ccrypto_load(&error) == 0 else { return error.map { String(cString: $0) } ?? "libcrypto could not be loaded" }
        return nil
    }()

    /// Loads libcrypto if it is not yet loaded; false when it cannot be.
    package static var isLoaded: Bool { loadError == nil }
}
