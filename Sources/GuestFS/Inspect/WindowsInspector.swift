import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// Windows roots, found and described as libguestfs does (daemon/inspect_fs_windows.ml):
/// the root holds a %SystemRoot% directory (`/Windows`, `/WINNT`… in any case) with
/// `System32/config/` and `System32/cmd.exe` or the SOFTWARE hive; the facts come from the
/// SOFTWARE and SYSTEM hives in `System32/config`, read through hivex (Hive.swift).
///
/// A hive that cannot be read (missing, damaged, too large) costs only the fields it would have
/// given: each problem becomes one line in `warnings`, and the root is still a Windows root.
enum WindowsInspector {
    /// libguestfs `systemroot_paths`, in its order.
    static let systemRootNames = ["windows", "winnt", "win32", "win", "reactos"]

    /// The %SystemRoot% of `tree` as spelled on disk ("/Windows"), or nil when this is no
    /// Windows root.
    static func systemRoot(_ tree: MountTree) -> String? {
        // One listing of the root directory serves every candidate name.
        guard let entries = try? tree.entries(tree.root, rejected: { _ in }) else { return nil }
        for candidate in systemRootNames {
            for entry in entries where entry.type == .directory || entry.type == .symlink {
                let name = String(decoding: entry.name, as: UTF8.self)
                guard name.lowercased() == candidate, isSystemRoot(tree, entry.node) else { continue }
                return "/" + name
            }
        }
        return nil
    }

    /// libguestfs `is_systemroot`: system32 and system32/config are directories, and
    /// system32/cmd.exe is a file. The SOFTWARE hive stands in for cmd.exe here (a guest image
    /// trimmed of programs still says what it is).
    static func isSystemRoot(_ tree: MountTree, _ node: GuestNode) -> Bool {
        guard let system32 = directory(tree, node, "system32"), let config = directory(tree, system32, "config") else { return false }
        return regularFile(tree, system32, "cmd.exe") != nil || regularFile(tree, config, "software") != nil
    }

    static func directory(_ tree: MountTree, _ dir: GuestNode, _ name: String) -> GuestNode? {
        guard let found = WindowsPath.child(tree, dir, name), (try? tree.attributes(found.node))?.isDirectory == true else { return nil }
        return found.node
    }

    static func regularFile(_ tree: MountTree, _ dir: GuestNode, _ name: String) -> (name: String, node: GuestNode)? {
        guard let found = WindowsPath.child(tree, dir, name), (try? tree.attributes(found.node))?.isRegular == true else { return nil }
        return found
    }

    static func facts(root device: GuestDevice, tree: MountTree, systemRoot: String, guest: Guest, registry: Bool = true) -> OperatingSystem {
        var os = OperatingSystem(root: device.name)
        os.type = "windows"
        os.distro = "windows"
        os.windowsSystemRoot = systemRoot
        os.mountpoints = [("/", device.name)]
        guard let rootNode = try? tree.resolve(systemRoot), let system32 = directory(tree, rootNode, "system32") else { return os }
        if let cmd = regularFile(tree, system32, "cmd.exe"), let file = try? tree.filesystem(of: cmd.node).openFile(cmd.node.inode) {
            var header = [UInt8](repeating: 0, count: PEHeader.headerBytes)
            if let count = try? header.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }) {
                os.architecture = PEHeader.architecture(Array(header.prefix(count)))
            }
        }
        guard registry, let config = directory(tree, system32, "config") else { return os }
        let configPath = systemRoot + "/" + "System32/config"
        if let software = openHive(tree, config, "software", path: configPath, warnings: &os.warnings) {
            readSoftware(software, into: &os)
        }
        if let system = openHive(tree, config, "system", path: configPath, warnings: &os.warnings) {
            readSystem(system, guest: guest, into: &os)
        }
        os.osinfo = osinfo(os)
        return os
    }

    /// The SYSTEM hive's drive letters alone (Inspector.windowsDriveMappings).
    static func driveMappings(for os: OperatingSystem, tree: MountTree, guest: Guest) -> (mappings: [(letter: String, device: String)], warnings: [String]) {
        var warnings: [String] = []
        guard let hive = openConfigHive("system", of: os, tree: tree, warnings: &warnings) else { return ([], warnings) }
        return (WindowsDriveMappings.read(hive, guest: guest), warnings)
    }

    /// Opens hive `name` of `os`'s `SYSTEMROOT\System32\config`, or nil (with a line in
    /// `warnings` when the folder is there but the hive is not, or cannot be read).
    static func openConfigHive(_ name: String, of os: OperatingSystem, tree: MountTree, warnings: inout [String]) -> Hive? {
        guard let systemRoot = os.windowsSystemRoot, let rootNode = try? tree.resolve(systemRoot),
              let system32 = directory(tree, rootNode, "system32"), let config = directory(tree, system32, "config") else { return nil }
        return openHive(tree, config, name, path: systemRoot + "/System32/config", warnings: &warnings)
    }

    /// Opens the hive file `name` of `config`, or says in `warnings` why it cannot.
    static func openHive(_ tree: MountTree, _ config: GuestNode, _ name: String, path: String, warnings: inout [String]) -> Hive? {
        guard let file = regularFile(tree, config, name) else {
            warnings.append("\(path)/\(name.uppercased()): no registry hive there; the facts it holds are left out")
            return nil
        }
        let display = "\(path)/\(file.name)"
        do {
            return try Hive(file: try tree.filesystem(of: file.node).openFile(file.node.inode), name: display)
        } catch {
            warnings.append("\(ImageError.wrap(error, path: display).description); the facts it holds are left out")
            return nil
        }
    }

    /// HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion (check_windows_software_registry).
    static func readSoftware(_ hive: Hive, into os: inout OperatingSystem) {
        guard let node = hive.node(["Microsoft", "Windows NT", "CurrentVersion"]) else {
            os.warnings.append("\(hive.name): no key Microsoft\\Windows NT\\CurrentVersion; product and version unknown")
            return
        }
        var warnings: [String] = []
        defer { os.warnings += warnings }
        func string(_ name: String) -> String? {
            guard let value = hive.value(node, name) else { return nil }
            do { return try hive.string(value) } catch {
                warnings.append("\(hive.name): CurrentVersion\\\(name): \(ImageError.wrap(error).reason); left out")
                return nil
            }
        }
        func dword(_ name: String) -> UInt32? {
            guard let value = hive.value(node, name) else { return nil }
            do { return try hive.dword(value) } catch {
                warnings.append("\(hive.name): CurrentVersion\\\(name): \(ImageError.wrap(error).reason); left out")
                return nil
            }
        }
        os.productName = string("ProductName")
        // Windows 10 and later keep "6.3" in CurrentVersion for old programs' sake; the real
        // version is in CurrentMajor/MinorVersionNumber when both are there.
        if let major = dword("CurrentMajorVersionNumber"), let minor = dword("CurrentMinorVersionNumber") {
            // libguestfs reads them as Int32 (Int32.to_int): a hostile 0xFFFFFFFF is -1 there too.
            (os.majorVersion, os.minorVersion) = (Int(Int32(bitPattern: major)), Int(Int32(bitPattern: minor)))
        } else if let version = string("CurrentVersion") {
            (os.majorVersion, os.minorVersion) = OSRelease.version(version)
        }
        os.productVariant = string("InstallationType")
        os.editionID = string("EditionID")
        os.buildID = string("CurrentBuildNumber") ?? string("CurrentBuild")
    }

    /// HKLM\SYSTEM: the drive letters, the current control set, the hostname
    /// (check_windows_system_registry).
    static func readSystem(_ hive: Hive, guest: Guest, into os: inout OperatingSystem) {
        os.driveMappings = WindowsDriveMappings.read(hive, guest: guest)
        readControlSet(hive, into: &os)
    }

    /// Select\Current and the hostname of that control set.
    static func readControlSet(_ hive: Hive, into os: inout OperatingSystem) {
        guard let select = hive.node(["Select"]), let current = hive.value(select, "Current"),
              let number = try? hive.dword(current) else {
            os.warnings.append("\(hive.name): no Select\\Current DWORD; control set and hostname unknown")
            return
        }
        // sprintf "ControlSet%03ld" of the DWORD.
        let digits = String(number)
        let controlSet = "ControlSet" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
        os.windowsCurrentControlSet = controlSet
        // Today's libguestfs reads Tcpip\Parameters\Hostname; older releases read
        // Control\ComputerName\ComputerName\ComputerName (the NetBIOS name), the fallback here.
        let places: [([String], String)] = [
            ([controlSet, "Services", "Tcpip", "Parameters"], "Hostname"),
            ([controlSet, "Control", "ComputerName", "ComputerName"], "ComputerName"),
        ]
        for (path, name) in places {
            guard let node = hive.node(path), let value = hive.value(node, name), let text = try? hive.string(value),
                  !text.isEmpty else { continue }
            os.hostname = text
            return
        }
    }

    /// The libosinfo short id, as libguestfs derives it (lib/inspect-osinfo.c, Windows branch).
    static func osinfo(_ os: OperatingSystem) -> String? {
        let product = os.productName ?? "", variant = os.productVariant ?? ""
        let server = variant.contains("Server")
        switch (os.majorVersion, os.minorVersion) {
        case (5, 1): return "winxp"
        case (5, 2): return product.contains("XP") ? "winxp" : product.contains("R2") ? "win2k3r2" : "win2k3"
        case (6, 0): return server ? "win2k8" : "winvista"
        case (6, 1): return server ? "win2k8r2" : "win7"
        case (6, 2): return server ? "win2k12" : "win8"
        case (6, 3): return server ? "win2k12r2" : "win8.1"
        case (10, 0):
            if server {
                return product.contains("2025") ? "win2k25" : product.contains("2022") ? "win2k22" : product.contains("2019") ? "win2k19" : "win2k16"
            }
            // Client versions differ only by build: 22000 is the first Windows 11 build.
            guard let build = os.buildID.flatMap({ Int($0) }), build >= 0 else { return nil }
            return build >= 22000 ? "win11" : "win10"
        default: return nil
        }
    }
}
