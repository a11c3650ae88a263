/// `imagemount check` of a Parallels image, as QEMU 7.2's parallels_co_check without fixing:
/// an unclean `inuse` field and every BAT entry past the end of the file are corruptions (such
/// an entry still counts as allocated and in the image end, as QEMU counts it), space after the
/// last cluster is a leak. Messages are qemu-img's.
extension ParallelsImage {
    func check() -> ImageCheckResult {
        var result = ImageCheckResult()
        if header.wasClosedUncleanly {
            result.add(message: "ERROR image was not closed correctly")
            result.corruptions += 1
        }
        result.totalClusters = UInt64(bat.count)
        let clusterSize = header.clusterSize
        var highest: UInt64 = 0
        var previous: UInt64 = 0
        for index in bat.indices {
            // An entry whose offset overflows is past any file: treat it as QEMU treats one past the end.
            let host: UInt64
            switch Result(catching: { try hostOffset(ofCluster: UInt64(index)) }) {
            case .success(nil):
                previous = 0
                continue
            case let .success(h?): host = h
            case .failure: host = .max / 2
            }
            if host > file.size {
                result.add(message: "ERROR cluster \(index) is outside image")
                result.corruptions += 1
            }
            result.allocatedClusters += 1
            highest = max(highest, host)
            if previous != 0, previous.saturatingAdd(clusterSize) != host { result.fragmentedClusters += 1 }
            previous = host
        }
        // With no cluster allocated the image ends at QEMU's data_end, in sectors: data_off, or,
        // when that is 0, the BAT's end in *bytes* rounded up to a sector (parallels_open uses
        // the byte count as a sector count there; we report what qemu-img reports).
        if highest == 0 {
            let sector = ParallelsFormat.sectorSize
            let dataEnd = header.dataOffset != 0 ? UInt64(header.dataOffset)
                : (UInt64(ParallelsFormat.headerSize) + UInt64(bat.count) * 4 + sector - 1) / sector * sector
            result.imageEndOffset = dataEnd * sector
        } else {
            result.imageEndOffset = highest.saturatingAdd(clusterSize)
        }
        if file.size > result.imageEndOffset {
            let leaked = file.size - result.imageEndOffset
            result.add(message: "ERROR space leaked at the end of the image \(leaked)")
            result.leaks += Int((leaked + clusterSize - 1) / clusterSize)
        }
        return result
    }
}
