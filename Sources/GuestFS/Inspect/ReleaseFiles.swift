import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// The distribution, product name and version of a Linux root, found as libguestfs finds them
/// (daemon/inspect_fs_unix.ml, `linux_root_tests` and `check_tests`): the release files are
/// tried in a fixed order; each one that exists is parsed, and the first parse that succeeds
/// ends the search. A parse that fails may still have set fields, which later files overwrite.
///
/// - /etc/os-release (`parse_os_release`): ID gives the distro, PRETTY_NAME the product name
///   (NAME is not used), VERSION_ID the version. It succeeds only with both an ID and a
///   PRETTY_NAME, and a version; Debian and CentOS give only the major number there
///   (VERSION_ID="12"), so for them a minor of 0 means "go on to the other files" (Debian's
///   /etc/debian_version then gives product name "12.5" and version 12.5). Void Linux, rolling,
///   has no VERSION_ID and succeeds with 0.0.
/// - /etc/lsb-release (`parse_lsb_release`): DISTRIB_ID (Ubuntu, LinuxMint, Mageia, CoreOS),
///   DISTRIB_RELEASE, DISTRIB_DESCRIPTION.
/// - /etc/oracle-release, /etc/centos-release, /etc/redhat-release, /etc/debian_version,
///   /etc/arch-release, /etc/gentoo-release, /etc/slackware-version, /etc/alpine-release...
///   (`parse_generic`): the product name is the file's first line; with a pattern, the parse
///   succeeds only when the pattern gives the version.
struct ReleaseFacts {
    var distro: String?
    var productName: String?
    var version: (major: Int, minor: Int)?

    /// Runs libguestfs's tests on the root mounted as `tree`.
    static func identify(_ tree: MountTree) -> ReleaseFacts {
        var facts = ReleaseFacts()
        for test in tests {
            guard let text = Inspector.readText(tree, test.file) else { continue }
            if test.parse(text, &facts) { break }
        }
        return facts
    }

    typealias Parse = @Sendable (String, inout ReleaseFacts) -> Bool

    /// `linux_root_tests`, in its order (the SUSE, Cirros, Buildroot, Frugalware and PLD
    /// entries are left out).
    static let tests: [(file: String, parse: Parse)] = [
        ("/etc/os-release", osRelease),
        ("/etc/lsb-release", lsbRelease),
        ("/etc/oracle-release", generic("oraclelinux", .updateForm("Oracle Linux"))),
        ("/etc/oracle-release", generic("oraclelinux", .majorMinor("Oracle Linux"))),
        ("/etc/oracle-release", generic("oraclelinux", .major("Oracle Linux"))),
        ("/etc/centos-release", generic("centos", .updateForm("CentOS"))),
        ("/etc/centos-release", generic("centos", .majorMinor("CentOS"))),
        ("/etc/centos-release", generic("centos", .major("CentOS"))),
        ("/etc/altlinux-release", generic("altlinux", nil)),
        ("/etc/redhat-release", generic("fedora", .fedora)),
        ("/etc/redhat-release", generic("rhel", .updateForm("Red Hat"))),
        ("/etc/redhat-release", generic("rhel", .majorMinor("Red Hat"))),
        ("/etc/redhat-release", generic("rhel", .major("Red Hat"))),
        ("/etc/redhat-release", generic("centos", .updateForm("CentOS"))),
        ("/etc/redhat-release", generic("centos", .majorMinor("CentOS"))),
        ("/etc/redhat-release", generic("centos", .major("CentOS"))),
        ("/etc/redhat-release", generic("scientificlinux", .updateForm("Scientific Linux"))),
        ("/etc/redhat-release", generic("scientificlinux", .majorMinor("Scientific Linux"))),
        ("/etc/redhat-release", generic("scientificlinux", .major("Scientific Linux"))),
        ("/etc/redhat-release", generic("redhat-based", nil)),
        ("/etc/redhat-release", { _, facts in facts.distro = "redhat-based"; return true }),
        ("/etc/debian_version", generic("debian", nil)),
        ("/etc/pardus-release", generic("pardus", nil)),
        ("/etc/arch-release", { _, facts in facts.distro = "archlinux"; return true }),
        ("/etc/gentoo-release", generic("gentoo", nil)),
        ("/etc/meego-release", generic("meego", nil)),
        ("/etc/slackware-version", generic("slackware", nil)),
        ("/etc/ttylinux-target", generic("ttylinux", nil)),
        ("/etc/alpine-release", generic("alpinelinux", nil)),
    ]

    /// `parse_os_release`.
    static func osRelease(_ text: String, _ facts: inout ReleaseFacts) -> Bool {
        for (key, value) in OSRelease.pairs(text) {
            switch key {
            case "ID": facts.distro = OSRelease.distro(forID: value)
            case "PRETTY_NAME": facts.productName = value
            case "VERSION_ID":
                if let v = OSRelease.parseVersion(value) { facts.version = (v.0, v.1) }
            default: break
            }
        }
        guard facts.distro != nil, facts.productName != nil else { return false }
        if let version = facts.version, version.minor == 0, facts.distro == "debian" || facts.distro == "centos" { return false }
        if facts.version == nil {
            guard facts.distro == "voidlinux" else { return false }
            facts.version = (0, 0)
        }
        return true
    }

    /// `parse_lsb_release`.
    static func lsbRelease(_ text: String, _ facts: inout ReleaseFacts) -> Bool {
        var ok = false
        for (key, value) in OSRelease.pairs(text) {
            switch key {
            case "DISTRIB_ID":
                let known = ["CoreOS": "coreos", "LinuxMint": "linuxmint", "Mageia": "mageia", "Ubuntu": "ubuntu"]
                if let distro = known[value] { facts.distro = distro; ok = true }
            case "DISTRIB_RELEASE":
                if let v = OSRelease.parseVersion(value) { facts.version = (v.0, v.1) }
            case "DISTRIB_DESCRIPTION":
                facts.productName = value
                ok = true
            default: break
            }
        }
        return ok
    }

    /// `parse_generic ?rex distro`: the first line is the product name; with a pattern, it
    /// must give the version or the parse fails; without one, a version is taken if found.
    static func generic(_ distro: String, _ pattern: ReleasePattern?) -> Parse {
        { text, facts in
            let line = String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            guard !line.isEmpty else { return false }
            facts.productName = line
            facts.distro = distro
            guard let pattern else {
                if let v = OSRelease.parseVersion(line) { facts.version = (v.0, v.1) }
                return true
            }
            guard let version = pattern.match(line) else { return false }
            facts.version = version
            return true
        }
    }
}

/// The regular expressions of inspect_fs_unix.ml that the release files are matched with,
/// searched anywhere in the line as PCRE does. With PREFIX the product's name:
/// `majorMinor`: "PREFIX.*release (\d+)\.(\d+)"; `major`: "PREFIX.*release (\d+)" (minor 0);
/// `updateForm`: "PREFIX.*release (\d+).*Update (\d+)" (the update is the minor);
/// `fedora`: "Fedora release (\d+)".
enum ReleasePattern: Sendable {
    case majorMinor(String), major(String), updateForm(String), fedora

    func match(_ line: String) -> (major: Int, minor: Int)? {
        let bytes = Array(line.utf8)
        switch self {
        case .fedora:
            let prefix = Array("Fedora release ".utf8)
            guard let at = Self.find(prefix, in: bytes, from: 0), let n = Self.number(bytes, at + prefix.count) else { return nil }
            return (n.value, 0)
        case .majorMinor(let prefix), .major(let prefix), .updateForm(let prefix):
            guard let p = Self.find(Array(prefix.utf8), in: bytes, from: 0) else { return nil }
            // ".*" is greedy: the last "release N" after the prefix that lets the rest match.
            let release = Array("release ".utf8)
            var candidates: [Int] = []
            var from = p + prefix.utf8.count
            while let at = Self.find(release, in: bytes, from: from) {
                candidates.append(at)
                from = at + 1
            }
            for at in candidates.reversed() {
                guard let major = Self.number(bytes, at + release.count) else { continue }
                switch self {
                case .major: return (major.value, 0)
                case .majorMinor:
                    guard major.end < bytes.count, bytes[major.end] == 0x2E, let minor = Self.number(bytes, major.end + 1) else { continue }
                    return (major.value, minor.value)
                default:
                    let update = Array("Update ".utf8)
                    var last: Int?
                    var search = major.end
                    while let u = Self.find(update, in: bytes, from: search) {
                        if let n = Self.number(bytes, u + update.count) { last = n.value }
                        search = u + 1
                    }
                    if let last { return (major.value, last) }
                }
            }
            return nil
        }
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, start >= 0, bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for i in start ... bytes.count - needle.count where bytes[i ..< i + needle.count].elementsEqual(needle) { return i }
        return nil
    }

    /// The decimal number at `start` ("\d+"), at most 9 digits.
    static func number(_ bytes: [UInt8], _ start: Int) -> (value: Int, end: Int)? {
        var end = start, value = 0
        while end < bytes.count, (0x30 ... 0x39).contains(bytes[end]), end - start < 9 {
            value = value * 10 + Int(bytes[end] - 0x30)
            end += 1
        }
        return end > start ? (value, end) : nil
    }
}
