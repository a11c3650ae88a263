import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import TestSupport

/// A one-PV VG on a 16 MiB image (1 MiB extents, pe_start 1 MiB, 15 extents) with one linear LV
/// `lv` of 4 extents at extent 2: the base the damage tests start from.
struct LVMTestVG {
    let builder: LVMImageBuilder
    let image: String
    let vgName: String
    static let lv = LVMTestVolume(name: "lv", uuid: "LvLvLv-aaaa-bbbb-cccc-dddd-eeee-ffff06", segments: [.init(extents: 4, stripes: [(0, 2)])])

    init(vgName: String = "damagevg", volumes: [LVMTestVolume] = [LVMTestVG.lv], pvcreate: String = "") throws {
        builder = try LVMImageBuilder()
        image = builder.dir.file("pv.img")
        self.vgName = vgName
        try Shell.check("truncate -s 16M \(Shell.quote(image))")
        try builder.withLoops([.init(image: image)]) { [builder, vgName] loops in
            let backup = try builder.createVG(vgName, loops: loops, pvcreateOptions: pvcreate)
            try builder.restore(vgName, backup: backup, logicalVolumes: volumes.map(\.metadata).joined(), loops: loops)
        }
    }

    var damage: LVMDamage { LVMDamage(image: image, pvOffset: 0) }

    /// Rewrites the committed metadata; fails when `transform` changes nothing (a pattern that
    /// no longer matches what lvm2 writes would otherwise make the test pass vacuously).
    func rewrite(_ transform: (String) -> String) throws {
        let before = try damage.metadataText()
        guard transform(before) != before else { throw SetupError(message: "transform changed nothing in:\n\(before)") }
        try damage.rewriteMetadata(transform)
    }

    func scan() throws -> LVMScanResult {
        LVM.scan(pvs: [(name: "/dev/sda", device: try RawImage(path: image, writable: false))])
    }
}

/// A test's own setup went wrong (not the code under test).
struct SetupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
