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
    /// Changed by mount and umount; rebuilt from `entries` each time.
    private(set) var tree: MountTree?
    /// What `tree` was built from, in mount order.
    private(set) var entries: [MountTree.Entry] = []
    /// The roots inspection found, computed when a command first asks.
    private var systems: [OperatingSystem]?
    /// Output is gathered here and written in large pieces (and before any error message, so
    /// the two streams keep their order on a terminal).
    private var output = OutputBuffer()

    init(guest: Guest, tree: MountTree?) {
        self.guest = guest
        self.tree = tree
        for mount in tree?.mounts ?? [] {
            if let device = try? guest.device(named: mount.deviceName) {
                entries.append(MountTree.Entry(device: device, mountpoint: mount.mountpoint))
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
    /// then a directory of the tree (read-only either way: the shell does not write yet).
    func mount(_ name: String, on mountpoint: String) throws {
        guard mountpoint.hasPrefix("/") else { throw ShellError("\(mountpoint): path must start with a / character") }
        let device = try guest.device(named: name)
        let wanted = MountTree.normalize(mountpoint)
        if entries.contains(where: { $0.mountpoint == wanted }) { throw ShellError("\(mountpoint): Device or resource busy") }
        if wanted != "/" {
            guard let tree else { throw ShellError("\(mountpoint): No such file or directory (mount / first)") }
            let node = try ShellBuiltin.resolve(tree, wanted)
            guard try tree.attributes(node).isDirectory else { throw ShellError("\(mountpoint): Not a directory") }
        }
        let next = entries + [MountTree.Entry(device: device, mountpoint: wanted)]
        do { tree = try MountTree(mounting: next, writable: false) } catch {
            throw ShellError("\(name): \(ShellError.describe(error))")
        }
        entries = next
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
        tree = next.isEmpty ? nil : try MountTree(mounting: next, writable: false)
        entries = next
    }

    func unmountAll() {
        entries = []
        tree = nil
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
