/// Distribution facts from /etc/os-release (os-release(5)) and the older release files, mapped
/// to libguestfs's names (guestfs_inspect_get_distro, _package_format, _package_management, osinfo).
enum OSRelease {
    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = unquote(String(line[line.index(after: eq)...]))
        }
        return fields
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

    /// "22.04" → (22, 4); "9" → (9, 0).
    static func version(_ text: String) -> (Int, Int) {
        let parts = text.split(separator: ".")
        return (parts.first.flatMap { Int($0) } ?? 0, parts.count > 1 ? Int(parts[1].prefix(while: \.isNumber)) ?? 0 : 0)
    }

    /// Guests without os-release: /etc/redhat-release, /etc/debian_version, /etc/alpine-release.
    static func legacy(tree: MountTree, into os: inout OperatingSystem) {
        if let text = Inspector.readText(tree, "/etc/redhat-release") {
            let line = String(text.split(separator: "\n").first ?? "")
            if os.productName == nil { os.productName = line }
            let lower = line.lowercased()
            if os.distro == nil {
                os.distro = lower.contains("centos") ? "centos" : lower.contains("fedora") ? "fedora"
                    : lower.contains("rocky") ? "rocky" : lower.contains("alma") ? "almalinux" : "rhel"
            }
            let words = line.split(separator: " ")
            if os.majorVersion == 0, let i = words.firstIndex(of: "release"), i + 1 < words.count {
                (os.majorVersion, os.minorVersion) = version(String(words[i + 1]))
            }
        } else if let text = Inspector.readText(tree, "/etc/debian_version") {
            if os.distro == nil { os.distro = "debian" }
            if os.majorVersion == 0 { (os.majorVersion, os.minorVersion) = version(text.trimmingCharacters(in: "\n")) }
        } else if let text = Inspector.readText(tree, "/etc/alpine-release") {
            if os.distro == nil { os.distro = "alpinelinux" }
            if os.majorVersion == 0 { (os.majorVersion, os.minorVersion) = version(text.trimmingCharacters(in: "\n")) }
        }
    }

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
