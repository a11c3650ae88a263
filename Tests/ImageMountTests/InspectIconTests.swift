import Foundation
import Testing
import TestSupport

/// `<icon>` in `inspect`, as virt-inspector finds it (libguestfs lib/inspect-icon.c with favicon
/// off): the distribution's logo at its known path, a PNG of 16–1024 pixels a side within the
/// distribution's size cap, symlinks followed; base64 as libxml2 writes it (CRLF every 72
/// characters). The expected bytes come from the files put in the guest and python's base64.
@Suite struct InspectIconTests {
    /// A guest whose tree gets `pngs` (path → width, height, random pixels or not) and `links`.
    static func guest(_ name: String, osRelease: String, pngs: [String: (Int, Int, Bool)], links: [String: String] = [:]) throws -> (image: String, root: String) {
        let dir = Fixtures.scratch.file("icon-" + name)
        try Shell.check("rm -rf \(Shell.quote(dir))")
        let root = try GuestFixtures.rootTree(dir, hostname: name, osRelease: osRelease, fstab: "/dev/sda / ext4 defaults 0 1\n")
        for (path, (width, height, noisy)) in pngs {
            // A valid PNG (signature, IHDR, one IDAT, IEND), grey or random RGBA.
            try Shell.check("""
                python3 - \(Shell.quote(root + path)) \(width) \(height) \(noisy ? 1 : 0) <<'PY'
                import os, sys, zlib, struct, random
                path, w, h, noisy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
                random.seed(w * h)
                def chunk(kind, data):
                    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
                row = lambda: b"\\0" + (bytes(random.getrandbits(8) for _ in range(4 * w)) if noisy else b"\\x80\\x80\\x80\\xff" * w)
                raw = b"".join(row() for _ in range(h))
                png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "wb").write(png)
                PY
                """)
        }
        for (path, target) in links {
            try Shell.check("mkdir -p \(Shell.quote((root + path as NSString).deletingLastPathComponent)) && ln -s \(Shell.quote(target)) \(Shell.quote(root + path))")
        }
        let image = dir + ".img"
        try Shell.check("rm -f \(Shell.quote(image)) && truncate -s 24M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(image))")
        return (image, root)
    }

    /// libxml2's base64 of a host file: python's, with CRLF after every 72 characters.
    static func libxmlBase64(_ path: String) throws -> String {
        try Shell.check("python3 -c 'import base64,sys; s=base64.b64encode(open(sys.argv[1],\"rb\").read()).decode(); sys.stdout.write(\"\\r\\n\".join(s[i:i+72] for i in range(0,len(s),72)))' \(Shell.quote(path))")
    }

    @Test func debianLogoAsVirtInspectorWritesIt() throws {
        let logo = "/usr/share/pixmaps/debian-logo.png"
        let g = try Self.guest("debian", osRelease: "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                               pngs: [logo: (32, 32, false)])
        let expected = try Self.libxmlBase64(g.root + logo)
        #expect(expected.count > 72 || !expected.isEmpty)
        let xml = try ImageMountBinary.check(["inspect", "--no-applications", "-a", g.image])
        #expect(xml.contains("    <icon>" + expected + "</icon>\n  </operatingsystem>"), "\(xml)")
        let json = try ImageMountBinary.run(["inspect", "--json", "--no-applications", "-a", g.image])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let icon = (object?["operatingsystems"] as? [[String: Any]])?.first?["icon"] as? String
        #expect(icon.flatMap { Data(base64Encoded: $0) } == FileManager.default.contents(atPath: g.root + logo))
        let without = try ImageMountBinary.check(["inspect", "--no-applications", "--no-icon", "-a", g.image])
        #expect(!without.contains("<icon>") && without == xml.replacingOccurrences(of: "    <icon>" + expected + "</icon>\n", with: ""))
    }

    /// RHEL 7 and later (and CentOS): fedora-logo-sprite.png, a symlink on RHEL 7, cap 100 KiB;
    /// the random pixels make a PNG far over Debian's 2 KiB cap but under RHEL's.
    @Test func centosLogoThroughASymlink() throws {
        let target = "/usr/share/icons/hicolor/64x64/apps/centos-logo.png"
        let g = try Self.guest("centos", osRelease: "ID=\"centos\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
                               pngs: [target: (64, 64, true)],
                               links: ["/usr/share/pixmaps/fedora-logo-sprite.png": "../icons/hicolor/64x64/apps/centos-logo.png"])
        let size = try FileManager.default.attributesOfItem(atPath: g.root + target)[.size] as? Int ?? 0
        #expect(size > 2048 && size < 102_400, "\(size)")
        let xml = try ImageMountBinary.check(["inspect", "--no-applications", "-a", g.image])
        #expect(xml.contains("<distro>centos</distro>"), "\(xml)")
        #expect(xml.contains("    <icon>" + (try Self.libxmlBase64(g.root + target)) + "</icon>\n"))
    }

    /// What get_png turns down: over the distribution's cap, under 16 pixels, not a PNG, a
    /// dangling link; and a Windows or unknown distribution looks for nothing.
    @Test func filesThatAreNotIconsGiveNone() throws {
        let logo = "/usr/share/pixmaps/debian-logo.png"
        let release = "ID=debian\nVERSION_ID=\"12\"\n"
        for (name, pngs, links) in [
            ("debian-big", [logo: (64, 64, true)], [String: String]()),
            ("debian-tiny", [logo: (8, 8, false)], [:]),
            ("debian-wide", [logo: (2000, 16, false)], [:]),
            ("debian-dangling", [:], [logo: "nowhere.png"]),
        ] as [(String, [String: (Int, Int, Bool)], [String: String])] {
            let g = try Self.guest(name, osRelease: release, pngs: pngs, links: links)
            let xml = try ImageMountBinary.check(["inspect", "--no-applications", "-a", g.image])
            #expect(xml.contains("<distro>debian</distro>") && !xml.contains("<icon>"), "\(name): \(xml)")
        }
        let text = try Self.guest("debian-text", osRelease: release, pngs: [:])
        try Shell.check("mkdir -p \(Shell.quote(text.root))/usr/share/pixmaps && echo 'not a png' > \(Shell.quote(text.root + logo))")
        try Shell.check("mke2fs -q -F -t ext4 -d \(Shell.quote(text.root)) \(Shell.quote(text.image))")
        #expect(!(try ImageMountBinary.check(["inspect", "--no-applications", "-a", text.image])).contains("<icon>"))
        let other = try Self.guest("arch", osRelease: "ID=arch\n", pngs: [logo: (32, 32, false)])
        #expect(!(try ImageMountBinary.check(["inspect", "--no-applications", "-a", other.image])).contains("<icon>"))
    }
}
