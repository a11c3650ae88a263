import Foundation
import Testing
import TestSupport

/// `imagemount inspect`, `-i`, and automatic inspection in the helpers.
@Suite struct InspectCommandTests {
    @Test func xmlAndJsonReportTheGuest() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        let xml = try ImageMountBinary.run(["inspect", "-a", g.image])
        #expect(xml.status == 0, "\(xml.stderr)")
        for line in ["<root>/dev/sda1</root>", "<distro>fedora</distro>", "<hostname>gpt-guest</hostname>",
                     "<arch>x86_64</arch>", "<major_version>39</major_version>",
                     "<mountpoint dev=\"/dev/sda2\">/boot</mountpoint>", "<uuid>\(g.bootUUID)</uuid>", "<label>DATA</label>"] {
            #expect(xml.text.contains(line), "\(line) missing")
        }
        // xmllint-free well-formedness check: python's parser.
        let parsed = try Shell.run("python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())'",
                                   stdin: xml.stdout)
        #expect(parsed.status == 0, "\(parsed.stderr)")
        let json = try ImageMountBinary.run(["inspect", "--json", "-a", g.image])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let os = (object?["operatingsystems"] as? [[String: Any]])?.first
        #expect(os?["hostname"] as? String == "gpt-guest")
        #expect((os?["mountpoints"] as? [[String: Any]])?.count == 3)
    }

    @Test func catInspectsWithoutMountOptions() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        for args in [["cat", "-a", g.image], ["cat", "-i", "-a", g.image]] {
            let result = try ImageMountBinary.run(args + ["/etc/hostname", "/boot/vmlinuz", "/data/payload"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.text == "gpt-guest\nkernel\ndata partition\n")
        }
        let mbr = try GuestFixtures.mbrWithLogicalRoot()
        // /bin is a symlink to usr/bin, so /bin/.. is /usr (as POSIX resolves it).
        let result = try ImageMountBinary.run(["cat", "-a", mbr.image, "/etc/hostname", "/boot/grub.cfg", "/bin/../../etc/hostname"])
        #expect(result.text == "mbr-guest\nmenuentry\nmbr-guest\n", "\(result.stderr)")
    }

    @Test func twoRootsNeedRoot() throws {
        let images = try GuestFixtures.twoRoots()
        let drives = images.flatMap { ["-a", $0] }
        let ambiguous = try ImageMountBinary.run(["cat"] + drives + ["/etc/hostname"])
        #expect(ambiguous.status == 1)
        #expect(ambiguous.stderr.contains("/dev/sda") && ambiguous.stderr.contains("/dev/sdb") && ambiguous.stderr.contains("--root"),
                "\(ambiguous.stderr)")
        let second = try ImageMountBinary.run(["cat", "-i", "--root", "/dev/sdb"] + drives + ["/etc/hostname"])
        #expect(second.status == 0 && second.text == "second-os\n", "\(second.stderr)")
        let inspect = try ImageMountBinary.run(["inspect"] + drives)
        #expect(inspect.text.components(separatedBy: "<operatingsystem>").count == 3)
    }

    @Test func inspectorWithoutAnOSFailsClearly() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let result = try ImageMountBinary.run(["cat", "-i", "-a", image, "/etc/hostname"])
        #expect(result.status == 1 && result.stderr.contains("no operating system"), "\(result.stderr)")
        // Without -i a lone filesystem is still used.
        #expect(try ImageMountBinary.run(["cat", "-a", image, "/etc/hostname"]).status == 0)
    }
}

/// Inspection on the CentOS layout: /boot on sda1, root on the LVM volume centos/root.
@Suite struct InspectLVMTests {
    @Test func centosRootOnLVM() throws {
        let c = try LVMFixtures.centos()
        let drives = c.disks.flatMap { ["-a", $0] }
        let xml = try ImageMountBinary.run(["inspect"] + drives)
        #expect(xml.status == 0, "\(xml.stderr)")
        for line in ["<root>/dev/centos/root</root>", "<distro>centos</distro>", "<major_version>7</major_version>",
                     "<hostname>centos-root</hostname>", "<package_management>yum</package_management>",
                     "<mountpoint dev=\"/dev/centos/root\">/</mountpoint>", "<mountpoint dev=\"/dev/sda1\">/boot</mountpoint>"] {
            #expect(xml.text.contains(line), "\(line) missing from\n\(xml.text)")
        }
        let cat = try ImageMountBinary.run(["cat", "-i"] + drives + ["/etc/hostname", "/boot/etc/hostname"])
        #expect(cat.text == "centos-root\ncentos-boot\n", "\(cat.stderr)")
        #expect(!cat.stderr.contains("centos-swap"), "swap entries are skipped silently, as libguestfs does: \(cat.stderr)")
    }

    @Test func mountWithInspectionShowsTheGuestTree() throws {
        let c = try LVMFixtures.centos()
        let m = try FuseMount(images: c.disks, arguments: ["-i"])
        defer { m.close() }
        #expect(try Shell.check("cat \(Shell.quote(m.path))/etc/hostname \(Shell.quote(m.path))/boot/etc/hostname") == "centos-root\ncentos-boot\n")
        #expect(try Shell.check("cat \(Shell.quote(m.path))/etc/os-release").contains("CentOS Linux 7"))
    }
}

/// A whole-disk ext4 guest whose root tree has the given files (paths relative to the root,
/// written after `GuestFixtures.rootTree`; a nil content removes the file).
enum ReleaseGuests {
    static func image(_ name: String, osRelease: String?, files: [String: String?] = [:]) throws -> String {
        let dir = Fixtures.scratch.file("release-" + name)
        let image = dir + ".img"
        let root = try GuestFixtures.rootTree(dir, hostname: name, osRelease: osRelease ?? "", fstab: "/dev/sda / ext4 defaults 0 1\n")
        if osRelease == nil { try FileManager.default.removeItem(atPath: root + "/etc/os-release") }
        for (path, content) in files {
            let full = root + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if let content { try Data(content.utf8).write(to: URL(fileURLWithPath: full)) } else { try? FileManager.default.removeItem(atPath: full) }
        }
        try Shell.check("rm -f \(Shell.quote(image)) && truncate -s 24M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(image))")
        return image
    }
}

/// product_name, major_version and minor_version as libguestfs derives them (daemon/
/// inspect_fs_unix.ml): os-release's PRETTY_NAME and VERSION_ID, unless the file lacks one of
/// ID, PRETTY_NAME or a version, or is Debian's or CentOS's major-only VERSION_ID, in which
/// case the next release file decides (Debian's /etc/debian_version, CentOS's
/// /etc/centos-release ...). The expected values follow those rules by hand: no libguestfs
/// runs in the tests (DESIGN.md §7).
@Suite struct InspectReleaseTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let osRelease: String?
        let files: [String: String?]
        let distro: String, product: String, major: Int, minor: Int
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "debian12", osRelease: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n",
             files: ["etc/debian_version": "12.5\n"], distro: "debian", product: "12.5", major: 12, minor: 5),
        Case(name: "ubuntu2204", osRelease: "PRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\n",
             files: ["etc/debian_version": "bookworm/sid\n",
                     "etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.3 LTS\"\n"],
             distro: "ubuntu", product: "Ubuntu 22.04.3 LTS", major: 22, minor: 4),
        Case(name: "fedora39", osRelease: "NAME=\"Fedora Linux\"\nVERSION=\"39 (Server Edition)\"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39 (Server Edition)\"\n",
             files: ["etc/redhat-release": "Fedora release 39 (Thirty Nine)\n"], distro: "fedora", product: "Fedora Linux 39 (Server Edition)", major: 39, minor: 0),
        Case(name: "rhel92", osRelease: "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"9.2 (Plow)\"\nID=\"rhel\"\nVERSION_ID=\"9.2\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.2 (Plow)\"\n",
             files: ["etc/redhat-release": "Red Hat Enterprise Linux release 9.2 (Plow)\n"], distro: "rhel", product: "Red Hat Enterprise Linux 9.2 (Plow)", major: 9, minor: 2),
        Case(name: "alpine3184", osRelease: "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME=\"Alpine Linux v3.18\"\n",
             files: ["etc/alpine-release": "3.18.4\n"], distro: "alpinelinux", product: "Alpine Linux v3.18", major: 3, minor: 18),
        // No VERSION_ID: os-release gives up; debian_version names the product, and has no number.
        Case(name: "debian-sid", osRelease: "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
             files: ["etc/debian_version": "trixie/sid\n"], distro: "debian", product: "trixie/sid", major: 0, minor: 0),
        // No VERSION_ID and a rolling release: /etc/arch-release only sets the distro.
        Case(name: "arch", osRelease: "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n",
             files: ["etc/arch-release": ""], distro: "archlinux", product: "Arch Linux", major: 0, minor: 0),
        Case(name: "centos7", osRelease: "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
             files: ["etc/centos-release": "CentOS Linux release 7.9.2009 (Core)\n"], distro: "centos", product: "CentOS Linux release 7.9.2009 (Core)", major: 7, minor: 9),
        // Before os-release: the first line of /etc/redhat-release and its numbers.
        Case(name: "rhel6", osRelease: nil, files: ["etc/redhat-release": "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"],
             distro: "rhel", product: "Red Hat Enterprise Linux Server release 6.10 (Santiago)", major: 6, minor: 10),
        Case(name: "fedora20", osRelease: nil, files: ["etc/redhat-release": "Fedora release 20 (Heisenbug)\n"],
             distro: "fedora", product: "Fedora release 20 (Heisenbug)", major: 20, minor: 0),
    ]

    @Test(arguments: cases)
    func productNameAndVersionFollowLibguestfs(_ c: Case) throws {
        let image = try ReleaseGuests.image(c.name, osRelease: c.osRelease, files: c.files)
        func query(_ xpath: String) throws -> String {
            try ImageMountBinary.check(["inspect", "--no-applications", "-a", image, "--xpath", xpath])
        }
        #expect(try query("string(//distro)") == c.distro + "\n")
        #expect(try query("string(//product_name)") == c.product + "\n")
        #expect(try query("string(//major_version)") == "\(c.major)\n")
        #expect(try query("string(//minor_version)") == "\(c.minor)\n")
    }
}

extension InspectCommandTests {
    /// virt-inspector --xpath: node sets print as XML, one node after another, re-indented;
    /// strings print with a newline; numbers and booleans as XPath casts them.
    @Test func xpathQueriesTheXML() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        func run(_ query: String) throws -> Shell.Output {
            try ImageMountBinary.run(["inspect", "-a", g.image, "--xpath", query])
        }
        #expect(try run("//hostname").text == "<hostname>gpt-guest</hostname>\n")
        #expect(try run("//operatingsystem/hostname/text()").text == "gpt-guest\n")
        #expect(try run("string(//distro)").text == "fedora\n")
        #expect(try run("count(//filesystem)").text == "3\n")
        #expect(try run("count(//filesystem) > 2").text == "true\n")
        #expect(try run("//nothing").text == "")
        #expect(try run("//mountpoints").text == """
            <mountpoints>
              <mountpoint dev="/dev/sda1">/</mountpoint>
              <mountpoint dev="/dev/sda2">/boot</mountpoint>
              <mountpoint dev="/dev/sda3">/data</mountpoint>
            </mountpoints>

            """)
        // Each node of a set is printed on its own; the values match the full document's.
        let full = try ImageMountBinary.check(["inspect", "-a", g.image])
        #expect(full.contains("    <applications/>\n"), "an RPM guest without an rpmdb: the list is empty, and no warning")
        let labels = try run("//filesystem/label").text
        #expect(labels == "<label>DATA</label>\n" && full.contains("        <label>DATA</label>\n"))
        let bad = try run("//[")
        #expect(bad.status == 1 && bad.stdout.isEmpty && bad.stderr.contains("unable to evaluate XPath expression"), "\(bad.stderr)")
        let json = try ImageMountBinary.run(["inspect", "-a", g.image, "--json", "--xpath", "//hostname"])
        #expect(json.status != 0 && json.stderr.contains("--json"), "\(json.stderr)")
    }

    /// The host's own dpkg database in a guest: the applications are the packages dpkg-query
    /// reads from it (those whose Status says installed), sorted by name, with epoch, version
    /// and release split as libguestfs splits them; --no-applications leaves the list out.
    @Test func applicationsFromDpkgAsDpkgQueryReadsThem() throws {
        let extra = """
            Package: zz-epoch
            Status: install ok installed
            Architecture: all
            Source: zz-src (1.0)
            Version: 2:1.0-3ubuntu1
            Description: summary line
             first
             .
             second
            Homepage: https://example.org/zz

            Package: zz-removed
            Status: deinstall ok config-files
            Architecture: all
            Version: 1.0


            """
        let status = extra + (try String(contentsOfFile: "/var/lib/dpkg/status", encoding: .utf8))
        let image = try ReleaseGuests.image("dpkg-guest", osRelease: "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                                            files: ["var/lib/dpkg/status": status])
        let admin = Fixtures.scratch.file("release-dpkg-guest/var/lib/dpkg")
        let query = try Shell.check("dpkg-query --admindir=\(Shell.quote(admin)) -W -f '${Status}\\t${Package}\\t${Version}\\t${Architecture}\\n' 2>/dev/null")
        let expected = query.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
            .filter { $0[0].contains("installed") }.map { "\($0[1]) \($0[2]) \($0[3])" }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        try #require(expected.count > 50, "the host's status lists its packages")

        let json = try ImageMountBinary.run(["inspect", "--json", "-a", image])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let apps = try #require(((object?["operatingsystems"] as? [[String: Any]])?.first?["applications"]) as? [[String: Any]])
        let ours = apps.map { app -> String in
            let epoch = app["epoch"] as? Int ?? 0, release = app["release"] as? String ?? ""
            let version = (epoch != 0 ? "\(epoch):" : "") + (app["version"] as? String ?? "") + (release.isEmpty ? "" : "-" + release)
            return "\(app["name"] as? String ?? "") \(version) \(app["arch"] as? String ?? "")"
        }
        #expect(ours.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } == expected)
        #expect(apps.map { $0["name"] as? String ?? "" } == apps.map { $0["name"] as? String ?? "" }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        let zz = try #require(apps.first { $0["name"] as? String == "zz-epoch" })
        #expect(zz["epoch"] as? Int == 2 && zz["version"] as? String == "1.0" && zz["release"] as? String == "3ubuntu1")
        #expect(zz["source_package"] as? String == "zz-src" && zz["summary"] as? String == "summary line")
        #expect(zz["description"] as? String == "first\n.\nsecond" && zz["url"] as? String == "https://example.org/zz")

        let xml = try ImageMountBinary.check(["inspect", "-a", image])
        #expect(xml.contains("<applications>") && xml.contains("        <epoch>2</epoch>\n"))
        let without = try ImageMountBinary.check(["inspect", "--no-applications", "-a", image])
        #expect(!without.contains("<application"), "--no-applications")
        #expect(without == xml.replacingOccurrences(of: #"(?s)    <applications>.*</applications>\n"#, with: "", options: .regularExpression))
        // This guest ships no logo, so --no-icon changes nothing.
        #expect(try ImageMountBinary.check(["inspect", "--no-icon", "-a", image]) == xml)
    }

    /// Alpine's /lib/apk/db/installed: P name, V version with "-rN" release, A arch, T, U.
    @Test func applicationsFromApk() throws {
        let installed = """
            C:Q1abc=
            P:musl
            V:1.2.4-r2
            A:x86_64
            T:the musl c library (libc) implementation
            U:https://musl.libc.org/

            P:busybox
            V:1.36.1-r5
            A:x86_64
            T:Size optimized toolbox of many common UNIX utilities
            U:https://busybox.net/


            """
        let image = try ReleaseGuests.image("apk-guest", osRelease: "ID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME=\"Alpine Linux v3.18\"\n",
                                            files: ["lib/apk/db/installed": installed])
        let names = try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "//application/name/text()"])
        #expect(names == "busybox\nmusl\n")
        let musl = try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "//application[name='musl']"])
        #expect(musl == """
            <application>
              <name>musl</name>
              <version>1.2.4</version>
              <release>2</release>
              <arch>x86_64</arch>
              <url>https://musl.libc.org/</url>
              <description>the musl c library (libc) implementation</description>
            </application>

            """)
    }
}

extension InspectCommandTests {
    /// Arch's /var/lib/pacman/local/NAME-VERSION/desc files: %NAME%, %VERSION% (epoch:ver-rel),
    /// %ARCH%, %URL%, %DESC%; a package without a release or a name is skipped.
    @Test func applicationsFromPacman() throws {
        func desc(_ fields: [(String, String)]) -> String {
            fields.map { "%\($0.0)%\n\($0.1)\n" }.joined(separator: "\n") + "\n"
        }
        let image = try ReleaseGuests.image("pacman-guest", osRelease: "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\n", files: [
            "etc/arch-release": "",
            "var/lib/pacman/local/bash-5.2.015-1/desc": desc([("NAME", "bash"), ("VERSION", "5.2.015-1"), ("DESC", "The GNU Bourne Again shell"),
                                                              ("URL", "https://www.gnu.org/software/bash/bash.html"), ("ARCH", "x86_64")]),
            "var/lib/pacman/local/gnupg-2.4.3-2/desc": desc([("NAME", "gnupg"), ("VERSION", "1:2.4.3-2"), ("ARCH", "x86_64")]),
            "var/lib/pacman/local/broken-1.0/desc": desc([("NAME", "broken"), ("VERSION", "1.0"), ("ARCH", "any")]),
            "var/lib/pacman/local/ALPM_DB_VERSION": "9\n",
        ])
        #expect(try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "string(//package_format)"]) == "pacman\n")
        #expect(try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "//application/name/text()"]) == "bash\ngnupg\n")
        #expect(try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "//application[name='gnupg']"]) == """
            <application>
              <name>gnupg</name>
              <epoch>1</epoch>
              <version>2.4.3</version>
              <release>2</release>
              <arch>x86_64</arch>
            </application>

            """)
        #expect(try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "string(//application[name='bash']/description)"])
                == "The GNU Bourne Again shell\n")
    }
}
