#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import Synchronization
import SystemPackage

/// An NTFS volume opened read-only through libntfs-3g over one of our block devices
/// (CNtfs3g's ntfs_device: no loop device, no host path, no ntfs-3g process).
///
/// What the tree shows is what `ntfs-3g -o ro` shows without the `permissions` option
/// (src/ntfs-3g.c, ntfs_fuse_getstat / ntfs_fuse_filler / ntfs_fuse_listxattr): names in the
/// POSIX and Win32 namespaces, DOS 8.3 aliases hidden, the NTFS metafiles ($MFT…, records below
/// 16 other than the root) hidden, modes 0777 less fmask/dmask, one owner for everything,
/// reparse-point symlinks and junctions as symlinks, named data streams as `user.NAME` xattrs
/// (streams_interface=xattr). Node ids are MFT record numbers, as ntfs-3g's st_ino.
///
/// libntfs-3g is not thread-safe (it keeps caches and a search state in the volume and its
/// inodes, and one global log hook), so every call into it runs under `lock`: file data is
/// read under it too, for now (mapping the runlist once and reading the device outside the
/// lock, as Ext2File does, is the next step).
package final class NTFSFilesystem: GuestFilesystem, @unchecked Sendable {
    package let device: any BlockDevice
    package let options: NTFSMountOptions
    package let blockSize: UInt32
    package let rootNode: UInt64 = NTFSFilesystem.rootRecord
    package var typeName: String { "ntfs" }
    package var isWritable: Bool { false }
    /// The volume's size as its boot sector says (clusters × cluster size).
    package let declaredSize: UInt64
    package let label: String
    package let warnings: [String]

    /// FILE_root and FILE_first_user (ntfs-3g/layout.h NTFS_SYSTEM_FILES).
    static let rootRecord: UInt64 = 5
    static let firstUserRecord: UInt64 = 16

    let damage = DamageLog()
    let context: NTFSDeviceContext
    // Guarded by `libraryLock`: libntfs-3g's volume (nil once closed) and our device state.
    private var volume: UnsafeMutablePointer<ntfs_volume>?
    private var devicePrivate: UnsafeMutableRawPointer?
    private let usageAtOpen: FilesystemUsage

    /// The one lock around every call into libntfs-3g, for every volume in the process: the
    /// library is not thread-safe, and besides each volume's caches it has process-wide state
    /// (the log hook our shim captures errors with, the UTF-8 conversion settings).
    /// Held across whole file reads, so waiters sleep rather than spin (BlockingLock.swift).
    static let libraryLock = BlockingLock()

    /// Opens the volume read-only; a volume libntfs-3g refuses gives one error naming why.
    package init(device: any BlockDevice, options: NTFSMountOptions = NTFSMountOptions()) throws {
        NTFSDeviceBridge.installOnce
        self.device = device
        self.options = options
        let context = NTFSDeviceContext(device: device)
        self.context = context
        let name = device.displayName
        let retained = Unmanaged.passRetained(context)
        var devicePrivate: UnsafeMutableRawPointer?
        var vol: UnsafeMutablePointer<ntfs_volume>?
        do {
            try Self.libraryLock.withLock { () throws -> Void in
                cntfs3g_log_clear()
                guard let dev = cntfs3g_device_alloc(name, retained.toOpaque(), device.size, &devicePrivate) else {
                    throw ImageError(path: name, structure: "NTFS volume", reason: "cannot set up the device", errno: Errno(rawValue: errno))
                }
                guard let mounted = ntfs_device_mount(dev, ntfs_mount_flags(NTFS_MNT_RDONLY)) else {
                    let code = errno == 0 ? EIO : errno
                    let why = String(cString: cntfs3g_log_last())
                    _ = ntfs_device_free(dev)
                    let text = Errno(rawValue: code).description
                    // A volume that is not NTFS or is damaged is EIO to the caller, whatever
                    // errno libntfs-3g chose (EINVAL for a bad boot sector, EIO for bad records).
                    throw ImageError(path: name, structure: "NTFS volume",
                                     reason: "libntfs-3g cannot open it: " + (why.isEmpty ? text : "\(why) (\(text))"),
                                     errno: code == ENOMEM ? .noMemory : .ioError, underlying: context.lastError)
                }
                // The lookup caches ntfs_mount and ntfs-3g set up after ntfs_device_mount: name
                // lookups in a directory with an index allocation fail (EINVAL) without them.
                ntfs_create_lru_caches(mounted)
                vol = mounted
            }
        } catch {
            retained.release()
            if let devicePrivate { cntfs3g_private_free(devicePrivate) }
            throw error
        }
        guard let vol else { throw ImageError(path: name, structure: "NTFS volume", reason: "not opened", errno: .ioError) }
        let facts = Self.libraryLock.withLock { () -> (UInt32, UInt64, String, FilesystemUsage) in
            // Free space is counted once, as ntfs-3g does at mount (ntfs_volume_get_free_space).
            _ = ntfs_volume_get_free_space(vol)
            let usage = NTFSFilesystem.usage(of: vol)
            let declared = UInt64(clamping: vol.pointee.nr_clusters).multipliedReportingOverflow(by: UInt64(vol.pointee.cluster_size))
            let label = vol.pointee.vol_name.map { String(cString: $0) } ?? ""
            return (vol.pointee.cluster_size, declared.overflow ? UInt64.max : declared.partialValue, label, usage)
        }
        self.volume = vol
        self.devicePrivate = devicePrivate
        self.blockSize = facts.0
        self.declaredSize = facts.1
        self.label = facts.2
        self.usageAtOpen = facts.3
        var warnings: [String] = []
        if declaredSize > device.size {
            warnings.append("\(name): NTFS volume says it spans \(declaredSize) bytes but the device holds \(device.size); reads past the end fail")
        }
        self.warnings = warnings
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

    package func close() throws {
        Self.libraryLock.withLock {
            guard let vol = volume else { return }
            volume = nil
            // ntfs_umount frees the device too (volume.c); nothing was written, so there is
            // nothing to flush.
            _ = ntfs_umount(vol, TRUE)
            if let devicePrivate { cntfs3g_private_free(devicePrivate) }
            devicePrivate = nil
            Unmanaged.passUnretained(context).release()
        }
    }

    package func usage() throws -> FilesystemUsage {
        try withVolume { _ in usageAtOpen }
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
