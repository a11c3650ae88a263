import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// Finds the operating systems installed on a guest's disks, following libguestfs's rules
/// (daemon/inspect_fs.ml): a Linux root has `/etc`, `/bin` (a directory, or the usr-merge
/// symlink to `usr/bin`), and `/etc/fstab` or `/etc/hosts`; a Windows root has a %SystemRoot%
/// with `System32/config` (WindowsInspector.swift).
public enum Inspector {
    /// Files read during inspection are small text files; anything larger is not what we want.
    static let maxFileSize: UInt64 = 1 << 20

    /// Loads, before the process sandboxes itself, what reading a Windows registry later needs
    /// from the host (Hive.convertersLoaded): the sandbox calls it on the way in.
    public static func prepareForSandbox() {
        _ = Hive.convertersLoaded
    }

    /// Every root found, in device order. Filesystems that cannot be opened are passed over.
    /// Without `registry`, a Windows root is found and mounted but its hives are not read (the
    /// helpers need them only for a drive letter: `windowsDriveMappings`), since a real
    /// SOFTWARE hive is tens of MiB.
    public static func inspect(_ guest: Guest, registry: Bool = true) -> [OperatingSystem] {
        guest.openableFilesystems.compactMap { device in
            guard let tree = try? MountTree(entries: [(device, "/")], writable: false) else { return nil }
            if isLinuxRoot(tree) { return facts(root: device, tree: tree, guest: guest) }
            if let systemRoot = WindowsInspector.systemRoot(tree) {
                return WindowsInspector.facts(root: device, tree: tree, systemRoot: systemRoot, guest: guest, registry: registry)
            }
            return nil
        }
    }

    /// The drive letters of Windows guest `os` (its SYSTEM hive's MountedDevices), read from
    /// `tree`, a tree with `os`'s root at `/`; and what could not be read, one line each.
    public static func windowsDriveMappings(for os: OperatingSystem, tree: MountTree, in guest: Guest) -> (mappings: [(letter: String, device: String)], warnings: [String]) {
        WindowsInspector.driveMappings(for: os, tree: tree, guest: guest)
    }

    /// The (device, mountpoint) pairs to mount for `os`, root first, shortest mountpoint first.
    public static func mountEntries(for os: OperatingSystem, in guest: Guest) throws -> [(device: GuestDevice, mountpoint: String)] {
        try mountPlan(for: os, in: guest).map { ($0.device, $0.mountpoint) }
    }

    /// The same, with each filesystem's fstab options (for the drivers that take some).
    public static func mountPlan(for os: OperatingSystem, in guest: Guest) throws -> [MountTree.Entry] {
        var entries = [MountTree.Entry(device: try guest.device(named: os.root), mountpoint: "/", options: os.mountOptions["/"] ?? [])]
        for (mountpoint, device) in os.mountpoints where mountpoint != "/" {
            entries.append(MountTree.Entry(device: try guest.device(named: device), mountpoint: mountpoint,
                                           options: os.mountOptions[mountpoint] ?? []))
        }
        return entries
    }

    static func isLinuxRoot(_ tree: MountTree) -> Bool {
        func node(_ path: String, follow: Bool = true) -> NodeAttributes? {
            guard let n = try? tree.resolve(path, followFinal: follow) else { return nil }
            return try? tree.attributes(n)
        }
        guard node("/etc")?.isDirectory == true else { return false }
        let bin = node("/bin", follow: false)
        var binOK = bin?.isDirectory == true
        if bin?.isSymlink == true, let n = try? tree.resolve("/bin", followFinal: false),
           let target = try? tree.filesystem(of: n).readlink(n.inode) {
            binOK = ["usr/bin", "/usr/bin", "usr/bin/", "/usr/bin/"].contains(String(decoding: target, as: UTF8.self))
        }
        guard binOK else { return false }
        return node("/etc/fstab")?.isRegular == true || node("/etc/hosts")?.isRegular == true
    }

    /// Reads a small regular file of the guest, or nil.
    static func readText(_ tree: MountTree, _ path: String) -> String? {
        guard let n = try? tree.resolve(path), (try? tree.attributes(n))?.isRegular == true,
              let file = try? tree.filesystem(of: n).openFile(n.inode), file.size <= maxFileSize else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        guard let count = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }) else { return nil }
        return String(decoding: bytes.prefix(count), as: UTF8.self)
    }

    static func facts(root device: GuestDevice, tree: MountTree, guest: Guest) -> OperatingSystem {
        var os = OperatingSystem(root: device.name)
        let release = ReleaseFacts.identify(tree)
        os.distro = release.distro
        os.productName = release.productName
        (os.majorVersion, os.minorVersion) = release.version ?? (0, 0)
        os.hostname = hostname(tree)
        os.architecture = architecture(tree)
        (os.packageFormat, os.packageManagement) = OSRelease.packaging(distro: os.distro, major: os.majorVersion)
        os.osinfo = OSRelease.osinfo(distro: os.distro, major: os.majorVersion, minor: os.minorVersion)
        resolveFstab(tree: tree, guest: guest, into: &os)
        return os
    }

    static func hostname(_ tree: MountTree) -> String? {
        for path in ["/etc/hostname", "/etc/HOSTNAME"] {
            if let text = readText(tree, path), let line = text.split(separator: "\n").first {
                let name = String(line).trimmingCharacters(in: " ").trimmingCharacters(in: "\t")
                if !name.isEmpty && !name.hasPrefix("#") { return name }
            }
        }
        if let network = readText(tree, "/etc/sysconfig/network") {
            for line in network.split(separator: "\n") where line.hasPrefix("HOSTNAME=") {
                return OSRelease.unquote(String(line.dropFirst("HOSTNAME=".count)))
            }
        }
        return nil
    }

    /// The architecture of the first system binary found (the binaries libguestfs looks at).
    static func architecture(_ tree: MountTree) -> String? {
        for path in ["/bin/bash", "/bin/ls", "/bin/echo", "/bin/rm", "/bin/sh", "/usr/bin/bash", "/usr/bin/ls"] {
            guard let n = try? tree.resolve(path), (try? tree.attributes(n))?.isRegular == true,
                  let file = try? tree.filesystem(of: n).openFile(n.inode) else { continue }
            var header = [UInt8](repeating: 0, count: 64)
            guard let count = try? header.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }) else { continue }
            if let arch = ElfHeader.architecture(Array(header.prefix(count))) { return arch }
        }
        return nil
    }

    static func resolveFstab(tree: MountTree, guest: Guest, into os: inout OperatingSystem) {
        var mountpoints: [(String, String)] = [("/", os.root)]
        for entry in Fstab.parse(readText(tree, "/etc/fstab") ?? "") where Fstab.isMountable(entry) {
            let mountpoint = MountTree.normalize(entry.mountpoint)
            if mountpoint == "/" || mountpoints.contains(where: { $0.0 == mountpoint }) { continue }
            guard let device = guest.findDevice(entry.spec) else {
                os.warnings.append("fstab: \(entry.spec) for \(mountpoint): no such device in this guest; not mounted")
                continue
            }
            guard FilesystemRegistry.canOpen(device.content) else {
                let what = device.content.type.map { "\($0), which imagemount cannot open yet" } ?? "no known filesystem"
                os.warnings.append("fstab: \(entry.spec) for \(mountpoint) holds \(what); not mounted")
                continue
            }
            mountpoints.append((mountpoint, device.name))
            os.mountOptions[mountpoint] = entry.options.split(separator: ",").map(String.init)
        }
        os.mountpoints = mountpoints.sorted { depth($0.0) < depth($1.0) || (depth($0.0) == depth($1.0) && $0.0 < $1.0) }
    }

    static func depth(_ path: String) -> Int { path == "/" ? 0 : path.split(separator: "/").count }
}
