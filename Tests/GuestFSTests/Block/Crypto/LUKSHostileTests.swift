import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// LUKS headers made by cryptsetup, then patched: a payload past the device end and key
/// derivations costlier than the cap are one typed error, fast.
@Suite struct LUKSHostileTests {
    static let passphrase = "hostile luks"

    /// A 4 MiB LUKS1 container with PBKDF2 at 1000 iterations (cheap to unlock).
    static func luks1() throws -> HostileImage {
        try HostileImage("luks1.img") { p in
            let key = p + ".key"
            try Shell.check("truncate -s 4M \(Shell.quote(p)) && printf %s \(Shell.quote(passphrase)) > \(Shell.quote(key)) && cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file \(Shell.quote(key)) \(Shell.quote(p))")
        }
    }

    func open(_ image: HostileImage, limits: LUKSKDFLimits = .default) throws -> DecryptingDevice {
        try LUKSVolume.open(RawImage(path: image.path, writable: false), passphrases: [SecretBytes(utf8: Self.passphrase)],
                            name: "/dev/mapper/x", limits: limits)
    }

    @Test func luks1PayloadOffsetPastTheDeviceEnd() throws {
        let image = try Self.luks1()
        #expect(try open(image).size > 0)
        // payload-offset: LUKS1 spec 1.2.3, "PHDR", bytes 104-107, big-endian sectors.
        for sectors: UInt64 in [0x00FF_FFFF, 0xFFFF_FFFF, 4 * 2048 + 1] {
            try image.patchBE(104, sectors, bytes: 4)
            expectImageError([image.path, "LUKS payload", "past the end"]) { _ = try open(image) }
        }
    }

    @Test func pbkdf2IterationsAboveTheCapAreRefusedAtOnce() throws {
        let image = try Self.luks1()
        // Key slot 0's iteration count: "PHDR" key slot array at 208, +4, big-endian.
        try image.patchBE(208 + 4, 1 << 24, bytes: 4)
        let start = Date()
        let e = expectImageError([image.path, "key slot 0", "16777216", "limit"]) { _ = try open(image) }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(e.map { !$0.description.contains("\n") } ?? false)
        // The cap is the caller's: a lower one refuses the real 1000 iterations, the default opens them.
        let fresh = try Self.luks1()
        expectImageError(["1000 iterations", "limit of 999"]) {
            _ = try open(fresh, limits: LUKSKDFLimits(maxPBKDF2Iterations: 999))
        }
        #expect(try open(fresh).size > 0)
        // Through a KeyStore: the cap travels with the keys (the CLI sets it from an option).
        let store = KeyStore(entries: [KeyStore.Entry(id: "all", secret: SecretBytes(utf8: Self.passphrase))],
                             kdfLimits: LUKSKDFLimits(maxPBKDF2Iterations: 999))
        expectImageError(["limit of 999"]) {
            let guest = try Guest(drives: [DriveSpec(path: fresh.path, format: .raw)], keys: store)
            _ = guest
        }
    }

    @Test func argon2CostAboveTheCapIsRefused() throws {
        let g = try LUKSFixtures.argon2WholeDisk()     // argon2id, 32768 KiB, 4 passes
        let device = try RawImage(path: g.container, writable: false)
        expectImageError(["argon2id", "32768 KiB", "4 passes", "limit"]) {
            _ = try LUKSVolume.open(device, passphrases: [SecretBytes(utf8: LUKSFixtures.passphrase)], name: "x",
                                    limits: LUKSKDFLimits(maxArgon2Cost: 100_000))
        }
        expectImageError(["argon2id", "32768 KiB of memory"]) {
            _ = try LUKSVolume.open(device, passphrases: [SecretBytes(utf8: LUKSFixtures.passphrase)], name: "x",
                                    limits: LUKSKDFLimits(maxArgon2MemoryKiB: 16384))
        }
    }
}
