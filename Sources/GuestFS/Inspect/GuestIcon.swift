import GuestFSBlock
import GuestFSFilesystem
import GuestFS

/// The guest's icon as virt-inspector finds it (libguestfs lib/inspect-icon.c,
/// `guestfs_inspect_get_icon` with favicon 0, as virt-inspector asks): a PNG the distribution
/// ships at a known path, checked to be a PNG of 16 to 1024 pixels a side and no larger than
/// that distribution's limit (4 bytes a pixel when it has none).
///
/// Windows guests have no icon here: libguestfs extracts a bitmap resource from explorer.exe
/// with wrestool and converts it with netpbm, and imagemount starts no such programs (nor
/// would its own conversion give their bytes).
public enum GuestIcon {
    /// One candidate file, with the size cap inspect-icon.c passes to `get_png` (0: 4 × w × h).
    struct Candidate {
        let path: String
        let maxSize: Int
    }

    /// The candidates for an OS, in inspect-icon.c's order (`icon_fedora`, `icon_rhel`, …).
    static func candidates(for os: OperatingSystem) -> [Candidate] {
        guard os.type == "linux" || os.type == "hurd" else { return [] }
        switch os.distro ?? "" {
        case "fedora":
            return [Candidate(path: "/usr/share/icons/hicolor/96x96/apps/fedora-logo-icon.png", maxSize: 0)]
        case "rhel", "redhat-based", "centos", "scientificlinux", "oraclelinux":
            // RHEL 7 and later ship no shadowman; the clones keep the same names for their logos.
            let path = os.majorVersion < 7 ? "/usr/share/pixmaps/redhat/shadowman-transparent.png"
                                            : "/usr/share/pixmaps/fedora-logo-sprite.png"
            return [Candidate(path: path, maxSize: 102_400)]
        case "debian":
            return [Candidate(path: "/usr/share/pixmaps/debian-logo.png", maxSize: 2048)]
        case "ubuntu":
            return [Candidate(path: "/usr/share/icons/gnome/24x24/places/ubuntu-logo.png", maxSize: 2048),
                    Candidate(path: "/usr/share/help/C/ubuntu-help/figures/ubuntu-logo.png", maxSize: 2048)]
        case "mageia":
            return [Candidate(path: "/usr/share/icons/mageia.png", maxSize: 2048)]
        case "suse-based", "opensuse", "sles":
            return [Candidate(path: "/usr/share/icons/hicolor/24x24/apps/distributor.png", maxSize: 2048)]
        case "voidlinux":
            return [Candidate(path: "/usr/share/void-artwork/void-logo.png", maxSize: 20_480)]
        case "altlinux":
            return [Candidate(path: "/usr/share/icons/hicolor/48x48/apps/altlinux.png", maxSize: 20_480)]
        default:
            return []
        }
    }

    /// The icon's bytes, or nil when the guest has none that passes the checks (not an error,
    /// as in libguestfs: a missing, broken or oversized file just means no icon).
    public static func find(for os: OperatingSystem, in guest: Guest) -> [UInt8]? {
        let wanted = candidates(for: os)
        guard !wanted.isEmpty,
              let tree = try? MountTree(entries: Inspector.mountEntries(for: os, in: guest), writable: false) else { return nil }
        for candidate in wanted {
            if let png = read(candidate, in: tree) { return png }
        }
        return nil
    }

    /// `get_png`: a regular file once symlinks are followed (RHEL 7's logos are links), whose
    /// PNG header gives a size in range, read whole if it is within the cap.
    static func read(_ candidate: Candidate, in tree: MountTree) -> [UInt8]? {
        guard let node = try? tree.resolve(candidate.path), let attributes = try? tree.attributes(node), attributes.isRegular,
              let file = try? tree.filesystem(of: node).openFile(node.inode) else { return nil }
        var header = [UInt8](repeating: 0, count: 24)
        guard file.size >= 24, (try? header.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }) == 24,
              let (width, height) = pngSize(header), (16...1024).contains(width), (16...1024).contains(height) else { return nil }
        let cap = candidate.maxSize > 0 ? candidate.maxSize : 4 * width * height
        guard file.size <= UInt64(cap) else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        var done = 0
        while done < bytes.count {
            guard let n = try? bytes.withUnsafeMutableBytes({ try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]), at: UInt64(done)) }),
                  n > 0 else { return nil }
            done += n
        }
        return bytes
    }

    /// Width and height from a PNG's signature and IHDR chunk (PNG spec, 5.2 and 11.2.2): what
    /// file(1)'s "PNG image data, W x H" reports.
    static func pngSize(_ header: [UInt8]) -> (Int, Int)? {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard header.count >= 24, Array(header[0..<8]) == signature, Array(header[12..<16]) == Array("IHDR".utf8) else { return nil }
        func be32(_ at: Int) -> Int { header[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return (be32(16), be32(20))
    }

    /// Base64 as libxml2's xmlTextWriterWriteBase64 writes it into virt-inspector's `<icon>`:
    /// 72 characters a line, the lines joined by CRLF, no line break at the end.
    public static func base64(_ bytes: [UInt8], lineLength: Int? = 72) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 4 / 3 + bytes.count / 27 + 8)
        var line = 0
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = bytes[i], b1 = n > 1 ? bytes[i + 1] : 0, b2 = n > 2 ? bytes[i + 2] : 0
            if let lineLength, line >= lineLength {
                out += [0x0D, 0x0A]
                line = 0
            }
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(n > 1 ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : 0x3D)
            out.append(n > 2 ? alphabet[Int(b2 & 0x3F)] : 0x3D)
            line += 4
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
