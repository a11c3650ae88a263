import GuestFSBlock

/// A volume group as its metadata text describes it: extent size, PVs, LVs and their segments.
///
/// The text's shape is lvm2's `lib/format_text/export.c` (writer) and `import_vsn1.c` (reader:
/// `_read_vg`, `_read_pv`, `_read_lv`, `_read_segment`), with the striped segment's fields from
/// `lib/striped/striped.c` (`_striped_text_import`). Units: `extent_size`, `dev_size`,
/// `pe_start` and `stripe_size` count 512-byte sectors; `start_extent`, `extent_count`,
/// `pe_count` and the stripes' start extents count extents.
///
/// ```
/// VGNAME {
///     id = "…"  seqno = N  extent_size = SECTORS  status = [...]
///     physical_volumes { pv0 { id = "…" device = "/dev/…" dev_size = S pe_start = S pe_count = N } … }
///     logical_volumes {
///         LVNAME { id = "…" status = ["READ", "WRITE", "VISIBLE"] segment_count = K
///             segment1 { start_extent = 0 extent_count = N type = "striped"
///                        stripe_count = 1 stripes = [ "pv0", 0 ] }   # linear: one stripe
///             segment2 { … type = "striped" stripe_count = 2 stripe_size = 128
///                        stripes = [ "pv0", 30, "pv1", 30 ] } … } … } }
/// ```
/// In a striped segment `extent_count` counts the LV's extents; each stripe holds
/// `extent_count / stripe_count` of them (the area length), from its start extent on.
///
/// Numbers come from disk: every count is bounded, every product checked for overflow, and each
/// stripe checked against its PV's `pe_count`. A problem in one LV marks only that LV
/// (`skipReason`); a problem in the VG's own fields throws.
package struct LVMVolumeGroup: Sendable {
    /// A `physical_volumes` entry.
    package struct PhysicalVolume: Sendable {
        /// The key in the text (`pv0`), which segments refer to.
        package let key: String
        /// PV UUID in dashed form; matches the label's.
        package let uuid: String
        /// The `device` hint: the path the PV had on the host that wrote the metadata.
        package let deviceHint: String?
        /// Sectors (`dev_size`).
        package let deviceSectors: UInt64
        /// Where extent 0 starts, in sectors from the start of the PV (`pe_start`).
        package let peStart: UInt64
        /// Extents on this PV (`pe_count`).
        package let peCount: UInt64
    }

    /// One stripe (area) of a segment: `[ "pv0", start_extent ]`.
    package struct Stripe: Sendable, Equatable {
        package let pv: String
        package let startExtent: UInt64
    }

    /// How a segment maps its extents.
    package enum Layout: Sendable, Equatable {
        /// `striped` (and `linear`, which is `striped` with one stripe): stripes of `stripeSize`
        /// sectors (0 when there is one stripe) round-robin over `stripes`.
        case striped(stripeSize: UInt64, stripes: [Stripe])
        /// Any other segment type (snapshot, thin, thin-pool, raid*, mirror, cache, …): kept
        /// for listing, not mapped.
        case unsupported
    }

    /// One `segmentN` section.
    package struct Segment: Sendable {
        package let startExtent: UInt64
        package let extentCount: UInt64
        /// The `type` string as written.
        package let type: String
        package let layout: Layout
        /// Extents each stripe holds (`extent_count / stripe_count`; lvm's area_len).
        package var areaExtents: UInt64 {
            if case .striped(_, let stripes) = layout, !stripes.isEmpty { return extentCount / UInt64(stripes.count) }
            return extentCount
        }
    }

    /// One `logical_volumes` entry.
    package struct LogicalVolume: Sendable {
        package let name: String
        package let uuid: String
        package let status: [String]
        package let segments: [Segment]
        /// Sum of the segments' extents.
        package let extentCount: UInt64
        /// For a `snapshot` segment: the origin LV and the COW-store LV it names.
        package let snapshotOrigin: String?
        package let snapshotCOWStore: String?
        /// Why this LV cannot be mapped as a block device (hidden, an unsupported segment type,
        /// a snapshot's COW store, damaged numbers), or nil when it can.
        package internal(set) var skipReason: String?

        /// The COW store of a snapshot: lvm2 drops its `VISIBLE` flag but shows it as the
        /// snapshot (lib/metadata/lv.c `lv_is_visible`: a COW LV is as visible as its snapshot).
        package internal(set) var isSnapshotCOW = false

        /// LVs without the `VISIBLE` flag are internal (snapshot0, thin-pool sub-LVs, raid images),
        /// except a snapshot's COW store, which `lvs` lists as the snapshot.
        package var isVisible: Bool { status.contains("VISIBLE") || isSnapshotCOW }
    }

    /// Most PVs, LVs and segments per LV taken from one VG. lvm2 has no lower hard limits
    /// (`max_lv`/`max_pv` are 0 = unlimited); these only bound what damaged text can cost.
    static let maxPhysicalVolumes = 4096
    static let maxLogicalVolumes = 65536
    static let maxSegments = 65536
    /// The skip reason of an LV without the `VISIBLE` flag.
    static let hiddenReason = "hidden (internal) volume"
    /// `MAX_STRIPES` (lvm2 lib/metadata/metadata-exported.h).
    static let maxStripes = 128

    package let name: String
    package let uuid: String
    package let seqno: UInt64
    /// Sectors per extent (`extent_size`).
    package let extentSize: UInt64
    package let status: [String]
    package let physicalVolumes: [PhysicalVolume]
    package let logicalVolumes: [LogicalVolume]

    /// Bytes per extent.
    package var extentBytes: UInt64 { extentSize * 512 }
    /// Total extents over all PVs times the extent size, as `vgs` reports `vg_size`.
    package var size: UInt64 { physicalVolumes.reduce(0) { $0 &+ $1.peCount } &* extentBytes }

    package func physicalVolume(key: String) -> PhysicalVolume? { physicalVolumes.first { $0.key == key } }

    /// Finds the VG section of a parsed metadata text: the one top-level section (the other
    /// top-level entries are `contents`, `version`, `description`, `creation_host`, `creation_time`).
    package static func vgSection(of root: LVMConfigSection) -> (name: String, section: LVMConfigSection)? {
        root.sections.first
    }

    /// Decodes the VG named `name` from its section.
    package init(name: String, section vg: LVMConfigSection, source: String? = nil) throws {
        func fail(_ reason: String) -> ImageError {
            ImageError(path: source, structure: "LVM metadata of VG \(name)", reason: reason)
        }
        guard Self.isValidName(name) else { throw fail("VG name is not a valid LVM name") }
        guard let uuid = vg.string("id"), Self.isValidUUID(uuid) else { throw fail("missing or malformed id") }
        guard let seqno = vg.integer("seqno"), seqno >= 0 else { throw fail("missing or negative seqno") }
        guard let extentSize = vg.integer("extent_size"), extentSize > 0, extentSize <= Int64(UInt32.max) else {
            throw fail("extent_size \(vg.integer("extent_size").map(String.init) ?? "missing") is outside 1...\(UInt32.max) sectors")
        }
        self.name = name
        self.uuid = uuid
        self.seqno = UInt64(seqno)
        self.extentSize = UInt64(extentSize)
        self.status = vg.list("status")?.compactMap(\.string) ?? []

        let pvSections = vg.section("physical_volumes")?.sections ?? []
        guard pvSections.count <= Self.maxPhysicalVolumes else { throw fail("more than \(Self.maxPhysicalVolumes) PVs") }
        var pvs: [PhysicalVolume] = []
        for (key, pv) in pvSections {
            guard let id = pv.string("id"), Self.isValidUUID(id) else { throw fail("PV \(key): missing or malformed id") }
            func count(_ field: String, max: UInt64) throws -> UInt64 {
                guard let v = pv.integer(field), v >= 0, UInt64(v) <= max else {
                    throw fail("PV \(key): \(field) \(pv.integer(field).map(String.init) ?? "missing") is outside 0...\(max)")
                }
                return UInt64(v)
            }
            // Sizes in sectors must stay byte-addressable in 64 bits.
            let sectorMax = UInt64.max / 512
            let peCount = try count("pe_count", max: UInt64(UInt32.max))
            pvs.append(PhysicalVolume(key: key, uuid: id, deviceHint: pv.string("device"),
                                      deviceSectors: try count("dev_size", max: sectorMax),
                                      peStart: try count("pe_start", max: sectorMax), peCount: peCount))
        }
        self.physicalVolumes = pvs

        let lvSections = vg.section("logical_volumes")?.sections ?? []
        guard lvSections.count <= Self.maxLogicalVolumes else { throw fail("more than \(Self.maxLogicalVolumes) LVs") }
        var lvs = lvSections.map { Self.decodeLV(name: $0.name, section: $0.section, pvs: pvs, extentSize: UInt64(extentSize)) }
        // The COW store of a snapshot holds exception data, not the snapshot's view of the origin.
        for snapshot in lvs {
            guard let cow = snapshot.snapshotCOWStore, let origin = snapshot.snapshotOrigin else { continue }
            for i in lvs.indices where lvs[i].name == cow {
                lvs[i].isSnapshotCOW = true
                if lvs[i].skipReason == nil || lvs[i].skipReason == Self.hiddenReason {
                    lvs[i].skipReason = "snapshot of \(origin): snapshot volumes are not supported (its COW store is not a filesystem)"
                }
            }
        }
        self.logicalVolumes = lvs
    }

    /// Decodes one LV, recording in `skipReason` anything that keeps it from being mapped.
    static func decodeLV(name: String, section lv: LVMConfigSection, pvs: [PhysicalVolume], extentSize: UInt64) -> LogicalVolume {
        let status = lv.list("status")?.compactMap(\.string) ?? []
        let uuid = lv.string("id") ?? ""
        var segments: [Segment] = []
        var problem: String?
        var origin: String?, cow: String?
        var total: UInt64 = 0
        let segmentSections = lv.sections.filter { $0.name.hasPrefix("segment") }
        if !isValidName(name) { problem = "LV name is not a valid LVM name" }
        else if !isValidUUID(uuid) { problem = "missing or malformed id" }
        else if segmentSections.isEmpty { problem = "has no segments" }
        else if segmentSections.count > maxSegments { problem = "more than \(maxSegments) segments" }
        else {
            for (segName, seg) in segmentSections {
                switch decodeSegment(seg, pvs: pvs, extentSize: extentSize) {
                case .failure(let reason):
                    problem = "\(segName): \(reason)"
                case .success(let segment):
                    if segment.startExtent != total {
                        problem = "\(segName): start_extent \(segment.startExtent) leaves a gap or overlap (expected \(total))"
                    }
                    segments.append(segment)
                    total += segment.extentCount   // each ≤ UInt32.max, at most maxSegments of them
                    if segment.type == "snapshot" {
                        origin = seg.string("origin")
                        cow = seg.string("cow_store")
                    }
                }
                if problem != nil { break }
            }
        }
        if problem == nil, total > UInt64(UInt32.max) {
            problem = "\(total) extents is more than an LV can hold"
        }
        if problem == nil, total.multipliedReportingOverflow(by: extentSize * 512).overflow {
            problem = "size overflows 64 bits"
        }
        if problem == nil, !status.contains("VISIBLE") {
            problem = hiddenReason
        }
        if problem == nil, let odd = segments.first(where: { $0.layout == .unsupported }) {
            problem = "segment type \"\(odd.type)\" is not supported (linear and striped are)"
        }
        return LogicalVolume(name: name, uuid: uuid, status: status, segments: segments, extentCount: total,
                             snapshotOrigin: origin, snapshotCOWStore: cow, skipReason: problem)
    }

    /// Decodes a `segmentN` section, checking every number against the VG's PVs.
    static func decodeSegment(_ seg: LVMConfigSection, pvs: [PhysicalVolume], extentSize: UInt64) -> Result<Segment, SegmentError> {
        func bad(_ reason: String) -> Result<Segment, SegmentError> { .failure(SegmentError(reason)) }
        guard let start = seg.integer("start_extent"), start >= 0, start <= Int64(UInt32.max) else {
            return bad("start_extent missing or outside 0...\(UInt32.max)")
        }
        guard let count = seg.integer("extent_count"), count > 0, count <= Int64(UInt32.max) else {
            return bad("extent_count missing or outside 1...\(UInt32.max)")
        }
        guard let type = seg.string("type") else { return bad("type missing") }
        let extentCount = UInt64(count)
        guard type == "striped" || type == "linear" else {
            return .success(Segment(startExtent: UInt64(start), extentCount: extentCount, type: type, layout: .unsupported))
        }
        let stripeCount = seg.integer("stripe_count") ?? 1
        guard stripeCount >= 1, stripeCount <= Int64(maxStripes) else { return bad("stripe_count \(stripeCount) is outside 1...\(maxStripes)") }
        let n = UInt64(stripeCount)
        guard extentCount % n == 0 else { return bad("extent_count \(extentCount) is not a multiple of stripe_count \(n)") }
        let areaExtents = extentCount / n
        var stripeSize: UInt64 = 0
        if n > 1 {
            guard let size = seg.integer("stripe_size"), size > 0, UInt64(size) <= extentSize * areaExtents else {
                return bad("stripe_size \(seg.integer("stripe_size").map(String.init) ?? "missing") is not within one stripe's area")
            }
            stripeSize = UInt64(size)
            // dm-stripe refuses a stripe whose length is not a whole number of chunks.
            guard (areaExtents * extentSize) % stripeSize == 0 else {
                return bad("stripe area of \(areaExtents * extentSize) sectors is not a multiple of stripe_size \(stripeSize)")
            }
        }
        guard let list = seg.list("stripes"), list.count == 2 * Int(n) else {
            return bad("stripes list does not hold \(n) (pv, extent) pairs")
        }
        var stripes: [Stripe] = []
        for i in 0 ..< Int(n) {
            guard let pvKey = list[2 * i].string, let first = list[2 * i + 1].integer, first >= 0, first <= Int64(UInt32.max) else {
                return bad("stripe \(i) is not a (pv name, extent) pair")
            }
            guard let pv = pvs.first(where: { $0.key == pvKey }) else { return bad("stripe \(i) names unknown PV \(pvKey)") }
            guard UInt64(first) + areaExtents <= pv.peCount else {
                return bad("stripe \(i) uses extents \(first)..<\(UInt64(first) + areaExtents) of \(pvKey), which has \(pv.peCount)")
            }
            stripes.append(Stripe(pv: pvKey, startExtent: UInt64(first)))
        }
        return .success(Segment(startExtent: UInt64(start), extentCount: extentCount, type: type,
                                layout: .striped(stripeSize: stripeSize, stripes: stripes)))
    }

    struct SegmentError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// LVM names: `[A-Za-z0-9+_.-]`, not starting with `-`, not `.` or `..`
    /// (lvm2 lib/misc/lvm-string.c `_validate_name`). Names become device paths, so this matters.
    static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 127, name != ".", name != "..", !name.hasPrefix("-") else { return false }
        return name.utf8.allSatisfy { c in
            (0x30...0x39).contains(c) || (0x41...0x5a).contains(c) || (0x61...0x7a).contains(c) || "+_.-".utf8.contains(c)
        }
    }

    /// A dashed or undashed LVM UUID: 32 characters of `[0-9A-Za-z]`.
    static func isValidUUID(_ uuid: String) -> Bool {
        let raw = LVMLabel.undashed(uuid)
        return raw.utf8.count == 32 && LVMLabel.formatUUID(Array(raw.utf8)) != nil
    }
}
