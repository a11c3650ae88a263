import Foundation
import Testing
import TestSupport

/// POSIX ACLs through a `--rw` mount behave as on the kernel's ext4: new files, directories and
/// nodes take their directory's default ACL (masking the requested mode instead of the umask),
/// new directories pass the default ACL on, and chmod rewrites an access ACL's owner, mask and
/// other entries. The same script runs on our mount and on a read-write kernel mount of a copy
/// of the same image; getfacl and the modes must agree, and e2fsck must be clean.
@Suite(.serialized) struct ACLInheritanceTests {
    static let script = """
        set -e
        umask 027
        cd "$1"
        for d in acl plain; do
            mkdir $d/sub; mkdir -m 0777 $d/sub2; touch $d/f; mknod $d/p p; (umask 0; touch $d/f0)
            python3 -c "import os; os.close(os.open('$d/f7', os.O_CREAT | os.O_WRONLY, 0o640))"
            mkdir $d/sub/deeper; touch $d/sub/deeper/x; ln -s f $d/l
        done
        chmod 0751 acl/f acl/sub; chmod g-w acl/p
        setfacl -m u:99:r plain/f; chmod 600 plain/f
        find . ! -path './lost*' | sort | while read -r f; do [ -L "$f" ] || getfacl -np "$f"; done
        find . ! -path './lost*' -printf '%m %y %p\\n' | sort -k3
        """

    @Test func defaultACLsAreInheritedAndChmodUpdatesAccessACLs() throws {
        let dir = try TempDir("imagemount-acl")
        let ours = dir.file("ours.img"), kernel = dir.file("kernel.img")
        try Shell.check("truncate -s 64M \(Shell.quote(ours)) && mke2fs -q -F -t ext4 \(Shell.quote(ours))")
        do {
            let k = try KernelMount(image: ours, writable: true)
            defer { k.close() }
            try Shell.check("mkdir \(Shell.quote(k.path))/acl \(Shell.quote(k.path))/plain && " +
                            "setfacl -d -m u:1234:rwx,g::r-x,o::--- \(Shell.quote(k.path))/acl && " +
                            "setfacl -d -m m::rw- \(Shell.quote(k.path))/acl")
        }
        try Shell.check("cp \(Shell.quote(ours)) \(Shell.quote(kernel))")
        let script = dir.file("script.sh")
        try Data(Self.script.utf8).write(to: URL(fileURLWithPath: script))

        let fromMount: String
        do {
            let m = try FuseMount(images: [ours], arguments: ["--rw"])
            defer { m.close() }
            fromMount = try Shell.check("bash \(Shell.quote(script)) \(Shell.quote(m.path))")
        }
        let fromKernel: String
        do {
            let k = try KernelMount(image: kernel, writable: true)
            defer { k.close() }
            fromKernel = try Shell.check("bash \(Shell.quote(script)) \(Shell.quote(k.path))")
        }
        #expect(fromMount.contains("default:user:1234:rwx"), "\(fromMount)")
        #expect(fromMount == fromKernel, "ours:\n\(fromMount)\nkernel:\n\(fromKernel)")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(ours)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }
}

/// copy-in leaves what `tar -xp` in the guest (virt-copy-in's tar-in) would: the target
/// directory's default ACL inherited by what arrives, masked by the sources' modes; a source's
/// own ACL, which copy-in copies with the other xattrs, replaces the inherited one.
@Suite(.serialized) struct CopyInACLTests {
    @Test func copyInInheritsLikeTar() throws {
        let dir = try TempDir("imagemount-acl-copyin")
        let ours = dir.file("ours.img"), kernel = dir.file("kernel.img"), src = dir.file("src")
        try Shell.check("""
            truncate -s 64M \(Shell.quote(ours)) && mke2fs -q -F -t ext4 \(Shell.quote(ours))
            mkdir -p \(Shell.quote(src))/d/e && printf x > \(Shell.quote(src))/f640 && chmod 640 \(Shell.quote(src))/f640
            printf y > \(Shell.quote(src))/own && setfacl -m u:77:rw \(Shell.quote(src))/own
            mkfifo -m 600 \(Shell.quote(src))/d/fifo && chmod 750 \(Shell.quote(src))/d && chmod 705 \(Shell.quote(src))/d/e
            ln -s f640 \(Shell.quote(src))/link
            """)
        do {
            let k = try KernelMount(image: ours, writable: true)
            defer { k.close() }
            try Shell.check("mkdir \(Shell.quote(k.path))/acl && setfacl -d -m u:1234:rwx,g::r-x,o::--- \(Shell.quote(k.path))/acl")
        }
        try Shell.check("cp \(Shell.quote(ours)) \(Shell.quote(kernel))")
        try ImageMountBinary.check(["copy-in", "-a", ours, src, "/acl"])
        let describe = "cd \"$0\" && find acl | sort | while read -r f; do [ -L \"$f\" ] || getfacl -np \"$f\"; done && find acl -printf '%m %y %p\\n' | sort -k3"
        let k = try KernelMount(image: kernel, writable: true)
        try Shell.check("tar -C \(Shell.quote(dir.path)) -cf - src | tar -C \(Shell.quote(k.path))/acl -xpf - && " +
                        "cd \(Shell.quote(dir.path)) && getfacl -np src/own | (cd \(Shell.quote(k.path))/acl && setfacl --restore=-)")
        let fromKernel = try Shell.check("bash -c \(Shell.quote(describe)) \(Shell.quote(k.path))")
        k.close()
        // What copy-in stored, as the kernel reads it.
        let mounted = try KernelMount(image: ours)
        let fromOurs = try Shell.check("bash -c \(Shell.quote(describe)) \(Shell.quote(mounted.path))")
        mounted.close()
        #expect(fromOurs.contains("user:1234:rwx") && fromOurs.contains("user:77:rw-"), "\(fromOurs)")
        #expect(fromOurs == fromKernel, "ours:\n\(fromOurs)\nkernel (tar):\n\(fromKernel)")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(ours)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }
}
