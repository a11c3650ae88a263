import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage

/// Writes bytes to stdout without Foundation's buffering, in large chunks.
enum StandardOutput {
    static func write(_ buffer: UnsafeRawBufferPointer) throws {
        do {
            _ = try FileDescriptor.standardOutput.writeAll(buffer)
        } catch let e as Errno {
            throw CLIError(message: "standard output: \(e.description)")
        }
    }

    static func write(_ text: String) throws {
        var copy = text
        try copy.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }
}

extension GuestFile {
    /// Streams the whole file to `sink` in chunks of `chunkSize` bytes.
    func stream(chunkSize: Int = 4 << 20, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(min(UInt64(chunkSize), max(size, 1))), alignment: 4096)
        defer { buffer.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let n = try read(into: buffer, at: offset)
            if n == 0 { break }
            try sink(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            offset += UInt64(n)
        }
    }
}
