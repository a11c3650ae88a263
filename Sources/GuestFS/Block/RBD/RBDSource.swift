import Synchronization

/// A disk image stored in Ceph as an RBD image (`-a rbd:POOL/IMAGE[@SNAP]`,
/// `-a rbd://[HOST[:PORT]]/POOL/IMAGE[@SNAP]`): the image's bytes, as a local file's bytes are
/// `RawImage`'s and an NBD export's are `NBDSource`'s. A format (raw, or a qcow2 file
/// `rbd import`ed as it is) is opened over it like over a file (`ImageOpener.openRBD`).
///
/// Read-only unless writing was asked for; a snapshot (`@SNAP`) is always read-only, and a
/// writable open of one is refused. The size is the image's at open and does not change (so a
/// qcow2 file stored in RBD is opened read-only: its writer grows the file). QEMU's lock bytes
/// (`ImageLock`) do not apply: they are OFD locks on a local file; RBD's own exclusive lock
/// arbitrates between writers instead (`RBDConnection`).
public final class RBDSource: ImageSource {
    package let name: RBDImageName
    public let size: UInt64
    public let isWritable: Bool
    public var displayName: String { name.text }
    let connection: RBDConnection

    /// See `ImageSource.refusesImageHeaders`.
    public var refusesImageHeaders: Bool {
        get { refusingHeaders.load(ordering: .relaxed) }
        set { refusingHeaders.store(newValue, ordering: .relaxed) }
    }
    private let refusingHeaders = Atomic<Bool>(false)

    /// Opens the image `name` names (`RBDImageName.parse`), as `client` says to connect; the
    /// settings are the defaults and the environment's (`RBDSettings`).
    public convenience init(name: String, client: RBDClientOptions = RBDClientOptions(), writable: Bool) throws {
        try self.init(name: RBDImageName.parse(name), client: client, writable: writable, settings: RBDSettings.fromEnvironment())
    }

    package init(name: RBDImageName, client: RBDClientOptions, writable: Bool, settings: RBDSettings) throws {
        connection = try RBDConnection(name: name, client: client, writable: writable, settings: settings)
        Self.opened.store(true, ordering: .releasing)
        self.name = name
        size = connection.size
        isWritable = writable
    }

    /// Whether this process has opened an RBD image. Its librados client keeps making TCP
    /// connections after open (to each OSD when it first sends it a request, and again after a
    /// reset), so the command-line sandbox lets such a process make sockets
    /// (ImageMount's Sandbox+Syscalls.swift, `networkClient`).
    public static var anyOpened: Bool { opened.load(ordering: .acquiring) }
    private static let opened = Atomic<Bool>(false)

    /// The chunks read ahead now, ascending, and whether each is still in flight (for tests).
    package var readAheadChunks: [(range: Range<UInt64>, inFlight: Bool)] { connection.readAheadChunks }

    /// Requests in flight and size per request (for tests and the bench).
    package var settings: RBDSettings { connection.settings }

    /// The size of the image's RADOS objects (qemu-img info's cluster_size for an RBD image).
    public var objectSize: UInt64 { connection.objectSize }

    /// Whether this open holds the image's exclusive lock (writable opens of images with the
    /// exclusive-lock feature do, from open to close).
    package var ownsExclusiveLock: Bool { connection.ownsExclusiveLock }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        // With read-ahead for sequential readers (RBDConnection+ReadAhead.swift).
        try connection.read(into: buffer, at: offset)
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        if refusesImageHeaders, offset < Self.probeBytes, !buffer.isEmpty { try checkFirstSector(buffer, at: offset) }
        try connection.perform(.write(buffer), at: offset)
    }

    public func flush() throws {
        guard isWritable else { return }
        try connection.flush()
    }
}
