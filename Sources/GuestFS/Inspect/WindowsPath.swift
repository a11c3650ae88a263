import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// Windows paths as virt-cat, virt-edit and virt-copy-out accept them for Windows guests
/// (guestfs-tools common/windows/windows.c `windows_path`): an optional drive letter and colon,
/// backslashes as separators, names matched case-insensitively as Windows matches them
/// (`guestfs_case_sensitive_path`).
public enum WindowsPath {
    /// `C:\Windows\win.ini` → ("c", "/Windows/win.ini"); `c:/windows` → ("c", "/windows");
    /// `\Users` → (nil, "/Users"); `C:` → ("c", "/"). The letter is lowercased; backslashes
    /// become slashes (blindly, as windows.c does).
    public static func split(_ path: String) -> (drive: Character?, path: String) {
        var rest = Substring(path)
        var drive: Character? = nil
        if let first = rest.first, first.isASCII, first.isLetter, rest.dropFirst().first == ":" {
            drive = Character(first.lowercased())
            rest = rest.dropFirst(2)
        }
        var unix = String(rest.map { $0 == "\\" ? "/" : $0 })
        if !unix.hasPrefix("/") { unix = "/" + unix }
        return (drive, unix)
    }

    /// `path` with each existing component spelled as the guest spells it, found as
    /// `guestfs_case_sensitive_path` finds it: the exact name if there is one, else the first
    /// entry of the directory that matches ignoring case. Components from the first one that
    /// does not exist on are kept as given (a file about to be created, or an error later).
    public static func caseSensitivePath(_ tree: MountTree, _ path: String) -> String {
        var real: [String] = []
        var node: GuestNode? = tree.root
        for component in path.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
            if component == "." { continue }
            if component == ".." {
                if !real.isEmpty { real.removeLast() }
                node = try? tree.resolve("/" + real.joined(separator: "/"))
                continue
            }
            guard let dir = node, let found = child(tree, dir, component) else {
                real.append(component)
                node = nil
                continue
            }
            real.append(found.name)
            node = found.node
            // A junction or symlink on the way: carry on in what it points at.
            if (try? tree.attributes(found.node))?.isSymlink == true {
                node = try? tree.resolve("/" + real.joined(separator: "/"))
            }
        }
        return "/" + real.joined(separator: "/")
    }

    /// The entry of `dir` named `name`, exactly or else ignoring case (Unicode lowercase, which
    /// NTFS's $UpCase table agrees with for every name Windows itself uses).
    public static func child(_ tree: MountTree, _ dir: GuestNode, _ name: String) -> (name: String, node: GuestNode)? {
        if let exact = try? tree.lookup(dir, Array(name.utf8)) { return (name, exact) }
        guard let entries = try? tree.entries(dir, rejected: { _ in }) else { return nil }
        let lowered = name.lowercased()
        for entry in entries {
            let entryName = String(decoding: entry.name, as: UTF8.self)
            if entryName.lowercased() == lowered { return (entryName, entry.node) }
        }
        return nil
    }
}
