import GuestFSBlock
import GuestFSFilesystem

/// The System Use Sharing Protocol (SUSP, IEEE P1281 / "SUSP 1.12"): the System Use area of a
/// directory record holds entries of a 2-byte signature, a length (of the whole entry), a version
/// and data (SUSP 4.1). A CE entry (5.1) continues the area in a Continuation Area elsewhere on
/// the volume; SP (5.3) marks SUSP in the root's "." record and says how many bytes to skip at the
/// start of every System Use area; ST (5.4) ends the area; PD (5.2) is padding; ER (5.5) names
/// the extensions in use (Rock Ridge: RRIP_1991A, IEEE_P1282, IEEE_1282).
struct SUSPEntry: Sendable {
    let signature: UInt16
    let version: UInt8
    /// The entry's data: the bytes after the 4-byte header.
    let data: ArraySlice<UInt8>

    static func signature(_ text: StaticString) -> UInt16 {
        let p = text.utf8Start
        return UInt16(p[0]) << 8 | UInt16(p[1])
    }

    static let CE = signature("CE"), PD = signature("PD"), SP = signature("SP"), ST = signature("ST"),
               ER = signature("ER"), ES = signature("ES")
    static let PX = signature("PX"), PN = signature("PN"), SL = signature("SL"), NM = signature("NM"),
               CL = signature("CL"), PL = signature("PL"), RE = signature("RE"), TF = signature("TF"),
               RR = signature("RR"), SF = signature("SF"), ZF = signature("ZF")

    var name: String { String(decoding: [UInt8(signature >> 8), UInt8(signature & 0xff)], as: UTF8.self) }
}

/// Reading the whole System Use of one record: its own area, then each Continuation Area the CE
/// entries chain to, under fixed bounds.
struct ISO9660SystemUse {
    /// A record's CE chain is followed at most this many times (the kernel's RR_MAX_CE_ENTRIES
    /// in fs/isofs/rock.c): a CE that points back at itself ends here, not in a loop.
    static let maxContinuations = 32
    /// A Continuation Area lies within one logical block (fs/isofs/rock.c refuses
    /// cont_offset + cont_size > blocksize), so it is at most 2048 bytes.
    static let maxContinuationBytes: UInt64 = 2048
    /// At most this many entries are kept for one record (a 255-byte area holds at most 63; 32
    /// continuation blocks hold at most 16384 more).
    static let maxEntries = 20_000

    let device: any BlockDevice
    let blockSize: UInt32

    /// The entries of `area` after skipping `skip` bytes (SP's LEN_SKP), then of the CE chain.
    /// Damage (a bad length, a continuation outside the device) ends the walk and is passed to
    /// `report`; the entries before it are kept.
    func entries(of area: ArraySlice<UInt8>, skip: Int, recordOffset: UInt64,
                 report: (String) -> Void) -> [SUSPEntry] {
        var out: [SUSPEntry] = []
        var current: ArraySlice<UInt8> = skip > 0 ? (skip < area.count ? area[(area.startIndex + skip)...] : []) : area
        var where_ = "record at 0x\(String(recordOffset, radix: 16))"
        var continuations = 0
        while true {
            var next: (block: UInt32, offset: UInt32, length: UInt32)?
            var pos = current.startIndex
            // SUSP 4.1: an entry has at least its 4-byte header. Fewer bytes left are padding.
            while current.endIndex - pos >= 4 {
                let length = Int(current[pos + 2])
                guard length >= 4, length <= current.endIndex - pos else {
                    if current[pos] != 0 || length != 0 {
                        report("\(device.displayName): System Use entry in \(where_): length \(length) is invalid; the rest of the area is ignored")
                    }
                    break
                }
                let entry = SUSPEntry(signature: UInt16(current[pos]) << 8 | UInt16(current[pos + 1]),
                                      version: current[pos + 3], data: current[(pos + 4) ..< (pos + length)])
                pos += length
                if entry.signature == SUSPEntry.ST { break }
                if entry.signature == SUSPEntry.PD { continue }
                if entry.signature == SUSPEntry.CE {
                    let d = ISO9660Bytes(entry.data)
                    if let block = d.u32both(0), let offset = d.u32both(8), let size = d.u32both(16) {
                        next = (block, offset, size)
                    }
                    continue
                }
                guard out.count < Self.maxEntries else { return out }
                out.append(entry)
            }
            guard let ce = next else { return out }
            continuations += 1
            guard continuations <= Self.maxContinuations else {
                report("\(device.displayName): \(where_): more than \(Self.maxContinuations) System Use continuation areas; the rest are ignored")
                return out
            }
            let bs = UInt64(blockSize)
            guard UInt64(ce.offset) + UInt64(ce.length) <= min(bs, Self.maxContinuationBytes) else {
                report("\(device.displayName): \(where_): continuation area (block \(ce.block), offset \(ce.offset), \(ce.length) bytes) does not fit one block; ignored")
                return out
            }
            let start = UInt64(ce.block) * bs + UInt64(ce.offset)   // < 2^32 * 2^11 + 2^11: no overflow
            guard ce.length > 0 else { return out }
            guard start + UInt64(ce.length) <= device.size, let bytes = try? device.readBytes(at: start, count: Int(ce.length)) else {
                report("\(device.displayName): \(where_): continuation area at 0x\(String(start, radix: 16)) cannot be read; ignored")
                return out
            }
            current = bytes[...]
            where_ = "continuation area at 0x\(String(start, radix: 16))"
        }
    }
}
