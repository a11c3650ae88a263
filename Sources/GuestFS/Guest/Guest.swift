import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS

/// A drive given with `-a IMAGE` (and `--format` before it).
public struct DriveSpec: Sendable, Equatable {
    public var path: String
    public var format: ImageFormat?
    /// The disk's sector size, the unit of its MBR or GPT (`--blocksize`): 512 or 4096.
    public var sectorSize: UInt64
    /// How to reach the Ceph cluster when `path` names an RBD image (`rbd:POOL/IMAGE`).
    public var rbdClient: RBDClientOptions
    public init(path: String, format: ImageFormat? = nil, sectorSize: UInt64 = 512, rbdClient: RBDClientOptions = RBDClientOptions()) {
        self.path = path; self.format = format; self.sectorSize = sectorSize; self.rbdClient = rbdClient
    }
}

/// A block device the guest would see: a whole disk, a partition, an LVM logical volume, or the
/// plaintext of an unlocked LUKS container.
public struct GuestDevice: Sendable {
    public enum Kind: String, Sendable {
        case disk, partition, logicalVolume
        /// An unlocked LUKS container's plaintext, `/dev/mapper/luks-UUID` (a `DecryptingDevice`).
        case luks
    }
    /// The canonical name: `/dev/sda`, `/dev/sda1`, `/dev/VG/LV`, `/dev/mapper/luks-UUID`.
    public let name: String
    public let kind: Kind
    public let device: any BlockDevice
    /// For a partition, the disk it is on (`/dev/sda`); for a logical volume, its VG's name;
    /// for an unlocked LUKS volume, the container's device name.
    public let parent: String?
    public let partition: Partition?
    /// What the device holds, probed once.
    public let content: VolumeContent
}

/// The session handle: the drives added, the devices found on them, and what each holds.
///
/// Names follow libguestfs: the first drive is `/dev/sda`, its partitions `/dev/sda1`…
/// (MBR logical partitions from 5), the second drive `/dev/sdb` (DESIGN.md §2).
public final class Guest: Sendable {
    public let drives: [GuestDevice]
    public let partitionTables: [String: PartitionTable]
    /// Every device in order: each disk followed by its partitions, then the LVM logical volumes.
    public let devices: [GuestDevice]
    /// What the LVM scan of the PVs found on the drives: PVs, VGs, LVs, and why LVs were skipped.
    package let lvm: LVMScanResult
    /// The LVM volume groups assembled from the PVs on all drives.
    package var volumeGroups: [LVMVolumeGroup] { lvm.volumeGroups }
    /// The LVM physical volumes found (devices with an LVM2 label).
    package var physicalVolumes: [LVMPhysicalVolumeInfo] { lvm.physicalVolumes }
    /// Lines to show the user (damaged GPT fell back to backup, skipped partitions…).
    public let warnings: [String]
    public let isWritable: Bool
    /// LUKS containers left locked because no key was given for them (device names).
    public let lockedVolumes: [String]

    /// Opens every drive and reads its partition table. Images are opened read-only unless
    /// `writable`; `snapshot` (a qcow2 internal snapshot's name or ID) opens that state, read-only.
    /// `keys` unlock encrypted qcow2 images and the LUKS containers on the drives: these are
    /// opened as `/dev/mapper/luks-UUID` before the LVM scan, and again on the LVs after it, so
    /// both LVM inside LUKS and LUKS on an LV work. A container with no key stays locked (with a
    /// warning); a key that matches no key slot is an error.
    public init(drives specs: [DriveSpec], writable: Bool = false, snapshot: String? = nil, keys: KeyStore? = nil) throws {
        var drives: [GuestDevice] = [], devices: [GuestDevice] = [], tables: [String: PartitionTable] = [:]
        var warnings: [String] = []
        var locked: [String] = []
        for (index, spec) in specs.enumerated() {
            let name = diskName(index: index)
            var options = ImageOpenOptions(format: spec.format, writable: writable && snapshot == nil, snapshot: snapshot,
                                           keys: keys, keyIDs: Self.aliases(of: name))
            options.rbdClient = spec.rbdClient
            let image = try ImageOpener.open(path: spec.path, options: options)
            let table: PartitionTable?
            do {
                guard PartitionTable.supportedSectorSizes.contains(spec.sectorSize) else {
                    throw ImageError(path: spec.path, structure: "drive", reason: "sector size \(spec.sectorSize) is not 512 or 4096",
                                     errno: .invalidArgument)
                }
                table = try PartitionTable.read(from: image, diskName: name, sectorSize: spec.sectorSize)
            } catch {
                throw ImageError.wrap(error, path: spec.path)
            }
            // A table with no usable partition (an MBR whose entries are all empty or invalid, as
            // a 55AA boot signature over a whole-disk filesystem leaves it) hides nothing: the
            // whole disk is probed, as blkid and the kernel read such a disk.
            let wholeDisk = table?.partitions.isEmpty ?? true
            let disk = GuestDevice(name: name, kind: .disk, device: image, parent: nil, partition: nil,
                                   content: wholeDisk ? VolumeProbe.probe(image) : VolumeContent(type: nil, label: nil, uuid: nil))
            drives.append(disk)
            devices.append(disk)
            if let table {
                tables[name] = table
                warnings += table.warnings
                for p in table.partitions {
                    let content = p.isExtendedContainer ? VolumeContent(type: nil, label: nil, uuid: nil) : VolumeProbe.probe(p.device)
                    devices.append(GuestDevice(name: p.name, kind: .partition, device: p.device, parent: name,
                                               partition: p, content: content))
                }
            }
        }
        // LUKS on disks and partitions first: a PV may be inside one.
        devices += try Self.unlockLUKS(in: devices, keys: keys, locked: &locked, warnings: &warnings)
        // LVM: every device labelled as a PV, across all drives (a VG may span several -a).
        let pvs = devices.filter { $0.content.type == "LVM2_member" }.map { (name: $0.name, device: $0.device) }
        let lvm = pvs.isEmpty ? LVMScanResult.empty : LVM.scan(pvs: pvs)
        warnings += lvm.warnings
        var logicalVolumes: [GuestDevice] = []
        for volume in lvm.logicalVolumes {
            logicalVolumes.append(GuestDevice(name: volume.path, kind: .logicalVolume, device: volume, parent: volume.volumeGroup,
                                              partition: nil, content: VolumeProbe.probe(volume)))
        }
        devices += logicalVolumes
        // Then LUKS on the LVs (a root filesystem inside LUKS on LVM).
        devices += try Self.unlockLUKS(in: logicalVolumes, keys: keys, locked: &locked, warnings: &warnings)
        self.lockedVolumes = locked
        self.lvm = lvm
        self.drives = drives
        self.devices = devices
        self.partitionTables = tables
        self.warnings = warnings
        self.isWritable = writable
    }

    /// The names a key selector may use for `name`: itself and its /dev/vd, /dev/hd, /dev/xvd forms.
    static func aliases(of name: String) -> [String] {
        guard name.hasPrefix("/dev/sd") else { return [name] }
        let rest = name.dropFirst("/dev/sd".count)
        return [name] + ["/dev/vd", "/dev/hd", "/dev/xvd"].map { $0 + rest }
    }

    /// Unlocks every crypto_LUKS device of `candidates` that a key is given for, returning the
    /// plaintext devices (named `/dev/mapper/luks-UUID`, as libguestfs names them).
    static func unlockLUKS(in candidates: [GuestDevice], keys: KeyStore?, locked: inout [String],
                           warnings: inout [String]) throws -> [GuestDevice] {
        var opened: [GuestDevice] = []
        for container in candidates where container.content.type == "crypto_LUKS" {
            let uuid = container.content.uuid ?? ""
            var ids = aliases(of: container.name)
            if !uuid.isEmpty { ids += [uuid, "UUID=" + uuid] }
            if let lv = container.device as? LogicalVolumeDevice { ids.append("/dev/mapper/" + lv.mapperName) }
            let passphrases = keys?.passphrases(for: ids, name: container.name) ?? []
            guard !passphrases.isEmpty else {
                locked.append(container.name)
                warnings.append("\(container.name): LUKS volume left locked: no key given for it (use --key \(container.name):key:PASSPHRASE, --key all:file:FILE or --keys-from-stdin)")
                continue
            }
            let name = "/dev/mapper/luks-" + (uuid.isEmpty ? container.name.split(separator: "/").last.map(String.init) ?? "volume" : uuid)
            let plaintext: DecryptingDevice
            do {
                plaintext = try LUKSVolume.open(container.device, passphrases: passphrases, name: name,
                                                limits: keys?.kdfLimits ?? .default)
            } catch {
                var e = ImageError.wrap(error)
                e.path = container.name
                throw e
            }
            opened.append(GuestDevice(name: name, kind: .luks, device: plaintext, parent: container.name, partition: nil,
                                      content: VolumeProbe.probe(plaintext)))
        }
        return opened
    }

    /// The devices holding ext2/3/4.
    public var extFilesystems: [GuestDevice] { devices.filter { $0.content.isExt } }
    /// The devices holding a filesystem a registered driver opens (FilesystemRegistry).
    public var openableFilesystems: [GuestDevice] { devices.filter { FilesystemRegistry.canOpen($0.content) } }

    /// Finds a device by any name a user or /etc/fstab may use for it: `/dev/sda1`,
    /// `/dev/vda1`, `/dev/hda1`, `/dev/xvda1`, `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`,
    /// the `/dev/disk/by-uuid|by-label|by-partuuid|by-partlabel/` links, and for logical volumes
    /// `/dev/VG/LV` and `/dev/mapper/VG-LV` (dashes in VG and LV names doubled, as device-mapper
    /// names them).
    public func device(named spec: String) throws -> GuestDevice {
        if let found = findDevice(spec) { return found }
        let known = devices.map(\.name).joined(separator: ", ")
        throw ImageError(structure: "device \(spec)", reason: "no such device (devices: \(known.isEmpty ? "none" : known))",
                         errno: .noSuchFileOrDirectory)
    }

    package func findDevice(_ spec: String) -> GuestDevice? {
        let tagged: [(prefix: String, key: KeyPath<GuestDevice, String?>)] = [
            ("UUID=", \.content.uuid), ("LABEL=", \.content.label),
            ("PARTUUID=", \.partition?.partUUID), ("PARTLABEL=", \.partition?.partLabel),
            ("/dev/disk/by-uuid/", \.content.uuid), ("/dev/disk/by-label/", \.content.label),
            ("/dev/disk/by-partuuid/", \.partition?.partUUID), ("/dev/disk/by-partlabel/", \.partition?.partLabel),
        ]
        for (prefix, key) in tagged where spec.hasPrefix(prefix) {
            var value = String(spec.dropFirst(prefix.count))
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = String(value.dropFirst().dropLast()) }
            return devices.first { ($0[keyPath: key] ?? "").caseInsensitiveEquals(value) }
        }
        // Exact names first: `/dev/vdata/root` is an LV, not `/dev/sdata/root`.
        if let exact = devices.first(where: { $0.name == spec }) { return exact }
        if spec.hasPrefix("/dev/mapper/") {
            let mapper = String(spec.dropFirst("/dev/mapper/".count))
            return devices.first { ($0.device as? LogicalVolumeDevice)?.mapperName == mapper }
        }
        let canonical = Self.canonicalName(spec)
        return devices.first { $0.name == canonical }
    }

    /// `/dev/vda1`, `/dev/hda1`, `/dev/xvda1` → `/dev/sda1` (libguestfs device name translation).
    static func canonicalName(_ name: String) -> String {
        for prefix in ["/dev/xvd", "/dev/vd", "/dev/hd", "/dev/sd"] where name.hasPrefix(prefix) {
            return "/dev/sd" + name.dropFirst(prefix.count)
        }
        return name
    }
}
