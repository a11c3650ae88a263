import GuestFSBlock
import GuestFSFilesystem

/// Cluster chains: following a file's or directory's clusters through the FAT, bounded.
///
/// A chain ends at an end-of-chain mark (or the bad-cluster mark, which the kernel's
/// fat*_ent_get also turn into FAT_ENT_EOF). A free entry, a reserved value or a cluster number
/// outside the volume in the middle of a chain is damage, and so is a chain longer than the
/// volume has clusters (a loop): `VfatChainDamage`, EIO for the one file (the kernel's
/// fat_get_cluster reports "invalid cluster chain" and returns -EIO the same way).
extension VfatTable {
    /// The clusters of the chain that starts at `start`: at most `limit` of them (a reader
    /// needs no more than its size covers), never more than the volume has.
    func chain(from start: UInt32, limit: Int = .max, device: String) throws -> [UInt32] {
        guard start != 0 else { return [] }
        var result: [UInt32] = []
        let bound = min(limit, Int(clusterCount))
        var current = start
        while result.count < bound {
            guard isData(current) else {
                throw damage(device, current, result.count, "cluster \(current) out of range")
            }
            result.append(current)
            let next = self[current]
            if next >= badMark { return result }
            if next == 0 || next == 1 || next >= clusterCount + 2 {
                throw damage(device, current, result.count, "entry 0x\(String(next, radix: 16)) inside a chain")
            }
            current = next
        }
        if result.count >= Int(clusterCount) && limit >= Int(clusterCount) {
            throw damage(device, start, result.count, "chain longer than the volume (a loop)")
        }
        return result
    }

    private func damage(_ device: String, _ cluster: UInt32, _ index: Int, _ reason: String) -> ImageError {
        ImageError(path: device, structure: "cluster chain from \(cluster)",
                   reason: "\(reason) (cluster #\(index) of the chain)", errno: .ioError)
    }
}
