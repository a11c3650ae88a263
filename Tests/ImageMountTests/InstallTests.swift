import Foundation
import Testing
import TestSupport

/// scripts/install.sh and scripts/build-deb.sh: the files they install, the package they
/// build (read back with dpkg-deb), and that package installed with apt into a fresh Debian 12
/// made by debootstrap, where `imagemount --version` must run.
@Suite(.serialized) struct InstallTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Every file under `dir`, relative, sorted, with its mode and sha256.
    static func listing(_ dir: String) throws -> [String] {
        try Shell.check("cd \(Shell.quote(dir)) && find . -type f -printf '%P %m ' -exec sha256sum {} \\; | awk '{ print $1, $2, $3 }' | sort")
            .split(separator: "\n").map(String.init)
    }

    @Test func installShPutsEverythingUnderDestdirAndIsIdempotent() throws {
        let stage = try TempDir("imagemount-install")
        let binary = try ImageMountBinary.path()
        func install(_ prefix: String) throws -> Shell.Output {
            try Shell.run("\(Shell.quote(Self.repository))/scripts/install.sh \(Shell.quote(prefix))",
                          environment: ["DESTDIR": stage.path, "IMAGEMOUNT_BIN": binary])
        }
        let first = try install("/opt/im")
        #expect(first.status == 0, "\(first.stderr)")
        let root = stage.path + "/opt/im"
        let pages = try FileManager.default.contentsOfDirectory(atPath: Self.repository + "/man").filter { $0.hasSuffix(".1") }.sorted()
        try #require(pages.count > 10 && pages.contains("imagemount.inspect.1"))
        let files = try Self.listing(stage.path)
        let names = files.map { String($0.split(separator: " ")[0]) }
        #expect(names == (["opt/im/bin/imagemount", "opt/im/share/bash-completion/completions/imagemount",
                           "opt/im/share/fish/vendor_completions.d/imagemount.fish"]
                          + pages.map { "opt/im/share/man/man1/" + $0 } + ["opt/im/share/zsh/site-functions/_imagemount"]).sorted())
        #expect(files.first { $0.hasPrefix("opt/im/bin/imagemount ") }?.split(separator: " ")[1] == "755")
        #expect(try Shell.check("\(Shell.quote(root))/bin/imagemount --version") == (try Shell.check("\(Shell.quote(binary)) --version")))
        for page in pages {
            #expect(FileManager.default.contentsEqual(atPath: "\(root)/share/man/man1/\(page)", andPath: "\(Self.repository)/man/\(page)"), "\(page)")
        }
        // The completions come from the declared command line: every subcommand is in each.
        let bash = try String(contentsOfFile: root + "/share/bash-completion/completions/imagemount", encoding: .utf8)
        let zsh = try String(contentsOfFile: root + "/share/zsh/site-functions/_imagemount", encoding: .utf8)
        let fish = try String(contentsOfFile: root + "/share/fish/vendor_completions.d/imagemount.fish", encoding: .utf8)
        #expect(bash.contains("-F _imagemount imagemount\n") && !bash.hasPrefix("#!"))
        #expect(zsh.hasPrefix("#compdef imagemount"))
        #expect(fish.contains("complete -c 'imagemount'"))
        for command in ["inspect", "tar-out", "copy-in", "commit", "unmount"] {
            #expect(bash.contains(command) && zsh.contains(command) && fish.contains(command), "\(command) in the completions")
        }
        #expect(try Shell.run("bash -n \(Shell.quote(root))/share/bash-completion/completions/imagemount").status == 0)

        // Again: the same files, byte for byte, and nothing more.
        let second = try install("/opt/im")
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try Self.listing(stage.path) == files)
        // /usr puts zsh's where Debian's zsh looks; a relative prefix is refused.
        #expect(try install("/usr").status == 0)
        #expect(FileManager.default.fileExists(atPath: stage.path + "/usr/share/zsh/vendor-completions/_imagemount"))
        let relative = try install("usr")
        #expect(relative.status == 2 && relative.stderr.contains("absolute"), "\(relative.stderr)")
    }

    /// The debug binary needs the toolchain's Swift runtime, which no Debian package has.
    @Test func buildDebRefusesABinaryThatNeedsTheSwiftRuntime() throws {
        let out = try TempDir("imagemount-deb-refused")
        let run = try Shell.run("\(Shell.quote(Self.repository))/scripts/build-deb.sh \(Shell.quote(out.path))",
                                environment: ["IMAGEMOUNT_BIN": try ImageMountBinary.path()])
        #expect(run.status == 1 && run.stderr.contains("--static-swift-stdlib"), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
    }

    /// The tests' binary linked again, as SwiftPM linked it (its build manifest's command), with
    /// the Swift runtime static: what build-deb.sh packages, without a release build's minutes.
    static let staticBinary: Result<String, any Error> = Result {
        let debug = try ImageMountBinary.path()
        let buildDir = URL(fileURLWithPath: debug).deletingLastPathComponent()
        let manifest = try String(contentsOfFile: buildDir.deletingLastPathComponent().deletingLastPathComponent().path + "/debug.yaml", encoding: .utf8)
        let lines = manifest.split(separator: "\n")
        guard let at = lines.firstIndex(where: { $0.contains("description: \"Linking ") && $0.hasSuffix("/debug/imagemount\"") }),
              at + 1 < lines.count, let open = lines[at + 1].firstIndex(of: "[") else {
            throw Shell.Failure(command: "find imagemount's link command in debug.yaml", status: 1, stderr: "")
        }
        var arguments = try JSONSerialization.jsonObject(with: Data(lines[at + 1][open...].utf8)) as? [String] ?? []
        let output = Fixtures.scratch.file("imagemount-static")
        guard let o = arguments.firstIndex(of: "-o"), o + 1 < arguments.count else {
            throw Shell.Failure(command: "imagemount's link command has no -o", status: 1, stderr: "")
        }
        arguments[o + 1] = output
        // swift build --static-swift-stdlib adds the static Foundation's own two libraries too.
        arguments += ["-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims"]
        try Shell.check(arguments.map(Shell.quote).joined(separator: " ") + " 2>&1")
        return output
    }

    /// The .deb of the static binary, built once.
    static let package: Result<String, any Error> = Result {
        let out = Fixtures.scratch.file("deb")
        let path = try Shell.run("\(Shell.quote(repository))/scripts/build-deb.sh \(Shell.quote(out))", environment: ["IMAGEMOUNT_BIN": try staticBinary.get()])
        guard path.status == 0 else { throw Shell.Failure(command: "build-deb.sh", status: path.status, stderr: path.stderr) }
        return path.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func debPackageHasTheFilesAndComputedDependencies() throws {
        let binary = try Self.staticBinary.get()
        let needed = try Shell.check("readelf -d \(Shell.quote(binary)) | grep NEEDED")
        #expect(!needed.contains("libswift") && !needed.contains("libFoundation"), "\(needed)")
        let deb = try Self.package.get()
        let version = try Shell.check("\(Shell.quote(binary)) --version").split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        #expect(deb.hasSuffix("/imagemount_\(version)_amd64.deb"), "\(deb)")

        let info = try Shell.check("dpkg-deb -I \(Shell.quote(deb))")
        #expect(info.contains(" Package: imagemount\n") && info.contains(" Version: \(version)\n") && info.contains(" Architecture: amd64\n"))
        let depends = try Shell.check("dpkg-deb -f \(Shell.quote(deb)) Depends")
        let recommends = try Shell.check("dpkg-deb -f \(Shell.quote(deb)) Recommends")
        // Each linked library's package, with dpkg-shlibdeps's minimum version.
        for package in ["libc6 (>=", "libfuse3-3 (>=", "libext2fs2 (>=", "libntfs-3g89", "libhivex0 (>=", "libseccomp2 (>=", "libzstd1 (>=", "zlib1g (>=", "libargon2-1 (>=", "libcom-err2 (>="] {
            #expect(depends.contains(package), "\(package) in Depends: \(depends)")
        }
        for package in ["libnbd0", "librbd1", "libarchive13", "libxml2", "libssl3", "librpm9", "libedit2", "fuse3"] {
            #expect(recommends.contains(package), "\(package) in Recommends: \(recommends)")
            #expect(!depends.contains(package + " ") && !depends.hasPrefix(package + ","), "\(package) is lazily loaded, not a hard dependency")
        }
        let contents = try Shell.check("dpkg-deb -c \(Shell.quote(deb))")
        for path in ["./usr/bin/imagemount", "./usr/share/man/man1/imagemount.1.gz", "./usr/share/man/man1/imagemount.inspect.1.gz",
                     "./usr/share/bash-completion/completions/imagemount", "./usr/share/zsh/vendor-completions/_imagemount",
                     "./usr/share/fish/vendor_completions.d/imagemount.fish", "./usr/share/doc/imagemount/copyright",
                     "./usr/share/doc/imagemount/changelog.gz"] {
            #expect(contents.contains(" \(path)\n"), "\(path) in the package")
        }
        #expect(contents.split(separator: "\n").contains { $0.hasPrefix("-rwxr-xr-x root/root ") && $0.hasSuffix(" ./usr/bin/imagemount") })
        for line in contents.split(separator: "\n") { #expect(line.contains(" root/root "), "owned by root: \(line)") }
    }

    /// debootstrap's minimal Debian 12 (bookworm) from the Debian mirror, made once per run: it
    /// takes minutes (most of it downloading), so this is the one test that needs the network.
    static let chroot: Result<String, any Error> = Result {
        let dir = Fixtures.scratch.file("bookworm")
        let run = try Shell.run("debootstrap --variant=minbase bookworm \(Shell.quote(dir)) http://deb.debian.org/debian 2>&1")
        guard run.status == 0 else { throw Shell.Failure(command: "debootstrap", status: run.status, stderr: String(run.text.suffix(2000))) }
        return dir
    }

    @Test func debInstallsInACleanDebian12AndRuns() throws {
        let deb = try Self.package.get()
        let root = try Self.chroot.get()
        try Shell.check("cp \(Shell.quote(deb)) \(Shell.quote(root))/tmp/imagemount.deb")
        let q = Shell.quote(root)
        // A Debian system has /proc; the Swift runtime reads the arguments from
        // /proc/self/cmdline (without it `--version` arrives as no arguments at all).
        try Shell.check("mountpoint -q \(q)/proc || mount -t proc proc \(q)/proc")
        defer { _ = try? Shell.run("umount -l \(q)/proc") }
        #expect(try Shell.run("chroot \(q) dpkg-query -W libfuse3-3 libhivex0 2>&1").status != 0, "a clean system lacks the runtime libraries")
        // apt resolves Depends from the mirror; Recommends are left out to keep Ceph out.
        let install = try Shell.run("chroot \(q) apt-get update -qq 2>&1 && chroot \(q) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/imagemount.deb 2>&1")
        #expect(install.status == 0, "\(install.text.suffix(3000))")
        #expect(try Shell.check("chroot \(q) dpkg-query -W -f '${Status}' imagemount") == "install ok installed")
        #expect(try Shell.run("chroot \(q) dpkg-query -W libfuse3-3 libhivex0 libext2fs2 libntfs-3g89").status == 0, "Depends pulled them in")
        let version = try Shell.run("chroot \(q) /usr/bin/imagemount --version")
        let built = try Shell.check("\(Shell.quote(try Self.staticBinary.get())) --version")
        #expect(version.status == 0 && version.text == built, "\(version.stderr)")
        let help = try Shell.run("chroot \(q) /usr/bin/imagemount inspect --help")
        #expect(help.status == 0 && help.text.contains("--no-applications"), "\(help.stderr)")
        #expect(FileManager.default.fileExists(atPath: root + "/usr/share/man/man1/imagemount.inspect.1.gz"))
        #expect(try Shell.run("chroot \(q) env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq imagemount 2>&1").status == 0)
        #expect(!FileManager.default.fileExists(atPath: root + "/usr/bin/imagemount"))
    }
}
