import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// Distribution facts from /etc/os-release (os-release(5)) and the older release files, mapped
/// to libguestfs's names (guestfs_inspect_get_distro, _package_format, _package_management, osinfo).
/// Which file gives the product name and version: `ReleaseFacts` (ReleaseFiles.swift).
enum OSRelease {
    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for (key, value) in pairs(text) { fields[key] = value }
        return fields
    }

    /// The KEY=VALUE lines in file order, values unquoted (libguestfs `parse_key_value_strings`).
    static func pairs(_ text: String) -> [(String, String)] {
        text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<eq]), unquote(String(line[line.index(after: eq)...])))
        }
    }

    static func unquote(_ value: String) -> String {
        var v = value.trimmingCharacters(in: " ")
        if v.count >= 2, let f = v.first, f == "\"" || f == "'", v.last == f { v = String(v.dropFirst().dropLast()) }
        return v
    }

    /// os-release ID → libguestfs distro name.
    static func distro(forID id: String) -> String {
        let map = ["alpine": "alpinelinux", "arch": "archlinux", "kali": "kalilinux", "ol": "oraclelinux",
                   "void": "voidlinux", "opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse",
                   "opensuse": "opensuse", "sles_sap": "sles", "scientific": "scientificlinux", "mandriva": "mandriva"]
        return map[id] ?? id
    }

    /// libguestfs `parse_version_from_major_minor` (daemon/inspect_utils.ml): the first
    /// "N.M" anywhere in the text, else the first "N" (minor 0), else nil.
    /// "22.04" → (22, 4); "3.18.4" → (3, 18); "9" → (9, 0); "trixie/sid" → nil.
    static func parseVersion(_ text: String) -> (Int, Int)? {
        let bytes = Array(text.utf8)
        func digits(from start: Int) -> (value: Int, end: Int)? {
            var end = start, value = 0
            while end < bytes.count, (0x30 ... 0x39).contains(bytes[end]) {
                // An absurdly long number is no version: stop before Int overflows.
                guard end - start < 9 else { return nil }
                value = value * 10 + Int(bytes[end] - 0x30)
                end += 1
            }
            return end > start ? (value, end) : nil
        }
        for start in bytes.indices {
            guard let major = digits(from: start), major.end < bytes.count, bytes[major.end] == 0x2E,
                  let minor = digits(from: major.end + 1) else { continue }
            return (major.value, minor.value)
        }
        for start in bytes.indices {
            if let major = digits(from: start) { return (major.value, 0) }
        }
        return nil
    }

    /// `parseVersion`, or (0, 0) when there is none (libguestfs's "no version").
    static func version(_ text: String) -> (Int, Int) { parseVersion(text) ?? (0, 0) }

    static func packaging(distro: String?, major: Int) -> (String?, String?) {
        switch distro {
        case "fedora", "mageia": return ("rpm", "dnf")
        case "rhel", "centos", "rocky", "almalinux", "oraclelinux", "scientificlinux", "circle":
            return ("rpm", major >= 8 ? "dnf" : "yum")
        case "opensuse", "sles": return ("rpm", "zypper")
        case "debian", "ubuntu", "linuxmint", "kalilinux": return ("deb", "apt")
        case "archlinux": return ("pacman", "pacman")
        case "alpinelinux": return ("apk", "apk")
        case "voidlinux": return ("xbps", "xbps")
        case "gentoo": return ("ebuild", "portage")
        default: return (nil, nil)
        }
    }

    /// The libosinfo short id, as libguestfs derives it (e.g. fedora36, rhel9.3, debian12, ubuntu22.04).
    static func osinfo(distro: String?, major: Int, minor: Int) -> String? {
        guard let distro, major > 0 else { return nil }
        switch distro {
        case "rhel", "centos", "rocky", "almalinux", "oraclelinux", "opensuse", "sles": return "\(distro)\(major).\(minor)"
        case "ubuntu": return "ubuntu\(major).\(minor < 10 ? "0" : "")\(minor)"
        case "alpinelinux": return "alpinelinux\(major).\(minor)"
        default: return "\(distro)\(major)"
        }
    }
}
