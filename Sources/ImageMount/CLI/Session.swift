import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// Opens the drives and the filesystems a command asked for: the one place commands turn
/// their options into a `Guest` and a `MountTree`.
struct Session {
    let guest: Guest
    let tree: MountTree
    /// The operating system inspection chose and mounted (no `-m`), if any: a Windows one makes
    /// the helpers take Windows paths (Session+WindowsPaths.swift).
    let os: OperatingSystem?
    let writable: Bool
    /// The trees of other drive letters, opened when a Windows path names one.
    let driveTrees = DriveTrees()

    /// Opens the images and mounts what `-m` names, or the only filesystem when there is one.
    static func open(_ image: ImageOptions, _ fs: FilesystemOptions, writable: Bool = false, keys: KeyStore? = nil,
                     overlays: [String] = []) throws -> Session {
        let guest = try openGuest(image, writable: writable, keys: keys, overlays: overlays)
        let (tree, os) = try mountTree(guest, fs, writable: writable)
        for mount in tree.mounts { for warning in mount.filesystem.warnings { Diagnostics.warn(warning) } }
        return Session(guest: guest, tree: tree, os: os, writable: writable)
    }

    /// With `overlays` (one per drive, `--overlay`), each drive is replaced by a new qcow2
    /// overlay over it, created here (before the sandbox) and removed again if opening fails.
    static func openGuest(_ image: ImageOptions, writable: Bool = false, keys: KeyStore? = nil,
                          overlays: [String] = []) throws -> Guest {
        image.global.apply()
        if writable, let running = try image.runningDomain() {
            throw CLIError(message: "domain \(running) is running: its disks cannot be opened for writing")
        }
        if writable && image.snapshot != nil {
            throw CLIError(message: "--snapshot opens a saved state read-only; it cannot be used for writing")
        }
        var drives = try image.drives()
        var created: [String] = []
        if !overlays.isEmpty {
            guard writable else { throw CLIError(message: "--overlay is for writing: it cannot be used with --ro") }
            guard overlays.count == drives.count else {
                throw CLIError(message: "--overlay given \(overlays.count) time(s) for \(drives.count) drive(s): give one --overlay per -a, in order")
            }
            do {
                for (index, overlay) in overlays.enumerated() {
                    let backing = try Qcow2Overlay.backing(for: drives[index].path, format: drives[index].format)
                    // Its size only: an encrypted image needs no key for that.
                    var sizeOptions = ImageOpenOptions(format: backing.format, writable: false)
                    sizeOptions.metadataOnly = true
                    let size = try ImageOpener.open(path: backing.path, options: sizeOptions).size
                    try Qcow2Overlay.create(at: overlay, virtualSize: size, backingFile: backing.path, backingFormat: backing.format)
                    created.append(overlay)
                    Diagnostics.trace("overlay \(overlay) over \(backing.path) (\(backing.format.rawValue))")
                    drives[index].path = overlay
                    drives[index].format = .qcow2
                }
            } catch {
                for path in created { unlink(path) }
                throw error
            }
        }
        for (index, drive) in drives.enumerated() {
            Diagnostics.trace("add drive \(index): \(drive.path) format=\(drive.format?.rawValue ?? "probed") blocksize=\(drive.sectorSize)\(writable ? "" : " readonly")")
        }
        let guest: Guest
        do {
            guest = try Guest(drives: drives, writable: writable, snapshot: image.snapshot, keys: keys ?? image.keyStore())
            if writable, let readOnly = guest.drives.first(where: { !$0.device.isWritable }) {
                throw CLIError(message: "\(readOnly.device.displayName): this image cannot be opened for writing")
            }
        } catch {
            for path in created { unlink(path) }
            throw error
        }
        for warning in guest.warnings { Diagnostics.warn(warning) }
        return guest
    }

    /// `-m` mounts what it names; `-i` mounts the inspected OS; with neither, the OS is
    /// inspected as virt-cat does, and a disk with no OS but a single filesystem uses that.
    static func mountTree(_ guest: Guest, _ fs: FilesystemOptions, writable: Bool) throws -> (MountTree, OperatingSystem?) {
        var entries: [MountTree.Entry] = []
        if fs.mounts.isEmpty {
            if let os = try chooseOperatingSystem(guest, root: fs.root, required: fs.inspect) {
                for warning in os.warnings { Diagnostics.warn(warning) }
                let tree = try MountTree(mounting: Inspector.mountPlan(for: os, in: guest), writable: writable) { error in
                    Diagnostics.warn("\(error.description); left unmounted")
                }
                return (tree, os)
            }
            let candidates = guest.openableFilesystems
            guard candidates.count == 1, let only = candidates.first else {
                let names = candidates.map(\.name).joined(separator: ", ")
                guard candidates.isEmpty else {
                    throw CLIError(message: "no operating system found and several filesystems (\(names)): choose one with -m DEVICE")
                }
                // Name what is there but cannot be opened (a btrfs, an NTFS) before saying nothing is.
                if let unsupported = guest.devices.first(where: { $0.content.type != nil && $0.content.usage == .filesystem }),
                   let type = unsupported.content.type {
                    throw CLIError(message: "\(unsupported.name) holds \(type), which imagemount cannot open yet")
                }
                // An encrypted volume with nothing we can unlock (BitLocker; LUKS is unlocked
                // with --key before this and says so itself when it cannot be).
                if let locked = guest.devices.first(where: { $0.content.usage == .crypto && $0.content.type != "crypto_LUKS" }),
                   let type = locked.content.type {
                    throw CLIError(message: "\(locked.name) holds \(type), which imagemount cannot open yet")
                }
                throw CLIError(message: "\(guest.drives.map { $0.device.displayName }.joined(separator: ", ")): "
                    + "no filesystem found that imagemount opens (\(FilesystemRegistry.types.joined(separator: ", ")))")
            }
            entries = [MountTree.Entry(device: only, mountpoint: "/")]
        } else {
            for spec in fs.mountSpecs {
                let name = spec.device
                let device = try guest.device(named: name)
                if let asked = spec.fstype, asked != device.content.type {
                    throw CLIError(message: "\(name): -m asked for \(asked), but the volume holds \(device.content.type ?? "no recognised filesystem")")
                }
                // A device with no signature the probe knows may still be ext with a damaged
                // primary superblock: the ext opener decides (it falls back to a backup one).
                if let type = device.content.type, !FilesystemRegistry.canOpen(device.content) {
                    throw CLIError(message: "\(name) holds \(type), which imagemount cannot open yet")
                }
                entries.append(MountTree.Entry(device: device, mountpoint: spec.mountpoint, readOnly: spec.readOnly,
                                               options: spec.driverOptions))
                Diagnostics.trace("mount \(device.name) on \(spec.mountpoint)\(writable && !spec.readOnly ? "" : " read-only")")
            }
        }
        return (try MountTree(mounting: entries, writable: writable), nil)
    }

    /// The operating system to mount: the one found, or the one `--root` names. Several roots
    /// without `--root` is an error listing them; none is an error only when `required` (-i).
    static func chooseOperatingSystem(_ guest: Guest, root: String?, required: Bool) throws -> OperatingSystem? {
        // The registry is read only when a Windows path names a drive letter (Session+WindowsPaths.swift).
        let systems = Inspector.inspect(guest, registry: false)
        if let root {
            let device = try guest.device(named: root)
            guard let os = systems.first(where: { $0.root == device.name }) else {
                throw CLIError(message: "--root \(root): no operating system root on \(device.name) (roots: \(systems.map(\.root).joined(separator: ", ")))")
            }
            return os
        }
        switch systems.count {
        case 0:
            if required {
                let locked = guest.lockedVolumes.isEmpty ? "" : "; LUKS volumes left locked for want of a key: \(guest.lockedVolumes.joined(separator: ", "))"
                throw CLIError(message: "\(guest.drives.map { $0.device.displayName }.joined(separator: ", ")): no operating system found (inspection found no root filesystem)\(locked)")
            }
            return nil
        case 1:
            return systems[0]
        default:
            throw CLIError(message: "several operating systems found (roots: \(systems.map(\.root).joined(separator: ", "))): choose one with --root DEVICE")
        }
    }
}

extension GuestFilesystem {
    /// Whether a writable open stayed read-only by the driver's own rules, with a warning
    /// saying so (a hibernated NTFS: "… opened read-only: …"), rather than because `-m …:ro`
    /// asked or the driver only reads.
    var isKeptReadOnly: Bool { !isWritable && warnings.contains { $0.contains("opened read-only") } }
}
