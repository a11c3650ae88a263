import Foundation
import Testing
import TestSupport

/// `imagemount check` reports like `qemu-img check`: the same verdict, counts and exit status.
@Suite struct CheckCommandTests {
    @Test func cleanLeakyAndCorruptImages() throws {
        let dir = try TempDir("imagemount-check")
        let path = dir.file("c.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 \(Shell.quote(path)) 8M && qemu-io -f qcow2 -c 'write -P 1 0 200k' -c 'write -z 1M 64k' \(Shell.quote(path)) >/dev/null")

        func compare(_ expectedStatus: Int32, _ label: String) throws {
            let ours = try ImageMountBinary.run(["check", "-a", path])
            let theirs = try Shell.run("qemu-img check \(Shell.quote(path))")
            #expect(ours.status == expectedStatus && theirs.status == expectedStatus, "\(label): \(ours.status) vs \(theirs.status)")
            #expect(ours.text == theirs.text, "\(label): ours\n\(ours.text)\nqemu-img\n\(theirs.text)")
            let json = try ImageMountBinary.run(["check", "-a", path, "--json"])
            let qemuJSON = try Shell.run("qemu-img check --output=json \(Shell.quote(path))")
            let a = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
            let b = try JSONSerialization.jsonObject(with: qemuJSON.stdout) as? [String: Any]
            for key in ["image-end-offset", "total-clusters", "corruptions", "leaks", "check-errors", "allocated-clusters"] {
                #expect("\(a?[key] ?? "-")" == "\(b?[key] ?? "-")", "\(label): \(key)")
            }
        }
        try compare(0, "clean")

        // A leaked cluster: one more reference counted for the first data cluster's neighbour.
        let table = try Shell.check("od -An -tx8 --endian=big -j48 -N8 \(Shell.quote(path))").trimmingCharacters(in: .whitespacesAndNewlines)
        let block = try Shell.check("od -An -tx8 --endian=big -j\(UInt64(table, radix: 16)!) -N8 \(Shell.quote(path))").trimmingCharacters(in: .whitespacesAndNewlines)
        let blockOffset = UInt64(block, radix: 16)!
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        // Extend the file by one cluster and count it: a leak.
        try Shell.check("truncate -s \(size + 65536) \(Shell.quote(path)) && printf '\\000\\001' | dd of=\(Shell.quote(path)) bs=1 seek=\(blockOffset + UInt64(size / 65536) * 2) conv=notrunc status=none")
        try compare(3, "leak")

        // A cluster in use with refcount 0: an error.
        try Shell.check("printf '\\000\\000' | dd of=\(Shell.quote(path)) bs=1 seek=\(blockOffset) conv=notrunc status=none")
        try compare(2, "corrupt")
    }

    /// An encrypted image is checked without its key (metadata only, like qemu-img check), and its
    /// LUKS header's clusters count as referenced: after a copy-in through imagemount, both
    /// checks say the same.
    @Test func encryptedImageNeedsNoKey() throws {
        let dir = try TempDir("imagemount-check")
        let raw = dir.file("fs.img")
        try Shell.check("truncate -s 32M \(Shell.quote(raw)) && mke2fs -q -F -t ext4 \(Shell.quote(raw))")
        let image = try WritableFormats.prepare(raw, format: "qcow2-luks")
        try Shell.check("head -c 300000 /dev/urandom > \(Shell.quote(dir.file("blob")))")
        try ImageMountBinary.check(["copy-in"] + WritableFormats.arguments(image, format: "qcow2-luks") + ["-a", image, dir.file("blob"), "/"])
        let ours = try ImageMountBinary.run(["check", "-a", image])
        let theirs = try Shell.run("qemu-img check \(WritableFormats.qemuName(image, format: "qcow2-luks"))")
        #expect(ours.status == 0 && theirs.status == 0, "\(ours.stderr) \(theirs.stderr)")
        #expect(ours.text == theirs.text, "ours\n\(ours.text)\nqemu-img\n\(theirs.text)")
        #expect(ours.text.contains("No errors were found"))
        // Data cannot be read without the key: a clear error naming the image.
        let cat = try ImageMountBinary.run(["cat", "-a", image, "/blob"], stdin: Data())
        #expect(cat.status != 0 && cat.stderr.contains(image) && cat.stderr.contains("no key was given"), "\(cat.stderr)")
    }
}

extension CheckCommandTests {
    /// --output=json|human as qemu-img check spells it; --json keeps working.
    @Test func outputOptionAsQemuImg() throws {
        let dir = try TempDir("imagemount-check-output")
        let path = dir.file("o.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 \(Shell.quote(path)) 8M && qemu-io -f qcow2 -c 'write -P 1 0 200k' \(Shell.quote(path)) >/dev/null")
        let human = try ImageMountBinary.run(["check", "-a", path, "--output=human"])
        let qemuHuman = try Shell.check("qemu-img check --output=human \(Shell.quote(path))")
        #expect(human.status == 0 && human.text == qemuHuman)
        let json = try ImageMountBinary.run(["check", "-a", path, "--output", "json"])
        let flagJSON = try ImageMountBinary.check(["check", "-a", path, "--json"])
        #expect(json.status == 0 && json.text == flagJSON)
        let a = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(try Shell.check("qemu-img check --output=json \(Shell.quote(path))").utf8)) as? [String: Any]
        for key in ["image-end-offset", "total-clusters", "check-errors", "allocated-clusters", "format"] {
            #expect("\(a?[key] ?? "-")" == "\(b?[key] ?? "-")", "\(key)")
        }
        let conflict = try ImageMountBinary.run(["check", "-a", path, "--json", "--output=human"])
        #expect(conflict.status != 0 && conflict.stderr.contains("--output=human"), "\(conflict.stderr)")
    }
}
