#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import Synchronization
import SystemPackage

/// An NTFS volume opened through libntfs-3g over one of our block devices (CNtfs3g's
/// ntfs_device: no loop device, no host path, no ntfs-3g process), read-only or read-write.
///
/// What the tree shows is what `ntfs-3g` shows without the `permissions` option
/// (src/ntfs-3g.c, ntfs_fuse_getstat / ntfs_fuse_filler / ntfs_fuse_listxattr): names in the
/// POSIX and Win32 namespaces, DOS 8.3 aliases hidden, the NTFS metafiles ($MFT…, records below
/// 16 other than the root) hidden, modes 0777 less fmask/dmask, one owner for everything,
/// reparse-point symlinks and junctions as symlinks, named data streams as `user.NAME` xattrs
/// (streams_interface=xattr). Node ids are MFT record numbers, as ntfs-3g's st_ino.
///
/// Writes (NTFSFilesystem+Namespace, +Data, +Streams) use libntfs-3g's own calls as
/// lowntfs-3g (src/lowntfs-3g.c, the inode-based ntfs-3g) does. A writable open still mounts
/// read-only, and the volume is unmounted and mounted again read-write at the first change
/// (`writing`): a read-write ntfs_device_mount of a clean volume writes nothing (an ntfs-3g
/// mount and unmount of a fresh mkntfs volume leaves it byte-identical), but it does write when
/// it resets an unclean $LogFile (NTFS_MNT_RECOVER) or makes $TXF_DATA resident (fix_txf_data in
/// volume.c), and remove_hiberfile deletes hiberfil.sys; deferring the read-write mount is what
/// makes "an `--rw` session that changes nothing leaves the image byte-identical" true of every
/// volume, not just clean ones, with no flag of the library's to rely on. The safety
/// rules of ntfs-3g's read-write mount (NTFSVolumeSafety) are decided at open, on the
/// read-only mount, so a hibernated volume opens read-only with its reason as a warning.
///
/// libntfs-3g is not thread-safe (it keeps caches and a search state in the volume and its
/// inodes, and one global log hook), so every call into it runs under `libraryLock`. The data
/// of plain files on a read-only volume is not read through it: their runlist is mapped once at
/// open and the device read outside the lock (NTFSRunMap, NTFSFile), as Ext2File does.
package final class NTFSFilesystem: GuestFilesystem, @unchecked Sendable {
    package let device: any BlockDevice
    package let options: NTFSMountOptions
    package let blockSize: UInt32
    package let rootNode: UInt64 = NTFSFilesystem.rootRecord
    package var typeName: String { "ntfs" }
    /// Asked for and allowed by the safety rules (NTFSVolumeSafety).
    package let isWritable: Bool
    /// The volume's size as its boot sector says (clusters × cluster size).
    package let declaredSize: UInt64
    package let label: String
    package let warnings: [String]
    /// What the safety checks found at open.
    let safety: NTFSVolumeSafety

    /// FILE_root and FILE_first_user (ntfs-3g/layout.h NTFS_SYSTEM_FILES).
    static let rootRecord: UInt64 = 5
    static let firstUserRecord: UInt64 = 16

    let damage = DamageLog()
    let context: NTFSDeviceContext
    // Guarded by `libraryLock`: libntfs-3g's volume (nil once closed) and our device state.
    private var volume: UnsafeMutablePointer<ntfs_volume>?
    private var devicePrivate: UnsafeMutableRawPointer?
    /// Whether `volume` is the read-write mount (after the first change).
    private(set) var mountedReadWrite = false
    /// Set when the read-write mount failed: later changes fail the same way at once.
    private var reopenFailure: ImageError?
    /// Names that keep a node unlinked while open alive (NTFSFilesystem+Namespace).
    var ghosts: [UInt64: (dir: UInt64, name: [UInt8])] = [:]
    var ghostSequence: UInt64 = 0
    var inUse: (@Sendable (UInt64) -> Bool)?

    /// The one lock around every call into libntfs-3g, for every volume in the process: the
    /// library is not thread-safe, and besides each volume's caches it has process-wide state
    /// (the log hook our shim captures errors with, the UTF-8 conversion settings).
    /// Held across whole file reads, so waiters sleep rather than spin (BlockingLock.swift).
    static let libraryLock = BlockingLock()

    /// Opens the volume (read-only until the first change, see above); a volume libntfs-3g
    /// refuses gives one error naming why.
    package init(device: any BlockDevice, writable: Bool = false, options: NTFSMountOptions = NTFSMountOptions()) throws {
        NTFSDeviceBridge.installOnce
        guard !writable || device.isWritable else { throw device.readOnlyError(offset: 0) }
        self.device = device
        self.options = options
        let context = NTFSDeviceContext(device: device)
        self.context = context
        let name = device.displayName
        let retained = Unmanaged.passRetained(context)
        let opened: (UnsafeMutablePointer<ntfs_volume>, UnsafeMutableRawPointer?)
        do {
            opened = try Self.libraryLock.withLock {
                try Self.mount(device: device, context: context, readWrite: false, flags: ntfs_mount_flags(NTFS_MNT_RDONLY))
            }
        } catch {
            retained.release()
            throw error
        }
        let vol = opened.0
        let facts = Self.libraryLock.withLock { () -> (UInt32, UInt64, String, NTFSVolumeSafety) in
            let declared = UInt64(clamping: vol.pointee.nr_clusters).multipliedReportingOverflow(by: UInt64(vol.pointee.cluster_size))
            let label = vol.pointee.vol_name.map { String(cString: $0) } ?? ""
            let safety = writable ? NTFSVolumeSafety.check(vol) : NTFSVolumeSafety()
            return (vol.pointee.cluster_size, declared.overflow ? UInt64.max : declared.partialValue, label, safety)
        }
        self.volume = vol
        self.devicePrivate = opened.1
        self.blockSize = facts.0
        self.declaredSize = facts.1
        self.label = facts.2
        self.safety = facts.3
        var warnings: [String] = []
        var allowed = writable
        if writable, let refusal = facts.3.refusal(options) {
            allowed = false
            warnings.append("\(name): \(refusal)")
        }
        if declaredSize > device.size {
            // A truncated image or a wrong partition: never written (libntfs-3g would allocate
            // clusters the device does not have).
            warnings.append("\(name): NTFS volume says it spans \(declaredSize) bytes but the device holds \(device.size); reads past the end fail"
                            + (allowed ? "; opened read-only" : ""))
            allowed = false
        }
        self.isWritable = allowed
        self.warnings = warnings
    }

    /// ntfs_device_mount over a new device on `device` (under the lock), with the lookup caches
    /// and the free-space counts ntfs-3g sets up after it (ntfs_open in src/ntfs-3g.c).
    private static func mount(device: any BlockDevice, context: NTFSDeviceContext, readWrite: Bool,
                              flags: ntfs_mount_flags) throws -> (UnsafeMutablePointer<ntfs_volume>, UnsafeMutableRawPointer?) {
        let name = device.displayName
        try NTFSBootSector.check(device)
        cntfs3g_log_clear()
        context.lastError = nil
        var devicePrivate: UnsafeMutableRawPointer?
        guard let dev = cntfs3g_device_alloc(name, Unmanaged.passUnretained(context).toOpaque(), device.size,
                                             readWrite ? 1 : 0, &devicePrivate) else {
            throw ImageError(path: name, structure: "NTFS volume", reason: "cannot set up the device", errno: Errno(rawValue: errno))
        }
        guard let mounted = ntfs_device_mount(dev, flags) else {
            let code = errno == 0 ? EIO : errno
            let why = String(cString: cntfs3g_log_last())
            _ = ntfs_device_free(dev)
            if let devicePrivate { cntfs3g_private_free(devicePrivate) }
            let text = Errno(rawValue: code).description
            // A volume that is not NTFS or is damaged is EIO to the caller, whatever errno
            // libntfs-3g chose (EINVAL for a bad boot sector, EIO for bad records); a refused
            // read-write mount (EPERM: hibernated, EOPNOTSUPP: unclean log) is EROFS.
            let refused = readWrite && (code == EPERM || code == EOPNOTSUPP)
            throw ImageError(path: name, structure: "NTFS volume",
                             reason: (readWrite ? "libntfs-3g cannot open it read-write: " : "libntfs-3g cannot open it: ")
                                + (why.isEmpty ? text : "\(why) (\(text))"),
                             errno: code == ENOMEM ? .noMemory : refused ? .readOnlyFileSystem : .ioError,
                             underlying: context.lastError)
        }
        // The lookup caches ntfs_mount and ntfs-3g set up after ntfs_device_mount: name
        // lookups in a directory with an index allocation fail (EINVAL) without them.
        ntfs_create_lru_caches(mounted)
        // Free space is counted once, as ntfs-3g does at mount (ntfs_volume_get_free_space);
        // libntfs-3g keeps both counts current as it allocates and frees.
        _ = ntfs_volume_get_free_space(mounted)
        return (mounted, devicePrivate)
    }

    deinit {
        try? close()
    }

    package func setDamageLog(_ sink: @escaping @Sendable (String) -> Void) { damage.setSink(sink) }

    /// Runs `body` with the volume under the lock; EIO once the volume is closed. The only way
    /// any other file reaches libntfs-3g.
    func withVolume<T>(_ body: (UnsafeMutablePointer<ntfs_volume>) throws -> T) throws -> T {
        try Self.libraryLock.withLock { () throws -> T in
            guard let vol = volume else {
                throw ImageError(path: device.displayName, structure: "NTFS volume", reason: "the volume is closed", errno: .badFileDescriptor)
            }
            cntfs3g_log_clear()
            context.lastError = nil
            return try body(vol)
        }
    }

    /// Runs a change with the read-write volume under the lock, mounting it read-write first when
    /// this is the first change (see the type's comment): EROFS when the open was read-only or
    /// the safety rules made it so, or when libntfs-3g refuses the read-write mount (the
    /// read-only volume is mounted again, so reads go on).
    func writing<T>(_ body: (UnsafeMutablePointer<ntfs_volume>) throws -> T) throws -> T {
        try Self.libraryLock.withLock { () throws -> T in
            guard isWritable else {
                throw ImageError(path: device.displayName, structure: "NTFS volume", reason: "opened read-only", errno: .readOnlyFileSystem)
            }
            guard volume != nil else {
                throw ImageError(path: device.displayName, structure: "NTFS volume", reason: "the volume is closed", errno: .badFileDescriptor)
            }
            if !mountedReadWrite { try remountReadWrite() }
            guard let vol = volume else {
                throw ImageError(path: device.displayName, structure: "NTFS volume", reason: "the volume is closed", errno: .badFileDescriptor)
            }
            cntfs3g_log_clear()
            context.lastError = nil
            return try body(vol)
        }
    }

    /// Unmounts the read-only volume and mounts it read-write, with the flags ntfs-3g's
    /// ntfs_open passes for the options given (remove_hiberfile: NTFS_MNT_IGNORE_HIBERFILE and
    /// then the deletion of hiberfil.sys; recover: NTFS_MNT_RECOVER, which resets an unclean
    /// $LogFile). Under the lock.
    private func remountReadWrite() throws {
        if let failed = reopenFailure { throw failed }
        guard let old = volume else { return }
        volume = nil
        _ = ntfs_umount(old, TRUE)
        if let devicePrivate { cntfs3g_private_free(devicePrivate) }
        devicePrivate = nil
        var flags = ntfs_mount_flags(NTFS_MNT_NONE)
        if options.removeHiberfile { flags |= ntfs_mount_flags(NTFS_MNT_IGNORE_HIBERFILE) }
        if options.mayResetLog { flags |= ntfs_mount_flags(NTFS_MNT_RECOVER) }
        do {
            let (vol, priv) = try Self.mount(device: device, context: context, readWrite: true, flags: flags)
            volume = vol
            devicePrivate = priv
            mountedReadWrite = true
        } catch {
            var failure = ImageError.wrap(error)
            failure.errno = .readOnlyFileSystem
            reopenFailure = failure
            let (vol, priv) = try Self.mount(device: device, context: context, readWrite: false, flags: ntfs_mount_flags(NTFS_MNT_RDONLY))
            volume = vol
            devicePrivate = priv
            throw failure
        }
        if safety.hibernated && options.removeHiberfile, let vol = volume {
            try NTFSVolumeSafety.removeHiberfile(vol, filesystem: self)
        }
    }

    /// The error for a libntfs-3g call that failed on `structure`: errno, the library's own log
    /// line, and any device error our callback kept. Call right after the failing call.
    func failure(_ structure: String, _ what: String, errno code: Int32 = errno) -> ImageError {
        let errnoValue = Errno(rawValue: code == 0 ? EIO : code)
        let why = String(cString: cntfs3g_log_last())
        let reason = why.isEmpty ? "\(what): \(errnoValue.description)" : "\(what): \(why) (\(errnoValue.description))"
        let underlying = context.lastError
        context.lastError = nil
        return ImageError(path: device.displayName, structure: structure, reason: reason,
                          errno: underlying != nil ? .ioError : errnoValue, underlying: underlying)
    }

    static func recordName(_ node: UInt64) -> String { "NTFS MFT record \(node)" }

    /// Opens MFT record `node` for `body` and closes it after (under the lock: call from
    /// `withVolume`).
    func withInode<T>(_ vol: UnsafeMutablePointer<ntfs_volume>, _ node: UInt64,
                      _ body: (UnsafeMutablePointer<ntfs_inode>) throws -> T) throws -> T {
        // MFT references keep the record number in 48 bits (layout.h MFT_REF_MASK_CPU).
        guard node < (1 << 48) else {
            throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "no such MFT record", errno: .noSuchFileOrDirectory)
        }
        guard let ni = ntfs_inode_open(vol, node) else {
            throw failure(Self.recordName(node), "cannot open the MFT record")
        }
        defer { _ = ntfs_inode_close(ni) }
        return try body(ni)
    }

    // MARK: GuestFilesystem

    /// Deletes the names that kept unlinked-but-open nodes alive, then ntfs_umount, which
    /// writes back what libntfs-3g holds (dirty inodes, $MFT, $MFTMirr, $Bitmap) and syncs
    /// the device. The volume is gone afterwards even when that fails (the error is thrown).
    package func close() throws {
        try Self.libraryLock.withLock { () throws -> Void in
            guard let vol = volume else { return }
            var failure: ImageError?
            if mountedReadWrite {
                for (node, ghost) in ghosts {
                    do { try deleteGhost(vol, node, ghost) } catch { failure = failure ?? ImageError.wrap(error) }
                }
                ghosts.removeAll()
            }
            volume = nil
            cntfs3g_log_clear()
            context.lastError = nil
            // ntfs_umount frees the device too (volume.c).
            if ntfs_umount(vol, TRUE) != 0 && mountedReadWrite {
                failure = failure ?? self.failure("NTFS volume", "cannot unmount cleanly")
            }
            if let devicePrivate { cntfs3g_private_free(devicePrivate) }
            devicePrivate = nil
            Unmanaged.passUnretained(context).release()
            if let failure { throw failure }
        }
    }

    /// statfs from libntfs-3g's current counts, so it follows every change.
    package func usage() throws -> FilesystemUsage {
        try withVolume { vol in Self.usage(of: vol) }
    }

    /// statfs as ntfs-3g's ntfs_fuse_statfs (src/ntfs-3g.c) computes it from the counts taken at
    /// mount, with checked shifts and sums.
    static func usage(of vol: UnsafeMutablePointer<ntfs_volume>) -> FilesystemUsage {
        let v = vol.pointee
        let freeClusters = UInt64(max(0, v.free_clusters))
        // Free inodes on the free space: clusters scaled to MFT records.
        let delta = Int(v.cluster_size_bits) - Int(v.mft_record_size_bits)
        var freeAsRecords = freeClusters
        if delta >= 0 {
            freeAsRecords = delta < 64 && freeClusters <= (UInt64.max >> UInt64(delta)) ? freeClusters << UInt64(delta) : UInt64.max
        } else {
            freeAsRecords = -delta < 64 ? freeClusters >> UInt64(-delta) : 0
        }
        // Records the MFT bitmap can describe: its allocated bytes × 8 (ntfs_fuse_statfs).
        var allocatedInodes: UInt64 = 0
        if let bitmap = v.mftbmp_na {
            let bytes = UInt64(max(0, bitmap.pointee.allocated_size))
            allocatedInodes = bytes <= UInt64.max >> 3 ? bytes << 3 : .max
        }
        let freeRecords = UInt64(max(0, v.free_mft_records))
        let (files, o1) = allocatedInodes.addingReportingOverflow(freeAsRecords)
        let (free, o2) = freeRecords.addingReportingOverflow(freeAsRecords)
        return FilesystemUsage(blockSize: UInt64(v.cluster_size), totalBlocks: UInt64(max(0, v.nr_clusters)),
                               freeBlocks: freeClusters, availableBlocks: freeClusters,
                               totalInodes: o1 ? .max : files, freeInodes: o2 ? .max : free,
                               maxNameLength: 255)
    }
}
