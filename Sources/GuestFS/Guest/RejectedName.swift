import GuestFSBlock

/// A directory entry left out of a listing because its name cannot be used (see `GuestName`).
public struct RejectedName: Sendable {
    public let directory: GuestNode
    public let device: String
    public let name: [UInt8]
    public let problem: GuestName.Problem

    /// "/dev/sda1: directory inode 12: entry "..\x2f.." skipped: name contains '/'".
    public var message: String {
        "\(device): directory inode \(directory.inode): entry \"\(GuestName.display(name))\" skipped: \(problem)"
    }
}
