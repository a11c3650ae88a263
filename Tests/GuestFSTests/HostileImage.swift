import Testing
import Foundation
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

/// A scratch image a hostile-input test builds with real tools and then damages, with the
/// byte patches spelled out in the test (little- or big-endian fields at absolute offsets).
final class HostileImage {
    let dir: TempDir
    let path: String

    init(_ name: String, build: (String) throws -> Void) throws {
        dir = try TempDir("imagemount-hostile")
        path = dir.file(name)
        try build(path)
    }

    func patch(_ offset: UInt64, _ bytes: [UInt8]) throws {
        try RawImage(path: path, writable: true).writeBytes(bytes, at: offset)
    }
    func patchLE(_ offset: UInt64, _ value: UInt64, bytes: Int) throws {
        try patch(offset, (0..<bytes).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) })
    }
    func patchBE(_ offset: UInt64, _ value: UInt64, bytes: Int) throws {
        try patch(offset, (0..<bytes).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(bytes - 1 - $0))) })
    }
    func readBE(_ offset: UInt64, bytes: Int) throws -> UInt64 {
        try RawImage(path: path, writable: false).readBytes(at: offset, count: bytes).reduce(0) { $0 << 8 | UInt64($1) }
    }
    var sha256: String { (try? Shell.check("sha256sum < \(Shell.quote(path))")) ?? "?" }

    /// Runs `debugfs -w -R` commands on the image (one -R per command).
    func debugfs(_ commands: [String]) throws {
        for c in commands { try Shell.check("debugfs -w -R \(Shell.quote(c)) \(Shell.quote(path)) >/dev/null 2>&1") }
    }
}

/// Expects `body` to throw an `ImageError` whose text contains every one of `words`; returns it.
@discardableResult
func expectImageError(_ words: [String], _ body: () throws -> Void) -> ImageError? {
    do {
        try body()
    } catch let e as ImageError {
        for w in words where !e.description.contains(w) { Testing.Issue.record("'\(e.description)' lacks '\(w)'") }
        return e
    } catch {
        Testing.Issue.record("unexpected error type: \(error)")
        return nil
    }
    Testing.Issue.record("expected an error mentioning \(words)")
    return nil
}
