import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// `check` of VHDX images with a dirty log (VHDXLogTests makes them): qemu-img check opens the
/// file read-only and refuses it, so there is no verdict to compare, only its status 1 and its
/// empty stdout; imagemount's reads replay the log in memory, its check refuses the same way.
/// The BAT checks are compared with qemu-img check by CheckVmdkVhdxTests (ImageMountTests).
@Suite struct VHDXCheckTests {
    @Test func aLogToReplayIsNotChecked() throws {
        let t = try VHDXLogTests.Dirty()
        let q = Shell.quote
        let entry = VHDXLogTests.entry(sequence: 5, writes: [.data(t.block, [UInt8](repeating: 0x77, count: 4096))],
                                       flushed: t.fileSize, last: t.fileSize)
        try t.dirty([entry])
        let before = try t.sha()
        let qemu = try Shell.run("qemu-img check \(q(t.d.path))")
        #expect(qemu.status == 1 && qemu.stdout.isEmpty && qemu.stderr.contains("contains a log that needs to be replayed"), "\(qemu.stderr)")

        let image = try #require(try t.d.open() as? VHDXImage)
        let result = try image.check()
        let failure = try #require(result.failure)
        #expect(failure.contains("contains a log that needs to be replayed") && result.exitStatus == 1 && result.messages.isEmpty)
        for json in [false, true] {
            let ours = try ImageMountBinary.run(["check", "-a", t.d.path] + (json ? ["--output=json"] : []))
            #expect(ours.status == 1 && ours.stdout.isEmpty && ours.stderr == "imagemount: \(t.d.path): \(failure)\n", "\(ours.stderr)")
        }
        #expect(try t.sha() == before)

        // A log GUID whose log holds no entry of that GUID needs no replay: checked as usual.
        let foreign = VHDXLogTests.entry(sequence: 9, writes: [.data(t.block, [UInt8](repeating: 0x44, count: 4096))],
                                         flushed: t.fileSize, last: t.fileSize, guid: [UInt8](repeating: 0x99, count: 16))
        try t.dirty([foreign])
        let theirs = try Shell.run("qemu-img check \(q(t.d.path))")
        let ours = try ImageMountBinary.run(["check", "-a", t.d.path])
        #expect(theirs.status == 0 && ours.status == 0 && ours.text == theirs.text, "\(ours.text)\(ours.stderr) vs \(theirs.text)\(theirs.stderr)")
    }
}
