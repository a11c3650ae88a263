import GuestFSBlock
import GuestFSFilesystem

/// Node ids for a filesystem that has no inode numbers.
///
/// FAT has no inodes: a file is its short directory entry. The kernel's vfat numbers inodes
/// with iunique() and finds them again through i_pos, the entry's position (fs/fat/inode.c,
/// fat_iget/fat_attach). We do the same with a stable choice: a node's id is the device byte
/// offset of its short entry when first seen (a multiple of 32, never below 512), and the root,
/// which has no entry, is 1 (MSDOS_ROOT_INO). Rename moves an entry, so the table remembers
/// where each id's entry is now: an id stays valid for the mount's life, across renames, and
/// a new entry at a position whose natural id is still held by a moved or unlinked node gets
/// a fresh id from above 2^63 instead.
struct VfatNodeTable: Sendable {
    static let root: UInt64 = 1
    private static let firstSynthetic: UInt64 = 1 << 63

    private var idAt: [UInt64: UInt64] = [:]
    private var positionOf: [UInt64: UInt64] = [:]
    /// Ids whose entry is gone but which a user still holds (unlinked open files).
    private var detached = Set<UInt64>()
    private var nextSynthetic = firstSynthetic

    /// The id of the entry at `position`, made on first sight.
    mutating func id(at position: UInt64) -> UInt64 {
        if let id = idAt[position] { return id }
        var id = position
        if positionOf[id] != nil || detached.contains(id) {
            id = nextSynthetic
            nextSynthetic += 1
        }
        idAt[position] = id
        positionOf[id] = position
        return id
    }

    /// Where node `id`'s short entry is; nil for the root, for ids never handed out and for
    /// detached nodes.
    func position(of id: UInt64) -> UInt64? { positionOf[id] }

    func isDetached(_ id: UInt64) -> Bool { detached.contains(id) }

    /// The entry of `id` now lives at `position` (rename); whatever id `position` had is dropped.
    mutating func move(_ id: UInt64, to position: UInt64) {
        if let old = positionOf[id], idAt[old] == id { idAt[old] = nil }
        if let other = idAt[position], other != id { positionOf[other] = nil }
        idAt[position] = id
        positionOf[id] = position
    }

    /// The entry at `position` is gone: its id is forgotten, or kept detached when `keep`.
    mutating func remove(at position: UInt64, keep: Bool) {
        guard let id = idAt[position] else { return }
        idAt[position] = nil
        positionOf[id] = nil
        if keep { detached.insert(id) }
    }

    /// A detached node was released.
    mutating func forget(_ id: UInt64) { detached.remove(id) }

    var detachedNodes: Set<UInt64> { detached }
}
