import Foundation
import Testing
import TestSupport

/// `imagemount edit`, like virt-edit: -e runs a Perl expression per line, $EDITOR edits a
/// copy, the file is replaced whole (owner, mode and xattrs kept), -b keeps a backup, and an
/// unchanged file leaves the image's bytes as they were.
@Suite struct EditCommandTests {
    static let formats = ["raw", "qcow2", "qcow2-luks", "vdi", "vpc", "vhdx", "qed", "parallels"]

    static func image(_ dir: TempDir) throws -> String {
        let tree = dir.file("tree"), image = dir.file("guest.img")
        let script = """
            set -eu
            mkdir -p \(Shell.quote(tree))/etc
            printf 'oldhost\\nkeep old\\nold again\\n' > \(Shell.quote(tree))/etc/hostname
            chown 12:34 \(Shell.quote(tree))/etc/hostname && chmod 640 \(Shell.quote(tree))/etc/hostname
            setfattr -n security.selinux -v 'system_u:object_r:hostname_etc_t:s0' \(Shell.quote(tree))/etc/hostname
            setfattr -n user.note -v kept \(Shell.quote(tree))/etc/hostname
            ln -s hostname \(Shell.quote(tree))/etc/link
            truncate -s 32M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -d \(Shell.quote(tree)) \(Shell.quote(image))
            """
        try Shell.check("bash -c \(Shell.quote(script))")
        return image
    }

    func expectClean(_ image: String) throws {
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    @Test(arguments: formats)
    func perlExpressionEditsEachLineAndKeepsOwnerModeAndXattrs(format: String) throws {
        let dir = try TempDir("imagemount-edit")
        let written = try WritableFormats.prepare(Self.image(dir), format: format)
        let key = WritableFormats.arguments(written, format: format)
        try ImageMountBinary.check(["edit"] + key + ["-a", written, "/etc/hostname", "-e", "s/^old/new/"])
        #expect(try ImageMountBinary.check(["cat"] + key + ["-a", written, "/etc/hostname"]) == "newhost\nkeep old\nnew again\n")
        let image = try WritableFormats.finish(written, format: format)
        try expectClean(image)
        let k = try KernelMount(image: image)
        defer { k.close() }
        #expect(try Shell.check("stat -c '%u %g %a' \(Shell.quote(k.path))/etc/hostname") == "12 34 640\n")
        let xattrs = try Shell.check("getfattr -d -m - \(Shell.quote(k.path))/etc/hostname")
        #expect(xattrs.contains("security.selinux=\"system_u:object_r:hostname_etc_t:s0\"") && xattrs.contains("user.note=\"kept\""))
        #expect(try Shell.check("ls -a \(Shell.quote(k.path))/etc") == ".\n..\nhostname\nlink\n")
    }

    @Test func linenoAndBackup() throws {
        let dir = try TempDir("imagemount-edit")
        let image = try Self.image(dir)
        try ImageMountBinary.check(["edit", "-a", image, "/etc/hostname", "-b", ".orig", "-e", "$_ = \"$lineno:$_\""])
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"]) == "1:oldhost\n2:keep old\n3:old again\n")
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname.orig"]) == "oldhost\nkeep old\nold again\n")
        try expectClean(image)
    }

    @Test func unchangedFileLeavesTheImageBytesAlone() throws {
        let dir = try TempDir("imagemount-edit")
        let image = try Self.image(dir)
        let before = try Shell.check("sha256sum \(Shell.quote(image))")
        try ImageMountBinary.check(["edit", "-a", image, "/etc/hostname", "-e", "s/^nomatch/x/"])
        try ImageMountBinary.check(["edit", "-a", image, "/etc/hostname"], environment: ["EDITOR": "true"])
        #expect(try Shell.check("sha256sum \(Shell.quote(image))") == before)
    }

    @Test func editorRunsOnACopy() throws {
        let dir = try TempDir("imagemount-edit")
        let image = try Self.image(dir)
        let editor = dir.file("editor.sh")
        try Shell.check("printf '#!/bin/sh\\necho appended >> \"$1\"\\n' > \(Shell.quote(editor)) && chmod +x \(Shell.quote(editor))")
        try ImageMountBinary.check(["edit", "-a", image, "/etc/hostname"], environment: ["EDITOR": editor])
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"]) == "oldhost\nkeep old\nold again\nappended\n")
        try expectClean(image)
    }

    @Test func failuresLeaveTheFileAsItWas() throws {
        let dir = try TempDir("imagemount-edit")
        let image = try Self.image(dir)
        let before = try Shell.check("sha256sum \(Shell.quote(image))")
        let perl = try ImageMountBinary.run(["edit", "-a", image, "/etc/hostname", "-e", "die 'boom'"])
        #expect(perl.status != 0 && perl.stderr.contains("not changed"), "\(perl.stderr)")
        let editor = try ImageMountBinary.run(["edit", "-a", image, "/etc/hostname"], environment: ["EDITOR": "false"])
        #expect(editor.status != 0)
        let link = try ImageMountBinary.run(["edit", "-a", image, "/etc/link", "-e", "s/a/b/"])
        #expect(link.status != 0 && link.stderr.contains("symbolic link"), "\(link.stderr)")
        // The helper that runs the editor dies (its editor kills it): one line, nothing written.
        let killer = dir.file("kill-parent.sh")
        try Shell.check("printf '#!/bin/sh\\nkill -9 $PPID\\n' > \(Shell.quote(killer)) && chmod +x \(Shell.quote(killer))")
        let dead = try ImageMountBinary.run(["edit", "-a", image, "/etc/hostname"], environment: ["EDITOR": killer])
        #expect(dead.status == 1 && dead.stderr.contains("the editor helper went away"), "\(dead.stderr)")
        #expect(try Shell.check("sha256sum \(Shell.quote(image))") == before)
        try expectClean(image)
    }
}

extension EditCommandTests {
    static func twoFiles(_ dir: TempDir) throws -> String {
        let tree = dir.file("tree2"), image = dir.file("two.img")
        try Shell.check("""
            mkdir -p \(Shell.quote(tree))/etc && printf 'old one\\n' > \(Shell.quote(tree))/etc/a && printf 'old two\\nold\\n' > \(Shell.quote(tree))/etc/b \
            && printf 'old three\\n' > \(Shell.quote(tree))/etc/c \
            && truncate -s 16M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -d \(Shell.quote(tree)) \(Shell.quote(image))
            """)
        return image
    }

    /// virt-edit spells -e also --edit and --expr, and edits each FILE argument in turn.
    @Test func editLongSpellingAndSeveralFiles() throws {
        let dir = try TempDir("imagemount-edit-many")
        let image = try Self.twoFiles(dir)
        try ImageMountBinary.check(["edit", "-a", image, "/etc/a", "/etc/b", "--edit", "s/^old/new/"])
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/a", "/etc/b", "/etc/c"]) == "new one\nnew two\nnew\nold three\n")
        try ImageMountBinary.check(["edit", "-a", image, "--expr", "s/three/3/", "/etc/c"])
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/c"]) == "old 3\n")
        // $EDITOR runs once per file, each on its own copy.
        let editor = dir.file("editor.sh")
        try Shell.check("printf '#!/bin/sh\\necho \"edited $(basename \"$1\")\" >> \"$1\"\\n' > \(Shell.quote(editor)) && chmod +x \(Shell.quote(editor))")
        try ImageMountBinary.check(["edit", "-a", image, "/etc/a", "/etc/c"], environment: ["EDITOR": editor])
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/a", "/etc/c"]) == "new one\nedited a\nold 3\nedited c\n")
        try expectClean(image)
        // Every FILE must be absolute; nothing is edited when one is not.
        let relative = try ImageMountBinary.run(["edit", "-a", image, "/etc/a", "etc/b", "-e", "s/new/x/"])
        #expect(relative.status != 0 && relative.stderr.contains("etc/b"), "\(relative.stderr)")
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/a"]) == "new one\nedited a\n")
    }
}

extension EditCommandTests {
    /// -m DEV[:MOUNTPOINT] with edit: the file of the filesystem named is edited.
    @Test func mountOptionChoosesTheFilesystem() throws {
        let dir = try TempDir("imagemount-edit-m")
        let disk = dir.file("mbr.img")
        try Shell.check("cp --sparse=always \(Shell.quote(try DiskFixtures.mbr().path)) \(Shell.quote(disk))")
        try ImageMountBinary.check(["edit", "-a", disk, "-m", "/dev/sda5", "/etc/hostname", "-e", "s/boot/edited/"])
        #expect(try ImageMountBinary.check(["cat", "-a", disk, "-m", "/dev/sda5", "/etc/hostname"]) == "edited-on-sda5\n")
    }
}
