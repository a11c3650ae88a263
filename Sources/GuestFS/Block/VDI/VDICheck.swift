/// `imagemount check` of a VDI image, as QEMU's vdi_check: every allocated block map entry must
/// name a block inside the image and no other entry's block, and their count must equal the
/// header's blocks_allocated. Messages are qemu-img's.
extension VDIImage {
    func check() -> ImageCheckResult {
        var result = ImageCheckResult()
        result.countsClusters = false
        // Which guest block uses each image block (bounded by the loaded map).
        let (blockMap, blocksAllocated) = state.withLock { ($0.map, $0.blocksAllocated) }
        var owner = [UInt32](repeating: VDIFormat.unallocated, count: blockMap.count)
        var allocated: UInt32 = 0
        let inImage = UInt64(header.blocksInImage)
        for (block, entry) in blockMap.enumerated() where entry < VDIFormat.discarded {
            if UInt64(entry) < inImage, Int(entry) < owner.count {
                allocated += 1
                if owner[Int(entry)] >= VDIFormat.discarded {
                    owner[Int(entry)] = entry
                } else {
                    result.add(message: "ERROR: block index \(owner[Int(entry)]) also used by \(entry)")
                    result.corruptions += 1
                }
            } else {
                result.add(message: "ERROR: block index \(block) too large, is \(entry)")
                result.corruptions += 1
            }
        }
        if allocated != blocksAllocated {
            result.add(message: "ERROR: allocated blocks mismatch, is \(allocated), should be \(blocksAllocated)")
            result.corruptions += 1
        }
        return result
    }
}
