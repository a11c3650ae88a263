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

/// `--key ID:file:FILE`: the whole file is the key (binary bytes, newlines included), up to
/// cryptsetup's 8 MiB key-file limit; larger files are refused without reading them whole.
@Suite struct KeyStoreTests {
    @Test(arguments: [0, 1, 4095, 4096, 4097, 70_000, KeyStore.maxKeyFileBytes])
    func keyFileIsReadWhole(size: Int) throws {
        let dir = try TempDir("imagemount-keys")
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("key")))
        let entry = try KeyStore.parseSelector("all:file:" + dir.file("key"))
        #expect(entry.id == "all")
        #expect(entry.secret.withBytes { Array($0) } == bytes)
    }

    @Test func oversizedKeyFileIsRefused() throws {
        let dir = try TempDir("imagemount-keys")
        try Shell.check("head -c \(KeyStore.maxKeyFileBytes + 1) /dev/zero > \(Shell.quote(dir.file("key")))")
        #expect {
            _ = try KeyStore.parseSelector("all:file:" + dir.file("key"))
        } throws: { error in
            (error as? ImageError)?.description.contains("is larger than") == true
        }
    }
}
