import Foundation
import Testing
import TestSupport

/// The applications of RPM guests: a real rpmdb, made by the host's rpm (`rpm --initdb` and
/// `rpm -i --justdb` of packages built here with rpmbuild), in an ext4 Fedora root; inspect
/// must list what `rpm -qa --dbpath` lists from the same directory. The SQLite backend (the
/// default of Debian 12's rpm 4.18, and of RHEL 9 and Fedora), and Berkeley DB through librpm's
/// read-only bdb_ro backend (RHEL 7/8), whose Packages file is made with db5.3_load from the
/// same headers.
@Suite(.serialized) struct InspectRPMTests {
    /// rpm's own rendering of the fields inspect reports, one package a line, sorted.
    static let queryFormat = "%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH}\\n"

    /// Three packages: an epoch, an arch, and one without URL (headerFormat gives "(none)").
    static let specs: [(name: String, text: String)] = [
        ("alpha", """
            Name: alpha
            Version: 1.0
            Release: 1
            Summary: the first letter
            License: MIT
            URL: https://example.org/alpha
            BuildArch: noarch
            %description
            Alpha, the first package.
            Second line.
            %files
            """),
        ("beta", """
            Name: beta
            Epoch: 3
            Version: 2.5.1
            Release: 7.fc39
            Summary: the second letter
            License: MIT
            URL: https://example.org/beta
            BuildArch: x86_64
            %description
            Beta.
            %files
            """),
        ("gamma-tools", """
            Name: gamma-tools
            Version: 0.9~rc1
            Release: 0.2
            Summary: no URL here
            License: GPL-2.0-or-later
            BuildArch: noarch
            %description
            Gamma.
            %files
            """),
    ]

    /// The .rpm files, built once.
    static let packages: Result<[String], any Error> = Result {
        let top = Fixtures.scratch.file("rpmbuild")
        try FileManager.default.createDirectory(atPath: top + "/SPECS", withIntermediateDirectories: true)
        for spec in specs {
            try Data((spec.text + "\n").utf8).write(to: URL(fileURLWithPath: "\(top)/SPECS/\(spec.name).spec"))
        }
        let q = Shell.quote(top)
        try Shell.check("cd \(q) && for s in SPECS/*.spec; do rpmbuild --quiet --define '_topdir \(top)' -bb \"$s\" >/dev/null 2>&1 || exit 1; done")
        return try Shell.check("ls \(q)/RPMS/*/*.rpm").split(separator: "\n").map(String.init)
    }

    /// A SQLite rpmdb with the packages installed into it (`--justdb`: headers only).
    static func sqliteDatabase(_ dir: String) throws -> String {
        let packages = try Self.packages.get()
        let q = Shell.quote(dir)
        try Shell.check("rm -rf \(q) && mkdir -p \(q) && rpm --initdb --dbpath \(q) && "
                        + "rpm -i --justdb --nodeps --noscripts --nosignature --force-debian --dbpath \(q) \(packages.map(Shell.quote).joined(separator: " ")) 2>&1")
        return dir
    }

    /// A Berkeley DB (hash) Packages file with the same headers, keyed by header number as
    /// rpm's bdb backend stored them (a 32-bit integer in host order, rpm's lib/backend/db3.c).
    static func bdbDatabase(_ dir: String, from sqlite: String, pageSize: Int? = nil) throws -> String {
        let rows = try Shell.check("sqlite3 \(Shell.quote(sqlite + "/rpmdb.sqlite")) 'select hnum, hex(blob) from Packages order by hnum'")
        var dump = ""
        for row in rows.split(separator: "\n") {
            let parts = row.split(separator: "|")
            guard parts.count == 2, let number = UInt32(parts[0]) else { continue }
            let key = withUnsafeBytes(of: number.littleEndian) { $0.map { String(format: "\\%02x", $0) }.joined() }
            var value = ""
            var index = parts[1].startIndex
            while index < parts[1].endIndex {
                let next = parts[1].index(index, offsetBy: 2)
                value += "\\" + parts[1][index..<next].lowercased()
                index = next
            }
            dump += key + "\n" + value + "\n"
        }
        let q = Shell.quote(dir)
        try Shell.check("rm -rf \(q) && mkdir -p \(q)")
        let options = pageSize.map { "-c db_pagesize=\($0) " } ?? ""
        try Shell.check("db5.3_load -T -t hash \(options)\(Shell.quote(dir + "/Packages"))", stdin: Data(dump.utf8))
        return dir
    }

    /// What rpm itself lists from `dbpath`.
    static func rpmQuery(_ dbpath: String, backend: String = "sqlite") throws -> [String] {
        try Shell.check("rpm -qa --dbpath \(Shell.quote(dbpath)) --define '_db_backend \(backend)' --qf '\(queryFormat)'")
            .split(separator: "\n").map(String.init).sorted()
    }

    /// A Fedora root with `database` (a directory) copied to `at` (relative), on ext4.
    static func guest(_ name: String, database: String, at: String, symlink: (String, String)? = nil) throws -> String {
        let dir = Fixtures.scratch.file("rpm-guest-" + name)
        let image = dir + ".img"
        try Shell.check("rm -rf \(Shell.quote(dir))")
        let root = try GuestFixtures.rootTree(dir, hostname: name, osRelease: "NAME=Fedora\nID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39\"\n",
                                              fstab: "/dev/sda / ext4 defaults 0 1\n")
        try Data("Fedora release 39 (Thirty Nine)\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/redhat-release"))
        let target = root + "/" + at
        try Shell.check("mkdir -p \(Shell.quote(target)) && cp -a \(Shell.quote(database))/. \(Shell.quote(target))/")
        if let (link, destination) = symlink {
            try Shell.check("mkdir -p \(Shell.quote((root + "/" + link as NSString).deletingLastPathComponent)) && ln -s \(Shell.quote(destination)) \(Shell.quote(root + "/" + link))")
        }
        try Shell.check("rm -f \(Shell.quote(image)) && truncate -s 32M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(image))")
        return image
    }

    /// inspect's applications as the query format prints them, in inspect's order, and the
    /// whole run; TMPDIR is a fresh directory, which must be empty again afterwards.
    static func inspect(_ image: String, environment: [String: String] = [:]) throws -> (apps: [String], run: Shell.Output, json: [[String: Any]]) {
        let tmp = try TempDir("imagemount-rpm-tmpdir")
        let run = try ImageMountBinary.run(["inspect", "--json", "-a", image], environment: environment.merging(["TMPDIR": tmp.path]) { $1 })
        let left = try FileManager.default.contentsOfDirectory(atPath: tmp.path)
        #expect(left.isEmpty, "the private rpmdb directory is left behind: \(left)")
        let object = try? JSONSerialization.jsonObject(with: run.stdout) as? [String: Any]
        let apps = ((object?["operatingsystems"] as? [[String: Any]])?.first?["applications"] as? [[String: Any]]) ?? []
        let lines = apps.map { app in
            let epoch = app["epoch"] as? Int ?? 0
            return [app["name"], epoch == 0 ? "(none)" : "\(epoch)", app["version"], app["release"], app["arch"]]
                .map { "\($0 as? String ?? "\($0 ?? "")")" }.joined(separator: " ")
        }
        return (lines, run, apps)
    }

    @Test func sqliteDatabaseListsWhatRpmLists() throws {
        let db = try Self.sqliteDatabase(Fixtures.scratch.file("rpmdb-sqlite"))
        let expected = try Self.rpmQuery(db)
        #expect(expected == ["alpha (none) 1.0 1 noarch", "beta 3 2.5.1 7.fc39 x86_64", "gamma-tools (none) 0.9~rc1 0.2 noarch"])
        let image = try Self.guest("sqlite", database: db, at: "var/lib/rpm")
        let result = try Self.inspect(image)
        #expect(result.run.status == 0 && result.run.stderr.isEmpty, "\(result.run.stderr)")
        #expect(result.apps == expected, "sorted by name, as libguestfs sorts them")
        let alpha = try #require(result.json.first { $0["name"] as? String == "alpha" })
        #expect(alpha["url"] as? String == "https://example.org/alpha" && alpha["summary"] as? String == "the first letter")
        #expect(alpha["description"] as? String == "Alpha, the first package.\nSecond line.")
        let gamma = try #require(result.json.first { $0["name"] as? String == "gamma-tools" })
        #expect(gamma["url"] as? String == "(none)", "headerFormat's rendering of a missing tag, as libguestfs reports it")

        // The XML, as virt-inspector prints an application (the epoch only when not 0).
        let beta = try ImageMountBinary.check(["inspect", "-a", image, "--xpath", "//application[name='beta']"])
        #expect(beta == """
            <application>
              <name>beta</name>
              <epoch>3</epoch>
              <version>2.5.1</version>
              <release>7.fc39</release>
              <arch>x86_64</arch>
              <url>https://example.org/beta</url>
              <summary>the second letter</summary>
              <description>Beta.</description>
            </application>

            """)
        // --no-applications: no list, and librpm is not even loaded.
        let without = try Shell.run("LD_DEBUG=libs \(Shell.quote(try ImageMountBinary.path())) inspect --no-applications -a \(Shell.quote(image)) 2>&1")
        #expect(without.status == 0 && !without.text.contains("<application") && !without.text.contains("librpm"), "\(without.text.suffix(300))")
    }

    /// Fedora ≥ 36: the database lives in /usr/lib/sysimage/rpm, /var/lib/rpm links to it.
    @Test func sysimageDatabaseThroughTheSymlink() throws {
        let db = try Self.sqliteDatabase(Fixtures.scratch.file("rpmdb-sysimage"))
        let expected = try Self.rpmQuery(db)
        let linked = try Self.inspect(try Self.guest("sysimage-link", database: db, at: "usr/lib/sysimage/rpm",
                                                     symlink: ("var/lib/rpm", "../../usr/lib/sysimage/rpm")))
        #expect(linked.run.status == 0 && linked.apps == expected, "\(linked.run.stderr)")
        let only = try Self.inspect(try Self.guest("sysimage-only", database: db, at: "usr/lib/sysimage/rpm"))
        #expect(only.run.status == 0 && only.apps == expected, "\(only.run.stderr)")
    }

    @Test func berkeleyDatabaseThroughBdbRo() throws {
        let sqlite = try Self.sqliteDatabase(Fixtures.scratch.file("rpmdb-for-bdb"))
        let bdb = try Self.bdbDatabase(Fixtures.scratch.file("rpmdb-bdb"), from: sqlite)
        let expected = try Self.rpmQuery(bdb, backend: "bdb_ro")
        let original = try Self.rpmQuery(sqlite)
        #expect(expected == original && expected.count == 3, "rpm reads the Berkeley DB copy as the original")
        let result = try Self.inspect(try Self.guest("bdb", database: bdb, at: "var/lib/rpm"))
        #expect(result.run.status == 0 && result.run.stderr.isEmpty, "\(result.run.stderr)")
        #expect(result.apps == expected)
    }

    /// A damaged database: one warning naming it, no applications, the rest of the report
    /// intact, exit 0; and the private directory is gone all the same.
    @Test(arguments: [
        ("sqlite-truncated", "rpmdb.sqlite", "truncate -s 8192"),
        ("sqlite-garbage", "rpmdb.sqlite", "head -c 65536 /dev/urandom >"),
        ("bdb-garbage", "Packages", "head -c 65536 /dev/urandom >"),
        ("bdb-truncated", "Packages", "truncate -s 4096"),
    ])
    func damagedDatabaseIsAWarning(_ name: String, _ file: String, _ damage: String) throws {
        let sqlite = try Self.sqliteDatabase(Fixtures.scratch.file("rpmdb-damaged-" + name))
        let db = file == "Packages" ? try Self.bdbDatabase(Fixtures.scratch.file("rpmdb-damaged-bdb-" + name), from: sqlite) : sqlite
        try Shell.check("\(damage) \(Shell.quote(db + "/" + file))")
        let result = try Self.inspect(try Self.guest("damaged-" + name, database: db, at: "var/lib/rpm"))
        #expect(result.run.status == 0, "\(result.run.stderr)")
        #expect(result.apps.isEmpty)
        let lines = result.run.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("/var/lib/rpm/\(file)") && lines[0].contains("applications left out"), "\(result.run.stderr)")
        #expect(result.run.text.contains("\"hostname\": \"damaged-\(name)\""), "the rest of the report is there")
    }

    /// A Berkeley DB overflow page (type 7) that holds no bytes and links to itself: bdb_ro
    /// would read it forever. librpm runs in a child process that is killed at the timeout
    /// (IMAGEMOUNT_RPM_TIMEOUT, 2 s here): a warning, and inspect goes on.
    @Test func loopingBerkeleyDatabaseTimesOut() throws {
        let sqlite = try Self.sqliteDatabase(Fixtures.scratch.file("rpmdb-for-loop"))
        // 512-byte pages: every header is longer, so each lives in a chain of overflow pages.
        let bdb = try Self.bdbDatabase(Fixtures.scratch.file("rpmdb-loop"), from: sqlite, pageSize: 512)
        #expect(try Self.rpmQuery(bdb, backend: "bdb_ro").count == 3, "the small-page copy reads as the original")
        let patched = try Shell.check("""
            python3 -c '
            import struct, sys
            path = sys.argv[1]
            data = bytearray(open(path, "rb").read())
            for start in range(512, len(data), 512):
                if data[start + 25] == 7:
                    page = struct.unpack_from("<I", data, start + 8)[0]
                    struct.pack_into("<I", data, start + 16, page)   # next page: itself
                    struct.pack_into("<H", data, start + 22, 0)      # bytes on this page: none
                    open(path, "wb").write(data)
                    print(page)
                    break
            ' \(Shell.quote(bdb + "/Packages"))
            """)
        try #require(!patched.isEmpty, "an overflow page to damage")
        let started = Date()
        let result = try Self.inspect(try Self.guest("bdb-loop", database: bdb, at: "var/lib/rpm"), environment: ["IMAGEMOUNT_RPM_TIMEOUT": "2"])
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(result.run.status == 0 && result.apps.isEmpty)
        #expect(result.run.stderr.contains("librpm did not finish reading it in 2 s") && result.run.stderr.contains("applications left out"), "\(result.run.stderr)")
    }
}
