import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// Which host paths a shell script may touch once the sandbox holds: the ones its own commands
/// name, opened here (O_PATH) before it is entered. A download, find0, copy-out or tar-out may create
/// files in the host directory it names (the target's directory); an upload, copy-in or tar-in
/// may read the host files and directories it names. Nothing else on the host can be opened,
/// whatever the guest's bytes make the parsers do. An interactive session cannot know its
/// commands in advance: it may read and write beneath the current directory.
enum ShellHostAccess {
    static func rules(for lines: [ShellLine]) -> [Sandbox.Rule] {
        var rules: [Sandbox.Rule] = []
        func parent(of path: String) -> String {
            guard let slash = path.lastIndex(of: "/") else { return "." }
            let folder = String(path[..<slash])
            return folder.isEmpty ? "/" : folder
        }
        func grant(_ path: String, directory: Bool, write: Bool) {
            let fd = Glibc.open(path, hostio_o_path | O_CLOEXEC | (directory ? O_DIRECTORY : 0))
            guard fd >= 0 else { return }
            var st = stat()
            guard fstat(fd, &st) == 0 else { Glibc.close(fd); return }
            let isDirectory = st.st_mode & S_IFMT == S_IFDIR
            // A file may only be read (no write rule is ever granted on one).
            guard isDirectory || (!write && st.st_mode & S_IFMT == S_IFREG) else { Glibc.close(fd); return }
            rules.append(write ? .writable(fd) : .readable(fd, directory: isDirectory))
        }
        for line in lines {
            let a = line.arguments
            switch line.command {
            case "download" where a.count == 2 && a[1] != "-", "find0" where a.count == 2 && a[1] != "-":
                grant(parent(of: a[1]), directory: true, write: true)
            case "tar-out" where a.count >= 2 && a[1] != "-":
                grant(parent(of: a[1]), directory: true, write: true)
            case "copy-out" where a.count >= 2:
                if let local = a.last { grant(local, directory: true, write: true) }
            case "upload" where a.count == 2 && a[0] != "-", "tar-in" where a.count >= 2 && a[0] != "-":
                grant(a[0], directory: false, write: false)
            case "copy-in" where a.count >= 2:
                for source in a.dropLast() {
                    var st = stat()
                    // A symlink is copied as a link, never followed: nothing to grant.
                    guard lstat(source, &st) == 0, st.st_mode & S_IFMT == S_IFDIR || st.st_mode & S_IFMT == S_IFREG else { continue }
                    grant(source, directory: st.st_mode & S_IFMT == S_IFDIR, write: false)
                }
            default:
                continue
            }
        }
        return rules
    }

    /// The interactive session's: beneath the current directory.
    static func interactiveRules() -> [Sandbox.Rule] {
        let fd = Glibc.open(".", hostio_o_path | O_DIRECTORY | O_CLOEXEC)
        return fd >= 0 ? [.writable(fd)] : []
    }

    /// Whether any of the lines needs libarchive (loaded before the sandbox, as it must be).
    static func needsTar(_ lines: [ShellLine]) -> Bool {
        lines.contains { $0.command == "tar-in" || $0.command == "tar-out" }
    }
}
