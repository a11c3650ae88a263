import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// A private copy of a format fixture with field patch helpers, so each damage is visible in
/// the test that makes it; `oracle()` is qemu-img's reading of the damaged copy.
final class PatchedImage {
    let dir: TempDir
    let path: String
    let format: ImageFormat

    init(_ fixture: String, format: ImageFormat) throws {
        dir = try TempDir("imagemount-patched")
        path = dir.file(fixture)
        self.format = format
        try FileManager.default.copyItem(atPath: try FormatFixtures.get().path(fixture), toPath: path)
    }

    func bytes(_ offset: UInt64, _ count: Int) throws -> [UInt8] { try RawImage(path: path, writable: false).readBytes(at: offset, count: count) }
    func patch(_ offset: UInt64, _ bytes: [UInt8]) throws { try RawImage(path: path, writable: true).writeBytes(bytes, at: offset) }
    func le(_ offset: UInt64, _ value: UInt64, width: Int) throws {
        try patch(offset, (0 ..< width).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
    }
    func be(_ offset: UInt64, _ value: UInt64, width: Int) throws {
        try patch(offset, (0 ..< width).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
    }
    func leValue(_ offset: UInt64, width: Int) throws -> UInt64 {
        try bytes(offset, width).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    func beValue(_ offset: UInt64, width: Int) throws -> UInt64 {
        try bytes(offset, width).reduce(0) { $0 << 8 | UInt64($1) }
    }

    func open() throws -> any BlockDevice { try ImageOpener.open(path: path, format: format, writable: false) }

    /// qemu-img convert -f FORMAT -O raw of the copy as it is now.
    func oracle() throws -> [UInt8] {
        let out = dir.file("oracle-\(UUID().uuidString).raw")
        try Shell.check("qemu-img convert -f \(format.rawValue) -O raw \(Shell.quote(path)) \(Shell.quote(out))")
        return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
    }
}

/// The checks every read-only format's tests share: reads equal to qemu-img convert -O raw, and
/// `info` (text and JSON) equal to qemu-img info's.
enum OtherFormatChecks {
    static func matchesOracle<T: BlockDevice>(_ name: String, as type: T.Type, unit: Int) throws {
        let f = try FormatFixtures.get()
        let device = try ImageOpener.open(path: f.path(name), format: nil, writable: false)
        #expect(device is T, "\(name) opened as \(Swift.type(of: device))")
        try Qcow2ImageTests.compare(device, with: try f.oracle(name), unit: unit, label: name)
    }

    static func infoMatches(_ path: String, format: ImageFormat? = nil, chain: Bool = false) throws {
        let info = try ImageInfo.gather(path: path, format: format, backingChain: chain)
        let options = (format.map { "-f \($0.rawValue) " } ?? "") + (chain ? "--backing-chain " : "")
        let theirs = try Shell.check("qemu-img info \(options)--output=json \(Shell.quote(path))")
        #expect(ImageInfo.json(info, chain: chain) == theirs)
        let text = try Shell.check("qemu-img info \(options)\(Shell.quote(path))")
        #expect(ImageInfo.text(info) == text)
    }
}
