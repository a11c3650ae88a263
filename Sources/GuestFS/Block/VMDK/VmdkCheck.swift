/// `imagemount check` of a VMDK image, as QEMU 7.2's vmdk_co_check (block/vmdk.c): the guest
/// disk is walked from sector 0 in steps of the current extent's grain (a whole flat extent in
/// one step), and each grain a sparse extent maps, or each flat extent's start, must lie before
/// the end of its extent file. The first one that does not ends the walk: QEMU's check then
/// returns an error, qemu-img prints no verdict, "Check failed: Invalid argument", and exits 1.
/// A grain table that lies past the end of the file reads as zeros (unallocated), as QEMU's file
/// driver reads it there. vmdk has no repair. Messages are qemu-img's.
extension VmdkImage {
    func check() -> ImageCheckResult {
        var result = ImageCheckResult()
        result.countsClusters = false
        let sector = VmdkFormat.sectorSize
        let totalSectors = size / sector
        var at: UInt64 = 0
        var index = 0
        // The grain table last read (file offset, entries): tables are walked in order.
        var table: (host: UInt64, entries: [UInt32])?
        func fail(_ message: String, _ reason: String) {
            result.messages.append(message)
            result.failure = "Check failed: \(reason)"
        }
        while at < totalSectors {
            // QEMU's find_extent, from the previous extent on: extents are sorted and end to end.
            while index < extents.count, at >= (extents[index].start + extents[index].length) / sector { index += 1 }
            guard index < extents.count else {
                fail("ERROR: could not find extent for sector \(at)", "Invalid argument")
                break
            }
            let extent = extents[index]
            let extentEnd = (extent.start + extent.length) / sector
            switch extent.storage {
            case let .flat(file, offset: base):
                if base >= file.size {
                    fail("ERROR: cluster offset for sector \(at) points after EOF", "Invalid argument")
                    return result
                }
                // A flat extent is one "cluster" as long as itself (vmdk_add_extent), counted
                // from wherever the walk entered it.
                at += extent.length / sector
            case let .sparse(sparse):
                let grainSectors = sparse.header.granularity
                let within = at * sector - extent.start
                let gdIndex = Int(within / sparse.gtCoverage)
                guard gdIndex < sparse.gd.count else {
                    // get_cluster_offset's VMDK_ERROR (-1), which strerror calls EPERM.
                    fail("ERROR: could not get cluster_offset for sector \(at)", "Operation not permitted")
                    return result
                }
                let gtSector = sparse.gd[gdIndex]
                if gtSector == 0 {
                    // Every step up to the end of this table's coverage (or of the extent) is
                    // unallocated: skip them at once, landing where QEMU's steps land.
                    let coverageEnd = (extent.start + UInt64(gdIndex + 1) * sparse.gtCoverage) / sector
                    let limit = min(coverageEnd, extentEnd)
                    at += (limit - at + grainSectors - 1) / grainSectors * grainSectors
                    continue
                }
                let gtHost = UInt64(gtSector) * sector
                if table?.host != gtHost {
                    var bytes = [UInt8](repeating: 0, count: Int(sparse.header.gtesPerGT) * 4)
                    do {
                        try bytes.withUnsafeMutableBytes { try sparse.file.readPastEnd(into: $0, at: gtHost) }
                    } catch {
                        fail("ERROR: could not get cluster_offset for sector \(at)", "Operation not permitted")
                        return result
                    }
                    let le = LittleEndianBytes(bytes)
                    table = (gtHost, (0 ..< Int(sparse.header.gtesPerGT)).map { le.u32($0 * 4) })
                }
                let entries = table?.entries ?? []
                let gtIndex = Int((within / sparse.grainBytes) % UInt64(sparse.header.gtesPerGT))
                let entry = gtIndex < entries.count ? entries[gtIndex] : 0
                let zeroed = sparse.header.hasZeroedGrain && entry == VmdkFormat.zeroedGTE
                if entry != 0, !zeroed, UInt64(entry) * sector >= sparse.file.size {
                    fail("ERROR: cluster offset for sector \(at) points after EOF", "Invalid argument")
                    return result
                }
                at += grainSectors
            }
        }
        return result
    }
}
