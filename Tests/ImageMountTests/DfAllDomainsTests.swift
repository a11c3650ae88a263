import Foundation
import Testing
import TestSupport

/// `df` with no -a and no -d examines every libvirt domain, as virt-df does: rows in domain-name
/// order, each domain examined in its own process (`-P` at a time), a failing domain reported
/// while the others go on.
@Suite struct DfAllDomainsTests {
    func domainXML(_ name: String, uuid: String, disks: [(path: String, format: String)]) -> String {
        let items = disks.map { "<disk type='file' device='disk'><driver name='qemu' type='\($0.format)'/><source file='\($0.path)'/><target dev='vda'/></disk>" }
        return "<domain type='kvm'><name>\(name)</name><uuid>\(uuid)</uuid><devices>\(items.joined())</devices></domain>"
    }

    /// A libvirt config folder with domains `zeta` (qcow2 over ext4), `alpha` (two raw disks,
    /// ext4 and XFS), `mid-broken` (a missing disk) and `garbage` (an image of random bytes),
    /// plus the `autostart` folder libvirt keeps there.
    func fleet() throws -> (dir: TempDir, ext4: String, xfs: String) {
        let ext4 = try Fixtures.image("ext4", type: "ext4")
        let dir = try TempDir()
        let xfs = dir.file("xfs.img")
        _ = try Shell.check("truncate -s 300M \(Shell.quote(xfs)) && mkfs.xfs -q \(Shell.quote(xfs))")
        let garbage = dir.file("garbage.img")
        _ = try Shell.check("head -c 4M /dev/urandom > \(Shell.quote(garbage))")
        let domains = [
            ("zeta", "00000000-0000-0000-0000-00000000000z", [(try Fixtures.qcow2(ext4), "qcow2")]),
            ("alpha", "00000000-0000-0000-0000-00000000000a", [(ext4, "raw"), (xfs, "raw")]),
            ("mid-broken", "00000000-0000-0000-0000-00000000000b", [(dir.file("missing.img"), "raw")]),
            ("garbage", "00000000-0000-0000-0000-00000000000g", [(garbage, "raw")]),
        ]
        for (name, uuid, disks) in domains {
            try Data(domainXML(name, uuid: uuid, disks: disks).utf8).write(to: URL(fileURLWithPath: dir.file(name + ".xml")))
        }
        _ = try Shell.check("mkdir \(Shell.quote(dir.file("autostart")))")
        return (dir, ext4, xfs)
    }

    /// What `df -d NAME` prints for one domain, without its title line.
    func rows(_ name: String, env: [String: String], extra: [String] = []) throws -> String {
        let text = try ImageMountBinary.check(["df", "-d", name] + extra, environment: env)
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n")
    }

    @Test func everyDomainInNameOrderWithFailuresReported() throws {
        let (dir, _, _) = try fleet()
        let env = ["IMAGEMOUNT_LIBVIRT_DIR": dir.path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let expected = try rows("alpha", env: env) + rows("zeta", env: env)
        #expect(expected.contains("alpha:/dev/sda ") && expected.contains("alpha:/dev/sdb ") && expected.contains("zeta:/dev/sda "))
        for parallel in ["1", "3", "0"] {
            let all = try ImageMountBinary.run(["df", "-P", parallel], environment: env)
            // The failing domain costs only its own rows; the status says something failed.
            #expect(all.status == 1, "\(all.stderr)")
            #expect(all.text == "Filesystem                           1K-blocks       Used  Available  Use%\n" + expected, "-P \(parallel): \(all.text)")
            #expect(all.stderr.contains("imagemount: mid-broken: ") && all.stderr.contains("missing.img"), "\(all.stderr)")
            // A disk of random bytes holds no filesystem: no row, and no failure either.
            #expect(!all.text.contains("garbage"))
        }
        let human = try ImageMountBinary.run(["df", "-h", "--uuid"], environment: env)
        // A label over 36 columns gets a line of its own (virt-df output.c): the figures follow.
        let names = human.text.split(separator: "\n").dropFirst().filter { !$0.hasPrefix(" ") }.map { $0.split(separator: ":").first.map(String.init) ?? "" }
        #expect(names == ["00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000z"],
                "\(human.text)")
        let csv = try ImageMountBinary.run(["df", "--csv", "-i"], environment: env)
        #expect(csv.text.hasPrefix("VirtualMachine,Filesystem,Inodes,IUsed,IFree,IUse%\nalpha,/dev/sda,"), "\(csv.text)")
    }

    /// With virsh installed the domains are the ones `virsh [-c URI] list --all --name` names,
    /// and each one's XML is `virsh dumpxml`'s.
    @Test func domainsComeFromVirshWhenInstalled() throws {
        let (dir, _, _) = try fleet()
        let bin = try TempDir()
        let log = bin.file("calls")
        let script = """
            #!/bin/sh
            echo "$@" >> \(Shell.quote(log))
            [ "$1" = -c ] && shift 2
            case "$1" in
            list) printf 'zeta\\nalpha\\n\\n' ;;
            dumpxml) cat \(Shell.quote(dir.path))/"$2".xml ;;
            *) exit 1 ;;
            esac
            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: bin.file("virsh")))
        _ = try Shell.check("chmod +x \(Shell.quote(bin.file("virsh")))")
        let env = ["PATH": bin.path + ":/usr/sbin:/usr/bin:/sbin:/bin", "IMAGEMOUNT_LIBVIRT_DIR": "/nonexistent"]
        let all = try ImageMountBinary.run(["df", "-c", "test:///default"], environment: env)
        #expect(all.status == 0, "\(all.stderr)")
        let lines = all.text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4 && lines[1].hasPrefix("alpha:/dev/sda ") && lines[2].hasPrefix("alpha:/dev/sdb ") && lines[3].hasPrefix("zeta:/dev/sda "),
                "\(all.text)")
        let calls = try String(contentsOfFile: log, encoding: .utf8)
        #expect(calls.hasPrefix("-c test:///default list --all --name\n") && calls.contains("-c test:///default dumpxml alpha"), "\(calls)")
    }

    @Test func noDomainsNoOutput() throws {
        let dir = try TempDir()
        let empty = try ImageMountBinary.run(["df"], environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(empty.status == 0 && empty.text.isEmpty && empty.stderr.isEmpty, "\(empty.stderr)")
        let missing = try ImageMountBinary.run(["df"], environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.file("nope"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(missing.status == 1 && missing.stderr.contains("nope") && missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")
        // Other commands still want a drive.
        let cat = try ImageMountBinary.run(["cat", "/etc/hostname"], environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.path])
        #expect(cat.status == 1 && cat.stderr.contains("no disk image given"))
    }
}
