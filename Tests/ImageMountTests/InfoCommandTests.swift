import Foundation
import Testing
import TestSupport

/// `imagemount info` against `qemu-img info`, and `--snapshot` through a command.
@Suite struct InfoCommandTests {
    /// A qcow2 over a qcow2 over raw, the top one with two internal snapshots of different contents.
    static func chain() throws -> (dir: TempDir, top: String) {
        let dir = try TempDir()
        let raw = try Fixtures.image("ext4", type: "ext4")
        let q = Shell.quote
        try Shell.check("cd \(q(dir.path)) && cp --sparse=always \(q(raw)) base.raw && " +
                        "qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 && " +
                        "qemu-img create -q -f qcow2 -o cluster_size=4096 -b \(q(dir.file("mid.qcow2"))) -F qcow2 top.qcow2")
        return (dir, dir.file("top.qcow2"))
    }

    @Test func textAndJsonMatchQemuImg() throws {
        let (dir, top) = try Self.chain()
        for args in [[String](), ["--backing-chain"]] {
            let ours = try ImageMountBinary.run(["info", "-a", top] + args)
            #expect(ours.status == 0, "\(ours.stderr)")
            let theirs = try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img info \(args.joined(separator: " ")) \(Shell.quote(top))")
            #expect(ours.text == theirs)
        }
        let json = try ImageMountBinary.run(["info", "--json", "-a", top])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        #expect(object?["format"] as? String == "qcow2")
        #expect(object?["cluster-size"] as? Int == 4096)
        #expect(object?["backing-filename"] as? String == dir.file("mid.qcow2"))
    }

    @Test func snapshotOptionOpensTheSavedState() throws {
        let dir = try TempDir()
        let image = dir.file("snap.qcow2")
        try Shell.check("qemu-img convert -O qcow2 \(Shell.quote(try Fixtures.image("ext4", type: "ext4"))) \(Shell.quote(image))")
        try Shell.check("qemu-img snapshot -c before \(Shell.quote(image))")
        // Change /etc/hostname's data block in place after the snapshot (same length).
        let block = try Shell.check("debugfs -R 'bmap /etc/hostname 0' \(Shell.quote(try Fixtures.image("ext4", type: "ext4"))) 2>/dev/null")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let blockSize = try Shell.check("dumpe2fs -h \(Shell.quote(try Fixtures.image("ext4", type: "ext4"))) 2>/dev/null | sed -n 's/^Block size: *//p'")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let offset = try #require(Int(block)) * (try #require(Int(blockSize)))
        try Shell.check("qemu-io -c 'write -P 0x41 \(offset) 12' \(Shell.quote(image)) >/dev/null")
        let now = try ImageMountBinary.run(["cat", "-a", image, "/etc/hostname"])
        #expect(now.text == "AAAAAAAAAAAA\n", "\(now.stderr)")
        for name in ["before", "1"] {
            let then = try ImageMountBinary.run(["cat", "--snapshot", name, "-a", image, "/etc/hostname"])
            #expect(then.text == "sample-guest\n", "\(name): \(then.stderr)")
        }
        let missing = try ImageMountBinary.run(["cat", "--snapshot", "nope", "-a", image, "/etc/hostname"])
        #expect(missing.status == 1 && missing.stderr.contains("nope"), "\(missing.stderr)")
    }
}

extension InfoCommandTests {
    /// qemu-img's own spelling, --output=json|human, beside --json: the same text as qemu-img
    /// info --output=... prints for the same image.
    @Test func outputOptionAsQemuImg() throws {
        let (dir, top) = try Self.chain()
        for format in ["human", "json"] {
            let ours = try ImageMountBinary.run(["info", "--output=\(format)", "-a", top])
            #expect(ours.status == 0, "\(ours.stderr)")
            let theirs = try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img info --output=\(format) \(Shell.quote(top))")
            if format == "human" {
                #expect(ours.text == theirs)
            } else {
                let a = try JSONSerialization.jsonObject(with: ours.stdout) as? [String: Any]
                let b = try JSONSerialization.jsonObject(with: Data(theirs.utf8)) as? [String: Any]
                for key in ["format", "virtual-size", "cluster-size", "backing-filename", "backing-filename-format"] {
                    #expect("\(a?[key] ?? "-")" == "\(b?[key] ?? "-")", "\(key)")
                }
                #expect(ours.text == (try ImageMountBinary.check(["info", "--json", "-a", top])), "--output=json is --json")
            }
        }
        for bad in [["--output=xml"], ["--json", "--output=human"]] {
            let result = try ImageMountBinary.run(["info", "-a", top] + bad)
            #expect(result.status != 0 && result.stdout.isEmpty, "\(bad)")
        }
    }
}
