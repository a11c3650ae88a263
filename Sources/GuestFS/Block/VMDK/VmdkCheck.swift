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
        func fail(_ message: String, _ reason: String) {
            result.add(message: message)
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
                // QEMU's steps that stay in this grain table's coverage (and in this extent).
                let coverageEnd = min((extent.start + UInt64(gdIndex + 1) * sparse.gtCoverage) / sector, extentEnd)
                let steps = (coverageEnd - at + grainSectors - 1) / grainSectors
                defer { at += steps * grainSectors }
                let gtSector = sparse.gd[gdIndex]
                if gtSector == 0 { continue }
                let gtes = Int(sparse.header.gtesPerGT)
                var bytes = [UInt8](repeating: 0, count: gtes * 4)
                do {
                    try bytes.withUnsafeMutableBytes { try sparse.file.readPastEnd(into: $0, at: UInt64(gtSector) * sector) }
                } catch {
                    fail("ERROR: could not get cluster_offset for sector \(at)", "Operation not permitted")
                    return result
                }
                let entries: [UInt32] = bytes.withUnsafeBytes { raw in
                    (0 ..< gtes).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
                }
                // Most tables point nowhere past the end: only those are walked step by step.
                guard let highest = entries.max(), UInt64(highest) * sector >= sparse.file.size else { continue }
                for step in 0 ..< steps {
                    let s = at + step * grainSectors
                    let entry = entries[Int(((s * sector - extent.start) / sparse.grainBytes) % UInt64(gtes))]
                    let zeroed = sparse.header.hasZeroedGrain && entry == VmdkFormat.zeroedGTE
                    if entry != 0, !zeroed, UInt64(entry) * sector >= sparse.file.size {
                        fail("ERROR: cluster offset for sector \(s) points after EOF", "Invalid argument")
                        return result
                    }
                }
            }
        }
        return result
    }
}
