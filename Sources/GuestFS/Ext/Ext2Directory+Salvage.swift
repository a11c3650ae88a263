import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import Synchronization
import SystemPackage

/// Reading what is left of a damaged directory, as the kernel's ext4_readdir does: a block with
/// a bad entry (ext4_check_dir_entry fails) loses that entry and the rest of the block, a block
/// whose checksum fails is skipped whole, and every other block is listed. libext2fs's
/// ext2fs_dir_iterate2 instead gives up on the whole directory at the first bad entry, so it is
/// the fast path and this the fallback.
///
/// Layout: the ext4 disk layout, "Linear (Classic) Directories" (struct ext4_dir_entry_2:
/// inode, rec_len, name_len, file_type, name) and "Hash Tree Directories" (index blocks read as
/// one empty entry, so they list nothing, as for libext2fs).
extension Ext2Filesystem {
    /// Most blocks of one directory the fallback reads (16 GiB of directory at 4 KiB blocks).
    static let maxSalvagedDirectoryBlocks: UInt64 = 1 << 22

    /// libext2fs codes that mean "a directory block is damaged", after which the directory is
    /// read again block by block.
    static func isDirectoryDamage(_ code: errcode_t) -> Bool {
        code == errcode_t(EXT2_ET_DIR_CORRUPTED) || code == errcode_t(EXT2_ET_DIR_CSUM_INVALID)
    }

    /// The entries of block-mapped directory `dir`, block by block, each damaged block reported
    /// once through `reportDamage` (naming the inode and the block).
    func salvageDirectory(_ dir: UInt32, raw: ext2_inode_large, inode: Ext2Inode,
                          fs: ext2_filsys) throws -> (entries: [DirEntry], blocks: [[UInt8]: UInt32]) {
        let blockSize = UInt64(self.blockSize)
        let blocks = inode.size / blockSize
        guard blocks <= Self.maxSalvagedDirectoryBlocks else {
            throw ImageError(path: device.displayName, structure: "directory inode \(dir)",
                             reason: "damaged, and its size of \(inode.size) bytes is too large to read block by block",
                             errno: .ioError)
        }
        let runs = blocks == 0 ? [] : try mapBlocksLocked(raw: raw, inode: inode, from: 0, through: blocks - 1, limit: nil, fs: fs) ?? []
        var entries: [DirEntry] = []
        var names: [[UInt8]: UInt32] = [:]
        var buffer = [UInt8](repeating: 0, count: self.blockSize)
        for run in runs where !run.zeroed {
            for i in 0..<run.count {
                let logical = run.logical + i, physical = run.physical + i
                guard physical < superblock.blocksCount else {
                    reportDamage("\(device.displayName): directory inode \(dir), block \(logical): points outside the filesystem (block \(physical)); its entries are skipped")
                    continue
                }
                let rc = buffer.withUnsafeMutableBytes { ext2fs_read_dir_block4(fs, physical, $0.baseAddress, 0, dir) }
                if rc == errcode_t(EXT2_ET_DIR_CSUM_INVALID) {
                    reportDamage("\(device.displayName): directory inode \(dir), block \(logical) (block \(physical) on disk): checksum does not match; its entries are skipped")
                    continue
                }
                try check(rc, "directory block \(logical)", inode: dir)
                let found = parseDirectoryBlock(buffer, dir: dir, logical: logical, physical: physical)
                for entry in found {
                    guard entries.count < Self.maxDirectoryEntries else {
                        throw ImageError(path: device.displayName, structure: "directory inode \(dir)",
                                         reason: "more than \(Self.maxDirectoryEntries) entries; directory looks damaged",
                                         errno: .ioError)
                    }
                    entries.append(entry)
                    names[entry.name] = UInt32(truncatingIfNeeded: logical)
                }
            }
        }
        return (entries, names)
    }

    /// The good entries of one directory block, up to the first bad one (ext4_check_dir_entry's
    /// tests: rec_len at least 12, a multiple of 4, room for the name, inside the block; the
    /// inode number within the filesystem). A bad entry is reported.
    func parseDirectoryBlock(_ b: [UInt8], dir: UInt32, logical: UInt64, physical: UInt64) -> [DirEntry] {
        func le16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func le32(_ i: Int) -> UInt32 { UInt32(le16(i)) | UInt32(le16(i + 2)) << 16 }
        var out: [DirEntry] = []
        var offset = 0
        while offset + 8 <= b.count {
            let inode = le32(offset)
            let raw = le16(offset + 4)
            // ext2fs_get_rec_len: 64 KiB blocks store 65536 as 0 or 65535 and use the low bits.
            let recLen = b.count < 65536 ? raw : (raw == 65535 || raw == 0) ? b.count : (raw & 65532) | ((raw & 3) << 16)
            let nameLength = Int(b[offset + 6])
            var problem: String?
            if recLen < 12 || recLen % 4 != 0 {
                problem = "rec_len \(recLen) is below 12 or not a multiple of 4"
            } else if recLen < (8 + nameLength + 3) & ~3 {
                problem = "rec_len \(recLen) is too small for a name of \(nameLength) bytes"
            } else if offset + recLen > b.count {
                problem = "rec_len \(recLen) runs past the end of the block"
            } else if UInt64(inode) > superblock.inodesCount {
                problem = "inode \(inode) is above the inode count (\(superblock.inodesCount))"
            }
            if let problem {
                reportDamage("\(device.displayName): directory inode \(dir), block \(logical) (block \(physical) on disk): bad entry at offset \(offset): \(problem); the rest of the block is skipped")
                break
            }
            if inode != 0, nameLength > 0 {
                let name = Array(b[(offset + 8)..<(offset + 8 + nameLength)])
                if name != [0x2E] && name != [0x2E, 0x2E] {
                    let type = superblock.incompatFeatures & Ext2Superblock.incompatFileType != 0 ? b[offset + 7] & 7 : 0
                    out.append(DirEntry(name: name, inode: inode, fileType: type))
                }
            }
            offset += recLen
        }
        return out
    }
}

extension Ext2Filesystem {
    /// Reports damage that cost part of a structure (see `DamageLog`).
    func reportDamage(_ message: String) { damageLog.report(message) }

    /// Where damage reports go from now on (default: standard error, as `imagemount: warning:`).
    package func setDamageLog(_ sink: @escaping @Sendable (String) -> Void) { damageLog.setSink(sink) }
}
