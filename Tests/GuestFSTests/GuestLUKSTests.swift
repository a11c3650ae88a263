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

/// LUKS containers inside guests: unlocked into /dev/mapper/luks-UUID, then LVM and inspection
/// see them like any other device.
@Suite struct GuestLUKSTests {
    static func keys(_ selector: String = "all:key:" + LUKSFixtures.passphrase) throws -> KeyStore {
        KeyStore(entries: [try KeyStore.parseSelector(selector)])
    }

    @Test func rootInsideLUKSOnLVMIsInspected() throws {
        let g = try LUKSFixtures.luksOnLVM()
        let guest = try Guest(drives: [DriveSpec(path: g.image)], keys: Self.keys("/dev/vgcrypt/root:key:" + LUKSFixtures.passphrase))
        let mapped = try guest.device(named: "/dev/mapper/luks-\(g.luksUUID)")
        #expect(mapped.kind == .luks)
        #expect(mapped.parent == "/dev/vgcrypt/root")
        #expect(mapped.content.type == "ext4")
        #expect(try guest.device(named: "UUID=\(LUKSFixtures.fsUUID)").name == mapped.name)
        let systems = Inspector.inspect(guest)
        #expect(systems.map(\.root) == [mapped.name])
        #expect(systems.first?.hostname == g.hostname)
    }

    @Test func lvmInsideLUKSIsScanned() throws {
        let g = try LUKSFixtures.lvmInLUKS()
        // The container's LUKS UUID works as the selector's ID.
        let guest = try Guest(drives: [DriveSpec(path: g.image)], keys: Self.keys("\(g.luksUUID):key:" + LUKSFixtures.passphrase))
        let mapped = try guest.device(named: "/dev/mapper/luks-\(g.luksUUID)")
        #expect(mapped.parent == "/dev/sda2")
        #expect(mapped.content.type == "LVM2_member")
        let root = try guest.device(named: "/dev/vginner/root")
        #expect(root.content.type == "ext4")
        #expect(Inspector.inspect(guest).first?.hostname == g.hostname)
    }

    @Test func withoutAKeyTheVolumeStaysLockedWithAWarning() throws {
        let g = try LUKSFixtures.lvmInLUKS()
        let guest = try Guest(drives: [DriveSpec(path: g.image)])
        #expect(guest.lockedVolumes == ["/dev/sda2"])
        #expect(guest.warnings.contains { $0.contains("/dev/sda2") && $0.contains("left locked") })
        #expect(!guest.devices.contains { $0.kind == .luks })
        #expect(Inspector.inspect(guest).isEmpty)
    }

    @Test func wrongKeyIsAnErrorNamingTheDevice() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        #expect {
            _ = try Guest(drives: [DriveSpec(path: g.image)], keys: Self.keys("/dev/vda:key:wrong-one"))
        } throws: { e in
            let text = "\(e)"
            return text.hasPrefix("/dev/sda") && text.contains("wrong passphrase") && !text.contains("wrong-one")
        }
    }

    @Test func writableGuestWritesThroughTheCipher() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        let dir = try TempDir("imagemount-guest-luks")
        let copy = dir.file("disk.img")
        try Shell.check("cp \(Shell.quote(g.image)) \(Shell.quote(copy))")
        let guest = try Guest(drives: [DriveSpec(path: copy)], writable: true, keys: Self.keys())
        let mapped = try guest.device(named: "/dev/mapper/luks-\(g.luksUUID)")
        #expect(mapped.device.isWritable)
        try mapped.device.writeBytes(Array("hello through LUKS".utf8), at: 1_000_000)
        try mapped.device.flush()
        let reopened = try Guest(drives: [DriveSpec(path: copy)], keys: Self.keys())
        #expect(try reopened.device(named: mapped.name).device.readBytes(at: 1_000_000, count: 18) == Array("hello through LUKS".utf8))
    }
}
