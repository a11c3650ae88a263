import Foundation
import Testing
@testable import ImageMount

/// The fast parse (FastCommandLine.swift) must give exactly the command swift-argument-parser
/// gives, every field set, and must hand everything else to the library.
@Suite struct FastCommandLineTests {
    /// The command's fields as text: every property wrapper's state (a field the fast parse forgot
    /// shows as `definition`), with the order stamps of `Positioned` values replaced by their rank,
    /// since only the order matters and the two parses stamp from different counter values.
    static func canonical(_ command: Any) -> String {
        var text = ""
        dump(command, to: &text)
        let stamp = try! NSRegularExpression(pattern: "position: ([0-9]+)")
        let whole = NSRange(text.startIndex..., in: text)
        let stamps = stamp.matches(in: text, range: whole).compactMap { Int((text as NSString).substring(with: $0.range(at: 1))) }
        let ranks = Dictionary(uniqueKeysWithValues: Set(stamps).sorted().enumerated().map { ($1, $0) })
        var out = text
        for match in stamp.matches(in: text, range: whole).reversed() {
            let value = Int((text as NSString).substring(with: match.range(at: 1)))!
            out = (out as NSString).replacingCharacters(in: match.range, with: "position: #\(ranks[value]!)")
        }
        return out
    }

    static let accepted: [[String]] = [
        ["cat", "-a", "disk.img", "/etc/hostname"],
        ["cat", "-a", "disk.img", "-m", "/dev/sda1", "/etc/hostname"],
        ["cat", "--add", "disk.img", "--mount=/dev/sda1:/", "/etc/hostname", "/etc/passwd"],
        ["cat", "--add=a.qcow2", "-i", "/etc/hostname"],
        ["cat", "/etc/hostname", "-a", "disk.img", "--ro", "-v"],
        ["cat", "--format=qcow2", "-a", "a", "--format", "raw", "-a", "b", "-m", "/dev/sdb1", "/x"],
        ["cat", "--format=auto", "-a", "a", "--format=raw", "-a", "b", "/x"],
        ["cat", "-a", "nbd://localhost/export", "-x", "-r", "/etc/hostname"],
        ["cat", "-a", "a", "-a", "b", "-m", "/dev/sda1", "-m", "/dev/sdb1:/boot", "/boot/x", "/y"],
        ["cat", "-a", "disk.img", "--root", "/dev/sda2", "--inspector", "/etc/os-release"],
        ["cat", "-a", "disk.img", "-w", "-m", "LABEL=root", "relative/path"],
        ["cat", "--trace", "--verbose", "-a", "disk.img", "C:\\Windows\\win.ini"],
    ]

    @Test(arguments: accepted)
    func sameCommandAsTheLibrary(_ arguments: [String]) throws {
        let fast = try #require(FastCommandLine.parse(arguments), "refused \(arguments)")
        let full = try ImageMount.parseAsRoot(arguments)
        #expect(fast is CatCommand)
        #expect(full is CatCommand)
        let fastText = Self.canonical(fast)
        #expect(!fastText.contains("definition"), "a field left unset:\n\(fastText)")
        #expect(fastText == Self.canonical(full))
        // And what the commands will use, computed from both.
        let a = try #require(fast as? CatCommand), b = try #require(full as? CatCommand)
        #expect(a.paths == b.paths)
        #expect(try a.image.drives().map(\.path) == b.image.drives().map(\.path))
        #expect(try a.image.drives().map(\.format) == b.image.drives().map(\.format))
        #expect(a.filesystems.mountSpecs.map(\.device) == b.filesystems.mountSpecs.map(\.device))
    }

    @Test func subcommandNamesAreTheDeclaredOnes() {
        var declared = Set(ImageMount.configuration.subcommands.map { $0.configuration.commandName ?? "" })
        declared.insert("help")  // the library's own
        #expect(FastCommandLine.subcommandNames == declared)
    }

    /// Each of these goes to the library: it prints help or a version, uses a spelling the fast
    /// parse does not know, or is a usage error the library must word.
    static let refused: [[String]] = [
        ["cat"],
        ["cat", "-a", "disk.img"],
        ["cat", "--help", "-a", "disk.img", "/x"],
        ["cat", "-h"],
        ["cat", "-V"],
        ["cat", "--version", "-a", "d", "/x"],
        ["cat", "--long-options"],
        ["cat", "-a", "d", "--key", "/dev/sda2:key:secret", "/x"],
        ["cat", "-a", "d", "-ir", "/x"],
        ["cat", "-a", "d", "--", "/x"],
        ["cat", "-a", "-m", "/x"],
        ["cat", "-a", "d", "-m"],
        ["cat", "-a", "d", "-", "/x"],
        ["cat", "-a", "d", "-i", "-m", "/dev/sda1", "/x"],
        ["cat", "-a", "d", "--ro", "--rw", "/x"],
        ["cat", "-a", "d", "-i", "-i", "/x"],
        ["cat", "-a", "d", "--root", "/dev/sda1", "--root", "/dev/sda2", "/x"],
        ["cat", "-a", "d", "-m", "/dev/sda1:/:bogus", "/x"],
        ["cat", "-a", "d", "--format=vmdk2", "/x"],
        ["cat", "--format=raw", "-a", "d", "--format=qcow2", "/x"],
        ["cat", "-a", "d", "--inspector=yes", "/x"],
        ["cat", "--format=", "-a", "d", "/x"],
        ["cat", "--add=", "/x"],
        ["cat", "-a", "d", "--generate-completion-script", "bash"],
        ["cat", "-a", "d", "ls"],
        ["cat", "-d", "domain", "/x"],
        ["ls", "-a", "d", "/"],
        ["-a", "d", "/mnt"],
        [],
    ]

    @Test(arguments: refused)
    func leavesTheRestToTheLibrary(_ arguments: [String]) {
        #expect(FastCommandLine.parse(arguments) == nil, "accepted \(arguments)")
    }

    /// The refused command lines that are mistakes are mistakes to the library as well (so the
    /// refusal is not hiding a command the library would run differently).
    @Test(arguments: [
        ["cat", "-a", "d", "-i", "-m", "/dev/sda1", "/x"],
        ["cat", "-a", "d", "--ro", "--rw", "/x"],
        ["cat", "-a", "d", "-m", "/dev/sda1:/:bogus", "/x"],
        ["cat", "-a", "d", "--format=vmdk2", "/x"],
        ["cat", "--format=raw", "-a", "d", "--format=qcow2", "/x"],
        ["cat", "-a", "d"],
        ["cat", "--format=", "-a", "d", "/x"],
    ])
    func refusedMistakesAreLibraryErrors(_ arguments: [String]) {
        #expect(throws: (any Error).self) { try ImageMount.parseAsRoot(arguments) }
    }

    /// Command lines of every subcommand the subcommand-as-root parse takes: each must give the
    /// command the parse from the root gives.
    static let subcommandLines: [[String]] = [
        ["unmount", "/mnt"],
        ["cat", "-a", "d", "--key", "/dev/sda2:key:secret", "/x"],
        ["ls", "-a", "d", "-m", "/dev/sda1", "-lR", "--checksum=sha256", "/etc"],
        ["copy-out", "-a", "d", "-i", "/etc", "/var/log", "/tmp/x"],
        ["copy-in", "--format=qcow2", "-a", "d", "-m", "/dev/sda1", "./f", "/etc/"],
        ["tar-out", "-a", "d", "-i", "-z", "/etc", "-"],
        ["tar-in", "-a", "d", "-m", "/dev/sda1", "--xattrs", "x.tar", "/srv"],
        ["edit", "-a", "d", "-i", "/etc/hostname", "-e", "s/a/b/"],
        ["df", "-a", "d", "-a", "e", "-h"], ["df", "-a", "d", "--csv"],
        ["filesystems", "-a", "d", "-l", "--all"],
        ["inspect", "-a", "d", "--no-applications"],
        ["info", "-a", "d.qcow2"],
        ["check", "-a", "d.qcow2"],
        ["commit", "o.qcow2"],
        ["diff", "--format=raw", "-a", "t.img", "--format=qcow2", "-A", "c.qcow2"],
        ["diff", "-a", "a", "-A", "b", "--checksum=sha256", "--times", "--csv", "-m", "/dev/sda1"],
        ["shell", "-a", "d", "--ro", "-i", "cat", "/etc/hostname", ":", "ll", "/etc"],
    ]

    @Test(arguments: subcommandLines)
    func subcommandParseIsTheLibrarysFromTheRoot(_ arguments: [String]) throws {
        let full = try ImageMount.parseAsRoot(arguments)
        let fast = try #require(FastCommandLine.parseSubcommand(arguments), "refused \(arguments)")
        #expect(type(of: fast) == type(of: full))
        #expect(Self.canonical(fast) == Self.canonical(full))
    }

    @Test func subcommandTypesAreTheDeclaredOnes() {
        let declared = ImageMount.configuration.subcommands.filter { $0 != MountCommand.self }
        #expect(Set(FastCommandLine.subcommandTypes.keys) == Set(declared.map { $0.configuration.commandName ?? "" }))
        for type in declared {
            let name = type.configuration.commandName ?? ""
            #expect(FastCommandLine.subcommandTypes[name].map { ObjectIdentifier($0) } == ObjectIdentifier(type), "\(name)")
        }
    }

    /// What prints and exits, the default and help commands, and mistakes go to the parse from
    /// the root, which words them as the root's usage.
    @Test(arguments: [
        ["ls", "--help"], ["ls", "-a", "d", "-V", "/"], ["ls", "-a", "d", "--long-options"], ["diff", "-h"],
        ["ls", "-a", "d", "--bogus", "/"], ["cat", "-a", "d"], ["mount", "-a", "d", "/mnt"], ["help", "ls"],
        ["-a", "d", "/mnt"], ["ls", "--generate-completion-script", "bash"], ["ls", "--experimental-dump-help"], [],
    ])
    func subcommandParseLeavesTheRest(_ arguments: [String]) {
        #expect(FastCommandLine.parseSubcommand(arguments) == nil, "accepted \(arguments)")
    }
}
