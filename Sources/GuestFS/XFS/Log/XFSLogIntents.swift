import GuestFSBlock
import GuestFSFilesystem

/// Intent and done items (xfs_extfree_item.c, xfs_rmap_item.c, xfs_refcount_item.c,
/// xfs_bmap_item.c, xfs_attr_item.c, xfs_exchmaps_item.c): an intent logs work a transaction
/// chain will do (free extents, change the rmap or refcount B+trees, map or unmap file blocks,
/// set or remove an attribute, exchange mappings); its done item, logged when the work
/// commits, carries the intent's id. An intent left without its done item at the head of the
/// log was not finished: the kernel finishes it after replay (xlog_recover_process_intents).
///
/// Every intent format has `type, size` (16-bit), a 32-bit count, then the 64-bit id at byte 8;
/// every done format has the id of its intent at byte 8.
struct XFSLogIntent: Sendable, CustomStringConvertible {
    var type: UInt16
    var id: UInt64
    var lsn: UInt64
    /// For an EFI: the extents (fsblock, length) the kernel would free.
    var extents: [(start: UInt64, length: UInt32)]
    /// For a BUI: the one mapping it maps or unmaps (XFSBmapIntent).
    var bmap: XFSBmapIntent? = nil

    var description: String {
        var s = "\(XFSLogItemType.name(type)) 0x\(String(id, radix: 16)) at LSN \(XFSLogRecordHeader.describe(lsn))"
        if !extents.isEmpty { s += " (\(extents.map { "\($0.start)+\($0.length)" }.joined(separator: ", ")))" }
        if let bmap { s += " (\(bmap))" }
        return s
    }
}

final class XFSLogIntents {
    /// Outstanding intents by (type, id), in log order.
    private(set) var pending: [XFSLogIntent] = []
    /// Intent and done items seen, by type name ("EFI", "EFD", "BUI", ...).
    private(set) var seen: [String: Int] = [:]
    private var index: [Key: Int] = [:]
    struct Key: Hashable { var type: UInt16; var id: UInt64 }

    /// Each done item type and the intent type it finishes.
    static let doneFor: [UInt16: UInt16] = [
        XFSLogItemType.efd: XFSLogItemType.efi, XFSLogItemType.rud: XFSLogItemType.rui,
        XFSLogItemType.cud: XFSLogItemType.cui, XFSLogItemType.bud: XFSLogItemType.bui,
        XFSLogItemType.attrd: XFSLogItemType.attri, XFSLogItemType.xmd: XFSLogItemType.xmi,
        XFSLogItemType.efdRT: XFSLogItemType.efiRT, XFSLogItemType.rudRT: XFSLogItemType.ruiRT,
        XFSLogItemType.cudRT: XFSLogItemType.cuiRT,
    ]
    static let intentTypes: Set<UInt16> = Set(doneFor.values)

    func add(_ item: XFSLogItem, order: XFSLogRecordHeader.ItemByteOrder, lsn: UInt64) throws {
        let r = XFSLogItemBytes(bytes: item.regions[0], order: order, what: "\(XFSLogItemType.name(item.type)) item")
        seen[XFSLogItemType.name(item.type), default: 0] += 1
        if let intent = XFSLogIntents.doneFor[item.type] {
            // xlog_recover_release_intent: the intent with that id is finished.
            let key = Key(type: intent, id: try r.u64(8))
            if let i = index.removeValue(forKey: key) { pending[i].type = 0 }
            return
        }
        guard XFSLogIntents.intentTypes.contains(item.type) else {
            throw XFSLogReplayError("unknown log item type 0x\(String(item.type, radix: 16))")
        }
        let id = try r.u64(8)
        var extents: [(UInt64, UInt32)] = []
        if item.type == XFSLogItemType.efi || item.type == XFSLogItemType.efiRT {
            // xfs_efi_log_format: efi_nextents at 4, then xfs_extent_t (16 bytes on 64-bit
            // hosts, 12 in the packed i386 form: xfs_efi_copy_format).
            let count = Int(try r.u32(4))
            guard count > 0, count <= r.count else { throw XFSLogReplayError("EFI with \(count) extents") }
            let width = r.count == 16 + count * 16 ? 16 : 12
            guard r.count == 16 + count * width else { throw XFSLogReplayError("EFI of \(r.count) bytes for \(count) extents") }
            for i in 0 ..< count { extents.append((try r.u64(16 + i * width), try r.u32(24 + i * width))) }
        }
        var bmap: XFSBmapIntent? = nil
        if item.type == XFSLogItemType.bui { bmap = try XFSBmapIntent(r) }
        let key = Key(type: item.type, id: id)
        if let old = index[key] { pending[old].type = 0 }
        index[key] = pending.count
        pending.append(XFSLogIntent(type: item.type, id: id, lsn: lsn, extents: extents, bmap: bmap))
    }

    /// The intents still without a done item.
    var unfinished: [XFSLogIntent] { pending.filter { $0.type != 0 } }
}
