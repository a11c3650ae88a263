/// What a driver can tell about the nodes that given byte ranges of its device can affect:
/// the seam `imagemount diff` uses to compare a clone with its template by what changed.
public struct FilesystemChangeScope: Sendable, Equatable {
    /// Nodes whose attributes, extended attributes or listing (for a directory) may differ,
    /// and, when contents were asked for, whose contents may differ.
    public var nodes: Set<UInt64>
    /// Directories holding an entry that names one of `nodes`, one of the nodes a caller asked
    /// to reach, or one of these directories: a walk from the root that enters only them (and
    /// the nodes) meets every path whose record may differ.
    public var directories: Set<UInt64>

    public init(nodes: Set<UInt64>, directories: Set<UInt64>) {
        self.nodes = nodes
        self.directories = directories
    }
}

/// A filesystem that can say which of its nodes differ from another open of the same
/// filesystem, given the byte ranges where the two devices differ.
public protocol ChangeScopingFilesystem: GuestFilesystem {
    /// `base` is the same filesystem as it was before (the same driver on a device of the same
    /// size); `differing` holds the byte ranges of `device` whose bytes may differ from
    /// `base.device`'s (outside them the two are the same bytes); `content` asks for nodes
    /// whose file contents may differ too; `reach` names nodes the walk must also reach (a
    /// directory another filesystem is mounted on). Nil when the driver cannot tell (a layout
    /// change, a replayed journal, a feature it does not map): the caller then compares
    /// everything.
    func changeScope(comparedWith base: any GuestFilesystem, differing: [Range<UInt64>], content: Bool,
                     reach: Set<UInt64>) throws -> FilesystemChangeScope?
}
