/// How much key-derivation work one unlock may cost: a policy cap, below the hard limits of
/// `LUKSLimits` (which refuse numbers no real header has). A key slot over the cap is not tried,
/// and when no key slot within it unlocks the volume, the refusal names the volume and the cost
/// (so that the user can raise the cap for an image they trust).
///
/// The defaults sit above what the tools create by default, and below what keeps a command
/// waiting for tens of seconds on a hostile header:
/// - PBKDF2: cryptsetup (LUKS1, `--iter-time 2000`) and qemu-img (`iter-time=2000`) benchmark
///   for 2 s; on this project's CI machine that is ~10 M iterations for sha256 (cryptsetup
///   benchmark: 5.0 M/s) and ~7 M for QEMU. 16 M keeps room for both and refuses 2^24.
/// - argon2: cryptsetup 2.x (LUKS2's default KDF) uses at most 1 GiB (`DEFAULT_LUKS2_MEMORY_KB`)
///   and at least 4 passes, tuned to 2 s; qemu-img does not create argon2 slots. 2 GiB of memory
///   and 16 GiB·passes (memory × time) is twice and about three times that.
public struct LUKSKDFLimits: Sendable, Equatable {
    /// Most PBKDF2 iterations of a key slot or digest.
    public var maxPBKDF2Iterations: UInt32
    /// Most argon2 memory, in KiB.
    public var maxArgon2MemoryKiB: UInt32
    /// Most argon2 work: memory in KiB times passes.
    public var maxArgon2Cost: UInt64

    public init(maxPBKDF2Iterations: UInt32 = 16_000_000, maxArgon2MemoryKiB: UInt32 = 2 << 20,
                maxArgon2Cost: UInt64 = 16 << 20) {
        self.maxPBKDF2Iterations = maxPBKDF2Iterations
        self.maxArgon2MemoryKiB = maxArgon2MemoryKiB
        self.maxArgon2Cost = maxArgon2Cost
    }

    public static let `default` = LUKSKDFLimits()

    /// Why `kdf` costs more than the cap, or nil when it is within it.
    func excess(of kdf: LUKSKDF) -> String? {
        switch kdf {
        case .pbkdf2(let hash, let iterations, _):
            guard iterations > maxPBKDF2Iterations else { return nil }
            return "PBKDF2-\(hash.name) with \(iterations) iterations is above the limit of \(maxPBKDF2Iterations)"
        case .argon2(let id, let time, let memory, _, _):
            let name = id ? "argon2id" : "argon2i"
            if memory > maxArgon2MemoryKiB {
                return "\(name) with \(memory) KiB of memory is above the limit of \(maxArgon2MemoryKiB) KiB"
            }
            let cost = UInt64(memory) * UInt64(time)
            guard cost > maxArgon2Cost else { return nil }
            return "\(name) with \(memory) KiB × \(time) passes is above the limit of \(maxArgon2Cost) KiB·passes"
        }
    }
}
