import ArgumentParser
import GuestFSInspect

/// A command that, given no -a and no -d, examines every libvirt domain (virt-df).
protocol ExaminesAllDomains: ParsableCommand {}

extension ImageOptions {
    /// Every libvirt domain, running or not, sorted by name as virt-df sorts them
    /// (guestfs-tools df/domains.c: strcmp order): from `virsh list --all --name` when virsh is
    /// installed, else the persistent definitions in libvirt's config folder.
    static func allDomainNames(connect: String?) throws -> [String] {
        var names: [String]
        if Subprocess.exists("virsh") {
            let result = try Subprocess.run(["virsh"] + (connect.map { ["-c", $0] } ?? []) + ["list", "--all", "--name"])
            guard result.status == 0 else { throw CLIError(message: "virsh list --all --name failed (exit \(result.status))") }
            names = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n")
                .map { String($0.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
                .filter { !$0.isEmpty }
        } else {
            names = try LibvirtDomain.definedNames()
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes($1.utf8) }
    }
}
