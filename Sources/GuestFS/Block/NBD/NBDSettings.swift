#if canImport(Glibc)
import Glibc
#endif

/// How an NBD source talks to its server: request size, requests in flight, how long to wait.
package struct NBDSettings: Sendable {
    /// Largest single request (the server's maximum block size lowers it). 256 KiB is what
    /// `qemu-img convert` and nbdcopy use per request, well under the 32 MiB servers accept.
    package var requestBytes = 256 << 10
    /// Requests kept in flight for one large read or write, so one round trip does not
    /// serialize it (libnbd's aio calls; nbdcopy keeps 16 per connection too).
    package var inFlight = 16
    /// How long a request may wait with no reply before the connection is given up (libnbd has
    /// no timeout of its own; a server that stops answering would otherwise hang every reader).
    package var timeoutMilliseconds: Int32 = 30_000

    /// Whether to ask the server which ranges are zeros (NBD_CMD_BLOCK_STATUS, `base:allocation`)
    /// and not read those.
    package var blockStatus = true
    /// How much one block status request asks about: far ahead of a sequential read, so a
    /// 64 MiB stretch costs one round trip (servers answer for less when they like).
    package var blockStatusWindow: UInt64 = 64 << 20
    /// Reads shorter than this are read without asking (a metadata read of a few KiB would pay a
    /// round trip to save nothing).
    package var blockStatusMinimumRead = 64 << 10

    /// Most bytes read ahead of sequential readers, in flight or arrived and not yet read
    /// (`ReadAhead`; 0 turns read-ahead off). 16 MiB: 64 requests, four times what is kept in
    /// flight, and well inside the 64 MiB a mounted image may take.
    package var readAheadBytes = 16 << 20

    package init() {}

    /// Most requests in flight accepted from the environment.
    static let maxInFlight = 64

    /// The defaults, changed by `IMAGEMOUNT_NBD_IN_FLIGHT` (1…64; 1 forces one request at a
    /// time, for bench/nbd-read.sh), `IMAGEMOUNT_NBD_TIMEOUT` (seconds, 1…3600) and
    /// `IMAGEMOUNT_NBD_BLOCK_STATUS` (0 reads every byte, as a client without block status
    /// does) and `IMAGEMOUNT_NBD_READAHEAD` (MiB, 0…64; 0 turns read-ahead off). Values out of
    /// range or not numbers are ignored.
    package static func fromEnvironment() -> NBDSettings {
        var s = NBDSettings()
        if let v = value("IMAGEMOUNT_NBD_IN_FLIGHT"), (1...maxInFlight).contains(v) { s.inFlight = v }
        if let v = value("IMAGEMOUNT_NBD_TIMEOUT"), (1...3600).contains(v) { s.timeoutMilliseconds = Int32(v * 1000) }
        if let v = value("IMAGEMOUNT_NBD_BLOCK_STATUS"), (0...1).contains(v) { s.blockStatus = v == 1 }
        if let v = value("IMAGEMOUNT_NBD_READAHEAD"), (0...64).contains(v) { s.readAheadBytes = v << 20 }
        return s
    }

    private static func value(_ name: String) -> Int? {
        guard let raw = getenv(name) else { return nil }
        let text = String(cString: raw)
        guard text.utf8.count <= 8 else { return nil }
        return Int(text)
    }
}
