import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// VHD (vpc) images made by qemu-img, read as `qemu-img convert -f vpc -O raw` reads them.
@Suite struct VHDImageTests {
    static let names = FormatFixtures.images.filter { $0.format == .vpc }.map(\.name)

    @Test("vpc reads equal qemu-img convert -O raw", arguments: names)
    func matchesOracle(_ name: String) throws {
        let f = try FormatFixtures.get()
        let device = try ImageOpener.open(path: f.path(name), format: .vpc, writable: false)
        #expect(device is VHDImage)
        try Qcow2ImageTests.compare(device, with: try f.oracle(name), unit: 512 * 1024, label: name)
    }

    @Test func dynamicDisksProbeAsVpcAndFixedOnesAsRaw() throws {
        let f = try FormatFixtures.get()
        #expect(try ImageOpener.open(path: f.path("vpc-converted.vhd"), format: nil, writable: false) is VHDImage)
        let fixed = try ImageOpener.open(path: f.path("vpc-fixed.vhd"), format: nil, writable: false)
        #expect(fixed is RawImage)
        #expect(fixed.size == UInt64(try FileManager.default.attributesOfItem(atPath: f.path("vpc-fixed.vhd"))[.size] as! Int))
    }

    @Test("virtual size is the CHS size unless force_size wrote creator qem2", arguments: names)
    func virtualSizeIsQemuImgs(_ name: String) throws {
        let f = try FormatFixtures.get()
        let json = try Shell.check("qemu-img info -f vpc --output=json \(Shell.quote(f.path(name)))")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let device = try ImageOpener.open(path: f.path(name), format: .vpc, writable: false)
        #expect(device.size == (object["virtual-size"] as? UInt64))
        let info = try #require(try ImageInfo.gather(path: f.path(name), format: .vpc).first)
        #expect(info.virtualSize == device.size)
        #expect(info.clusterSize == (object["cluster-size"] as? Int))
    }

    @Test func concurrentReadsFromManyThreads() throws {
        let f = try FormatFixtures.get()
        let name = "vpc-created.vhd"
        let device = try ImageOpener.open(path: f.path(name), format: .vpc, writable: false)
        let expected = try f.oracle(name)
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            var rng = SplitMix64(seed: UInt64(t) &+ 77)
            for _ in 0 ..< 200 {
                let start = Int.random(in: 0 ..< expected.count - 1, using: &rng)
                let length = min(expected.count - start, Int.random(in: 1 ... 3_000_000, using: &rng))
                let ok = (try? device.readBytes(at: UInt64(start), count: length)).map {
                    Qcow2ImageTests.same($0, expected[start ..< start + length])
                } ?? false
                if !ok { failures.withValue { $0 += 1 } }
            }
        }
        #expect(failures.value == 0)
    }
}
