import GuestFSBlock

/// An LVM logical volume as a block device: its extents mapped over the PVs' devices, the way
/// device-mapper's `linear` and `striped` targets map them (Linux drivers/md/dm-linear.c,
/// dm-stripe.c; the tables lvm2 builds in lib/activate/dev_manager.c).
///
/// Each segment covers `[start, start + length)` of the LV. A linear segment is one stripe. In a
/// striped segment of `n` stripes and chunk `stripeSize`, LV byte `x` of the segment lies in
/// chunk `c = x / stripeSize`, on stripe `c % n`, at row `c / n` of that stripe's area.
///
/// Immutable after init, so reads from several threads at once are safe as long as the PV
/// devices' are. Writes pass through when every PV is writable.
package final class LogicalVolumeDevice: BlockDevice {
    /// One stripe's area: where on which PV device it starts.
    struct Area: Sendable {
        let device: any BlockDevice
        let offset: UInt64
    }

    /// One segment, in bytes.
    struct MappedSegment: Sendable {
        let start: UInt64
        let length: UInt64
        /// 0 for a single stripe (linear).
        let stripeSize: UInt64
        let areas: [Area]
    }

    package let volumeGroup: String
    package let name: String
    package let uuid: String
    package let size: UInt64
    /// `/dev/VG/LV`.
    package let displayName: String
    let segments: [MappedSegment]

    /// `/dev/VG/LV`, as udev links it.
    package var path: String { displayName }
    /// The device-mapper name, `VG-LV` with dashes in either name doubled (lvm2
    /// lib/misc/lvm-string.c `build_dm_name`); `/dev/mapper/` + this names the LV too.
    package var mapperName: String { Self.mapperName(volumeGroup: volumeGroup, volume: name) }

    package static func mapperName(volumeGroup: String, volume: String) -> String {
        func escaped(_ name: String) -> String { String(name.flatMap { $0 == "-" ? ["-", "-"] : [$0] }) }
        return escaped(volumeGroup) + "-" + escaped(volume)
    }

    /// Maps `volume` of `group` over `pvDevices` (PV key, e.g. `pv0` → the PV's block device);
    /// `pvNames` gives the guest names of the PVs (`/dev/sda2`) for messages.
    /// Throws `ImageError` when a PV is missing or an extent range runs past the end of its device.
    package init(group: LVMVolumeGroup, volume: LVMVolumeGroup.LogicalVolume, pvDevices: [String: any BlockDevice],
                pvNames: [String: String] = [:]) throws {
        let path = "/dev/\(group.name)/\(volume.name)"
        let extentBytes = group.extentBytes
        var mapped: [MappedSegment] = []
        for (index, segment) in volume.segments.enumerated() {
            guard case .striped(let stripeSize, let stripes) = segment.layout else {
                throw ImageError(structure: "\(path) segment \(index + 1)", reason: "segment type \(segment.type) cannot be mapped")
            }
            let areaBytes = segment.areaExtents * extentBytes
            var areas: [Area] = []
            for stripe in stripes {
                guard let pv = group.physicalVolume(key: stripe.pv), let device = pvDevices[stripe.pv] else {
                    throw ImageError(structure: "\(path) segment \(index + 1)", reason: "PV \(stripe.pv) is missing")
                }
                // pe_start and the extent numbers come from disk: check the whole range against the device.
                let (peStart, o1) = pv.peStart.multipliedReportingOverflow(by: 512)
                let (skip, o2) = stripe.startExtent.multipliedReportingOverflow(by: extentBytes)
                let (offset, o3) = peStart.addingReportingOverflow(skip)
                let (end, o4) = offset.addingReportingOverflow(areaBytes)
                guard !(o1 || o2 || o3 || o4), end <= device.size else {
                    let pvName = pvNames[stripe.pv] ?? device.displayName
                    throw ImageError(path: pvName, offset: o1 || o2 || o3 ? nil : offset,
                                     structure: "\(path) segment \(index + 1)",
                                     reason: "extents \(stripe.startExtent)..<\(stripe.startExtent + segment.areaExtents) of \(stripe.pv) "
                                         + "run past the end of \(pvName) (\(device.size) bytes)")
                }
                areas.append(Area(device: device, offset: offset))
            }
            mapped.append(MappedSegment(start: segment.startExtent * extentBytes, length: segment.extentCount * extentBytes,
                                        stripeSize: stripes.count > 1 ? stripeSize * 512 : 0, areas: areas))
        }
        self.volumeGroup = group.name
        self.name = volume.name
        self.uuid = volume.uuid
        self.size = volume.extentCount * extentBytes
        self.displayName = path
        self.segments = mapped
    }

    package var isWritable: Bool { segments.allSatisfy { $0.areas.allSatisfy { $0.device.isWritable } } }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        try forEachPiece(offset: offset, length: buffer.count) { area, pvOffset, done, length in
            try area.device.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + length]), at: pvOffset)
        }
    }

    package func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        guard isWritable else { throw readOnlyError(offset: offset) }
        try forEachPiece(offset: offset, length: buffer.count) { area, pvOffset, done, length in
            try area.device.write(UnsafeRawBufferPointer(rebasing: buffer[done ..< done + length]), at: pvOffset)
        }
    }

    package func flush() throws {
        var seen = Set<ObjectIdentifier>()
        for segment in segments {
            for area in segment.areas where seen.insert(ObjectIdentifier(area.device)).inserted {
                try area.device.flush()
            }
        }
    }

    /// Splits `[offset, offset+length)` of the LV into pieces that are contiguous on one PV and
    /// calls `body(area, offset on the PV device, offset in the buffer, piece length)` for each.
    func forEachPiece(offset: UInt64, length: Int,
                      _ body: (Area, UInt64, Int, Int) throws -> Void) throws {
        var done = 0
        var index = segmentIndex(containing: offset)
        while done < length {
            let position = offset + UInt64(done)
            while index < segments.count, position >= segments[index].start + segments[index].length { index += 1 }
            precondition(index < segments.count, "segments do not cover the LV's size")
            let segment = segments[index]
            let within = position - segment.start
            let remaining = UInt64(length - done)
            let pvOffset: UInt64, piece: UInt64, area: Area
            if segment.stripeSize == 0 {
                area = segment.areas[0]
                pvOffset = area.offset + within
                piece = min(remaining, segment.length - within)
            } else {
                let n = UInt64(segment.areas.count)
                let chunk = within / segment.stripeSize, inChunk = within % segment.stripeSize
                area = segment.areas[Int(chunk % n)]
                pvOffset = area.offset + (chunk / n) * segment.stripeSize + inChunk
                piece = min(remaining, segment.stripeSize - inChunk)
            }
            try body(area, pvOffset, done, Int(piece))
            done += Int(piece)
        }
    }

    /// The segment holding LV byte `offset` (binary search; segments are sorted and contiguous).
    func segmentIndex(containing offset: UInt64) -> Int {
        var low = 0, high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].start + segments[mid].length <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
