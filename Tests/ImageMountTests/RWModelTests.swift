import Foundation
import Testing
import TestSupport

/// A randomized model test: thousands of file operations (create, write, truncate, rename,
/// unlink, mkdir, rmdir, link, read) chosen by a seeded generator are applied both to a `--rw`
/// mount and to a host directory, through the same system calls. Every step must give the same
/// result (success, or the same errno), reads must return the same bytes, and the two trees
/// must stay equal; after unmounting, e2fsck must be clean and the kernel must see the same tree.
@Suite(.serialized)
struct RWModelTests {
    /// Paths the operations pick from: a few directories, a few names each, so that operations
    /// collide (rename over existing files, rmdir of non-empty directories, ...).
    static let directories = ["", "a", "b", "a/c"]
    static let names = ["f0", "f1", "f2", "f3", "a", "b", "c"]

    struct Step: CustomStringConvertible {
        let description: String
        let apply: (String) -> (Int32, [UInt8])
    }

    static func path(_ rng: inout SplitMix64) -> String {
        let dir = directories[Int(rng.next() % UInt64(directories.count))]
        let name = names[Int(rng.next() % UInt64(names.count))]
        return dir.isEmpty ? name : dir + "/" + name
    }

    /// One random operation; `apply(root)` runs it under `root` and returns (errno or 0, data read).
    static func step(_ rng: inout SplitMix64) -> Step {
        let p = path(&rng), q = path(&rng)
        let offset = Int(rng.next() % 200_000)
        let length = Int(rng.next() % 70_000)
        let seed = UInt8(truncatingIfNeeded: rng.next())
        let size = Int(rng.next() % 150_000)
        switch rng.next() % 12 {
        case 0, 1:
            return Step(description: "write \(p) @\(offset) +\(length)") { root in
                let fd = open(root + "/" + p, O_WRONLY | O_CREAT, 0o644)
                guard fd >= 0 else { return (errno, []) }
                defer { close(fd) }
                let data = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
                let n = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
                return (n < 0 ? errno : 0, [])
            }
        case 2:
            return Step(description: "create-excl \(p)") { root in
                let fd = open(root + "/" + p, O_WRONLY | O_CREAT | O_EXCL, 0o600)
                if fd >= 0 { close(fd); return (0, []) }
                return (errno, [])
            }
        case 3:
            return Step(description: "truncate \(p) \(size)") { root in
                (truncate(root + "/" + p, off_t(size)) == 0 ? 0 : errno, [])
            }
        case 4, 5:
            return Step(description: "rename \(p) \(q)") { root in
                (rename(root + "/" + p, root + "/" + q) == 0 ? 0 : errno, [])
            }
        case 6:
            return Step(description: "unlink \(p)") { root in (unlink(root + "/" + p) == 0 ? 0 : errno, []) }
        case 7:
            return Step(description: "mkdir \(p)") { root in (mkdir(root + "/" + p, 0o755) == 0 ? 0 : errno, []) }
        case 8:
            return Step(description: "rmdir \(p)") { root in (rmdir(root + "/" + p) == 0 ? 0 : errno, []) }
        case 9:
            return Step(description: "link \(p) \(q)") { root in (link(root + "/" + p, root + "/" + q) == 0 ? 0 : errno, []) }
        default:
            return Step(description: "read \(p)") { root in
                let fd = open(root + "/" + p, O_RDONLY)
                guard fd >= 0 else { return (errno, []) }
                defer { close(fd) }
                var st = stat()
                fstat(fd, &st)
                if st.st_mode & S_IFMT == S_IFDIR { return (EISDIR, []) }
                var data = [UInt8](repeating: 0, count: Int(st.st_size) + 10)
                let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
                return (n < 0 ? errno : 0, Array(data.prefix(max(n, 0))))
            }
        }
    }

    /// Type, size, link count and content digest of everything under `root`.
    static func snapshot(_ root: String) throws -> String {
        try Shell.check("cd \(Shell.quote(root)) && find . ! -path './lost+found*' ! -path . -printf '%y %s %n %p\\n' | " +
                        "awk '$1 == \"d\" { $2 = \"-\" } { print }' | LC_ALL=C sort && " +
                        "find . -type f ! -path './lost+found*' -print0 | LC_ALL=C sort -z | xargs -0r md5sum")
    }

    @Test func randomOperationsMatchTheHost() throws {
        let dir = try TempDir("imagemount-model")
        let image = dir.file("fs.img")
        try Shell.check("truncate -s 64M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -b 1024 \(Shell.quote(image))")
        let host = dir.file("host")
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: false)
        var rng = SplitMix64(seed: 0x5EED_2026)
        let steps = 6000
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        do {
            defer { m.close() }
            var mismatches: [String] = []
            for i in 0..<steps {
                let s = Self.step(&rng)
                let ours = s.apply(m.path), theirs = s.apply(host)
                if ours.0 != theirs.0 || ours.1 != theirs.1 {
                    mismatches.append("step \(i) \(s): mount \(ours.0)/\(ours.1.count) bytes, host \(theirs.0)/\(theirs.1.count) bytes")
                    if mismatches.count > 5 { break }
                }
                if i % 500 == 499 {
                    let a = try Self.snapshot(m.path), b = try Self.snapshot(host)
                    if a != b { mismatches.append("trees differ after step \(i):\nmount:\n\(a)\nhost:\n\(b)"); break }
                }
            }
            #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
            #expect(try Self.snapshot(m.path) == Self.snapshot(host))
        }
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        let k = try KernelMount(image: image)
        defer { k.close() }
        #expect(try Self.snapshot(k.path) == Self.snapshot(host))
    }
}
