import Synchronization

/// The plaintext of an encrypted payload: decrypts on read, encrypts on write, and passes the
/// ciphertext to the device below (a LUKS partition or LV, a raw LUKS image — or, through
/// `Qcow2Encryption`, nothing: qcow2 encrypts per cluster itself).
///
/// Reads are safe from many threads at once (each call has its own cipher contexts). Writes that
/// do not cover whole encryption sectors read, patch and re-encrypt the sectors at their edges;
/// writes are serialized so two such patches of one sector cannot interleave.
package final class DecryptingDevice: BlockDevice {
    package let base: any BlockDevice
    /// Where the payload starts in `base`.
    package let payloadOffset: UInt64
    package let size: UInt64
    package let cipher: SectorCipher
    /// IV sector number (512-byte units) of payload byte 0: 0 for LUKS (dm-crypt's iv_offset).
    package let firstIVSector: UInt64
    package let displayName: String
    /// The LUKS header the volume was opened from, when it was one.
    package let header: LUKSHeader?
    private let writeLock = Mutex(())

    package init(base: any BlockDevice, payloadOffset: UInt64, size: UInt64, cipher: SectorCipher,
                firstIVSector: UInt64 = 0, name: String, header: LUKSHeader? = nil) throws {
        // Both come from the header on the device: a hostile one gets a typed error, not a trap.
        guard size % UInt64(cipher.sectorSize) == 0 else {
            throw ImageError(path: base.displayName, offset: payloadOffset, structure: "LUKS payload",
                             reason: "payload of \(size) bytes is not a whole number of \(cipher.sectorSize)-byte sectors")
        }
        guard payloadOffset <= base.size, size <= base.size - payloadOffset else {
            throw ImageError(path: base.displayName, offset: payloadOffset, structure: "LUKS payload",
                             reason: "payload (\(size) bytes at 0x\(String(payloadOffset, radix: 16))) lies past the end of the device (\(base.size) bytes)")
        }
        self.base = base
        self.payloadOffset = payloadOffset
        self.size = size
        self.cipher = cipher
        self.firstIVSector = firstIVSector
        self.displayName = name
        self.header = header
    }

    package var isWritable: Bool { base.isWritable }

    private var sectorSize: UInt64 { UInt64(cipher.sectorSize) }

    private func ivSector(ofPayloadOffset offset: UInt64) -> UInt64 { firstIVSector &+ offset / 512 }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        guard buffer.count > 0 else { return }
        let start = offset / sectorSize * sectorSize
        let end = (offset + UInt64(buffer.count) + sectorSize - 1) / sectorSize * sectorSize
        if start == offset, end == offset + UInt64(buffer.count) {
            try base.read(into: buffer, at: payloadOffset + offset)
            cipher.decrypt(buffer, firstSector: ivSector(ofPayloadOffset: offset))
            return
        }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 16)
        defer { SecretBytes.wipe(scratch); scratch.deallocate() }
        try base.read(into: scratch, at: payloadOffset + start)
        cipher.decrypt(scratch, firstSector: ivSector(ofPayloadOffset: start))
        let skip = Int(offset - start)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[skip..<(skip + buffer.count)]))
    }

    package func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        guard buffer.count > 0 else { return }
        let start = offset / sectorSize * sectorSize
        let end = (offset + UInt64(buffer.count) + sectorSize - 1) / sectorSize * sectorSize
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 16)
        defer { SecretBytes.wipe(scratch); scratch.deallocate() }
        try writeLock.withLock { _ in
            if start != offset {
                try read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<Int(sectorSize)]), at: start)
            }
            if end != offset + UInt64(buffer.count), end - sectorSize != start || start == offset {
                let last = Int(end - start - sectorSize)
                try read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[last...]), at: end - sectorSize)
            }
            let skip = Int(offset - start)
            UnsafeMutableRawBufferPointer(rebasing: scratch[skip..<(skip + buffer.count)]).copyMemory(from: buffer)
            cipher.encrypt(scratch, firstSector: ivSector(ofPayloadOffset: start))
            try base.write(UnsafeRawBufferPointer(scratch), at: payloadOffset + start)
        }
    }

    package func flush() throws { try base.flush() }
}
