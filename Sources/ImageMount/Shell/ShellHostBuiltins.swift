import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The shell's commands that move files between the host and the guest: upload, copy-in,
/// copy-out, tar-in and tar-out (download is with the reading commands). The host paths are
/// the user's words, not the guest's; inside the sandbox they can be reached only where the
/// script's own commands named them before it was entered (ShellHostAccess.swift).
extension ShellBuiltin {
    static let host: [ShellBuiltin] = [
        .init(name: "upload", arguments: 2...2, usage: "upload (filename|-) remotefilename", summary: "copy a host file (- for standard input) to a guest file, created or replaced") { c, a in
            let input: FileDescriptor
            if a[0] == "-" { input = .standardInput } else {
                do { input = try FileDescriptor.open(a[0], .readOnly, options: .closeOnExec) } catch let e as Errno {
                    throw ShellError("\(a[0]): \(e.description)")
                }
            }
            defer { if a[0] != "-" { try? input.close() } }
            let (fs, node, _) = try openForWriting(c, a[1], append: false)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var offset: UInt64 = 0
            while true {
                let n: Int
                do { n = try input.read(into: buffer) } catch let e as Errno { throw ShellError("\(a[0]): \(e.description)") }
                if n == 0 { break }
                try writeAll(UnsafeRawBufferPointer(rebasing: buffer[..<n]), to: fs, node, at: offset, a[1])
                offset += UInt64(n)
            }
        },
        .init(name: "copy-in", arguments: 2...Int.max, usage: "copy-in localpath [localpath...] remotedir", summary: "copy host files and directories into a guest directory (as virt-copy-in)") { c, a in
            let tree = try c.mounted()
            guard let directory = a.last else { return }
            let dir = try resolve(tree, directory)
            guard try tree.attributes(dir).isDirectory else { throw ShellError("\(directory): Not a directory") }
            let fs = try writable(c, tree, dir, directory)
            let copier = CopyIn(filesystem: fs)
            for given in a.dropLast() {
                let source = HostPath(given)
                guard source.existingType() != nil else { throw ShellError("\(given): No such file or directory") }
                do { try copier.copy(source, into: dir.inode, name: MountTreeName.lastComponent(of: given)) } catch {
                    throw ShellError(ShellError.describe(error, path: given))
                }
            }
        },
        .init(name: "copy-out", arguments: 2...Int.max, usage: "copy-out remotepath [remotepath...] localdir", summary: "copy guest files and directories into a host directory (as virt-copy-out)") { c, a in
            let tree = try c.mounted()
            guard let local = a.last else { return }
            let destination: HostDirectory
            do { destination = try HostDirectory.open(existing: local) } catch { throw ShellError(ShellError.describe(error, path: local)) }
            var items: [(node: GuestNode, target: CopyOut.Target)] = []
            for path in a.dropLast() {
                // A symlink named here is copied as the link, as virt-copy-out copies it.
                let node = try resolve(tree, path, follow: false)
                guard let name = HostDirectory.Name(MountTreeName.lastComponent(of: path)) else {
                    throw ShellError("\(path): cannot be copied under that name (give the directory itself, not '.' or '..')")
                }
                if destination.existingType(name) != nil { throw ShellError("\(destination.display(name)): already exists on the host") }
                items.append((node, CopyOut.Target(parent: destination, name: name)))
            }
            let copier = CopyOut(tree: tree)
            do { try copier.run(items) } catch { throw ShellError(ShellError.describe(error)) }
            if copier.skipped > 0 {
                throw ShellError("\(copier.skipped) damaged guest entr\(copier.skipped == 1 ? "y was" : "ies were") not copied (see the warnings above)")
            }
        },
        .init(name: "tar-in", arguments: 2...6, usage: "tar-in (tarfile|-) directory [compress:gzip|...] [xattrs:true] [selinux:true] [acls:true]", summary: "unpack a tar file (- for standard input) into a guest directory") { c, a in
            let options = try tarOptions(a.dropFirst(2), allowed: ["compress", "xattrs", "selinux", "acls"])
            let tree = try c.mounted()
            let top = try resolve(tree, a[1])
            guard try tree.attributes(top).isDirectory else { throw ShellError("\(a[1]): Not a directory") }
            _ = try writable(c, tree, top, a[1])
            let fd: Int32 = a[0] == "-" ? 0 : open(a[0], O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ShellError("\(a[0]): \(String(cString: strerror(errno)))") }
            defer { if a[0] != "-" { Glibc.close(fd) } }
            let names = options.flag("acls") ? c.tarNames : TarNameMap()
            do {
                let reader = try TarArchiveReader(fd: fd, compression: try options.compression(), display: a[0] == "-" ? "standard input" : a[0])
                let unpacker = TarIn(tree: tree, top: top,
                                     options: TarIn.Options(xattrs: options.flag("xattrs"), acls: options.flag("acls"), selinux: options.flag("selinux")),
                                     names: names, progress: .off)
                try unpacker.run(reader)
                if unpacker.skipped > 0 {
                    throw ShellError("\(unpacker.skipped) member\(unpacker.skipped == 1 ? " was" : "s were") not extracted (see above); the others were")
                }
            } catch let e as ShellError { throw e } catch { throw ShellError(ShellError.describe(error)) }
        },
        .init(name: "tar-out", arguments: 2...8, usage: "tar-out directory (tarfile|-) [compress:gzip|...] [numericowner:true] [excludes:\"PATTERN...\"] [xattrs:true] [selinux:true] [acls:true]", summary: "pack a guest directory into a tar file (- for standard output)") { c, a in
            let options = try tarOptions(a.dropFirst(2), allowed: ["compress", "numericowner", "excludes", "xattrs", "selinux", "acls"])
            let tree = try c.mounted()
            let top = try resolve(tree, a[0])
            guard try tree.attributes(top).isDirectory else { throw ShellError("\(a[0]): Not a directory") }
            try c.flush()
            let fd: Int32 = a[1] == "-" ? 1 : open(a[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
            guard fd >= 0 else { throw ShellError("\(a[1]): \(String(cString: strerror(errno)))") }
            defer { if a[1] != "-" { Glibc.close(fd) } }
            do {
                let writer = try TarArchiveWriter(fd: fd, compression: try options.compression() ?? .none, display: a[1] == "-" ? "standard output" : a[1])
                // guestfish's excludes is a string list, written as one space-separated word.
                let excludes = options.values["excludes"].map { $0.split(separator: " ").map(String.init) } ?? []
                let packer = TarOut(tree: tree, writer: writer,
                                    options: TarOut.Options(xattrs: options.flag("xattrs"), acls: options.flag("acls"),
                                                            selinux: options.flag("selinux"), excludes: excludes),
                                    progress: .off)
                try packer.run(top, display: a[0])
                try writer.close()
                if packer.skipped > 0 {
                    throw ShellError("\(packer.skipped) damaged guest entr\(packer.skipped == 1 ? "y was" : "ies were") not archived (see the warnings above)")
                }
            } catch let e as ShellError { throw e } catch { throw ShellError(ShellError.describe(error)) }
        },
    ]

    /// guestfish's optional arguments, `name:value` words after the required ones.
    struct OptionalArguments {
        var values: [String: String] = [:]

        func flag(_ name: String) -> Bool { values[name].map { ["true", "yes", "1", "on"].contains($0.lowercased()) } ?? false }

        func compression() throws -> TarCompression? {
            do { return try TarCompression.chosen(compress: values["compress"], gzip: false) } catch {
                throw ShellError(ShellError.describe(error))
            }
        }
    }

    static func tarOptions(_ words: ArraySlice<String>, allowed: Set<String>) throws -> OptionalArguments {
        var options = OptionalArguments()
        for word in words {
            guard let colon = word.firstIndex(of: ":"), allowed.contains(String(word[..<colon])) else {
                throw ShellError("\(word): not an optional argument of this command (\(allowed.sorted().map { $0 + ":..." }.joined(separator: ", ")))")
            }
            options.values[String(word[..<colon])] = String(word[word.index(after: colon)...])
        }
        return options
    }
}
