import Foundation
import SystemPackage
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

/// QEMU-compatible image locking: imagemount and QEMU see each other's OFD locks.
@Suite(.serialized) struct ImageLockTests {
    /// `qemu-io` in interactive mode, holding `path` open (for writing unless `readOnly`) until killed.
    final class QemuIO {
        let process = Process()
        let input = Pipe()
        init(_ path: String, format: String, readOnly: Bool = false) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-io")
            process.arguments = ["-f", format] + (readOnly ? ["-r"] : []) + [path]
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Until it has opened the image (and taken its locks), a tiny command gets no answer;
            // wait for the lock bytes to show instead.
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8),
                   locks.contains("OFDLCK"), try Self.holds(path) { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        /// Whether someone holds byte 100 (consistent read) of the file.
        static func holds(_ path: String) throws -> Bool {
            let fd = try FileDescriptor.open(path, .readOnly)
            defer { try? fd.close() }
            return try Syscall.ofdByteIsLockedByOthers(fd, 100)
        }
        func stop() {
            try? input.fileHandleForWriting.close()
            process.terminate()
            process.waitUntilExit()
        }
    }

    func image(_ name: String, format: String = "qcow2") throws -> (TempDir, String) {
        let dir = try TempDir("imagemount-lock")
        let path = dir.file(name)
        try Shell.check("qemu-img create -q -f \(format) \(Shell.quote(path)) 16M")
        return (dir, path)
    }

    @Test(arguments: ["qcow2", "raw"]) func writableOpenFailsWhileQemuWrites(format: String) throws {
        let (dir, path) = try image("held.\(format)", format: format)
        _ = dir
        let qemu = try QemuIO(path, format: format)
        defer { qemu.stop() }
        #expect(try QemuIO.holds(path))
        #expect {
            _ = try ImageOpener.open(path: path, format: nil, writable: true)
        } throws: { error in
            let text = "\(error)"
            return text.contains("lock") && text.contains("another process") && (error as? ImageError)?.errno == .resourceTemporarilyUnavailable
        }
        // A read-only open still works, with a warning.
        let warnings = Locked<[String]>([])
        let ro = try ImageOpener.open(path: path, options: ImageOpenOptions(writable: false, corruptionLog: { line in warnings.withValue { $0.append(line) } }))
        #expect(!ro.isWritable)
        #expect(warnings.value.contains { $0.contains("open for writing") })
    }

    @Test(arguments: ["qcow2", "raw"]) func qemuRefusesWhileWeWrite(format: String) throws {
        let (dir, path) = try image("ours.\(format)", format: format)
        _ = dir
        let device = try ImageOpener.open(path: path, format: nil, writable: true)
        try device.writeBytes([1, 2, 3], at: 0)
        let write = try Shell.run("qemu-io -f \(format) -c 'write 0 512' \(Shell.quote(path))")
        #expect(write.status != 0)
        #expect(write.stderr.contains("Failed to get \"write\" lock"), "\(write.stderr)")
        if format == "qcow2" {
            // (qemu-img info reads a raw file without asking for consistent reads, so it may.)
            let info = try Shell.run("qemu-img info \(Shell.quote(path))")
            #expect(info.status != 0)
            #expect(info.stderr.contains("Failed to get shared \"write\" lock"), "\(info.stderr)")
        }
        #expect(try Shell.run("qemu-img info -U \(Shell.quote(path))").status == 0)
        try (device as? Qcow2Image)?.close()
    }

    @Test func readOnlyOpensShareWithQemu() throws {
        let (dir, path) = try image("shared.qcow2")
        _ = dir
        let device = try ImageOpener.open(path: path, format: nil, writable: false)
        // QEMU may still write while we only read (we warn instead of blocking a VM).
        let write = try Shell.run("qemu-io -f qcow2 -c 'write 0 512' \(Shell.quote(path))")
        #expect(write.status == 0, "\(write.stderr)")
        _ = device
        // Two imagemount writers exclude each other too.
        let first = try ImageOpener.open(path: path, format: nil, writable: true)
        #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: path, format: nil, writable: true) }
        try (first as? Qcow2Image)?.close()
    }

    @Test func backingFilesGetReadLocksOnly() throws {
        let dir = try TempDir("imagemount-lock")
        let base = dir.file("base.qcow2"), top = dir.file("top.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 \(Shell.quote(base)) 16M && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 \(Shell.quote(top))")
        let device = try ImageOpener.open(path: top, format: nil, writable: true)
        try device.writeBytes([9], at: 0)
        // The base is not held for writing: qemu-img can read it (but not the top).
        #expect(try Shell.run("qemu-img info \(Shell.quote(base))").status == 0)
        #expect(try Shell.run("qemu-img info \(Shell.quote(top))").status != 0)
        try (device as? Qcow2Image)?.close()
    }
}
