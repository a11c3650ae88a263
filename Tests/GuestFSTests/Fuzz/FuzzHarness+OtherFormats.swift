@testable import GuestFSBlock

extension FuzzHarness {
    /// Block/VHD: the footer (copy at 0 or at the end), the dynamic disk header, the BAT, reads
    /// across blocks; a differencing disk's locators, with its parent served from memory.
    static func vpc(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.vhd")
        _ = try? VHDMetadata.read(from: file)
        let parent = FuzzDevice(bytes: [UInt8](repeating: 0x5A, count: 64 << 10), name: "/nonexistent-fuzz/parent.vhd")
        guard let image = try? VHDImage(file: file, options: ImageOpenOptions(format: .vpc), openBacking: { _, _ in parent }) else { return }
        readSome(image, step: 1 << 20, count: 16)
        _ = image.fuzzRead(at: 0, count: 5 << 20)
    }

    /// Block/VDI: the header checks, the block map, reads across blocks.
    static func vdi(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.vdi")
        guard let image = try? VDIImage(file: file, options: ImageOpenOptions(format: .vdi)) else { return }
        readSome(image, step: 1 << 20, count: 16)
        _ = image.fuzzRead(at: 0, count: 3 << 20)
    }

    /// Block/VHDX: both headers and their CRC-32C, the region tables, the metadata items, the BAT
    /// with its sector-bitmap entries, `check`, reads across blocks; then the writer
    /// (VHDXImage+Write.swift) over a copy in memory: its checks, a dirty log replayed into the
    /// copy, headers rewritten, writes into present blocks (allocation is refused: the copy cannot
    /// grow), flush.
    static func vhdx(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.vhdx")
        guard let image = try? VHDXImage(file: file, options: ImageOpenOptions(format: .vhdx)) else { return }
        _ = try? image.check()
        readSome(image, step: 1 << 20, count: 16)
        _ = image.fuzzRead(at: 0, count: 3 << 20)
        let copy = MemoryOverlayDevice(base: file, maxBytes: 16 << 20)
        guard let writable = try? VHDXImage(file: copy, options: ImageOpenOptions(format: .vhdx, writable: true)) else { return }
        let bytes = [UInt8](repeating: 0xA5, count: 4096)
        for at in stride(from: UInt64(0), to: min(writable.size, 4 << 20), by: 1 << 20) { try? writable.writeBytes(bytes, at: at) }
        try? writable.writeZeros(at: 0, length: Int(min(writable.size, 8192)))
        try? writable.flush()
        readSome(writable, step: 1 << 20, count: 4)
    }
}

extension FuzzHarness {
    /// A backing file served from memory for the formats that name one (nothing on the host is opened).
    private static func memoryBacking() -> FuzzDevice {
        FuzzDevice(bytes: [UInt8](repeating: 0x5A, count: 64 << 10), name: "/nonexistent-fuzz/backing.raw")
    }

    /// Block/Qcow1: the qcow v1 header checks, the backing name, the L1 table, L2 tables through
    /// their cache, compressed clusters (raw deflate), reads across clusters and into the backing file.
    static func qcow(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.qcow")
        let backing = memoryBacking()
        guard let image = try? Qcow1Image(file: file, options: ImageOpenOptions(format: .qcow), openBacking: { _, _ in backing }) else { return }
        readSome(image, step: 64 << 10, count: 16)
        _ = image.fuzzRead(at: 0, count: 1 << 20)
    }

    /// Block/QED: the header checks (sizes, table offset, features, backing name), the L1 table,
    /// L2 slices, zero and unallocated clusters, reads across clusters and into the backing file, `check`.
    static func qed(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.qed")
        let backing = memoryBacking()
        guard let image = try? QEDImage(file: file, options: ImageOpenOptions(format: .qed), openBacking: { _, _ in backing }) else { return }
        _ = image.check()
        readSome(image, step: 64 << 10, count: 16)
        _ = image.fuzzRead(at: 0, count: 1 << 20)
    }

    /// Block/Parallels: both signatures, the header checks, the BAT, reads across clusters, `check`.
    static func parallels(_ data: [UInt8]) {
        let file = FuzzDevice(input: data, name: "/nonexistent-fuzz/image.hdd")
        guard let image = try? ParallelsImage(file: file, options: ImageOpenOptions(format: .parallels)) else { return }
        _ = image.check()
        readSome(image, step: 64 << 10, count: 16)
        _ = image.fuzzRead(at: 0, count: 1 << 20)
    }
}
