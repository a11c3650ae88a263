import Foundation
import Testing
import TestSupport

/// `check` and `info --backing-chain` of qcow2 images that live on an NBD server (nbdkit's file
/// plugin serving the .qcow2 file as it is) and in Ceph RBD (`rbd import` of the file): the same
/// verdict, text and exit status as `qemu-img check` of the local file, for a clean image, one
/// with a leaked cluster and one with a refcount too low (built here, as CheckCommandTests does).
@Suite(.serialized) struct RemoteCheckTests {
    /// Clean, leaky and corrupt copies of one small qcow2, with the exit status qemu-img gives.
    static func images(in dir: TempDir) throws -> [(label: String, path: String, status: Int32)] {
        let clean = dir.file("clean.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 \(Shell.quote(clean)) 8M && qemu-io -f qcow2 -c 'write -P 1 0 200k' -c 'write -z 1M 64k' \(Shell.quote(clean)) >/dev/null")
        let table = try Shell.check("od -An -tx8 --endian=big -j48 -N8 \(Shell.quote(clean))").trimmingCharacters(in: .whitespacesAndNewlines)
        let block = try Shell.check("od -An -tx8 --endian=big -j\(try #require(UInt64(table, radix: 16))) -N8 \(Shell.quote(clean))")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let blockOffset = try #require(UInt64(block, radix: 16))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: clean)[.size] as? Int)
        // A leak: the file one cluster longer, and that cluster counted.
        let leaky = dir.file("leaky.qcow2")
        try Shell.check("cp \(Shell.quote(clean)) \(Shell.quote(leaky)) && truncate -s \(size + 65536) \(Shell.quote(leaky)) && printf '\\000\\001' | dd of=\(Shell.quote(leaky)) bs=1 seek=\(blockOffset + UInt64(size / 65536) * 2) conv=notrunc status=none")
        // An error: the header cluster, in use, with refcount 0.
        let corrupt = dir.file("corrupt.qcow2")
        try Shell.check("cp \(Shell.quote(leaky)) \(Shell.quote(corrupt)) && printf '\\000\\000' | dd of=\(Shell.quote(corrupt)) bs=1 seek=\(blockOffset) conv=notrunc status=none")
        return [("clean", clean, 0), ("leak", leaky, 3), ("corrupt", corrupt, 2)]
    }

    static func expectSameVerdict(_ drive: [String], local: String, status: Int32, _ label: String) throws {
        let theirs = try Shell.run("qemu-img check \(Shell.quote(local))")
        #expect(theirs.status == status, "\(label): qemu-img check exit \(theirs.status)")
        let ours = try ImageMountBinary.run(["check"] + drive)
        #expect(ours.status == status, "\(label): exit \(ours.status): \(ours.stderr)")
        #expect(ours.text == theirs.text, "\(label): ours\n\(ours.text)\nqemu-img\n\(theirs.text)")
        let json = try ImageMountBinary.run(["check", "--json"] + drive)
        let qemuJSON = try Shell.run("qemu-img check --output=json \(Shell.quote(local))")
        let a = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let b = try JSONSerialization.jsonObject(with: qemuJSON.stdout) as? [String: Any]
        for key in ["image-end-offset", "total-clusters", "corruptions", "leaks", "check-errors", "allocated-clusters"] {
            #expect("\(a?[key] ?? "-")" == "\(b?[key] ?? "-")", "\(label): \(key)")
        }
    }

    @Test func checkOverNBDMatchesQemuImgCheckOfTheFile() throws {
        let dir = try TempDir("imagemount-rcheck")
        for image in try Self.images(in: dir) {
            let server = try NBDServer.nbdkit("-r file file=\(Shell.quote(image.path))")
            defer { server.stop() }
            try Self.expectSameVerdict(["-a", server.uri], local: image.path, status: image.status, "nbd \(image.label)")
        }
    }

    @Test func checkOverRBDMatchesQemuImgCheckOfTheFile() throws {
        let cluster = try CephCluster.shared()
        let dir = try TempDir("imagemount-rcheck")
        for image in try Self.images(in: dir) {
            let spec = try cluster.importImage(image.path, prefix: "check").spec
            try Self.expectSameVerdict(cluster.arguments + ["-a", spec], local: image.path, status: image.status, "rbd \(image.label)")
        }
    }

    /// `info --backing-chain` of a qcow2 on an export whose backing file is a host file: the
    /// chain as `qemu-img info --backing-chain` of the local file shows it (its first image
    /// named by the URI, with no disk size), and with `--format` only, since the export's
    /// format is otherwise probed; `info` alone over NBD and RBD shows the same fields.
    @Test func infoOverNBDAndRBD() throws {
        let dir = try TempDir("imagemount-rinfo")
        let base = dir.file("base.raw"), top = dir.file("top.qcow2")
        try Shell.check("qemu-img create -q -f raw \(Shell.quote(base)) 16M && qemu-img create -q -f qcow2 -b \(Shell.quote(base)) -F raw \(Shell.quote(top))")
        let server = try NBDServer.nbdkit("-r file file=\(Shell.quote(top))")
        defer { server.stop() }
        let local = try Shell.check("qemu-img info --backing-chain \(Shell.quote(top))")
        func fields(_ text: String) -> [String] {
            text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("image:") && !$0.hasPrefix("disk size:") }
        }
        let chain = try ImageMountBinary.run(["info", "--backing-chain", "--format=qcow2", "-a", server.uri])
        #expect(chain.status == 0, "\(chain.stderr)")
        #expect(fields(chain.text) == fields(local), "ours\n\(chain.text)\nqemu-img\n\(local)")
        #expect(chain.text.hasPrefix("image: \(server.uri)\n") && chain.text.contains("disk size: unavailable"), "\(chain.text)")
        // Probed, the export may not name a host file to open.
        let probed = try ImageMountBinary.run(["info", "--backing-chain", "-a", server.uri])
        #expect(probed.status != 0 && probed.stderr.contains("--format=qcow2"), "\(probed.stderr)")
        let single = try Shell.check("qemu-img info \(Shell.quote(top))")
        let overNBD = try ImageMountBinary.run(["info", "-a", server.uri])
        #expect(overNBD.status == 0 && fields(overNBD.text) == fields(single), "\(overNBD.text)\(overNBD.stderr)\nqemu-img\n\(single)")

        let cluster = try CephCluster.shared()
        let spec = try cluster.importImage(top, prefix: "info").spec
        let overRBD = try ImageMountBinary.run(["info", "--backing-chain", "--format=qcow2"] + cluster.arguments + ["-a", spec])
        #expect(overRBD.status == 0 && fields(overRBD.text) == fields(local), "\(overRBD.text)\(overRBD.stderr)\nqemu-img\n\(local)")
    }
}
