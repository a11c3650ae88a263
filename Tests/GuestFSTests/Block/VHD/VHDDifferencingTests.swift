import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Differencing VHDs, which qemu-img cannot make (and reads without their parent): a dynamic
/// child made by qemu-img, turned into a differencing disk in the test (footer type 4, a W2ru
/// parent locator, sector bitmaps with bits cleared), read against the merge of
/// `qemu-img convert` of the parent and of the child, sector by sector.
@Suite struct VHDDifferencingTests {
    final class Chain {
        let dir: TempDir
        let child: String
        let expected: [UInt8]

        init(childName: String = "child.vhd", locator: String = ".\\parent.vhd", platform: String = "W2ru") throws {
            dir = try TempDir("imagemount-vhd-diff")
            let f = try FormatFixtures.get()
            let parent = dir.file("parent.vhd")
            try FileManager.default.copyItem(atPath: f.path("vpc-converted.vhd"), toPath: parent)
            let size = try ImageOpener.open(path: parent, format: .vpc, writable: false).size
            child = dir.file(childName)
            let q = Shell.quote
            try Shell.check("qemu-img create -q -f vpc \(q(child)) \(size) && qemu-io -f vpc -c 'write -P 0xc1 0 70k' -c 'write -P 0xc2 4200000 9000' \(q(child)) >/dev/null")
            let d = try VHDCorruptionTests.Damaged(copyOf: child)
            let header = try d.headerOffset
            let bat = try d.u64(header + 16)
            // Block 0: sectors 8..<16, 100 and 121..<140 go back to the parent.
            let bitmap0 = UInt64(try d.u32(bat)) * 512
            try d.patch(bitmap0 + 1, [0x00])
            try d.patch(bitmap0 + 12, [0xF7])
            try d.patch(bitmap0 + 15, [0x80, 0x00, 0x0F])
            // Footer copy: differencing; header: the parent's name and one locator at the end of the file.
            try d.patchFooter(60, [0, 0, 0, 4])
            let name = Array(locator.utf16).flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
            let end = UInt64(try FileManager.default.attributesOfItem(atPath: child)[.size] as! Int)
            try Shell.check("truncate -s \(end + 512) \(q(child))")
            try d.patch(end, name + [UInt8](repeating: 0, count: 512 - name.count))
            try d.patch(header + 64, Array("parent.vhd".utf16).flatMap { [UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0)] })
            try d.patch(header + 576, Array(platform.utf8))
            try d.patch32(header + 580, 1)
            try d.patch32(header + 584, UInt32(name.count))
            try d.patch64(header + 592, end)

            // The expected disk: the parent, with the child's sectors whose bits are set.
            let pRaw = dir.file("p.raw"), cRaw = dir.file("c.raw")
            try Shell.check("qemu-img convert -f vpc -O raw \(q(parent)) \(q(pRaw)) && qemu-img convert -f vpc -O raw \(q(child)) \(q(cRaw))")
            var merged = Array(try Data(contentsOf: URL(fileURLWithPath: pRaw)))
            let mine = Array(try Data(contentsOf: URL(fileURLWithPath: cRaw)))
            let blockSize = 2 << 20
            for block in 0 ..< (merged.count + blockSize - 1) / blockSize {
                let entry = try d.u32(bat + UInt64(4 * block))
                guard entry != 0xFFFF_FFFF else { continue }
                let bitmap = try d.bytes(at: UInt64(entry) * 512, count: 512)
                for s in 0 ..< blockSize / 512 where bitmap[s / 8] & (0x80 >> UInt8(s % 8)) != 0 {
                    let at = block * blockSize + s * 512
                    guard at < merged.count else { break }
                    merged.replaceSubrange(at ..< min(at + 512, merged.count), with: mine[at ..< min(at + 512, merged.count)])
                }
            }
            expected = merged
        }
    }

    @Test func readsMergeChildSectorsOverTheParent() throws {
        let chain = try Chain()
        let device = try ImageOpener.open(path: chain.child, format: nil, writable: false)
        #expect((device as? VHDImage)?.parent != nil)
        try Qcow2ImageTests.compare(device, with: chain.expected, unit: 4096, label: "differencing")
    }

    @Test func absoluteLocator() throws {
        let dir = try TempDir("imagemount-vhd-diff-abs")
        _ = dir
        let chain = try Chain()
        let abs = try Chain(childName: "child2.vhd", locator: chain.dir.file("parent.vhd").replacingOccurrences(of: "/", with: "\\"),
                            platform: "W2ku")
        // Its parent is the one beside it; the absolute name names the first chain's copy (same bytes).
        let device = try ImageOpener.open(path: abs.child, format: .vpc, writable: false)
        try Qcow2ImageTests.compare(device, with: abs.expected, unit: 4096, label: "absolute")
    }

    @Test func probedFormatWithoutAVouchingNameDoesNotOpenTheParent() throws {
        let chain = try Chain(childName: "child.img")
        VHDCorruptionTests.expectError(["parent disk", "--format=vpc"]) {
            _ = try ImageOpener.open(path: chain.child, format: nil, writable: false)
        }
        #expect(try ImageOpener.open(path: chain.child, format: .vpc, writable: false).size == UInt64(chain.expected.count))
    }

    @Test func missingParentIsOneLine() throws {
        let chain = try Chain(locator: ".\\gone.vhd")
        try FileManager.default.removeItem(atPath: chain.dir.file("parent.vhd"))
        VHDCorruptionTests.expectError(["parent disk not found", "gone.vhd"]) {
            _ = try ImageOpener.open(path: chain.child, format: .vpc, writable: false)
        }
    }

    @Test func aChildThatIsItsOwnParentIsALoop() throws {
        let chain = try Chain(locator: ".\\child.vhd")
        VHDCorruptionTests.expectError(["loops"]) {
            _ = try ImageOpener.open(path: chain.child, format: .vpc, writable: false)
        }
    }
}
