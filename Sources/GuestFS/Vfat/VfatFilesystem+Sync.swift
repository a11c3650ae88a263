import GuestFSBlock
import GuestFSFilesystem

/// The volume's dirty marks, write-back of the FAT and FSInfo, sync and close.
///
/// As the kernel's fat_set_state: the first write marks the volume dirty (bit 0 of the boot
/// sector's state byte, BS_Reserved1) and, on FAT16/32, clears FAT[1]'s clean-shutdown bit
/// (fatgen103 §4.2); a clean close puts both back. A volume that was already dirty when
/// opened stays dirty, so its fsck still runs.
extension VfatFilesystem {
    /// Called first by every write operation, under the lock.
    func beginWrite(_ s: inout State) throws {
        guard isWritable else {
            throw error(.readOnlyFileSystem, "filesystem", "opened read-only")
        }
        guard !s.markedDirty else { return }
        s.markedDirty = true
        if !wasDirtyAtOpen {
            try device.writeBytes([boot.state | 0x01], at: UInt64(boot.stateOffset))
            s.table.setCleanBit(false)
            try s.table.flush(to: device, boot: boot)
            try device.flush()
        }
    }

    /// Whether the volume was marked dirty before we opened it.
    var wasDirtyAtOpen: Bool { boot.state & 0x01 != 0 || initialCleanBit == false }

    /// Writes the changed FAT sectors and the FSInfo hints.
    func writeBack(_ s: inout State) throws {
        try s.table.flush(to: device, boot: boot)
        if let info = boot.fsInfoSector {
            let at = UInt64(info) * UInt64(boot.bytesPerSector)
            let sector = try device.readBytes(at: at, count: 512)
            if VfatFSInfo.isValid(sector) {
                var fields: [UInt8] = []
                for v in [s.table.freeCount, s.table.nextFreeHint] {
                    for k in 0..<4 { fields.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
                }
                if Array(sector[VfatFSInfo.freeCountOffset ..< VfatFSInfo.freeCountOffset + 8]) != fields {
                    try device.writeBytes(fields, at: at + UInt64(VfatFSInfo.freeCountOffset))
                }
            }
        }
    }

    package func sync() throws {
        try locked { s in
            guard isWritable, s.markedDirty else { return }
            try writeBack(&s)
            try device.flush()
        }
    }

    /// Frees what unlinked-but-open nodes and fallocate kept, writes everything back and,
    /// when we set them, clears the dirty marks. Nothing may be called afterwards.
    package func close() throws {
        try locked { s in
            if isWritable && s.markedDirty {
                for id in s.nodes.detachedNodes { try release(id, &s) }
                for id in s.preallocated { try trimPreallocation(id, &s) }
                try writeBack(&s)
                if !wasDirtyAtOpen {
                    s.table.setCleanBit(true)
                    try s.table.flush(to: device, boot: boot)
                    try device.flush()
                    try device.writeBytes([boot.state & ~0x01], at: UInt64(boot.stateOffset))
                }
                try device.flush()
            }
            s.closed = true
        }
    }
}
