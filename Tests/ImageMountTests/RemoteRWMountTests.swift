import Foundation
import Testing
import TestSupport

/// A `--rw` FUSE mount workload over a writable qemu-nbd export and over an RBD image: after
/// unmounting, the tree (names, types, sizes, modes, link targets, contents) equals what the
/// same workload makes of a local copy mounted by imagemount, and `e2fsck -fn` of the image
/// fetched through the same source (`qemu-img convert` from the export, `rbd export`) is clean.
/// Over RBD a snapshot taken before the writes still reads as the image did.
@Suite(.serialized) struct RemoteRWMountTests {
    /// Creates, writes (a few MiB, some in odd-sized pieces), renames, unlinks, mkdir/rmdir,
    /// chmod, truncate up and down, symlinks, a hard link, overwrite in place.
    static let workload = """
        set -e
        mkdir -p "$M/w/a/b/c" "$M/w/gone"
        head -c 4000000 "$IN" > "$M/w/big"
        dd if="$IN" of="$M/w/odd" bs=12345 count=77 status=none
        printf 'one\\n' > "$M/w/a/b/c/f"; printf 'two\\n' >> "$M/w/a/b/c/f"
        mv "$M/w/a/b/c/f" "$M/w/moved"
        mv "$M/w/odd" "$M/w/a/odd-renamed"
        truncate -s 1000001 "$M/w/big"
        truncate -s 9000000 "$M/w/a/odd-renamed"
        chmod 600 "$M/w/moved"; chmod 4711 "$M/w/a/odd-renamed"
        ln -s ../moved "$M/w/a/link"
        ln "$M/w/moved" "$M/w/hard"
        printf 'XYZ' | dd of="$M/w/big" bs=1 seek=500000 conv=notrunc status=none
        rm "$M/etc/hostname"
        rmdir "$M/w/gone" "$M/w/a/b/c"
        for i in $(seq 1 60); do printf '%s\\n' "$i" > "$M/w/a/b/n$i"; done
        for i in $(seq 1 60 | grep 5); do rm "$M/w/a/b/n$i"; done
        sync
        """

    /// The tree of `image` as copy-out gives it, with contents' digests.
    static func tree(_ drive: [String]) throws -> String {
        let out = try TempDir()
        try ImageMountBinary.check(["copy-out"] + drive + ["/", out.path])
        return try Shell.check("cd \(Shell.quote(out.path)) && find . -printf '%p %y %s %m %l %n\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum")
    }

    static func runWorkload(_ drive: [String], input: String) throws {
        let m = try FuseMount(images: [], arguments: drive + ["--rw", "-m", "/dev/sda"])
        defer { m.close() }
        let run = try Shell.run("M=\(Shell.quote(m.path)); IN=\(Shell.quote(input)); " + workload)
        #expect(run.status == 0, "\(run.stderr)")
        m.close()
    }

    /// The local copy, through imagemount: the expected tree.
    static func expected(_ raw: String, in dir: TempDir, input: String) throws -> String {
        let local = dir.file("local.img")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(local))")
        try runWorkload(["-a", local], input: input)
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(local))")
        #expect(fsck.status == 0, "local: \(fsck.text)")
        return try tree(["-a", local])
    }

    static func input(in dir: TempDir) throws -> String {
        let path = dir.file("input.bin")
        try Shell.check("head -c 5000000 /dev/urandom > \(Shell.quote(path))")
        return path
    }

    @Test func workloadOverAWritableNBDExport() throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        let dir = try TempDir("imagemount-rrw")
        let input = try Self.input(in: dir)
        let expected = try Self.expected(raw, in: dir, input: input)
        let served = dir.file("served.img")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(served))")
        let server = try NBDServer.qemuNBD(served, format: "raw", writable: true)
        defer { server.stop() }
        try Self.runWorkload(["--format=raw", "-a", server.uri], input: input)
        // Read back through the export itself, before the server goes.
        let fetched = dir.file("fetched.img")
        try Shell.check("qemu-img convert -f raw -O raw \(Shell.quote(server.uri)) \(Shell.quote(fetched))")
        #expect(try Self.tree(["--format=raw", "-a", server.uri]) == expected)
        server.stop()
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(fetched))")
        #expect(fsck.status == 0, "\(fsck.text)\(fsck.stderr)")
        let onDisk = try Self.tree(["-a", fetched])
        #expect(onDisk == expected)
        #expect(onDisk.contains("./root/w/a/link l 8 777 ../moved 1") && onDisk.contains("./root/w/hard f 8 600  2") && !onDisk.contains("./root/etc/hostname "), "\(onDisk.prefix(1500))")
        #expect(try Shell.run("cmp \(Shell.quote(fetched)) \(Shell.quote(served))").status == 0)
    }

    @Test func workloadOverRBDKeepsASnapshotAsItWas() throws {
        let cluster = try CephCluster.shared()
        let raw = try Fixtures.image("ext4", type: "ext4")
        let dir = try TempDir("imagemount-rrw")
        let input = try Self.input(in: dir)
        let expected = try Self.expected(raw, in: dir, input: input)
        let (name, spec) = try cluster.importImage(raw, prefix: "rrw")
        try cluster.rbd("snap create rbd/\(name)@before")
        let before = try Self.tree(cluster.arguments + ["-a", spec + "@before"])
        try Self.runWorkload(cluster.arguments + ["-a", spec], input: input)
        #expect(try Self.tree(cluster.arguments + ["-a", spec]) == expected)
        try cluster.exportImage(name, to: dir.file("export.img"))
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(dir.file("export.img")))")
        #expect(fsck.status == 0, "\(fsck.text)\(fsck.stderr)")
        #expect(try Self.tree(["-a", dir.file("export.img")]) == expected)
        // The snapshot: as before the writes, and as the image it was imported from.
        let after = try Self.tree(cluster.arguments + ["-a", spec + "@before"])
        #expect(after == before)
        #expect(after == (try Self.tree(["-a", raw])))
        try cluster.exportImage(name + "@before", to: dir.file("snap.img"))
        #expect(try Shell.run("cmp \(Shell.quote(dir.file("snap.img"))) \(Shell.quote(raw))").status == 0)
    }
}
