import GuestFSBlock
import Testing

/// `NBDURI`: which `-a` values are NBD URIs (the rest stay paths), and what is refused before
/// libnbd sees it.
@Suite struct NBDURITests {
    @Test(arguments: ["nbd://example.com/disk", "NBD://host:10809/", "nbds://host/x", "nbd+unix:///?socket=/tmp/s",
                      "nbds+unix:///e?socket=/s", "nbd+vsock:///", "nbd+ssh://h/x"])
    func nbdFamilyIsRecognised(_ name: String) {
        #expect(NBDURI.isNBD(name))
    }

    @Test(arguments: ["vm.img", "/images/nbd://x", "./nbd://x", "nbd:/x", "nbd:x", "http://host/x.img", "rbd://pool/img",
                      "", "nbdnbdnbdnbdnbdnbdnbd://x", "nbd ://x"])
    func pathsStayPaths(_ name: String) {
        #expect(!NBDURI.isNBD(name))
    }
}
