import Foundation
import Testing
import TestSupport

/// `imagemount ls` against the tree the image was built from and the kernel's own mount of it.
@Suite("ls command")
struct LsCommandTests {
    typealias Images = CLITestImages

    /// Runs with UTC and the C locale, so times read the same as the oracles'.
    static let environment = ["TZ": "UTC", "LC_ALL": "C"]

    /// Names in a host directory, bytewise sorted; mke2fs adds lost+found at the root.
    func sourceNames(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    @Test("plain ls: the names in the directory, sorted, without . and ..")
    func names() throws {
        let image = try Images.wholeDisk.get(), src = try Images.sourceTree.get()
        let root = try ImageMountBinary.check(["ls", "-a", image, "/"])
        let expected = (try sourceNames(src) + ["lost+found"]).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        #expect(Images.lines(root) == expected)
        #expect(Images.lines(try ImageMountBinary.check(["ls", "-a", image, "/etc"])) == (try sourceNames(src + "/etc")))
        // A symlink to a directory is followed inside the guest.
        #expect(Images.lines(try ImageMountBinary.check(["ls", "-a", image, "/link-rel"])) == ["file"])
    }

    @Test("-R: every path below the directory, relative to it, as find lists the source tree")
    func recursive() throws {
        let image = try Images.wholeDisk.get(), src = try Images.sourceTree.get()
        let found = try Shell.check("cd \(Shell.quote(src)) && find . -mindepth 1 | sed 's|^\\./||'")
        let expected = (Images.lines(found) + ["lost+found"]).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        #expect(Images.lines(try ImageMountBinary.check(["ls", "-a", image, "-R", "/"])) == expected)
        #expect(Images.lines(try ImageMountBinary.check(["ls", "-a", image, "-R", "/etc/"])) == ["hosts", "services", "sub", "sub/file"])
    }

    @Test("-lR --csv --uids --time-t: type, mode, size, owner, mtime and link targets match stat of the source")
    func longRecursiveCSV() throws {
        let image = try Images.wholeDisk.get(), src = try Images.sourceTree.get()
        let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "--csv", "--uids", "--time-t", "/"], environment: Self.environment)
        // One record per path: the root, every source path, lost+found.
        let records = try Self.parseCSV(out)
        #expect(records.count == Images.lines(try Shell.check("cd \(Shell.quote(src)) && find . -mindepth 1")).count + 2)
        #expect(records.first?[0] == "d" && records.first?[8] == "/")
        var checked = 0
        for r in records where r[8] != "/" && !r[8].hasPrefix("/lost+found") {
            let host = src + r[8]
            // %F type, %a octal mode, %s size, %u %g owner, %Y mtime (of the link itself for symlinks).
            let s = Images.columns(try Shell.check("stat -c '%f %a %s %u %g %Y' \(Shell.quote(host))"))
            let rawMode = UInt32(s[0], radix: 16)!
            let letters: [UInt32: String] = [0o100000: "-", 0o040000: "d", 0o120000: "l", 0o020000: "c", 0o060000: "b", 0o010000: "p"]
            #expect(r[0] == letters[rawMode & 0o170000], "type of \(r[8])")
            #expect(UInt32(r[1], radix: 8) == rawMode & 0o7777, "mode of \(r[8])")
            if r[0] != "d" { #expect(r[2] == s[2], "size of \(r[8])") }
            #expect(r[3].trimmingCharacters(in: .whitespaces) == s[3] && r[4].trimmingCharacters(in: .whitespaces) == s[4], "owner of \(r[8])")
            #expect(r[6].trimmingCharacters(in: .whitespaces) == s[5], "mtime of \(r[8])")
            if r[0] == "l" {
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: host)
                #expect(r.count == 10 && r[9] == target, "target of \(r[8])")
            } else {
                #expect(r.count == 9)
            }
            checked += 1
        }
        #expect(checked > 20)
    }

    @Test("-lR --csv quotes only fields with space, quote, comma or newline; numbers keep their printf padding")
    func csvQuoting() throws {
        let image = try Images.wholeDisk.get()
        let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "--csv", "--uids", "/dir with space"])
        #expect(out == """
            d,0755,1024,   0,   0,"/dir with space"
            -,0644,0,   0,   0,"/dir with space/q""uote,comma"

            """)
    }

    @Test("-lR text: fields space-separated, size right-aligned in 10, symlinks as '-> target'")
    func longRecursiveText() throws {
        let image = try Images.wholeDisk.get()
        let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "--times", "/link-abs"], environment: Self.environment)
        #expect(out == "l 0777         10 2010-06-07 08:09:10 2010-06-07 08:09:10 " + Self.ctimeOfLink(out) + " /link-abs -> /etc/hosts\n")
    }

    static func ctimeOfLink(_ out: String) -> String {
        // The change time is when mke2fs ran; take it from the output and check its shape only.
        let c = Images.columns(out)
        return c.count > 8 ? c[7] + " " + c[8] : "?"
    }

    @Test("-h sizes follow gnulib human_readable: round half to even, one decimal below 10")
    func humanSizes() throws {
        let image = try Images.wholeDisk.get()
        let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "-h", "/sizes"])
        var sizes: [String: String] = [:]
        for line in Images.lines(out).dropFirst() {
            let c = Images.columns(line)
            sizes[String(c[3].split(separator: "/").last!)] = c[2]
        }
        #expect(sizes == [
            "s0": "0", "s1023": "1023", "s1024": "1.0K", "s1536": "1.5K", "s1587": "1.5K",
            "s10239": "10K", "s10752": "10K", "s11776": "12K", "s1048575": "1.0M", "s1048576": "1.0M",
            "s1572864": "1.5M",
        ])
    }

    @Test("-l: the same text as GNU ls -la on the kernel's mount of the image")
    func longMatchesKernel() throws {
        let image = try Images.wholeDisk.get()
        for dir in ["/etc", "/a", "/a.b", "/empty", "/etc/sub"] {
            let ours = try ImageMountBinary.check(["ls", "-a", image, "-l", dir], environment: Self.environment)
            let kernel = try Images.withKernelMount(image) { mnt in
                try Shell.check("cd \(Shell.quote(mnt + dir)) && TZ=UTC LC_ALL=C ls -la")
            }
            #expect(ours == kernel, "ls -l \(dir)")
        }
        // The root: compare all but "..", which on the host is the mount point's parent (its link
        // count also widens the kernel's column, so compare fields rather than spacing).
        let ours = try ImageMountBinary.check(["ls", "-a", image, "-l", "/"], environment: Self.environment)
        let kernel = try Images.withKernelMount(image) { mnt in try Shell.check("cd \(Shell.quote(mnt)) && TZ=UTC LC_ALL=C ls -la") }
        let strip = { (s: String) in Images.lines(s).dropFirst().filter { !$0.hasSuffix(" ..") }.map(Images.columns) }
        #expect(strip(ours) == strip(kernel))
        // Device numbers and a lone file, as ls -l shows a file named on its command line.
        #expect(try ImageMountBinary.check(["ls", "-a", image, "-l", "/etc/hosts"], environment: Self.environment)
                == "-rw------- 1 root root 6 Feb  3  2001 /etc/hosts\n")
    }

    @Test("flags that need -lR are refused without it")
    func flagsNeedLR() throws {
        let image = try Images.wholeDisk.get()
        for flag in ["--csv", "-h", "--uids", "--times", "--time-days", "--extra-stats"] {
            let result = try ImageMountBinary.run(["ls", "-a", image, "-l", flag, "/"])
            #expect(result.status != 0, "\(flag)")
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.contains("-lR"))
        }
    }

    @Test("--extra-stats: device of the mount, inode number, links, rdev, 512-byte blocks")
    func extraStats() throws {
        let image = try Images.wholeDisk.get()
        let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "--csv", "--extra-stats", "/etc/sub"])
        let records = try Self.parseCSV(out)
        let ino = try Shell.check("debugfs -R 'stat /etc/sub/file' \(Shell.quote(image)) 2>/dev/null | sed -n 's/^Inode: \\([0-9]*\\).*/\\1/p'")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(records.count == 2)
        #expect(records.last.map { Array($0[3...8]) } == ["8:0", ino, "1", "0:0", "2", "/etc/sub/file"])
        let dev = try Self.parseCSV(ImageMountBinary.check(["ls", "-a", image, "-lR", "--csv", "--extra-stats", "/sda1"]))
        #expect(dev.first?[0] == "b" && dev.first?[6] == "8:1")
    }

    @Test("bad input: missing path, a file where a directory is needed, unknown -m device, missing image")
    func errors() throws {
        let image = try Images.wholeDisk.get()
        let cases: [([String], String)] = [
            (["ls", "-a", image, "/nonexistent"], "/nonexistent"),
            (["ls", "-a", image, "-R", "/etc/hosts"], "not a directory"),
            (["ls", "-a", image, "-lR", "/nope/deeper"], "/nope/deeper"),
            (["ls", "-a", image, "-m", "/dev/sdz1", "/"], "/dev/sdz1"),
            (["ls", "-a", Images.path("missing.img"), "/"], "missing.img"),
        ]
        for (arguments, mention) in cases {
            let result = try ImageMountBinary.run(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stdout.isEmpty, "\(arguments)")
            #expect(Images.lines(result.stderr).count == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("imagemount: ") && result.stderr.contains(mention), "\(arguments): \(result.stderr)")
        }
        // As virt-ls: the good directories are still listed, and the exit status says one failed.
        let mixed = try ImageMountBinary.run(["ls", "-a", image, "/nope", "/etc/sub"])
        #expect(mixed.status != 0)
        #expect(mixed.text == "file\n")
    }

    // NEEDS PARTITIONS: passes once the MBR/GPT reader replaces PartitionTableStub.
    @Test("-m picks a partition; several -m build the guest tree, and -R crosses into the mount")
    func mountOptions() throws {
        let image = try Images.mbrDisk.get()
        #expect(Images.lines(try ImageMountBinary.check(["ls", "-a", image, "-m", "/dev/sda1", "/"])) == ["hosts", "lost+found", "services", "sub"])
        let both = try ImageMountBinary.check(["ls", "-a", image, "-m", "/dev/sda6", "-m", "/dev/sda1:/lost+found", "-R", "/"])
        #expect(Images.lines(both) == ["lost+found", "lost+found/hosts", "lost+found/lost+found", "lost+found/services",
                                       "lost+found/sub", "lost+found/sub/file"])
        let swap = try ImageMountBinary.run(["ls", "-a", image, "-m", "/dev/sda5", "/"])
        #expect(swap.status != 0 && swap.stderr.contains("swap"))
    }

    /// A small CSV reader for the records above (quotes, doubled quotes, commas inside quotes).
    static func parseCSV(_ text: String) throws -> [[String]] {
        var records: [[String]] = [], field = "", record: [String] = [], quoted = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { chars.removeFirst(); field.append("\"") } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" { quoted = true }
            else if c == "," { record.append(field); field = "" }
            else if c == "\n" { record.append(field); records.append(record); record = []; field = "" }
            else { field.append(c) }
        }
        return records
    }
}

/// `ls -lR --checksum[=TYPE]`: the checksum of every regular file, as the host's md5sum,
/// sha*sum and cksum compute it over the source tree.
extension LsCommandTests {
    /// The host tool that computes each type, and how to take its answer from its output.
    static let checksumTools = ["crc": "cksum", "md5": "md5sum", "sha1": "sha1sum", "sha224": "sha224sum",
                                "sha256": "sha256sum", "sha384": "sha384sum", "sha512": "sha512sum"]

    @Test("--checksum=TYPE: each regular file's checksum equals the host tool's on the source file; other files get an empty CSV field",
          arguments: ["crc", "md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
    func checksumsMatchTheHostTools(type: String) throws {
        let image = try Images.wholeDisk.get(), src = try Images.sourceTree.get()
        let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "--csv", "--checksum=\(type)", "/"], environment: Self.environment)
        let records = try Self.parseCSV(out)
        var checked = 0
        for r in records where !r[4].hasPrefix("/lost+found") {
            // type, mode, size, checksum, path[, target]
            guard r[0] == "-" else {
                #expect(r[3] == "", "\(r[4]): no checksum for type \(r[0])")
                continue
            }
            let tool = try #require(Self.checksumTools[type])
            // cksum prints "CRC SIZE"; the digests "HEX  -": the first field is the answer.
            let host = try Shell.check("\(tool) < \(Shell.quote(src + r[4]))").split(separator: " ").first.map(String.init)
            #expect(r[3] == host, "\(type) of \(r[4])")
            checked += 1
        }
        #expect(checked >= 15, "the sizes/ files (0 to 1.5 MiB), etc/*, a/x ...")
    }

    @Test("--checksum alone and --checksums mean md5; the text record has the checksum before the path")
    func bareChecksumIsMD5() throws {
        let image = try Images.wholeDisk.get(), src = try Images.sourceTree.get()
        let md5 = try Shell.check("md5sum < \(Shell.quote(src + "/etc/sub/file"))").split(separator: " ")[0]
        // Without the option there is no checksum column; with it, the digest stands before the path.
        let plain = try ImageMountBinary.check(["ls", "-a", image, "-lR", "/etc/sub"], environment: Self.environment)
        #expect(Images.lines(plain).count == 2 && !plain.contains(String(md5)))
        let expected = plain.replacingOccurrences(of: " /etc/sub/file", with: " \(md5) /etc/sub/file")
        // Before the directory, after it, before another option, and the plural spelling.
        for args in [["--checksum", "/etc/sub"], ["/etc/sub", "--checksum"], ["--checksum", "-a", image, "/etc/sub"],
                     ["--checksums", "/etc/sub"], ["--checksum=", "/etc/sub"], ["--checksums=md5", "/etc/sub"]] {
            let lead = args.contains("-a") ? ["ls", "-lR"] : ["ls", "-a", image, "-lR"]
            #expect(try ImageMountBinary.check(lead + args, environment: Self.environment) == expected, "\(args)")
        }
    }

    @Test("--checksum needs -lR and a type libguestfs knows; unknown options are still reported")
    func checksumRefusals() throws {
        let image = try Images.wholeDisk.get()
        let notLR = try ImageMountBinary.run(["ls", "-a", image, "-l", "--checksum", "/"])
        #expect(notLR.status != 0 && notLR.stdout.isEmpty && notLR.stderr.contains("-lR"), "\(notLR.stderr)")
        let unknown = try ImageMountBinary.run(["ls", "-a", image, "-lR", "--checksum=crc32", "/"])
        #expect(unknown.status != 0 && unknown.stderr.contains("expecting crc|md5|sha1|sha224|sha256|sha384|sha512"), "\(unknown.stderr)")
        let typo = try ImageMountBinary.run(["ls", "-a", image, "-lR", "--chcksum", "/"])
        #expect(typo.status != 0 && typo.stderr.contains("--chcksum"), "\(typo.stderr)")
        let none = try ImageMountBinary.run(["ls", "-a", image, "-lR", "--checksum"])
        #expect(none.status != 0 && none.stderr.contains("<directory>"), "\(none.stderr)")
    }
}

extension LsCommandTests {
    @Test("virt-ls' other spellings give the same records: --uid, --time, --extra-stat, --long, --recursive, --human-readable")
    func spellings() throws {
        let image = try Images.wholeDisk.get()
        for (a, b) in [(["--uid"], ["--uids"]), (["--time"], ["--times"]), (["--extra-stat"], ["--extra-stats"]),
                       (["--human-readable"], ["-h"])] {
            let x = try ImageMountBinary.check(["ls", "-a", image, "-lR"] + a + ["/etc"], environment: Self.environment)
            let y = try ImageMountBinary.check(["ls", "-a", image, "-lR"] + b + ["/etc"], environment: Self.environment)
            #expect(x == y, "\(a) vs \(b)")
        }
        let short = try ImageMountBinary.check(["ls", "-a", image, "-lR", "/etc"], environment: Self.environment)
        #expect(try ImageMountBinary.check(["ls", "-a", image, "--long", "--recursive", "/etc"], environment: Self.environment) == short)
    }

    @Test("--time-relative and --time-days: seconds and whole days before now, from the same times as --time-t")
    func relativeTimes() throws {
        let image = try Images.wholeDisk.get()
        func times(_ flag: String) throws -> [Int64] {
            // type mode size atime mtime ctime path
            let out = try ImageMountBinary.check(["ls", "-a", image, "-lR", "--csv", flag, "/etc/hosts"], environment: Self.environment)
            return try Self.parseCSV(out)[0][3...5].map { try #require(Int64($0.trimmingCharacters(in: .whitespaces))) }
        }
        let epoch = try times("--time-t")
        let now = Int64(Date().timeIntervalSince1970)
        let relative = try times("--time-relative"), days = try times("--time-days")
        for i in 0 ..< 3 {
            #expect(abs((now - epoch[i]) - relative[i]) <= 5, "field \(i)")
            #expect(days[i] == (now - epoch[i]) / 86400 || days[i] == (now - epoch[i] - 5) / 86400, "field \(i)")
        }
        // /etc/hosts' mtime was set to 2001-02-03 04:05:06 UTC.
        #expect(epoch[1] == 981_173_106)
    }
}
