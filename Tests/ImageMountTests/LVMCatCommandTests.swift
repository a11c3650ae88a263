import Foundation
import Testing
import TestSupport

/// `imagemount cat` on a CentOS-style guest: `/boot` on sda1, the root filesystem on the LVM
/// volume `centos/root`, whose extents span both drives.
@Suite struct LVMCatCommandTests {
    func arguments(_ fixture: LVMFixtures.CentOS) -> [String] { fixture.disks.flatMap { ["-a", $0] } }

    @Test func catFromLogicalVolumesByEveryName() throws {
        let fixture = try LVMFixtures.centos()
        let cases = [
            ("/dev/centos/root", "centos-root"), ("/dev/mapper/centos-root", "centos-root"),
            ("/dev/centos/data-vol", "centos-data"), ("/dev/mapper/centos-data--vol", "centos-data"),
            ("LABEL=SIMPLE", "centos-simple"), ("/dev/sda1", "centos-boot"),
        ]
        for (device, hostname) in cases {
            let result = try ImageMountBinary.run(["cat"] + arguments(fixture) + ["-m", device, "/etc/hostname"])
            #expect(result.status == 0, "\(device): \(result.stderr)")
            #expect(result.text == hostname + "\n", "\(device)")
            #expect(result.stderr.contains("snapshot of root"), "the skipped snapshot is reported: \(result.stderr)")
        }
    }

    @Test func rootOnLVMWithBootOnAPartition() throws {
        let fixture = try LVMFixtures.centos()
        let result = try ImageMountBinary.run(["cat"] + arguments(fixture)
            + ["-m", "/dev/mapper/centos-root:/", "-m", "/dev/sda1:/boot", "/etc/hostname", "/boot/etc/hostname"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == "centos-root\ncentos-boot\n")
    }

    @Test func missingSecondDriveNamesTheMissingPV() throws {
        let fixture = try LVMFixtures.centos()
        let result = try ImageMountBinary.run(["cat", "-a", fixture.disks[0], "-m", "/dev/centos/root", "/etc/hostname"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("VG centos: PV pv1"), "\(result.stderr)")
        #expect(result.stderr.contains("/dev/centos/root"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }
}
