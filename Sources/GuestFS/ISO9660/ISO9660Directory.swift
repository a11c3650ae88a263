import GuestFSBlock
import GuestFSFilesystem

/// Reading one directory's extent into its records (ECMA-119 6.8.1: a directory is a file of
/// directory records; 6.8.1.1: a record never spans a logical sector, the rest of a sector after
/// the last record is zero, so a zero length byte means "go on at the next sector").
///
/// A file of several sections (6.5.1; ISO 9660 level 3, files of 4 GiB and more) is several
/// consecutive records with the same identifier, all but the last flagged multi-extent: they
/// come back as one group. Damage costs only what it touches: a sector that cannot be read, or
/// holds a record whose lengths do not add up, loses its records from there to the sector's end
/// (reported once), and the next sector is read as usual.
struct ISO9660DirectoryReader {
    /// Sectors of a directory are 2048 bytes (6.1.2), whatever the logical block size.
    static let sectorSize = 2048
    /// Most bytes of one directory read (a record is at least 34 bytes: 8 million entries).
    static let maxDirectoryBytes: UInt64 = 256 << 20
    /// The kernel gives up on a file of more than 100 sections (isofs_read_level3_size).
    static let maxSections = 100
    /// Sectors read at once.
    static let sectorsPerRead = 32

    let device: any BlockDevice
    let report: (String) -> Void

    /// The record groups of the directory whose extent starts at byte `start` and is `size`
    /// bytes long, in on-disk order ("." and ".." included).
    func groups(start: UInt64, size: UInt64) throws -> [[ISO9660DirectoryRecord]] {
        let name = device.displayName
        guard size <= Self.maxDirectoryBytes else {
            throw ImageError(path: name, offset: start, structure: "ISO 9660 directory",
                             reason: "directory size of \(size) bytes is over the limit of \(Self.maxDirectoryBytes)", errno: .ioError)
        }
        let (end, overflow) = start.addingReportingOverflow(size)
        guard !overflow, end <= device.size else {
            throw ImageError(path: name, offset: start, structure: "ISO 9660 directory",
                             reason: "directory extent of \(size) bytes runs past the end of the device (size \(device.size))", errno: .ioError)
        }
        var groups: [[ISO9660DirectoryRecord]] = []
        var pending: [ISO9660DirectoryRecord] = []
        let sector = UInt64(Self.sectorSize)
        let sectors = (size + sector - 1) / sector
        var index: UInt64 = 0
        while index < sectors {
            let count = min(UInt64(Self.sectorsPerRead), sectors - index)
            let chunkStart = start + index * sector
            let chunkLength = Int(min(count * sector, size - index * sector))
            let chunk: [UInt8]
            do { chunk = try device.readBytes(at: chunkStart, count: chunkLength) } catch {
                report("\(name): ISO 9660 directory at 0x\(String(start, radix: 16)): sectors at 0x\(String(chunkStart, radix: 16)) cannot be read (\(error)); their entries are skipped")
                pending = []
                index += count
                continue
            }
            var s = 0
            while s < chunkLength {
                let sectorEnd = min(s + Self.sectorSize, chunkLength)
                let sectorOffset = chunkStart + UInt64(s)
                var pos = s
                while pos < sectorEnd {
                    let length = Int(chunk[pos])
                    if length == 0 { break }
                    let recordOffset = chunkStart + UInt64(pos)
                    guard pos + length <= sectorEnd else {
                        report("\(name): ISO 9660 directory at 0x\(String(start, radix: 16)): record at 0x\(String(recordOffset, radix: 16)) runs past its sector; the rest of the sector is skipped")
                        pending = []
                        break
                    }
                    let record: ISO9660DirectoryRecord
                    do { record = try ISO9660DirectoryRecord(chunk[pos ..< pos + length], offset: recordOffset, device: name) } catch {
                        report("\(error); the rest of the sector at 0x\(String(sectorOffset, radix: 16)) is skipped")
                        pending = []
                        break
                    }
                    pos += length
                    if let first = pending.first, first.identifier != record.identifier {
                        report("\(name): ISO 9660 directory at 0x\(String(start, radix: 16)): multi-extent file at 0x\(String(first.offset, radix: 16)) is cut short; it is skipped")
                        pending = []
                    }
                    pending.append(record)
                    if record.flags.contains(.multiExtent) {
                        if pending.count >= Self.maxSections {
                            report("\(name): ISO 9660 directory at 0x\(String(start, radix: 16)): file at 0x\(String(pending[0].offset, radix: 16)) has more than \(Self.maxSections) sections; it is skipped")
                            pending = []
                        }
                        continue
                    }
                    groups.append(pending)
                    pending = []
                }
                s = sectorEnd
            }
            index += count
        }
        if let first = pending.first {
            report("\(name): ISO 9660 directory at 0x\(String(start, radix: 16)): multi-extent file at 0x\(String(first.offset, radix: 16)) has no final section; it is skipped")
        }
        return groups
    }

    /// The sections of the file whose first record is at `offset`, read forward from there as
    /// the kernel's isofs_read_level3_size does: the next record follows, or starts the next
    /// logical block when the length byte is zero. Used to decode a node from its id alone.
    func sections(startingAt offset: UInt64, blockSize: UInt32) throws -> [ISO9660DirectoryRecord] {
        var out: [ISO9660DirectoryRecord] = []
        var pos = offset
        let bs = UInt64(blockSize)
        var zeroSkips = 0
        while out.count < Self.maxSections {
            guard pos < device.size else { break }
            let window = try device.readBytes(at: pos, count: Int(min(255, device.size - pos)))
            if window[0] == 0 {
                // Padding to the end of the block; at most one skip in a row, or the image is damaged.
                zeroSkips += 1
                guard zeroSkips == 1, out.count > 0 else { break }
                pos = (pos / bs + 1) * bs
                continue
            }
            zeroSkips = 0
            let record = try ISO9660DirectoryRecord(window[...], offset: pos, device: device.displayName)
            if let first = out.first, first.identifier != record.identifier { break }
            out.append(record)
            if !record.flags.contains(.multiExtent) { return out }
            pos += UInt64(record.length)
        }
        guard let first = out.first else {
            throw ImageError(path: device.displayName, offset: offset, structure: "ISO 9660 directory record",
                             reason: "no directory record here", errno: .ioError)
        }
        throw ImageError(path: device.displayName, offset: first.offset, structure: "ISO 9660 directory record",
                         reason: "multi-extent file has no final section within \(Self.maxSections) records", errno: .ioError)
    }
}
