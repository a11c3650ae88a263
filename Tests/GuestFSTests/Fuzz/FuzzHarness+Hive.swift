@testable import GuestFSBlock
@testable import GuestFSFilesystem
@testable import GuestFSInspect

extension FuzzHarness {
    /// Inspect/Hive.swift and what Windows inspection reads through it: the bytes go into a
    /// memory file and through hivex_open (header checksum, hbin pages, the cell walk), then the
    /// SOFTWARE reading (Microsoft\Windows NT\CurrentVersion: strings decoded from UTF-16LE,
    /// DWORDs), the SYSTEM reading (Select\Current, the control set's hostname keys) and every
    /// MountedDevices value's blob (MBR signature and offset, "DMIO:ID:" GUIDs). Each input is
    /// both hives at once: the harness never knows which one it holds.
    static func hive(_ data: [UInt8]) {
        guard let hive = try? Hive(bytes: data, name: "fuzz hive") else { return }
        var os = OperatingSystem(root: "/dev/sda2")
        WindowsInspector.readSoftware(hive, into: &os)
        WindowsInspector.readControlSet(hive, into: &os)
        _ = WindowsInspector.osinfo(os)
        _ = WindowsDriveMappings.read(hive) { blob in
            blob.count >= 24 ? WindowsDriveMappings.gptGUID(Array(blob[8 ..< 24])) : blob.count == 12 ? "mbr" : nil
        }
    }
}
