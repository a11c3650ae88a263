import CCrypto

/// Key material: passphrases, derived keys, master keys. The bytes live in their own allocation
/// (never in a Swift array that could be copied behind our back), are wiped with
/// `OPENSSL_cleanse` when the last reference goes, and never print: `description` is a
/// placeholder, so a secret cannot leak into a log line or an error message by interpolation.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible {
    // @unchecked: the storage is written only before the object is shared (init, or the
    // `fill` closure of `init(count:fill:)`), then only read.
    private let storage: UnsafeMutableRawBufferPointer

    /// `count` bytes produced by `fill`, which writes into the secret storage directly.
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        do {
            try fill(UnsafeMutableRawBufferPointer(rebasing: storage[..<count]))
        } catch {
            ccrypto_cleanse(storage.baseAddress, storage.count)
            storage.deallocate()
            throw error
        }
        self.count = count
    }

    /// A copy of `bytes`; the caller wipes its own copy (see `wipe(_:)`).
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count) { $0.copyMemory(from: bytes) }
    }

    /// The UTF-8 bytes of a string (a passphrase typed on the command line or read from stdin).
    /// Swift strings cannot be wiped; callers keep them as short-lived as they can.
    public convenience init(utf8 text: String) {
        var text = text
        self.init(count: text.utf8.count) { out in
            text.withUTF8 { out.copyMemory(from: UnsafeRawBufferPointer($0)) }
        }
    }

    deinit {
        ccrypto_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    public let count: Int

    /// Lends the bytes for the duration of `body`; they must not escape it.
    public func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try body(UnsafeRawBufferPointer(rebasing: storage[..<count]))
    }

    /// Constant-time comparison with `other` (the master-key digest check).
    public func constantTimeEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == count else { return false }
        return withBytes { ccrypto_equal($0.baseAddress, other.baseAddress, count) == 0 }
    }

    public var description: String { "<secret, \(count) bytes>" }

    /// Wipes a scratch buffer that held key material (`OPENSSL_cleanse`: not optimised away).
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        ccrypto_cleanse(buffer.baseAddress, buffer.count)
    }

    /// Wipes an array that held key material, in place.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { wipe($0) }
    }
}
