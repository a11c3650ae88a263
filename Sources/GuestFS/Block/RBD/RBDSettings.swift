#if canImport(Glibc)
import Glibc
#endif

/// Who connects to the Ceph cluster and how: what `--rbd-conf`, `--rbd-id` and `--keyring` say,
/// spelled as the `rbd` tool spells them (`-c/--conf`, `--id`, `-k/--keyring`, rbd(8)). Options
/// in the image's own name (`rbd:POOL/IMAGE:id=…:conf=…`) win over these, as in QEMU.
public struct RBDClientOptions: Sendable, Equatable {
    /// A ceph.conf to read; nil reads librados's default search path ($CEPH_CONF,
    /// /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf), and a missing one is not an error.
    public var configurationFile: String?
    /// The client's id (the `admin` of client.admin); nil is librados's default, admin.
    public var id: String?
    /// A keyring file; nil is what the configuration says (its `keyring =`, else Ceph's defaults
    /// such as /etc/ceph/ceph.client.admin.keyring).
    public var keyring: String?
    /// The client's secret key itself (base64, as `ceph auth print-key` and `virsh
    /// secret-get-value` print it), set as librados's `key` option, which a keyring does not
    /// override: what a libvirt domain's `<auth><secret type='ceph'>` gives. Never printed.
    public var key: String?

    public init(configurationFile: String? = nil, id: String? = nil, keyring: String? = nil, key: String? = nil) {
        self.configurationFile = configurationFile
        self.id = id
        self.keyring = keyring
        self.key = key
    }
}

/// How an RBD source moves data: request size, requests in flight, how long to wait.
package struct RBDSettings: Sendable {
    /// Largest single request. 256 KiB, as NBD's (NBDSettings): a 4 MiB object is read by 16
    /// of them, spread over the PGs of the next objects when many are in flight.
    package var requestBytes = 256 << 10
    /// Requests kept in flight for one large read or write (librbd's aio calls), so one round
    /// trip to an OSD does not serialize it.
    package var inFlight = 16
    /// How long connecting, a monitor command or one OSD request may take (librados's
    /// client_mount_timeout, rados_mon_op_timeout and rados_osd_op_timeout, in seconds): a
    /// request to an OSD that stops answering then completes with ETIMEDOUT instead of waiting
    /// for ever (librados's default for OSD requests is no timeout at all).
    package var timeoutSeconds = 30
    /// Most bytes read ahead of sequential readers, in flight or arrived and not yet read
    /// (`ReadAhead`; 0, the default, turns it off). Off by default: on the test cluster it
    /// gained nothing measurable over 16 requests in flight (0.84/1.16/0.77 s against
    /// 1.01/1.10/0.78 s for 1 GiB) and took the client's peak RSS from 59 to 68-73 MiB, past the
    /// 64 MiB bound; `IMAGEMOUNT_RBD_READAHEAD=16` turns it on.
    package var readAheadBytes = 0
    /// Size of one read-ahead request (a power of two, 64 KiB…8 MiB, aligned like it); nil is
    /// `requestBytes` (RBDConnection+ReadAhead.swift says why not whole objects).
    package var readAheadRequestBytes: Int?

    package init() {}

    static let maxInFlight = 64

    /// The defaults, changed by `IMAGEMOUNT_RBD_IN_FLIGHT` (1…64; 1 forces one request at a
    /// time, for bench/rbd-read.sh), `IMAGEMOUNT_RBD_REQUEST` (KiB, a power of two 64…8192),
    /// `IMAGEMOUNT_RBD_TIMEOUT` (seconds, 1…3600) and
    /// `IMAGEMOUNT_RBD_READAHEAD` (MiB, 0…64; 0 turns read-ahead off) and
    /// `IMAGEMOUNT_RBD_READAHEAD_REQUEST` (KiB, a power of two 64…8192). Values out of range or
    /// not numbers are ignored.
    package static func fromEnvironment() -> RBDSettings {
        var s = RBDSettings()
        if let v = value("IMAGEMOUNT_RBD_IN_FLIGHT"), (1...maxInFlight).contains(v) { s.inFlight = v }
        if let v = value("IMAGEMOUNT_RBD_REQUEST"), (64...8192).contains(v), v & (v - 1) == 0 { s.requestBytes = v << 10 }
        if let v = value("IMAGEMOUNT_RBD_TIMEOUT"), (1...3600).contains(v) { s.timeoutSeconds = v }
        if let v = value("IMAGEMOUNT_RBD_READAHEAD"), (0...64).contains(v) { s.readAheadBytes = v << 20 }
        if let v = value("IMAGEMOUNT_RBD_READAHEAD_REQUEST"), (64...8192).contains(v), v & (v - 1) == 0 { s.readAheadRequestBytes = v << 10 }
        return s
    }

    private static func value(_ name: String) -> Int? {
        guard let raw = getenv(name) else { return nil }
        let text = String(cString: raw)
        guard text.utf8.count <= 8 else { return nil }
        return Int(text)
    }
}
