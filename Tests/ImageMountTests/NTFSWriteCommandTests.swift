import Foundation
import Testing
import TestSupport

/// NTFS writes through the commands: a scripted workload on a `--rw` FUSE mount (files, dirs,
/// renames, deletes, truncates, hard links, symlinks, streams as user.* xattrs, thousands of
/// files, the volume filled to ENOSPC and freed again), then `ntfsfix -n` clean and ntfs-3g's
/// own mount of the result showing exactly what the mount showed; `copy-in` and `edit` on a
/// plain volume and on one in a partitioned qcow2; a hibernated volume read-only with one
/// warning unless remove_hiberfile; an unchanged `--rw` session leaving the image as it was.
@Suite(.serialized) struct NTFSWriteCommandTests {
    static func sha256(_ path: String) throws -> String {
        try Shell.check("sha256sum \(Shell.quote(path))").split(separator: " ").first.map(String.init) ?? ""
    }

    /// Runs `body` with ntfs-3g's read-only mount of `image`.
    static func withNtfs3g<R>(_ image: String, _ body: (String) throws -> R) throws -> R {
        let mnt = try TempDir("ntfsw-oracle")
        try NTFSImages.mountNtfs3g(image, at: mnt.path, options: "ro,streams_interface=xattr")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(mnt.path)) || fusermount -u -z \(Shell.quote(mnt.path))") }
        return try body(mnt.path)
    }

    static let fileCount = 2000

    /// The workload, run in the mount's root.
    static let workload = """
        set -e
        mkdir -p deep/1/2/3/4/5 many empty
        printf 'hello\\n' > a.txt
        head -c 3000000 /dev/urandom > big.bin
        for i in $(seq 1 \(fileCount)); do echo "file $i" > many/f$i; done
        mv many/f7 deep/1/2/moved
        mv a.txt renamed.txt
        echo old > target && echo new > source && mv source target
        mv deep/1/2/3 deep/three
        rm many/f8 many/f9
        rmdir empty
        ln renamed.txt hard.txt
        ln -s renamed.txt sym
        ln -s /absolute/target abssym
        mkfifo fifo
        head -c 10000 /dev/urandom > trunc.bin && truncate -s 3000 trunc.bin && truncate -s 100000 trunc.bin
        printf 'abcdef' > over.txt && printf 'XY' | dd of=over.txt bs=1 seek=2 conv=notrunc status=none
        setfattr -n user.stream -v 'stream value' renamed.txt
        setfattr -n user.other -v 0x0001ff00 big.bin
        setfattr -n user.gone -v x big.bin && setfattr -x user.gone big.bin
        touch -d '2001-02-03 04:05:06' trunc.bin
        echo held > held.txt
        exec 3< held.txt
        rm held.txt
        read -r line <&3; [ "$line" = held ] || { echo "the unlinked open file lost its data: $line"; exit 1; }
        exec 3<&-
        if out=$(dd if=/dev/zero of=fill bs=1M 2>&1); then echo "filling did not fail"; exit 1; fi
        case "$out" in *"No space left on device"*) ;; *) echo "filling failed otherwise: $out"; exit 1;; esac
        rm fill
        echo after > after.txt
        sync
        """

    @Test func rwMountWorkloadIsNtfsfixCleanAndNtfs3gShowsIt() throws {
        let dir = try TempDir("ntfsw-rw")
        let image = try NTFSImages.volume(at: dir.file("v.img"), megabytes: 64)
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        defer { m.close() }
        let statBefore = try Shell.check("stat -f -c '%f' \(Shell.quote(m.path))")
        let run = try Shell.run("cd \(Shell.quote(m.path)) && bash -c \(Shell.quote(Self.workload)) 2>&1")
        #expect(run.status == 0, "\(run.text)")
        let ours = try NTFSImages.manifest(m.path)
        let statfs = try Shell.check("stat -f -c '%S %b %f %a' \(Shell.quote(m.path))")
        #expect(statfs.split(separator: " ")[2] != Substring(statBefore.trimmingCharacters(in: .newlines)), "statfs did not follow")
        let mtime = try Shell.check("stat -c %Y \(Shell.quote(m.path))/trunc.bin")
        m.close()
        let fix = try Shell.run("ntfsfix -n \(Shell.quote(image)) 2>&1")
        #expect(fix.status == 0 && fix.text.contains("processed successfully"), "\(fix.text)")
        try Self.withNtfs3g(image) { (oracle: String) throws in
            let theirs = try NTFSImages.manifest(oracle)
            let (a, b) = (Set(ours.split(separator: "\n")), Set(theirs.split(separator: "\n")))
            #expect(ours == theirs, "only ours: \(a.subtracting(b).sorted().prefix(8)) only ntfs-3g: \(b.subtracting(a).sorted().prefix(8))")
            // What the workload meant is there (the comparison is not of two empty trees).
            #expect(ours.split(separator: "\n").filter { $0.contains("\t./many/f") }.count == Self.fileCount - 3)
            for line in ["f\t6\t./renamed.txt\t\t", "l\t-\t./sym\trenamed.txt", "l\t-\t./abssym\t/absolute/target", "p\t-\t./fifo",
                         "f\t100000\t./trunc.bin", "d\t-\t./deep/three", "f\t4\t./target", "f\t6\t./over.txt", "f\t3000000\t./big.bin"] {
                #expect(ours.contains(line), "\(line)")
            }
            #expect(!ours.contains("./empty") && !ours.contains("./fill") && !ours.contains("./source") && !ours.contains("./a.txt\t"))
            #expect(ours.contains("user.stream=0x73747265616d2076616c7565") && ours.contains("user.other=0x0001ff00") && !ours.contains("user.gone"))
            #expect(try Shell.check("cat \(Shell.quote(oracle))/over.txt \(Shell.quote(oracle))/target") == "abXYef" + "new\n")
            #expect(try Shell.check("stat -c '%h' \(Shell.quote(oracle))/hard.txt") == "2\n")
            #expect(try Shell.check("stat -c %Y \(Shell.quote(oracle))/trunc.bin") == mtime)
            #expect(try Shell.check("stat -f -c '%S %b %f %a' \(Shell.quote(oracle))") == statfs)
        }
        let ls = try Shell.check("ntfsls -f -p /many \(Shell.quote(image)) | grep -vxF . | wc -l").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ls == "\(Self.fileCount - 3)")
        let info = try Shell.check("ntfsinfo -F /renamed.txt \(Shell.quote(image)) 2>&1")
        #expect(info.contains("hard.txt") && info.contains("stream"), "\(info)")
    }

    @Test func sigtermOfTheServerClosesTheVolumeCleanly() throws {
        let dir = try TempDir("ntfsw-term")
        let image = try NTFSImages.volume(at: dir.file("v.img"), megabytes: 32)
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        defer { m.close() }
        try Shell.check("cd \(Shell.quote(m.path)) && echo data > f && mkdir d && echo inner > d/g")
        let pid = try #require(m.serverPID)
        kill(pid, SIGTERM)
        for _ in 0 ..< 200 where kill(pid, 0) == 0 { usleep(50_000) }
        #expect(kill(pid, 0) != 0, "the server did not exit on SIGTERM")
        m.close()
        let fix = try Shell.run("ntfsfix -n \(Shell.quote(image)) 2>&1")
        #expect(fix.status == 0, "\(fix.text)")
        try Self.withNtfs3g(image) { (oracle: String) throws in
            #expect(try Shell.check("cat \(Shell.quote(oracle))/f \(Shell.quote(oracle))/d/g") == "data\ninner\n")
        }
    }

    @Test func unchangedRwSessionLeavesTheImageAsItWas() throws {
        let dir = try TempDir("ntfsw-same")
        let image = try NTFSImages.volume(at: dir.file("v.img"), script: "echo hello > a.txt; mkdir d; echo x > d/y")
        let before = try Self.sha256(image)
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        try Shell.check("cat \(Shell.quote(m.path))/a.txt \(Shell.quote(m.path))/d/y >/dev/null && ls -laR \(Shell.quote(m.path)) >/dev/null && stat -f \(Shell.quote(m.path)) >/dev/null")
        // chmod and chown are ignored, as ntfs-3g ignores them without `permissions`.
        try Shell.check("chmod 600 \(Shell.quote(m.path))/a.txt && chown 1000:1000 \(Shell.quote(m.path))/a.txt")
        m.close()
        #expect(try Self.sha256(image) == before)
    }

    /// The same tree copied in (and a file edited) on a plain volume and on the partition of a
    /// partitioned qcow2, read back by ntfs-3g.
    @Test func copyInAndEditAreReadBackByNtfs3g() throws {
        let dir = try TempDir("ntfsw-copy")
        let src = dir.file("src")
        try Shell.check("""
            mkdir -p \(Shell.quote(src))/tree/sub && cd \(Shell.quote(src))/tree && printf 'colour=red\\n' > config.ini \
            && head -c 200000 /dev/urandom > sub/data.bin && ln -s config.ini sub/link && echo 'ünïcødé' > 'sub/ünï.txt'
            """)
        let plain = try NTFSImages.volume(at: dir.file("plain.img"), megabytes: 32)
        try NTFSImages.volume(at: dir.file("part.img"), megabytes: 32)
        let qcow2 = dir.file("disk.qcow2")
        try Shell.check("""
            cd \(Shell.quote(dir.path)) && truncate -s 40M disk.img \
            && printf 'label: dos\\nstart=2048, type=7\\n' | sfdisk -q --no-reread --no-tell-kernel disk.img \
            && dd if=part.img of=disk.img bs=1M seek=1 conv=notrunc,sparse status=none \
            && qemu-img convert -O qcow2 disk.img disk.qcow2 && rm disk.img
            """)
        for (image, device) in [(plain, "/dev/sda"), (qcow2, "/dev/sda1")] {
            try ImageMountBinary.check(["copy-in", "-a", image, "-m", device, src + "/tree", "/"])
            try ImageMountBinary.check(["edit", "-a", image, "-m", device, "/tree/config.ini", "-e", "s/red/blue/"])
            var volume = image
            if image == qcow2 {
                volume = dir.file("back.img")
                try Shell.check("qemu-img convert -O raw \(Shell.quote(qcow2)) \(Shell.quote(dir.file("back-disk.img"))) && dd if=\(Shell.quote(dir.file("back-disk.img"))) of=\(Shell.quote(volume)) bs=1M skip=1 count=32 status=none")
                let check = try Shell.run("qemu-img check \(Shell.quote(qcow2)) 2>&1")
                #expect(check.status == 0, "\(check.text)")
            }
            let fix = try Shell.run("ntfsfix -n \(Shell.quote(volume)) 2>&1")
            #expect(fix.status == 0, "\(image): \(fix.text)")
            try Self.withNtfs3g(volume) { (oracle: String) throws in
                #expect(try Shell.check("cat \(Shell.quote(oracle))/tree/config.ini") == "colour=blue\n", "\(image)")
                let diff = try Shell.run("diff -r --no-dereference -x config.ini \(Shell.quote(src))/tree \(Shell.quote(oracle))/tree")
                #expect(diff.status == 0, "\(image): \(diff.text)")
                #expect(try Shell.check("readlink \(Shell.quote(oracle))/tree/sub/link") == "config.ini\n")
            }
        }
    }

    @Test func hibernatedVolumeIsReadOnlyWithOneWarningUnlessRemoveHiberfile() throws {
        let dir = try TempDir("ntfsw-hiber")
        let image = try NTFSImages.volume(at: dir.file("hiber.img"), script: """
            echo windows > a.txt
            { printf 'hibr'; head -c 8188 /dev/zero; } > hiberfil.sys
            """)
        let before = try Self.sha256(image)
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        do {
            defer { m.close() }
            let warnings = m.output.stderr.split(separator: "\n")
            #expect(warnings.count == 1 && warnings[0].contains("Windows is hibernated") && warnings[0].contains("read-only"), "\(m.output.stderr)")
            let touch = try Shell.run("touch \(Shell.quote(m.path))/new 2>&1")
            #expect(touch.status != 0 && touch.text.contains("Read-only file system"), "\(touch.text)")
            #expect(try Shell.check("cat \(Shell.quote(m.path))/a.txt") == "windows\n")
        }
        let edit = try ImageMountBinary.run(["edit", "-a", image, "/a.txt", "-e", "s/windows/linux/"])
        #expect(edit.status != 0 && edit.stderr.contains("Windows is hibernated") && edit.stderr.contains("see the warning above"), "\(edit.stderr)")
        #expect(try Self.sha256(image) == before)
        // remove_hiberfile, as ntfs-3g spells it: writable, hiberfil.sys deleted at the first change.
        let w = try FuseMount(images: [image], arguments: ["-m", "/dev/sda:/:remove_hiberfile", "--rw"])
        do {
            defer { w.close() }
            #expect(w.output.stderr.isEmpty, "\(w.output.stderr)")
            try Shell.check("echo linux > \(Shell.quote(w.path))/new")
            #expect(!FileManager.default.fileExists(atPath: w.path + "/hiberfil.sys"))
        }
        let fix = try Shell.run("ntfsfix -n \(Shell.quote(image)) 2>&1")
        #expect(fix.status == 0, "\(fix.text)")
        try Self.withNtfs3g(image) { (oracle: String) throws in
            #expect(try Shell.check("ls \(Shell.quote(oracle))") == "a.txt\nnew\n")
        }
    }
}
