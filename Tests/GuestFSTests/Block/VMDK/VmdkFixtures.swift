import Foundation
import TestSupport

private let vmdkFixtureFolder = Locked<String?>(nil)

/// The VMDK test matrix, built once per run with qemu-img and qemu-io, each image's oracle
/// being what `qemu-img convert -O raw` makes of it.
final class VmdkFixtures: Sendable {
    let dir: TempDir
    private let oracleLock = NSLock()
    /// Sector-granular (VMDK sizes are sectors) but no multiple of a grain.
    static let virtualSize = 5 * 1024 * 1024 + 1536

    /// Images compared whole and at random offsets against their oracle.
    static let matrix: [String] = [
        "mono.vmdk", "compat6.vmdk", "zeroed.vmdk", "flat.vmdk", "twogb-sparse.vmdk", "twogb-flat.vmdk",
        "stream.vmdk", "stream-footer.vmdk", "multi.vmdk", "esxi.vmdk", "child.vmdk", "grandchild.vmdk", "overlay.qcow2",
    ]

    static let writes = ["write -P 0x33 1000001 5000", "write -z 40k 30k", "write -P 0x55 5241344 3072", "write -P 0x5a 130000 1"]

    private static let built: Result<VmdkFixtures, any Error> = Result { try VmdkFixtures() }
    static func get() throws -> VmdkFixtures { try built.get() }

    func path(_ name: String) -> String { dir.file(name) }

    func oracle(_ image: String) throws -> [UInt8] {
        let out = dir.file("\(image).raw")
        oracleLock.lock()
        defer { oracleLock.unlock() }
        if !FileManager.default.fileExists(atPath: out) {
            try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img convert -O raw \(Shell.quote(path(image))) \(Shell.quote(out)).tmp && mv \(Shell.quote(out)).tmp \(Shell.quote(out))")
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    private init() throws {
        dir = try TempDir("imagemount-vmdk")
        vmdkFixtureFolder.value = dir.path
        atexit {
            if let folder = vmdkFixtureFolder.value { try? FileManager.default.removeItem(atPath: folder) }
        }
        let size = Self.virtualSize
        try Data(Qcow2Fixtures.sourceBytes(count: size)).write(to: URL(fileURLWithPath: dir.file("src.raw")))
        let w = Self.writes.map { "-c " + Shell.quote($0) }.joined(separator: " ")
        var s = ["set -e", "cd \(Shell.quote(dir.path))"]
        func convert(_ name: String, _ options: String) {
            s.append("qemu-img convert -O vmdk \(options) src.raw \(name)")
        }
        convert("mono.vmdk", "")
        s.append("qemu-io -f vmdk \(w) mono.vmdk >/dev/null")
        // The compat6 header (virtualHWVersion 6) and another adapter type.
        convert("compat6.vmdk", "-o subformat=monolithicSparse,compat6=on,adapter_type=lsilogic")
        convert("zeroed.vmdk", "-o zeroed_grain=on")
        s.append("qemu-io -f vmdk -c 'write -z 1M 256k' -c 'write -z 3M 64k' -c 'write -P 0x44 3200k 3k' zeroed.vmdk >/dev/null")
        convert("flat.vmdk", "-o subformat=monolithicFlat")
        convert("twogb-sparse.vmdk", "-o subformat=twoGbMaxExtentSparse")
        s.append("qemu-io -f vmdk \(w) twogb-sparse.vmdk >/dev/null")
        convert("twogb-flat.vmdk", "-o subformat=twoGbMaxExtentFlat")
        convert("stream.vmdk", "-o subformat=streamOptimized")
        // Several extents of every kind in one descriptor: a flat file, a flat range at an
        // offset in another file, and a sparse extent.
        s.append("head -c 1048576 src.raw > part1.bin")
        s.append("{ head -c 4096 /dev/zero; tail -c +1048577 src.raw | head -c 2097152; } > part2.bin")
        s.append("tail -c +3145729 src.raw > part3.raw && qemu-img convert -O vmdk part3.raw part3.vmdk && rm part3.raw")
        let rest = (size - 3 * 1024 * 1024) / 512
        s.append("""
            printf '# Disk DescriptorFile\\nversion=1\\nCID=12345678\\nparentCID=ffffffff\\ncreateType="twoGbMaxExtentSparse"\\n\\n# Extent description\\nRW 2048 FLAT "part1.bin" 0\\nRDONLY 8 ZERO\\nRW 4096 FLAT "part2.bin" 8\\nRW \(rest) SPARSE "part3.vmdk"\\n\\nddb.adapterType = "ide"\\n' > multi.vmdk
            """)
        // An ESXi disk: a "vmfs" descriptor over its -flat.vmdk (VMFS extents have no offset).
        s.append("cp flat-flat.vmdk esxi-flat.vmdk")
        s.append("""
            printf '# Disk DescriptorFile\\nversion=1\\nencoding="UTF-8"\\nCID=fffffffe\\nparentCID=ffffffff\\nisNativeSnapshot="no"\\ncreateType="vmfs"\\n\\n# Extent description\\nRW \(size / 512) VMFS "esxi-flat.vmdk"\\n\\n# The Disk Data Base\\n#DDB\\n\\nddb.adapterType = "lsilogic"\\nddb.virtualHWVersion = "13"\\n' > esxi.vmdk
            """)
        // A parent chain: child over mono (relative hint), grandchild over child.
        s.append("qemu-img create -q -f vmdk -b mono.vmdk -F vmdk child.vmdk")
        s.append("qemu-io -f vmdk -c 'write -P 0x61 0 70k' -c 'write -P 0x62 2M 1M' child.vmdk >/dev/null")
        s.append("qemu-img create -q -f vmdk -b child.vmdk -F vmdk grandchild.vmdk")
        s.append("qemu-io -f vmdk -c 'write -P 0x71 65000 2000' -c 'write -P 0x72 5M 1536' grandchild.vmdk >/dev/null")
        // qcow2 over a vmdk base.
        s.append("qemu-img create -q -f qcow2 -b mono.vmdk -F vmdk overlay.qcow2")
        s.append("qemu-io -f qcow2 -c 'write -P 0x81 1M 4k' overlay.qcow2 >/dev/null")
        try Shell.check(s.joined(separator: "\n"))
        try Self.writeFooterStream(from: dir.file("stream.vmdk"), to: dir.file("stream-footer.vmdk"))
    }

    /// qemu-img writes the grain directory's offset into the stream-optimized header; VMware's
    /// writers put "at the end" (all ones) there and the real header in a footer: a footer
    /// marker sector, the header sector, an end-of-stream marker sector.
    static func writeFooterStream(from source: String, to target: String) throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: source)))
        let header = Array(bytes[0..<512])
        for i in 0..<8 { bytes[56 + i] = 0xFF }
        var marker = [UInt8](repeating: 0, count: 512)
        marker[0] = 1  // val: sectors of metadata that follow
        marker[12] = 3 // type: footer
        bytes += marker + header + [UInt8](repeating: 0, count: 512)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
    }
}
