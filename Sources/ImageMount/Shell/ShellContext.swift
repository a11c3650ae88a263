import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// What the shell's commands work on: the drives, the mounted tree (nil until `-i`, `-m`
/// or an image with one filesystem gave one), the inspected systems, and where output goes.
final class ShellContext {
    let guest: Guest
    /// Opened with --rw: the filesystems are opened for writing (but mount-ro's).
    let writable: Bool
    /// The umask the writing commands apply, the daemon's 022 until `umask` changes it.
    var umask: UInt16 = 0o022
    /// The host's user and group names, for tar-in's acls:true (read before the sandbox).
    var tarNames = TarNameMap()
    /// The helper that runs perl and $EDITOR for edit (started before the images were opened).
    var editor: EditorAgent.Connection?
    /// Changed by mount and umount; rebuilt from `entries` each time.
    private(set) var tree: MountTree?
    /// What `tree` was built from, in mount order.
    private(set) var entries: [MountTree.Entry] = []
    /// The roots inspection found, computed when a command first asks.
    private var systems: [OperatingSystem]?
    /// Output is gathered here and written in large pieces (and before any error message, so
    /// the two streams keep their order on a terminal).
    private var output = OutputBuffer()

    init(guest: Guest, tree: MountTree?, writable: Bool) {
        self.guest = guest
        self.tree = tree
        self.writable = writable
        for mount in tree?.mounts ?? [] {
            if let device = try? guest.device(named: mount.deviceName) {
                entries.append(MountTree.Entry(device: device, mountpoint: mount.mountpoint, readOnly: writable && mount.readOnly))
            }
        }
    }

    var operatingSystems: [OperatingSystem] {
        if let systems { return systems }
        let found = Inspector.inspect(guest, registry: false)
        systems = found
        return found
    }

    /// The mounted tree, or the error guestfish gives a path command before anything is mounted.
    func mounted() throws -> MountTree {
        guard let tree else {
            throw ShellError("no filesystem is mounted (use -i, or -m DEVICE)")
        }
        return tree
    }

    /// guestfs_mount: the filesystem on `name` at `mountpoint`, which must be `/` first and
    /// then a directory of the tree; writable when the shell is (--rw) unless `readOnly`
    /// (mount-ro).
    func mount(_ name: String, on mountpoint: String, readOnly: Bool = false) throws {
        guard mountpoint.hasPrefix("/") else { throw ShellError("\(mountpoint): path must start with a / character") }
        let device = try guest.device(named: name)
        let wanted = MountTree.normalize(mountpoint)
        if entries.contains(where: { $0.mountpoint == wanted }) { throw ShellError("\(mountpoint): Device or resource busy") }
        if wanted != "/" {
            guard let tree else { throw ShellError("\(mountpoint): No such file or directory (mount / first)") }
            let node = try ShellBuiltin.resolve(tree, wanted)
            guard try tree.attributes(node).isDirectory else { throw ShellError("\(mountpoint): Not a directory") }
        }
        let entry = MountTree.Entry(device: device, mountpoint: wanted, readOnly: readOnly)
        do { try rebuild(entries + [entry]) } catch {
            throw ShellError("\(name): \(ShellError.describe(error))")
        }
    }

    /// guestfs_umount: the mount at `mountpoint` (or of the device named), refused while
    /// another is mounted below it, as the kernel refuses a busy one.
    func unmount(_ target: String) throws {
        let deviceName = (try? guest.device(named: target))?.name
        guard let index = entries.firstIndex(where: { $0.mountpoint == MountTree.normalize(target) || $0.device.name == deviceName }) else {
            throw ShellError("\(target): not mounted")
        }
        let mountpoint = entries[index].mountpoint
        let below = mountpoint == "/" ? "/" : mountpoint + "/"
        if entries.contains(where: { $0.mountpoint != mountpoint && $0.mountpoint.hasPrefix(below) }) {
            throw ShellError("\(target): Device or resource busy")
        }
        var next = entries
        next.remove(at: index)
        try rebuild(next)
    }

    func unmountAll() throws {
        try rebuild([])
    }

    /// The tree of `next`. The filesystems open now are closed first (written back, when
    /// writable: a filesystem must never be open twice for writing); if `next` cannot be
    /// mounted, the previous tree is mounted again.
    private func rebuild(_ next: [MountTree.Entry]) throws {
        try close()
        do {
            tree = next.isEmpty ? nil : try MountTree(mounting: next, writable: writable)
            entries = next
        } catch {
            tree = entries.isEmpty ? nil : try? MountTree(mounting: entries, writable: writable)
            if tree == nil { entries = [] }
            throw error
        }
    }

    /// guestfs_sync: everything written so far made durable in the images.
    func sync() throws {
        for mount in tree?.mounts ?? [] where !mount.readOnly {
            if let fs = mount.filesystem as? any WritableGuestFilesystem { try fs.sync() }
        }
    }

    /// Closes every mounted filesystem (the writable ones written back, e2fsck-clean), leaving
    /// nothing mounted; the first failure is thrown once all are closed.
    func close() throws {
        guard let tree else { return }
        self.tree = nil
        var failure: (any Error)?
        for mount in tree.mounts {
            do { try mount.filesystem.close() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// The OS whose root is `root` (guestfish: "no inspection data" for any other name).
    func system(_ root: String) throws -> OperatingSystem {
        let name = (try? guest.device(named: root).name) ?? root
        guard let os = operatingSystems.first(where: { $0.root == name }) else {
            throw ShellError("\(root): no inspection data: call inspect-os first, or the device is not a root")
        }
        return os
    }

    // MARK: Output in guestfish's shapes (generator/fish.ml)

    func print(_ line: String) throws {
        output.append(line)
        try output.endLine()
    }

    func printBool(_ value: Bool) throws { try print(value ? "true" : "false") }

    func printList(_ items: [String]) throws { for item in items { try print(item) } }

    /// A hash table: "key: value" lines.
    func printHash(_ pairs: [(String, String)]) throws { for (k, v) in pairs { try print("\(k): \(v)") } }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        output.append(Array(bytes))
        if output.bytes.count >= 1 << 20 { try output.flush() }
    }

    func flush() throws { try output.flush() }

    /// Lets a listing write straight into the output (GuestListing).
    func withOutput(_ body: (inout OutputBuffer) throws -> Void) throws { try body(&output) }
}

/// A command's failure, printed as guestfish prints one: `COMMAND: MESSAGE`.
struct ShellError: Error {
    let message: String
    init(_ message: String) { self.message = message }

    /// An error from the layers below, in the words guestfish's daemon uses: the path and
    /// strerror's text where the error carries an errno.
    static func describe(_ error: any Error, path: String? = nil) -> String {
        if let e = error as? ShellError { return e.message }
        if let e = error as? ImageError, let path, e.errno != .ioError {
            return "\(path): \(String(cString: strerror(e.errno.rawValue)))"
        }
        return LsCommand.describe(error)
    }
}
