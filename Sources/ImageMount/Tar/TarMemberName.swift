import GuestFSBlock

/// What a tar member's name (or a hard link's target) may be once extracted beneath DIR: a
/// list of components, each one a name copy-in would accept (`GuestName`: not empty, no '/',
/// no NUL, not `.` or `..`, at most 255 bytes).
///
/// As GNU tar does, a leading '/' is removed (the member lands beneath DIR), and empty and `.`
/// components (`a//b`, `./a`) are dropped. Unlike GNU tar, which removes everything up to the
/// last `..` and extracts what is left, a name with a `..` component is refused: whatever it
/// meant, it would not be the name the archive gave.
enum TarMemberName {
    enum Problem: Error, Equatable, CustomStringConvertible {
        case dotDot
        case component(GuestName.Problem)
        case tooLong(Int)

        var description: String {
            switch self {
            case .dotDot: "contains a '..' component, which would leave the directory; not extracted"
            case .component(let p): "has a component that cannot be a name (\(p)); not extracted"
            case .tooLong(let n): "is \(n) bytes long (at most \(TarMemberName.maxLength)); not extracted"
            }
        }
    }

    /// PATH_MAX (include/uapi/linux/limits.h) less its NUL: no longer path can be looked up.
    static let maxLength = 4095

    /// The components of `name`, and whether a leading '/' was removed. An empty list is
    /// DIR itself (`./`, `/`, `.`).
    static func components(_ name: [UInt8]) -> Result<(components: [[UInt8]], strippedRoot: Bool), Problem> {
        guard name.count <= maxLength else { return .failure(.tooLong(name.count)) }
        var out: [[UInt8]] = []
        for part in name.split(separator: 0x2F, omittingEmptySubsequences: true) {
            let bytes = Array(part)
            if bytes == [0x2E] { continue }
            if bytes == [0x2E, 0x2E] { return .failure(.dotDot) }
            if let problem = GuestName.problem(bytes) { return .failure(.component(problem)) }
            out.append(bytes)
        }
        return .success((out, name.first == 0x2F))
    }
}
