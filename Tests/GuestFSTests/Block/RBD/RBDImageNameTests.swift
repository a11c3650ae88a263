import GuestFSBlock
import Testing

/// `RBDImageName`: QEMU's `rbd:POOL/IMAGE[@SNAP][:OPT=VAL]` and libguestfs's
/// `rbd://[HOST[:PORT]]/POOL/IMAGE[@SNAP]`, and what is refused before librados sees it.
@Suite struct RBDImageNameTests {
    typealias Option = RBDImageName.Option

    @Test func qemuSpellings() throws {
        let plain = try RBDImageName.parse("rbd:pool/disk")
        #expect(plain.pool == "pool" && plain.image == "disk" && plain.snapshot == nil && plain.namespace == nil && plain.options.isEmpty)
        let snap = try RBDImageName.parse("rbd:pool/disk@before")
        #expect(snap.image == "disk" && snap.snapshot == "before")
        let namespaced = try RBDImageName.parse("rbd:pool/tenant/disk@s1:id=ops:conf=/etc/ceph/other.conf")
        #expect(namespaced.pool == "pool" && namespaced.namespace == "tenant" && namespaced.image == "disk" && namespaced.snapshot == "s1")
        #expect(namespaced.options == [Option("id", "ops"), Option("conf", "/etc/ceph/other.conf")])
        // QEMU's escapes: a backslash takes the next character as it is.
        let escaped = try RBDImageName.parse(#"rbd:po\/ol/di\@sk:mon_host=127.0.0.1\:6789"#)
        #expect(escaped.pool == "po/ol" && escaped.image == "di@sk" && escaped.snapshot == nil)
        #expect(escaped.options == [Option("mon_host", "127.0.0.1:6789")])
        #expect(escaped.text == #"rbd:po\/ol/di\@sk:mon_host=127.0.0.1\:6789"#)
    }

    @Test func libguestfsURIs() throws {
        let bare = try RBDImageName.parse("rbd:///pool/disk")
        #expect(bare.pool == "pool" && bare.image == "disk" && bare.options.isEmpty)
        let hosted = try RBDImageName.parse("rbd://127.0.0.1:3300/pool/disk@snap")
        #expect(hosted.image == "disk" && hosted.snapshot == "snap" && hosted.options == [Option("mon_host", "127.0.0.1:3300")])
        let several = try RBDImageName.parse("rbd://a:1,b:2/pool/ns/d%20isk")
        #expect(several.namespace == "ns" && several.image == "d isk" && several.options == [Option("mon_host", "a:1,b:2")])
    }

    @Test(arguments: ["rbd:pool", "rbd:pool/", "rbd:/disk", "rbd:pool/disk@", "rbd:a/b/c/d", "rbd:pool/disk@s@t",
                      "rbd:pool/disk:log_file=/etc/passwd", "rbd:pool/disk:admin_socket=/tmp/x", "rbd:pool/disk:novalue",
                      "rbd://host", "rbd://host/pool/disk?x=1", "rbd://host/pool/di%2", "rbd://h,,i/pool/disk",
                      "rbd:pool/di\u{1}sk", "rbd://host/pool/di%0Ask", "nbd://host/x"])
    func refused(_ name: String) {
        #expect(throws: ImageError.self) { try RBDImageName.parse(name) }
    }

    @Test(arguments: ["rbd:pool/disk", "rbd://h/p/i", "rbd:///p/i"])
    func rbdNamesAreRecognised(_ name: String) { #expect(RBDImageName.isRBD(name)) }

    @Test(arguments: ["vm.img", "./rbd:pool/disk", "/images/rbd:x", "RBD-disk.img", "nbd://host/x", "rbd.img"])
    func pathsStayPaths(_ name: String) { #expect(!RBDImageName.isRBD(name)) }
}
