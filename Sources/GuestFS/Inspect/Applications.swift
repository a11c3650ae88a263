import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// One installed package, with the fields of libguestfs's `guestfs_application2` (empty string
/// for a field the package database does not give).
public struct Application: Sendable, Equatable {
    public var name = ""
    public var displayName = ""
    public var epoch = 0
    public var version = ""
    public var release = ""
    public var arch = ""
    public var installPath = ""
    public var publisher = ""
    public var url = ""
    public var sourcePackage = ""
    public var summary = ""
    public var description = ""
}

/// The installed applications of a guest, read as libguestfs reads them (lib/inspect-apps.c,
/// `list_applications_deb`, `list_applications_apk`, `list_applications_pacman`;
/// `list_applications_rpm`: RPMDatabase.swift; `list_applications_windows`:
/// WindowsApplications.swift), sorted by name (`sort_applications`, strcmp order).
public enum Applications {
    /// libguestfs `MAX_DPKG_STATUS_SIZE` and `MAX_APK_INSTALLED_SIZE`: 50 MB.
    static let maxDatabaseSize: UInt64 = 50_000_000

    /// The applications of `os`, with its filesystems mounted as its fstab says. An RPM guest's
    /// are read through `rpm` (made before the sandbox); without it, or when its database cannot
    /// be read, the list is empty and `warn` is told why (once per guest).
    public static func list(for os: OperatingSystem, in guest: Guest, rpm: RPMDatabase? = nil, warn: (String) -> Void = { _ in }) -> [Application] {
        guard let tree = try? MountTree(entries: Inspector.mountEntries(for: os, in: guest), writable: false) else { return [] }
        var apps: [Application]
        switch os.packageFormat {
        case "deb": apps = read(tree, "/var/lib/dpkg/status").map(dpkgStatus) ?? []
        case "apk": apps = read(tree, "/lib/apk/db/installed").map(apkInstalled) ?? []
        case "pacman": apps = pacmanLocal(tree)
        case "rpm": apps = rpm?.applications(tree, root: os.root, warn: warn) ?? []
        default: apps = os.type == "windows" ? WindowsApplications.list(for: os, tree: tree) : []
        }
        apps.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return apps
    }

    static func read(_ tree: MountTree, _ path: String) -> String? {
        guard let n = try? tree.resolve(path), (try? tree.attributes(n))?.isRegular == true,
              let file = try? tree.filesystem(of: n).openFile(n.inode), file.size <= maxDatabaseSize else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        var done = 0
        while done < bytes.count {
            guard let count = try? bytes.withUnsafeMutableBytes({ try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]), at: UInt64(done)) }),
                  count > 0 else { break }
            done += count
        }
        return String(decoding: bytes.prefix(done), as: UTF8.self)
    }

    /// "[epoch:]version[-release]": the epoch before the first ':', the release after the first
    /// '-' that follows it; an epoch that is not a number is -1 (the package is then skipped).
    static func splitVersion(_ text: Substring) -> (epoch: Int, version: String, release: String?) {
        var rest = text
        var epoch = 0
        if let colon = rest.firstIndex(of: ":") {
            epoch = Int(rest[..<colon]).flatMap { $0 >= 0 && $0 <= Int(Int32.max) ? $0 : nil } ?? -1
            rest = rest[rest.index(after: colon)...]
        }
        guard let dash = rest.firstIndex(of: "-") else { return (epoch, String(rest), nil) }
        return (epoch, String(rest[..<dash]), String(rest[rest.index(after: dash)...]))
    }

    /// The lines as fgets/getline return them: a final newline ends the last line, it does not
    /// start an empty one (so a stanza not followed by a blank line is not counted, as there).
    static func lines(_ text: String) -> [Substring] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if text.hasSuffix("\n") { lines.removeLast() }
        return lines
    }

    /// /var/lib/dpkg/status: stanzas separated by blank lines; a package counts when its
    /// Status line mentions "installed" (as libguestfs checks it, with strstr) and it has a
    /// Package and a Version. Description's first line is the summary, its continuation lines
    /// (leading space removed, joined by newlines) the description.
    static func dpkgStatus(_ text: String) -> [Application] {
        var apps: [Application] = []
        var current = Application()
        var hasName = false, hasVersion = false, installed = false
        var inDescription = false, descriptionLines: [Substring] = []
        for line in lines(text) {
            if line.hasPrefix(" ") && inDescription {
                descriptionLines.append(line.dropFirst())
                continue
            }
            inDescription = false
            if line.hasPrefix("Package: ") {
                current.name = String(line.dropFirst(9)); hasName = true
            } else if line.hasPrefix("Status: ") {
                installed = line.dropFirst(8).contains("installed")
            } else if line.hasPrefix("Version: ") {
                let v = splitVersion(line.dropFirst(9))
                (current.epoch, current.version, current.release) = (v.epoch, v.version, v.release ?? "")
                hasVersion = true
            } else if line.hasPrefix("Architecture: ") {
                current.arch = String(line.dropFirst(14))
            } else if line.hasPrefix("Homepage: ") {
                current.url = String(line.dropFirst(10))
            } else if line.hasPrefix("Source: ") {
                // "Source: foo (1.0)" names the package foo.
                current.sourcePackage = String(line.dropFirst(8).prefix { $0 != " " })
            } else if line.hasPrefix("Description: ") {
                current.summary = String(line.dropFirst(13))
                descriptionLines = []
                inDescription = true
            } else if line.isEmpty {
                current.description = descriptionLines.joined(separator: "\n")
                if installed && hasName && hasVersion && current.epoch >= 0 { apps.append(current) }
                current = Application(); hasName = false; hasVersion = false; installed = false; descriptionLines = []
            }
        }
        return apps
    }

    /// /lib/apk/db/installed: stanzas of "X:value" lines separated by blank lines; P name,
    /// V version ("-rN" release, the "r" dropped), A arch, U url, T description.
    static func apkInstalled(_ text: String) -> [Application] {
        var apps: [Application] = []
        var current = Application()
        var hasName = false, hasVersion = false
        for line in lines(text) {
            let bytes = Array(line.utf8)
            if bytes.count > 1 && bytes[1] != 0x3A { continue }
            if bytes.isEmpty {
                if hasName && hasVersion && current.epoch >= 0 { apps.append(current) }
                current = Application(); hasName = false; hasVersion = false
                continue
            }
            let value = bytes.count > 2 ? String(decoding: bytes[2...], as: UTF8.self) : ""
            switch bytes[0] {
            case 0x41: current.arch = value                       // A
            case 0x50: current.name = value; hasName = true       // P
            case 0x54: current.description = value                // T
            case 0x55: current.url = value                        // U
            case 0x56:                                            // V
                let v = splitVersion(Substring(value))
                var release = v.release ?? ""
                if release.hasPrefix("r") { release.removeFirst() }
                (current.epoch, current.version, current.release) = (v.epoch, v.version, release)
                hasVersion = true
            default: break
            }
        }
        return apps
    }

    /// libguestfs reads each pacman desc file only up to 8 KiB; larger ones are skipped.
    static let maxPacmanDesc: UInt64 = 8192

    /// /var/lib/pacman/local/*/desc: "%KEY%" lines each followed by the value's line; NAME,
    /// VERSION ("[epoch:]version-release", the release required) and ARCH are required,
    /// DESC and URL optional. A missing or oversized desc file skips that package.
    static func pacmanLocal(_ tree: MountTree) -> [Application] {
        guard let dir = try? tree.resolve("/var/lib/pacman/local"), let entries = try? tree.entries(dir, rejected: { _ in }) else { return [] }
        var apps: [Application] = []
        for entry in entries where entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
            guard (try? tree.attributes(entry.node))?.isDirectory == true,
                  let descNode = try? tree.lookup(entry.node, Array("desc".utf8)),
                  (try? tree.attributes(descNode))?.isRegular == true,
                  let file = try? tree.filesystem(of: descNode).openFile(descNode.inode), file.size <= maxPacmanDesc else { continue }
            var bytes = [UInt8](repeating: 0, count: Int(file.size))
            guard let count = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }) else { continue }
            if let app = pacmanDesc(String(decoding: bytes.prefix(count), as: UTF8.self)) { apps.append(app) }
        }
        return apps
    }

    static func pacmanDesc(_ text: String) -> Application? {
        var values: [String: String] = [:]
        var key: String?
        for line in lines(text) {
            if line.isEmpty { key = nil; continue }
            if let k = key {
                values[k] = String(line)
                key = nil
                continue
            }
            if ["%NAME%", "%VERSION%", "%DESC%", "%URL%", "%ARCH%"].contains(String(line)) { key = String(line) }
        }
        guard let name = values["%NAME%"], let version = values["%VERSION%"], let arch = values["%ARCH%"] else { return nil }
        let v = splitVersion(Substring(version))
        guard let release = v.release, v.epoch >= 0, !v.version.isEmpty, !release.isEmpty else { return nil }
        var app = Application()
        (app.name, app.epoch, app.version, app.release, app.arch) = (name, v.epoch, v.version, release, arch)
        app.url = values["%URL%"] ?? ""
        app.description = values["%DESC%"] ?? ""
        return app
    }
}
