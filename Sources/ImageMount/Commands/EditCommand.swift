import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount edit`: like virt-edit, a guest file through $EDITOR or a Perl expression.
struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Edit a file inside a disk image with $EDITOR or a Perl expression (like virt-edit).",
        discussion: """
            Without -e, a copy of FILE is opened in $EDITOR (default vi); when the editor exits \
            and the copy changed, it replaces FILE in the guest. With -e EXPR, the system's perl \
            runs EXPR on each line as virt-edit does: $_ holds the line (with its newline) and \
            $lineno its number, and what $_ holds afterwards is written. The new contents are \
            written to a new file in the same directory, which then is renamed over FILE, so \
            the guest sees the old file or the new one, never a mix; owner, mode and extended \
            attributes are kept. An unchanged file is not written at all. \
            Several FILEs are edited one after another, as virt-edit does; editing stops at the \
            first file that fails, and the files edited before it keep their changes. \
            On a Windows guest found by inspection (no -m), paths may also be Windows paths, as virt-cat takes them: C:\\Windows\\win.ini or c:/windows/WIN.INI, names matched ignoring case, the drive letter looked up in the guest's drive mappings. \
            Example: imagemount edit -a vm.img /etc/hostname -e 's/^old/new/'
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions
    @OptionGroup var overlay: OverlayOptions

    @Option(name: [.customShort("e"), .customLong("edit"), .customLong("expr")],
            help: ArgumentHelp("Perl expression applied to each line instead of running an editor.", valueName: "expr"))
    var expression: String?

    @Option(name: [.customShort("b"), .customLong("backup")],
            help: ArgumentHelp("Keep the original in the guest as FILE followed by EXT (e.g. -b .orig).", valueName: "ext"))
    var backupExtension: String?

    @Argument(help: ArgumentHelp("The files to edit, as absolute paths in the guest.", valueName: "file"))
    var files: [String]

    func validate() throws {
        if filesystems.readOnly { throw ValidationError("edit writes to the image; --ro cannot be used") }
        if let ext = backupExtension, ext.isEmpty || ext.contains("/") {
            throw ValidationError("-b: the extension must be non-empty and contain no '/'")
        }
        if files.isEmpty { throw ValidationError("give the file to edit, as an absolute path in the guest") }
        // A Windows guest's files may also be named `C:\...` or `\...` (Session+WindowsPaths.swift).
        for file in files where !file.hasPrefix("/") && !file.hasPrefix("\\") && WindowsPath.split(file).drive == nil {
            throw ValidationError("\(file): give an absolute path in the guest")
        }
    }

    func run() throws {
        // The helper that runs perl or $EDITOR starts before any image is opened; this process
        // then parses the image inside the sandbox, which runs no program (EditorAgent.swift).
        let agent = try EditorAgent.start()
        defer { agent.finish() }
        let session = try Session.open(image, filesystems, writable: true, overlays: overlay.overlays)
        var failure: (any Error)?
        do {
            // Everything is open; what follows parses guest bytes and writes through the open
            // image descriptors (Sandbox.swift).
            try Sandbox.enter()
            for given in files {
                let (tree, file) = try session.guestPath(given)
                try FileEdit(file: file, expression: expression, backupExtension: backupExtension, agent: agent).edit(tree)
            }
        } catch {
            failure = error
        }
        for mount in session.allMounts {
            do { try mount.filesystem.close() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    static let maxSize: UInt64 = 1 << 30

    static func contents(_ file: any GuestFile) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        var done = 0
        while done < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]), at: UInt64(done)) }
            if n == 0 { break }
            done += n
        }
        return bytes
    }
}

/// The editing of one FILE of an `edit` command (or of the shell's edit).
struct FileEdit {
    let file: String
    /// -e's Perl expression; nil runs $EDITOR.
    let expression: String?
    /// -b's extension.
    let backupExtension: String?
    let agent: EditorAgent.Connection

    func edit(_ tree: MountTree) throws {
        let components = MountTree.components(file)
        guard let name = components.last else { throw CLIError(message: "\(file): not a file") }
        let parentPath = "/" + components.dropLast().map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
        let dir = try tree.resolve(parentPath)
        guard let node = try tree.lookup(dir, name) else { throw CLIError(message: "\(file): no such file in the guest") }
        guard node.mount == dir.mount else { throw CLIError(message: "\(file): is a mountpoint") }
        if tree.isReadOnly(node) { throw CLIError(message: "\(file): on \(tree.mounts[node.mount].deviceName), mounted read-only " + (tree.mounts[node.mount].filesystem.isKeptReadOnly ? "(see the warning above)" : "(-m ...:ro)")) }
        let fs = try tree.writableFilesystem(of: node)
        let info = try fs.attributes(node.inode)
        if info.isSymlink { throw CLIError(message: "\(file): is a symbolic link; edit the file it points to") }
        guard info.isRegular else { throw CLIError(message: "\(file): not a regular file") }
        guard info.size <= Self.maxSize else { throw CLIError(message: "\(file): larger than 1 GiB; not edited") }

        let original = try EditCommand.contents(fs.openFile(node.inode))
        let edited = try agent.edit(original, path: file, expression: expression)
        guard edited != original else { return }
        try replace(fs: fs, dir: dir.inode, name: name, old: node.inode, info: info, with: edited)
    }

    /// Writes the new contents to a fresh file next to the old one, gives it the old one's
    /// owner, mode and xattrs, then renames it over the old name (after moving the old file to
    /// its backup name with -b). A failure before the rename removes the new file.
    private func replace(fs: any WritableGuestFilesystem, dir: UInt64, name: [UInt8], old: UInt64, info: NodeAttributes, with data: [UInt8]) throws {
        let temporary = Array(".imagemount-edit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))".utf8)
        let fresh = try fs.createNode(in: dir, name: temporary, NewInode(mode: UInt16(NodeType.regular.modeBits) | 0o600, uid: info.uid, gid: info.gid))
        do {
            var done = 0
            while done < data.count {
                done += try data.withUnsafeBytes { try fs.write(fresh, at: UInt64(done), UnsafeRawBufferPointer(rebasing: $0[done...])) }
            }
            for attribute in try fs.xattrs(old) {
                try fs.setXattr(fresh, name: attribute.name, value: attribute.value, mode: .createOrReplace)
            }
            try fs.setAttributes(fresh, AttributeChanges(mode: UInt16(truncatingIfNeeded: info.permissions), uid: info.uid, gid: info.gid, accessTime: .now))
        } catch {
            try? fs.unlink(in: dir, name: temporary)
            throw error
        }
        if let backupExtension {
            try fs.rename(from: dir, name, to: dir, name + Array(backupExtension.utf8), flags: [])
        }
        try fs.rename(from: dir, temporary, to: dir, name, flags: [])
    }

    static var maxSize: UInt64 { EditCommand.maxSize }

    /// In the editor agent: `bytes` (the guest file `file`) edited with perl when `expression`
    /// is given, else with $EDITOR, on a private host copy.
    static func editCopy(_ bytes: [UInt8], path file: String, expression: String?) throws -> [UInt8] {
        try withTemporaryCopy(bytes, file: file) { path in
            if let expression {
                try runPerl(expression, on: path, file: file)
            } else {
                try runEditor(on: path, file: file)
            }
        }
    }

    /// A host copy in a private temporary directory, handed to `body`, read back, removed.
    private static func withTemporaryCopy(_ bytes: [UInt8], file: String, _ body: (String) throws -> Void) throws -> [UInt8] {
        let base = (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp") + "/imagemount-edit.XXXXXX"
        var template = Array(base.utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CLIError(message: "cannot create a temporary directory: \(Errno(rawValue: errno).description)")
        }
        let dir = String(cString: made)
        let leaf = MountTree.components(file).last.map { String(decoding: $0, as: UTF8.self) } ?? "file"
        let path = dir + "/" + leaf
        defer { unlink(path); rmdir(dir) }
        let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
        _ = try fd.closeAfter { try bytes.withUnsafeBytes { try fd.writeAll($0) } }
        try body(path)
        let back = try FileDescriptor.open(FilePath(path), .readOnly)
        return try back.closeAfter {
            var result: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try chunk.withUnsafeMutableBytes { try back.read(into: $0) }
                if n == 0 { break }
                result += chunk.prefix(n)
                if UInt64(result.count) > Self.maxSize { throw CLIError(message: "\(file): edited file larger than 1 GiB; not written") }
            }
            return result
        }
    }

    /// virt-edit's -e: perl evaluates EXPR for each line with $_ and $lineno set, and prints $_.
    private static func runPerl(_ expression: String, on path: String, file: String) throws {
        guard Subprocess.exists("perl") else { throw CLIError(message: "-e needs perl, which is not installed") }
        let script = """
            my $expr = shift @ARGV; my $path = shift @ARGV;
            open(my $in, '<', $path) or die "$path: $!\\n";
            my @lines = <$in>; close $in;
            open(my $out, '>', $path) or die "$path: $!\\n";
            our $lineno = 0;
            foreach (@lines) { $lineno++; eval $expr; die $@ if $@; print $out $_ or die "print: $!\\n"; }
            close $out or die "close: $!\\n";
            """
        let result = try Subprocess.run(["perl", "-e", script, expression, path], captureOutput: false)
        guard result.status == 0 else { throw CLIError(message: "-e: perl failed (exit status \(result.status)); \(file) not changed") }
    }

    /// $EDITOR (default vi) on the copy; its words are split on spaces, as a shell would for a
    /// plain command ("code -w").
    private static func runEditor(on path: String, file: String) throws {
        let editor = getenv("EDITOR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "vi"
        let words = editor.split(separator: " ").map(String.init)
        let result = try Subprocess.run(words + [path], captureOutput: false)
        guard result.status == 0 else { throw CLIError(message: "\(editor) exited with status \(result.status); \(file) not changed") }
    }
}
