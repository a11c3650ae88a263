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
import Testing
import TestSupport

/// Tests `Sources/GuestFS/Disk/LVM/LVMMetadataArea.swift`: the metadata lvm2 commits, through
/// the ring buffer's wrap, against `vgs`; damaged headers and locations made byte by byte.
extension DiskTests.LVMTests {
@Suite struct LVMMetadataAreaTests {
    /// A 16 MiB image with VG `NAME` on it, and the VG's seqno and tags as `vgs` reports them.
    static func makeVG(_ name: String = "mdavg", pvcreate: String = "", extentSize: String = "1M",
                       _ body: ((LVMImageBuilder, [String]) throws -> Void)? = nil)
        throws -> (builder: LVMImageBuilder, image: String, seqno: Int64, tags: String) {
        let builder = try LVMImageBuilder()
        let image = builder.dir.file("pv.img")
        try Shell.check("truncate -s 16M \(Shell.quote(image))")
        let report = try builder.withLoops([.init(image: image)]) { loops in
            try builder.lvm("pvcreate", "-y -q \(pvcreate) \(loops[0])", loops: loops)
            try builder.lvm("vgcreate", "-q -s \(extentSize) \(name) \(loops[0])", loops: loops)
            try body?(builder, loops)
            return try builder.lvm("vgs", "--noheadings --separator \";\" -o vg_seqno,vg_tags \(name)", loops: loops)
        }
        let fields = report.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: ";")
        return (builder, image, Int64(fields[0]) ?? -1, fields.count > 1 ? fields[1] : "")
    }

    static func read(_ image: String) throws -> LVMMetadataArea {
        let device = try RawImage(path: image, writable: false)
        let label = try #require(try LVMLabel.read(from: device))
        let area = try #require(label.metadataAreas.first)
        return try LVMMetadataArea.read(from: device, area: area)
    }

    static func vg(_ area: LVMMetadataArea) throws -> LVMConfigSection {
        let text = try #require(area.text)
        return try #require(LVMVolumeGroup.vgSection(of: try LVMMetadataParser.parse(text))).section
    }

    @Test func committedTextIsTheNewest() throws {
        let made = try Self.makeVG { builder, loops in
            try builder.lvm("vgchange", "-q --addtag first mdavg", loops: loops)
            try builder.lvm("vgchange", "-q --addtag second mdavg", loops: loops)
        }
        defer { withExtendedLifetime(made.builder) {} }
        let vg = try Self.vg(try Self.read(made.image))
        #expect(vg.integer("seqno") == made.seqno)
        #expect(vg.list("tags") == [.string("first"), .string("second")])
        #expect(made.tags == "first,second")
    }

    /// A small ring and large metadata: lvm2 soon writes a copy that runs past the end of the
    /// area and continues after the header. That copy reads back whole.
    @Test func textThatWrapsAroundTheRingReadsBackWhole() throws {
        var wrappedAt: Int?
        let made = try Self.makeVG("wrapvg", pvcreate: "--metadatasize 64k --dataalignment 128k", extentSize: "64k") { builder, loops in
            let damage = LVMDamage(image: builder.dir.file("pv.img"), pvOffset: 0)
            for round in 1 ... 40 {
                let tag = "t\(round)" + String(repeating: "x", count: 1500)
                try builder.lvm("vgchange", "-q --addtag \(tag) wrapvg", loops: loops)
                let locn = try damage.rawLocation()
                let ringSize = LVMDamage.le(try damage.mdaHeader(), 0x20, 8)
                if locn.offset + locn.size > ringSize { wrappedAt = round; break }
            }
        }
        defer { withExtendedLifetime(made.builder) {} }
        let round = try #require(wrappedAt, "lvm2 never wrapped the ring")
        let area = try Self.read(made.image)
        let vg = try Self.vg(area)
        #expect(vg.integer("seqno") == made.seqno)
        let tags = try #require(vg.list("tags")).compactMap(\.string)
        #expect(tags.count == round)
        #expect(tags.last == "t\(round)" + String(repeating: "x", count: 1500))
    }

    /// (field offset in the mda_header, bytes, whether the header checksum is recomputed, error).
    @Test(arguments: [
        (0x04, Array("NOT-LVM2-MAGIC!!".utf8), true, "bad magic"),
        (0x30, [0x01], false, "checksum mismatch"),
        (0x14, [2, 0, 0, 0], true, "unsupported version"),
        (0x18, LVMDamage.le(8192, 8), true, "header says it starts at 8192"),
        (0x20, LVMDamage.le(1 << 40, 8), true, "area size"),
        (0x28, LVMDamage.le(100, 8), true, "outside the ring"),
        (0x28, LVMDamage.le(1 << 50, 8), true, "outside the ring"),
        (0x30, LVMDamage.le(1 << 40, 8), true, "exceeds the ring"),
        (0x38, [0xde, 0xad], true, "checksum mismatch"),
    ] as [(Int, [UInt8], Bool, String)])
    func damagedHeaderIsAnError(at: Int, bytes: [UInt8], fixChecksum: Bool, reason: String) throws {
        let made = try Self.makeVG()
        defer { withExtendedLifetime(made.builder) {} }
        try LVMDamage(image: made.image, pvOffset: 0).patchMDAHeader(at: at, bytes, fixChecksum: fixChecksum)
        let error = #expect(throws: ImageError.self) { try Self.read(made.image) }
        #expect(error?.reason.contains(reason) == true, "\(error?.description ?? "")")
    }

    @Test func damagedTextFailsItsChecksum() throws {
        let made = try Self.makeVG()
        defer { withExtendedLifetime(made.builder) {} }
        let damage = LVMDamage(image: made.image, pvOffset: 0)
        let locn = try damage.rawLocation()
        try damage.patch(at: LVMDamage.mdaOffset + locn.offset + 40, Array("#".utf8))
        let error = #expect(throws: ImageError.self) { try Self.read(made.image) }
        #expect(error?.structure == "LVM metadata text")
        #expect(error?.offset == LVMDamage.mdaOffset + locn.offset)
    }

    @Test func ignoredOrEmptyLocationHoldsNoText() throws {
        let made = try Self.makeVG()
        defer { withExtendedLifetime(made.builder) {} }
        let damage = LVMDamage(image: made.image, pvOffset: 0)
        try damage.patchMDAHeader(at: 0x3c, [1, 0, 0, 0])
        #expect(try Self.read(made.image).text == nil)
        try damage.patchMDAHeader(at: 0x28, [UInt8](repeating: 0, count: 24))
        #expect(try Self.read(made.image).text == nil)
    }

    /// An area the label places past the end of the device is refused before any read.
    @Test func areaOutsideTheDeviceIsAnError() throws {
        let device = MemoryDevice(size: 8192, name: "small")
        let error = #expect(throws: ImageError.self) {
            try LVMMetadataArea.read(from: device, area: LVMDiskArea(offset: 4096, size: 1 << 20))
        }
        #expect(error?.reason.contains("does not fit the device") == true)
        #expect(device.reads == 0)
    }
}
}
