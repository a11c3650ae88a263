import GuestFSBlock

/// The LVM2 layer's entry point: from the PVs found on the drives to the VGs they form and the
/// LVs those hold, as block devices.
///
/// What lvm2 does, and we do likewise (lib/cache/lvmcache.c, lib/metadata/metadata.c `vg_read`):
/// read each PV's label and metadata areas; group PVs by the VG UUID of their metadata; of the
/// copies a VG has, use the one with the highest `seqno`; find each PV of the VG among the
/// labels by PV UUID (a PV made with `--metadatacopies 0` carries no metadata and is found this
/// way only). A PV that is not there costs the LVs that use it, not the VG.
///
/// Damage never throws out of `scan`: each problem is one line in `warnings`, and everything
/// else found is kept. LVs skipped by design (hidden sub-volumes) are listed in `notes`.
package enum LVM {
    /// A PV handed to `scan`: its guest name (`/dev/sda2`) and its device.
    package typealias PhysicalVolumeInput = (name: String, device: any BlockDevice)

    /// `error` as a message about the guest device `name` (`/dev/sdb: LVM label at 0x200: …`)
    /// rather than about the host file behind it.
    static func named(_ error: any Error, _ name: String) -> String {
        var wrapped = ImageError.wrap(error)
        wrapped.path = name
        return wrapped.description
    }

    /// Reads the PVs, assembles their VGs and maps every LV that can be read.
    package static func scan(pvs inputs: [PhysicalVolumeInput]) -> LVMScanResult {
        var warnings: [String] = [], notes: [String] = []

        // 1. Labels and metadata copies, per PV.
        struct Copy { let pv: String; let vgName: String; let vgUUID: String; let seqno: UInt64; let section: LVMConfigSection }
        var labels: [(input: PhysicalVolumeInput, label: LVMLabel)] = []
        var copies: [Copy] = []
        for input in inputs {
            let label: LVMLabel
            do {
                guard let found = try LVMLabel.read(from: input.device) else {
                    warnings.append("\(input.name): no LVM label in sectors 0-3; not used as a PV")
                    continue
                }
                label = found
            } catch {
                warnings.append("\(named(error, input.name)); PV ignored")
                continue
            }
            if let twin = labels.first(where: { $0.label.pvUUID == label.pvUUID }) {
                warnings.append("\(input.name): PV UUID \(label.pvUUID) is also on \(twin.input.name) (the same disk added twice?); using \(twin.input.name)")
                continue
            }
            labels.append((input, label))
            for area in label.metadataAreas {
                do {
                    let mda = try LVMMetadataArea.read(from: input.device, area: area)
                    guard let text = mda.text else { continue }
                    let root = try LVMMetadataParser.parse(text, source: input.name)
                    guard let (vgName, section) = LVMVolumeGroup.vgSection(of: root),
                          let uuid = section.string("id"), let seqno = section.integer("seqno"), seqno >= 0 else {
                        warnings.append("\(input.name): metadata at 0x\(String(area.offset, radix: 16)) names no VG with an id and seqno; copy ignored")
                        continue
                    }
                    copies.append(Copy(pv: input.name, vgName: vgName, vgUUID: LVMLabel.undashed(uuid), seqno: UInt64(seqno), section: section))
                } catch {
                    warnings.append("\(named(error, input.name)); metadata copy ignored")
                }
            }
        }

        // 2. VGs: the newest copy of each VG UUID that decodes.
        var groups: [LVMVolumeGroup] = []
        var order: [String] = []
        var byUUID: [String: [Copy]] = [:]
        for copy in copies {
            if byUUID[copy.vgUUID] == nil { order.append(copy.vgUUID) }
            byUUID[copy.vgUUID, default: []].append(copy)
        }
        for uuid in order {
            let candidates = byUUID[uuid]!.sorted { $0.seqno > $1.seqno }
            if let newest = candidates.first, let stale = candidates.last(where: { $0.seqno < newest.seqno }) {
                warnings.append("VG \(newest.vgName): \(stale.pv) holds older metadata (seqno \(stale.seqno) < \(newest.seqno)); using the newest")
            }
            var decoded: LVMVolumeGroup?
            var tried = Set<UInt64>()
            for candidate in candidates where tried.insert(candidate.seqno).inserted {
                do {
                    decoded = try LVMVolumeGroup(name: candidate.vgName, section: candidate.section, source: candidate.pv)
                    break
                } catch {
                    warnings.append("\(ImageError.wrap(error)); metadata seqno \(candidate.seqno) not used")
                }
            }
            guard let group = decoded else { continue }
            if groups.contains(where: { $0.name == group.name }) {
                warnings.append("VG \(group.name) (\(group.uuid)): another VG of that name was found first; this one is skipped")
                continue
            }
            groups.append(group)
        }

        // 3. PVs of each VG found by UUID; LVs mapped over them.
        var lvDevices: [LogicalVolumeDevice] = []
        var membership: [String: LVMVolumeGroup] = [:]   // undashed PV UUID → VG
        for group in groups {
            var pvDevices: [String: any BlockDevice] = [:], pvNames: [String: String] = [:]
            var missing: [String: String] = [:]           // PV key → UUID
            for pv in group.physicalVolumes {
                let raw = LVMLabel.undashed(pv.uuid)
                if let found = labels.first(where: { LVMLabel.undashed($0.label.pvUUID) == raw }) {
                    pvDevices[pv.key] = found.input.device
                    pvNames[pv.key] = found.input.name
                    membership[raw] = group
                } else {
                    missing[pv.key] = pv.uuid
                    warnings.append("VG \(group.name): PV \(pv.key) (\(pv.uuid), last seen as \(pv.deviceHint ?? "?")) is missing")
                }
            }
            for volume in group.logicalVolumes {
                let label = "\(group.name)/\(volume.name)"
                if let reason = volume.skipReason {
                    if volume.isVisible { warnings.append("LV \(label): \(reason); skipped") }
                    else { notes.append("LV \(label): \(reason); skipped") }
                    continue
                }
                let absent = volume.segments.flatMap { segment -> [String] in
                    guard case .striped(_, let stripes) = segment.layout else { return [] }
                    return stripes.map(\.pv).filter { missing[$0] != nil }
                }
                if let first = absent.first {
                    warnings.append("LV \(label): PV \(first) (\(missing[first]!)) is missing; skipped")
                    continue
                }
                do {
                    lvDevices.append(try LogicalVolumeDevice(group: group, volume: volume, pvDevices: pvDevices, pvNames: pvNames))
                } catch {
                    let e = ImageError.wrap(error)
                    warnings.append("LV \(label): \(e.structure.map { "\($0): " } ?? "")\(e.reason); skipped")
                }
            }
        }

        let pvInfo = labels.map { entry -> LVMPhysicalVolumeInfo in
            let group = membership[LVMLabel.undashed(entry.label.pvUUID)]
            let pv = group?.physicalVolumes.first { LVMLabel.undashed($0.uuid) == LVMLabel.undashed(entry.label.pvUUID) }
            return LVMPhysicalVolumeInfo(name: entry.input.name, uuid: entry.label.pvUUID,
                                         size: pv.map { $0.peCount &* group!.extentBytes } ?? entry.label.deviceSize,
                                         deviceSize: entry.input.device.size, peStart: pv.map { $0.peStart &* 512 },
                                         volumeGroup: group?.name, volumeGroupUUID: group?.uuid, label: entry.label)
        }
        return LVMScanResult(physicalVolumes: pvInfo, volumeGroups: groups, logicalVolumes: lvDevices,
                             warnings: warnings, notes: notes)
    }
}

/// A PV found by `LVM.scan`: what `pvs` shows of it.
package struct LVMPhysicalVolumeInfo: Sendable {
    /// The guest device it is on (`/dev/sda2`).
    package let name: String
    /// PV UUID, dashed.
    package let uuid: String
    /// Bytes of extents (`pe_count × extent size`, as `pvs` reports `pv_size`) for a PV in a VG;
    /// the label's device size otherwise.
    package let size: UInt64
    /// The size of the device holding it.
    package let deviceSize: UInt64
    /// Where its extents start, in bytes (`pe_start`), when in a VG.
    package let peStart: UInt64?
    /// The VG it belongs to, if its metadata (or another PV's) says so.
    package let volumeGroup: String?
    package let volumeGroupUUID: String?
    package let label: LVMLabel
}

/// What `LVM.scan` found.
package struct LVMScanResult: Sendable {
    package let physicalVolumes: [LVMPhysicalVolumeInfo]
    package let volumeGroups: [LVMVolumeGroup]
    /// Every LV that could be mapped, VG by VG in metadata order.
    package let logicalVolumes: [LogicalVolumeDevice]
    /// One line per problem (damaged label or metadata, missing PV, unsupported visible LV, …).
    package let warnings: [String]
    /// One line per LV skipped by design (hidden sub-volumes such as snapshot0).
    package let notes: [String]

    package static let empty = LVMScanResult(physicalVolumes: [], volumeGroups: [], logicalVolumes: [], warnings: [], notes: [])
}
