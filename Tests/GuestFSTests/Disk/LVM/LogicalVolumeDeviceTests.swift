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

/// Tests `Sources/GuestFS/Disk/LVM/LogicalVolumeDevice.swift`: LVs read back byte-identical to
/// the filesystem images they were built from, from several threads at once; the striped
/// mapping and write pass-through on PVs in memory; ranges checked against the PV devices.
extension DiskTests.LVMTests {
@Suite struct LogicalVolumeDeviceTests {
    @Test func volumesReadBackTheFilesTheirFilesystemsWereBuiltIn() throws {
        let fixture = try LVMFixtures.centos()
        let scan = try LVMVolumeGroupTests.scanCentOS(fixture)
        #expect(scan.logicalVolumes.map(\.name) == ["root", "data-vol", "simple"])
        for volume in scan.logicalVolumes {
            let expected = try Data(contentsOf: URL(fileURLWithPath: try #require(fixture.contents[volume.name])))
            #expect(volume.size == UInt64(expected.count))
            let whole = try volume.readBytes(at: 0, count: Int(volume.size))
            #expect(whole == [UInt8](expected), "\(volume.name)")
            #expect(!volume.isWritable)
        }
    }

    /// Reads of every size at every alignment, crossing segment and stripe boundaries, from
    /// eight threads at once, each compared with the source file.
    @Test func parallelReadsAtOddOffsets() throws {
        let fixture = try LVMFixtures.centos()
        let scan = try LVMVolumeGroupTests.scanCentOS(fixture)
        let failures = Locked(0)
        for volume in scan.logicalVolumes {
            let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try #require(fixture.contents[volume.name]))))
            DispatchQueue.concurrentPerform(iterations: 8) { thread in
                var rng = SplitMix(seed: UInt64(thread + 1))
                var buffer = [UInt8](repeating: 0, count: 200_000)
                for _ in 0 ..< 100 {
                    let length = Int(rng.next() % UInt64(buffer.count)) + 1
                    let offset = Int(rng.next() % UInt64(expected.count - length))
                    let same = buffer.withUnsafeMutableBytes { out -> Bool in
                        let target = UnsafeMutableRawBufferPointer(rebasing: out[0 ..< length])
                        guard (try? volume.read(into: target, at: UInt64(offset))) != nil else { return false }
                        return expected.withUnsafeBytes { memcmp($0.baseAddress! + offset, target.baseAddress!, length) == 0 }
                    }
                    if !same { failures.withValue { $0 += 1 } }
                }
            }
        }
        #expect(failures.value == 0)
    }

    @Test func readsPastTheEndAreRefused() throws {
        let scan = try LVMVolumeGroupTests.scanCentOS(try LVMFixtures.centos())
        let root = try #require(scan.logicalVolumes.first)
        let error = #expect(throws: ImageError.self) { try root.readBytes(at: root.size - 1, count: 2) }
        #expect(error?.path == "/dev/centos/root")
        #expect(throws: ImageError.self) { try root.readBytes(at: UInt64.max - 1, count: 4) }
    }

    /// A VG of three PVs in memory (extent 16 sectors = 8 KiB) and an LV of a linear segment
    /// and a 3-way striped one with 2 KiB chunks.
    static func memoryVG(writable: Bool = true, pvBytes: Int = 64 * 8192) throws -> (LVMVolumeGroup, [String: any BlockDevice], [MemoryDevice]) {
        let text = """
            mem {
                id = "MemVG0-aaaa-bbbb-cccc-dddd-eeee-ffff07" seqno = 1 extent_size = 16
                physical_volumes {
                    pv0 { id = "MemPV0-aaaa-bbbb-cccc-dddd-eeee-ffff00" dev_size = 1024 pe_start = 8 pe_count = 60 }
                    pv1 { id = "MemPV1-aaaa-bbbb-cccc-dddd-eeee-ffff01" dev_size = 1024 pe_start = 16 pe_count = 60 }
                    pv2 { id = "MemPV2-aaaa-bbbb-cccc-dddd-eeee-ffff02" dev_size = 1024 pe_start = 24 pe_count = 60 }
                }
                logical_volumes {
                    lv { id = "MemLV0-aaaa-bbbb-cccc-dddd-eeee-ffff08" status = ["VISIBLE"]
                        segment1 { start_extent = 0 extent_count = 3 type = "striped" stripe_count = 1 stripes = [ "pv1", 7 ] }
                        segment2 { start_extent = 3 extent_count = 6 type = "striped" stripe_count = 3 stripe_size = 4
                                   stripes = [ "pv2", 1, "pv0", 5, "pv1", 40 ] }
                    }
                }
            }
            """
        let (name, section) = try #require(LVMVolumeGroup.vgSection(of: try LVMMetadataParser.parse(text)))
        let vg = try LVMVolumeGroup(name: name, section: section)
        let memories = (0 ..< 3).map { pv in
            MemoryDevice((0 ..< pvBytes).map { UInt8(truncatingIfNeeded: $0 * 7 + pv * 101) }, name: "pv\(pv)", writable: writable)
        }
        return (vg, ["pv0": memories[0], "pv1": memories[1], "pv2": memories[2]], memories)
    }

    /// Where each LV byte of `memoryVG` lives: (PV, byte offset), chunk by chunk as dm-stripe
    /// defines it, written out independently of the device's arithmetic.
    static func expectedMap() -> [(pv: Int, offset: Int)] {
        let extent = 8192
        var map: [(Int, Int)] = []
        for i in 0 ..< 3 * extent { map.append((1, 16 * 512 + 7 * extent + i)) }
        let stripes = [(2, 24 * 512 + 1 * extent), (0, 8 * 512 + 5 * extent), (1, 16 * 512 + 40 * extent)]
        let chunk = 4 * 512
        for c in 0 ..< 6 * extent / chunk {
            let (pv, base) = stripes[c % 3]
            for i in 0 ..< chunk { map.append((pv, base + (c / 3) * chunk + i)) }
        }
        return map
    }

    @Test func stripedMappingFollowsDmStripe() throws {
        let (vg, devices, memories) = try Self.memoryVG()
        let lv = try LogicalVolumeDevice(group: vg, volume: try #require(vg.logicalVolumes.first), pvDevices: devices)
        let map = Self.expectedMap()
        #expect(lv.size == UInt64(map.count))
        let contents = memories.map(\.contents)
        let expected = map.map { contents[$0.pv][$0.offset] }
        #expect(try lv.readBytes(at: 0, count: map.count) == expected)
        for (offset, length) in [(0, 1), (3 * 8192 - 1, 2), (3 * 8192 + 2047, 2), (3 * 8192 + 6143, 2050), (map.count - 5, 5)] {
            #expect(try lv.readBytes(at: UInt64(offset), count: length) == Array(expected[offset ..< offset + length]), "\(offset)+\(length)")
        }
        #expect(lv.mapperName == "mem-lv")
    }

    @Test func writesPassThroughToThePVs() throws {
        let (vg, devices, memories) = try Self.memoryVG()
        let lv = try LogicalVolumeDevice(group: vg, volume: try #require(vg.logicalVolumes.first), pvDevices: devices)
        #expect(lv.isWritable)
        let map = Self.expectedMap()
        let start = 3 * 8192 - 100, data = (0 ..< 9000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
        try lv.writeBytes(data, at: UInt64(start))
        let contents = memories.map(\.contents)
        for (i, byte) in data.enumerated() {
            let (pv, offset) = map[start + i]
            if contents[pv][offset] != byte { Issue.record("byte \(start + i) not on pv\(pv) at \(offset)"); break }
        }
        #expect(try lv.readBytes(at: UInt64(start), count: data.count) == data)
        try lv.flush()
    }

    @Test func writesToReadOnlyPVsAreRefused() throws {
        let (vg, devices, memories) = try Self.memoryVG(writable: false)
        let lv = try LogicalVolumeDevice(group: vg, volume: try #require(vg.logicalVolumes.first), pvDevices: devices)
        let before = memories.map(\.contents)
        #expect(!lv.isWritable)
        let error = #expect(throws: ImageError.self) { try lv.writeBytes([1, 2, 3], at: 0) }
        #expect(error?.errno == .readOnlyFileSystem)
        #expect(memories.map(\.contents) == before)
    }

    /// The metadata allows the extents (pe_count), but the PV device is shorter.
    @Test func extentsPastTheEndOfTheDeviceAreRefused() throws {
        let (vg, _, _) = try Self.memoryVG()
        // pv0's stripe is extents 5..<7 after pe_start (4 KiB): it needs 61440 bytes.
        let short = MemoryDevice(size: 61440 - 1, name: "/dev/sdq")
        let devices: [String: any BlockDevice] = ["pv0": short, "pv1": MemoryDevice(size: 64 * 8192), "pv2": MemoryDevice(size: 64 * 8192)]
        let error = #expect(throws: ImageError.self) {
            try LogicalVolumeDevice(group: vg, volume: vg.logicalVolumes[0], pvDevices: devices)
        }
        #expect(error?.reason.contains("run past the end of /dev/sdq") == true, "\(error?.description ?? "")")
        #expect(error?.structure == "/dev/mem/lv segment 2")
        let exact: [String: any BlockDevice] = ["pv0": MemoryDevice(size: 61440), "pv1": devices["pv1"]!, "pv2": devices["pv2"]!]
        #expect(throws: Never.self) { try LogicalVolumeDevice(group: vg, volume: vg.logicalVolumes[0], pvDevices: exact) }
    }

    @Test func mapperNamesDoubleDashes() {
        #expect(LogicalVolumeDevice.mapperName(volumeGroup: "centos", volume: "root") == "centos-root")
        #expect(LogicalVolumeDevice.mapperName(volumeGroup: "my-vg", volume: "data-vol") == "my--vg-data--vol")
        #expect(LogicalVolumeDevice.mapperName(volumeGroup: "a--b", volume: "-") == "a----b---")
    }
}
}

/// A small deterministic generator for the read patterns.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
