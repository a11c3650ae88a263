import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// How to open an image: format, access, snapshot, cache sizes.
public struct ImageOpenOptions: Sendable {
    /// Forced format, or nil to probe.
    public var format: ImageFormat?
    /// Open for writing. Backing files are always read-only, and so is a snapshot.
    public var writable: Bool
    /// Internal snapshot to show, by ID or name (qcow2 only); the device is then read-only.
    public var snapshot: String?
    /// Budget of each qcow2 image's L2 cache, in bytes.
    public var l2CacheBytes: Int
    /// Default L2 cache budget: 4 MiB maps 32 GiB of guest with 64 KiB clusters.
    public static let defaultL2CacheBytes = 4 << 20
    /// Where the first corruption report of each image goes, and lock warnings; nil for standard error.
    public var corruptionLog: (@Sendable (String) -> Void)?
    /// Passphrases for encrypted qcow2 images (LUKS or legacy AES); nil when none were given.
    public var keys: KeyStore?
    /// Names besides the image path under which `keys` may hold this image's key (the drive
    /// name `/dev/sda`); backing images are looked up by their path only.
    public var keyIDs: [String] = []
    /// Open for looking at metadata only (QEMU's BDRV_O_NO_IO, as `qemu-img check` and `info`
    /// use it): an encrypted image is opened without its key, and reading its data fails.
    public var metadataOnly = false
    /// Whether the image may make us open other host files (its backing file, its external data
    /// file). `ImageOpener` decides it (see `formatIsVouched`); left true only for images opened
    /// directly as qcow2 by code that named the format itself.
    public var mayOpenReferencedFiles = true
    /// How to reach the Ceph cluster of `rbd:` images (`--rbd-conf`, `--rbd-id`, `--keyring`).
    public var rbdClient = RBDClientOptions()

    public init(format: ImageFormat? = nil, writable: Bool = false, snapshot: String? = nil,
                l2CacheBytes: Int = ImageOpenOptions.defaultL2CacheBytes,
                corruptionLog: (@Sendable (String) -> Void)? = nil, keys: KeyStore? = nil, keyIDs: [String] = []) {
        self.format = format
        self.writable = writable
        self.snapshot = snapshot
        self.l2CacheBytes = l2CacheBytes
        self.corruptionLog = corruptionLog
        self.keys = keys
        self.keyIDs = keyIDs
    }
}

/// Opening an image file: the format probed or given, QEMU's lock bytes, the probing policy, and
/// backing chains (qcow2 spec, "Header", backing_file_offset): resolution of backing names, the
/// depth limit and cycle detection. What each format does is its registration's
/// (ImageFormatRegistry).
extension ImageOpener {
    /// Most images in one chain, the opened image included; deeper chains are refused.
    public static let maxBackingChainDepth = 64
    /// The `structure` of errors about the chain as a whole (loops, depth).
    static let backingChainStructure = "backing chain"

    /// Opens the backing file `resolved` that `image` (a `format` image) names, as the next link
    /// of its chain: the probing policy first, then `openBacking`; a failure is one error naming
    /// the image and the backing file, except a loop or a too-deep chain, which passes up as the
    /// one message it is (not one wrapper per level).
    package static func openNamedBacking(_ resolved: String, image: any BlockDevice, format: ImageFormat, backingFormat: ImageFormat?,
                                         options: ImageOpenOptions,
                                         openBacking: (String, ImageFormat?) throws -> any BlockDevice) throws -> any BlockDevice {
        try checkMayOpen(resolved, as: "backing file", options: options, image: image.displayName, format: format)
        do {
            return try openBacking(resolved, backingFormat)
        } catch let e as ImageError where e.structure == backingChainStructure {
            throw e
        } catch {
            throw ImageError(path: image.displayName, structure: "backing file", reason: "cannot open backing file '\(resolved)'",
                             errno: (error as? ImageError)?.errno ?? .ioError, underlying: error)
        }
    }

    /// Opens `path` with `options`; a qcow2 image's backing chain is opened read-only below it.
    public static func open(path: String, options: ImageOpenOptions) throws -> any BlockDevice {
        var chain = BackingChainWalk()
        return try open(path: path, options: options, chain: &chain)
    }

    /// Opens `path` as `format` (nil: probe), showing internal snapshot `snapshot` when given.
    public static func open(path: String, format: ImageFormat?, writable: Bool, snapshot: String?) throws -> any BlockDevice {
        try open(path: path, options: ImageOpenOptions(format: format, writable: writable, snapshot: snapshot))
    }

    /// A backing name as QEMU resolves it: absolute names as they are, relative ones against the
    /// folder of the image that names them (not the current directory).
    public static func resolve(_ name: String, relativeTo imagePath: String) -> String {
        if name.hasPrefix("/") { return name }
        guard let slash = imagePath.lastIndex(of: "/") else { return name }
        return String(imagePath[...slash]) + name
    }

    /// The probing policy (`formatIsVouched`): refuses, before anything is opened, a host
    /// file named by an image (a backing file, an external data file) whose format nobody
    /// vouched for.
    static func checkMayOpen(_ resolved: String, as structure: String, options: ImageOpenOptions, image: String,
                             format: ImageFormat) throws {
        guard options.mayOpenReferencedFiles else {
            throw ImageError(path: image, structure: structure,
                             reason: "the image names '\(GuestName.display(Array(resolved.utf8)))' as its \(structure), but its format was probed, not given: " +
                                     "add --format=\(format.rawValue) before -a if you trust it (a raw disk can hold a \(format.rawValue) header written by its guest)",
                             errno: .notPermitted)
        }
    }

    /// The probing policy (CVE-2010-3851): an image whose format was *probed* must not make us
    /// open other host files, since a raw disk's guest can write a qcow2 header naming
    /// `/etc/shadow` as its backing file into its own first sector. The format is vouched for
    /// when the user's words gave it (`--format`, a libvirt domain's XML, a parent image's
    /// backing format), or when the file's own name says it (`vm.qcow2` probed as qcow2), so
    /// that `cat -a vm.qcow2` keeps working. README, "Probing".
    static func formatIsVouched(path: String, given: ImageFormat?, probed: ImageFormat) -> Bool {
        if given != nil { return true }
        // An NBD export's or RBD image's name is the server's or cluster's to choose, not a
        // file the user named: only --format vouches for what it holds.
        if NBDURI.isNBD(path) || RBDImageName.isRBD(path) { return false }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: ".") else { return false }
        return probed.fileExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// The files opened so far along one chain, by device and inode.
    struct BackingChainWalk {
        var seen: [(dev: UInt64, ino: UInt64, path: String)] = []
    }

    static func open(path: String, options: ImageOpenOptions, chain: inout BackingChainWalk) throws -> any BlockDevice {
        if chain.seen.count >= maxBackingChainDepth {
            throw ImageError(path: path, structure: backingChainStructure,
                             reason: "backing chain is deeper than \(maxBackingChainDepth) images", errno: .tooManySymbolicLinkLevels)
        }
        if NBDURI.isNBD(path) {
            // Only the user's own -a may name a server: an image naming one as its backing file
            // would make us connect wherever its bytes say. (A relative backing name of an image
            // on an export resolves to a URI too, and lands here: there is no folder to resolve
            // it in, as QEMU says for protocols without one.)
            guard chain.seen.isEmpty else {
                throw ImageError(path: path, structure: "backing file",
                                 reason: "backing files on NBD servers, or relative to an image on one, are not supported",
                                 errno: .notSupported)
            }
            return try openNBD(uri: path, options: options, chain: &chain)
        }
        if RBDImageName.isRBD(path) {
            // As for NBD: only the user's own -a may name a Ceph image, never an image's bytes.
            guard chain.seen.isEmpty else {
                throw ImageError(path: path, structure: "backing file",
                                 reason: "backing files in Ceph RBD, or relative to an image in RBD, are not supported",
                                 errno: .notSupported)
            }
            return try openRBD(name: path, options: options, chain: &chain)
        }
        if path.contains("://") || path.hasPrefix("json:") {
            throw ImageError(path: path, structure: "backing file", reason: "network and json: backing files are not supported",
                             errno: .notSupported)
        }
        // Probe on a read-only descriptor; only a raw image opened for writing is reopened so.
        let file = try RawImage(path: path, writable: false)
        let st: stat
        do { st = try Syscall.fileStatus(file.fd) } catch {
            throw ImageError(path: path, reason: "cannot stat: \(error.description)", errno: error)
        }
        if let loop = chain.seen.first(where: { $0.dev == UInt64(st.st_dev) && $0.ino == UInt64(st.st_ino) }) {
            throw ImageError(path: path, structure: backingChainStructure,
                             reason: "backing chain loops back to '\(loop.path)'", errno: .tooManySymbolicLinkLevels)
        }
        chain.seen.append((UInt64(st.st_dev), UInt64(st.st_ino), path))

        let format = try options.format ?? probe(file)
        let driver = try checkedDriver(format, path: path, options: options)
        let writable = options.writable && options.snapshot == nil
        // Locks go on the descriptor that stays open: the probe's, or the one reopened for writing.
        let opened = writable ? try RawImage(path: path, writable: true) : file
        if let warning = try opened.lockLikeQEMU() {
            if let log = options.corruptionLog { log(warning) } else { _ = try? FileDescriptor.standardError.writeAll(warning.utf8) }
        }
        return try openFormat(opened, driver: driver, path: path, options: options, chain: &chain)
    }

    /// The format of `source`, probed from its first sector.
    static func probe(_ source: any ImageSource) throws -> ImageFormat {
        ImageFormat.probe(header: try source.readBytes(at: 0, count: Int(min(source.size, 512))))
    }

    /// The registration of `format`, refusing a snapshot it cannot show before anything is opened.
    static func checkedDriver(_ format: ImageFormat, path: String, options: ImageOpenOptions) throws -> ImageFormatDriver {
        let driver = ImageFormatRegistry.driver(for: format)
        if !driver.hasSnapshots, options.snapshot != nil {
            throw ImageError(path: path, structure: "snapshot", reason: "\(format.rawValue) images have no snapshots", errno: .invalidArgument)
        }
        return driver
    }

    /// Opens `opened` (a local file or an NBD export, already writable when it should be) as
    /// `driver`'s format, with the probing policy and the backing chain.
    static func openFormat(_ opened: any ImageSource, driver: ImageFormatDriver, path: String, options: ImageOpenOptions,
                           chain: inout BackingChainWalk) throws -> any BlockDevice {
        let vouched = formatIsVouched(path: path, given: options.format, probed: driver.format)
        let writable = options.writable && options.snapshot == nil
        // Files the image names are opened read-only, without its snapshot or key names, as
        // the next links of the same chain (depth and loops counted across all of them).
        var walk = chain
        var backingOptions = options
        backingOptions.writable = false
        backingOptions.snapshot = nil
        backingOptions.keyIDs = []
        var imageOptions = options
        imageOptions.writable = writable
        imageOptions.mayOpenReferencedFiles = vouched
        return try driver.open(opened, imageOptions) { backingPath, backingFormat in
            backingOptions.format = backingFormat
            return try open(path: backingPath, options: backingOptions, chain: &walk)
        }
    }
}
