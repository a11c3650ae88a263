import Foundation
import Testing
import TestSupport

/// The probing policy (README, "Probing"; CVE-2010-3851): a raw disk whose guest wrote a
/// qcow2 header naming a host file as its backing file (or external data file) into sector 0
/// must not make imagemount open that file when the format was probed. `--format`, or a file
/// name whose extension names the probed format, vouches for it.
@Suite(.serialized)
struct ProbingPolicyTests {
    /// A raw ext4 disk whose first 1024 bytes (unused by ext4) now hold a qcow2 header naming
    /// `secret` as backing file (`dataFile`: as external data file instead), and the secret.
    static func poisoned(in dir: TempDir, dataFile: Bool = false) throws -> (disk: String, secret: String) {
        let root = dir.file("root"), disk = dir.file("disk.img"), secret = dir.file("secret"), header = dir.file("header.qcow2")
        try Shell.check("mkdir -p \(Shell.quote(root))/etc && echo guest > \(Shell.quote(root))/etc/hostname && " +
                        "printf 'TOPSECRET\\n%.0s' $(seq 1 100000) > \(Shell.quote(secret)) && " +
                        "truncate -s 16M \(Shell.quote(disk)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(disk)) && " +
                        (dataFile
                            ? "qemu-img create -q -f qcow2 -o data_file=\(Shell.quote(secret)) \(Shell.quote(header)) 1M"
                            : "qemu-img create -q -f qcow2 -u -b \(Shell.quote(secret)) -F raw \(Shell.quote(header)) 1M") +
                        // The guest's write, seen from the host: the header (with the name) over the first 1 KiB.
                        " && dd if=\(Shell.quote(header)) of=\(Shell.quote(disk)) bs=1024 count=1 conv=notrunc status=none")
        return (disk, secret)
    }

    /// Runs imagemount under strace and returns (result, whether `secret` was opened).
    static func traced(_ arguments: [String], secret: String, in dir: TempDir) throws -> (Shell.Output, Bool) {
        let log = dir.file("strace.log")
        let command = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log, try ImageMountBinary.path()] + arguments
        let r = try Shell.run(command.map(Shell.quote).joined(separator: " "))
        let trace = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return (r, trace.contains(secret))
    }

    @Test(arguments: [false, true])
    func probedHeaderNeverOpensTheHostFile(dataFile: Bool) throws {
        let dir = try TempDir("imagemount-probe")
        let (disk, secret) = try Self.poisoned(in: dir, dataFile: dataFile)
        let before = try Shell.check("sha256sum < \(Shell.quote(disk))")
        // info shows the header's backing name (as qemu-img info does) without opening it.
        let (info, infoOpened) = try Self.traced(["info", "-a", disk], secret: secret, in: dir)
        #expect(!infoOpened && info.status == 0 && info.text.contains("file format: qcow2"), "\(info.text) \(info.stderr)")
        var commands = [["cat", "-a", disk, "/etc/hostname"], ["ls", "-a", disk, "/"], ["filesystems", "-a", disk], ["check", "-a", disk]]
        if !dataFile { commands.append(["info", "--backing-chain", "-a", disk]) }
        for command in commands {
            let (r, opened) = try Self.traced(command, secret: secret, in: dir)
            #expect(!opened, "\(command): the host file was opened")
            #expect(r.status != 0, "\(command): exit 0")
            #expect(r.stderr.contains(disk) && r.stderr.contains("format was probed") && r.stderr.contains("--format=qcow2"), "\(command): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(command): \(r.stderr)")
            #expect(!r.text.contains("TOPSECRET"))
        }
        // The user's word for raw: the disk is read as the raw disk it is.
        #expect(try ImageMountBinary.check(["cat", "--format=raw", "-a", disk, "/etc/hostname"]) == "guest\n")
        // Position rule: --format after the -a does not apply to it (and is an error, as in libguestfs).
        let late = try ImageMountBinary.run(["cat", "-a", disk, "--format=raw", "/etc/hostname"])
        #expect(late.status == 1 && late.stderr.contains("comes after the last -a"), "\(late.stderr)")
        #expect(try Shell.check("sha256sum < \(Shell.quote(disk))") == before)
    }

    /// Real qcow2 overlays keep working: by extension, or with --format.
    @Test func vouchedOverlaysOpenTheirBackingFiles() throws {
        let dir = try TempDir("imagemount-probe")
        let root = dir.file("root"), base = dir.file("base.raw")
        try Shell.check("mkdir -p \(Shell.quote(root))/etc && echo based > \(Shell.quote(root))/etc/hostname && " +
                        "truncate -s 16M \(Shell.quote(base)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(base)) && " +
                        "qemu-img create -q -f qcow2 -b base.raw -F raw \(Shell.quote(dir.file("vm.qcow2"))) && " +
                        "qemu-img create -q -f qcow2 -b base.raw -F raw \(Shell.quote(dir.file("vm.img")))")
        #expect(try ImageMountBinary.check(["cat", "-a", dir.file("vm.qcow2"), "/etc/hostname"]) == "based\n")
        let probed = try ImageMountBinary.run(["cat", "-a", dir.file("vm.img"), "/etc/hostname"])
        #expect(probed.status != 0 && probed.stderr.contains("base.raw") && probed.stderr.contains("--format=qcow2"), "\(probed.stderr)")
        #expect(try ImageMountBinary.check(["cat", "--format=qcow2", "-a", dir.file("vm.img"), "/etc/hostname"]) == "based\n")
    }
}
