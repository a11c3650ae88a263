import Synchronization

/// A disk image served by an NBD server (`-a nbd://HOST[:PORT]/EXPORT`,
/// `-a nbd+unix:///EXPORT?socket=PATH`, `nbds://` with TLS): the export's bytes, as a local
/// file's bytes are `RawImage`'s. A format (raw, qcow2 served as a file by `nbdkit file`, …)
/// is opened over it like over a file (`ImageOpener.openNBD`).
///
/// Read-only unless writing was asked for, and a writable open of an export the server marks
/// read-only is refused when connecting. The size is the export's and cannot change (so a qcow2
/// image on an export is opened read-only: its writer grows the file). QEMU's image locks
/// (`ImageLock`) do not apply: they are OFD locks on a local file, and the server, which owns
/// the file, is the one to arbitrate between its clients.
public final class NBDSource: ImageSource {
    public let uri: String
    public let size: UInt64
    public let isWritable: Bool
    public var displayName: String { uri }
    let connection: NBDConnection

    /// See `ImageSource.refusesImageHeaders`.
    public var refusesImageHeaders: Bool {
        get { refusingHeaders.load(ordering: .relaxed) }
        set { refusingHeaders.store(newValue, ordering: .relaxed) }
    }
    private let refusingHeaders = Atomic<Bool>(false)

    /// Connects to `uri`; `settings` nil takes the defaults and the environment (`NBDSettings`).
    public convenience init(uri: String, writable: Bool) throws {
        try self.init(uri: uri, writable: writable, settings: NBDSettings.fromEnvironment())
    }

    package init(uri: String, writable: Bool, settings: NBDSettings) throws {
        connection = try NBDConnection(uri: uri, writable: writable, settings: settings)
        self.uri = uri
        size = connection.size
        isWritable = writable
    }

    /// The server's requests in flight and size per request (for tests and the bench).
    package var settings: NBDSettings { connection.settings }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        let block = connection.minimumBlock
        if block == 1 || (offset % block == 0 && UInt64(buffer.count) % block == 0) {
            try connection.perform(.read(buffer), at: offset)
            return
        }
        // A server with a minimum block size (doc/proto.md "Block size constraints") gets the
        // aligned range around the read; the export's size is a multiple of it.
        let start = offset / block * block
        let end = (offset + UInt64(buffer.count) + block - 1) / block * block
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 64)
        defer { bounce.deallocate() }
        try connection.perform(.read(bounce), at: start)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bounce[Int(offset - start)..<Int(offset - start) + buffer.count]))
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        if refusesImageHeaders, offset < Self.probeBytes, !buffer.isEmpty { try checkFirstSector(buffer, at: offset) }
        let block = connection.minimumBlock
        if block == 1 || (offset % block == 0 && UInt64(buffer.count) % block == 0) {
            try connection.perform(.write(buffer), at: offset)
            return
        }
        // Read, modify, write the aligned range around an unaligned write.
        let start = offset / block * block
        let end = (offset + UInt64(buffer.count) + block - 1) / block * block
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 64)
        defer { bounce.deallocate() }
        try connection.perform(.read(bounce), at: start)
        UnsafeMutableRawBufferPointer(rebasing: bounce[Int(offset - start)...]).copyMemory(from: buffer)
        try connection.perform(.write(UnsafeRawBufferPointer(bounce)), at: start)
    }

    public func flush() throws {
        guard isWritable else { return }
        try connection.flush()
    }
}
