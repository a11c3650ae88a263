import GuestFSBlock
import GuestFSFilesystem

/// An open regular file of an ISO 9660 volume: its sections (one, or several for a multi-extent
/// file) are contiguous runs on the device, so reads go straight to the device, from any number
/// of threads, with no lock.
package final class ISO9660File: GuestFile {
    let device: any BlockDevice
    let sections: [ISO9660Node.Section]
    package let size: UInt64
    let node: UInt64

    init(device: any BlockDevice, node: ISO9660Node) {
        self.device = device
        self.sections = node.sections
        self.size = node.attributes.size
        self.node = node.id
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        let wanted = Int(min(UInt64(buffer.count), size - offset))
        var done = 0
        var sectionStart: UInt64 = 0
        for section in sections {
            guard done < wanted else { break }
            let position = offset + UInt64(done)
            let sectionEnd = sectionStart + section.length   // sizes were summed without overflow at decode
            defer { sectionStart = sectionEnd }
            guard position < sectionEnd else { continue }
            let inSection = position - sectionStart
            let n = Int(min(UInt64(wanted - done), section.length - inSection))
            let (at, overflow) = section.deviceOffset.addingReportingOverflow(inSection)
            let (end, overflow2) = at.addingReportingOverflow(UInt64(n))
            guard !overflow, !overflow2, end <= device.size else {
                throw ImageError(path: device.displayName, offset: section.deviceOffset, structure: "ISO 9660 file data (node 0x\(String(node, radix: 16)))",
                                 reason: "section of \(section.length) bytes runs past the end of the device (size \(device.size))", errno: .ioError)
            }
            try device.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + n]), at: at)
            done += n
        }
        return done
    }

    /// ISO 9660 files have no holes: all of the file is data.
    package func dataRanges() throws -> [(offset: UInt64, length: UInt64)] {
        size == 0 ? [] : [(offset: UInt64(0), length: size)]
    }
}
