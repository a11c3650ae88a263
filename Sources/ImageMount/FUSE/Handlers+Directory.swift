import CFuse
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Name lookup, forget, and directory listing (passthrough_ll.c's lo_lookup, lo_forget,
/// lo_opendir, lo_do_readdir; STYLE.md §2).
extension FuseServer {
    func lookup(_ request: consuming Request, parent: UInt64, name: [UInt8]) {
        tuneReadaheadOnce()
        do throws(FuseError) {
            let e = try lookupEntry(parent: parent, name: name)
            if e.ino != 0 { plusHint.noteLookup(isDirectory: e.attr.st_mode & S_IFMT == S_IFDIR) }
            request.reply(entry: e)
        } catch {
            request.reply(error)
        }
    }

    /// A positive entry (one lookup reference taken), or a negative one (ino 0) that the kernel
    /// may cache for `negativeTimeout`.
    private func lookupEntry(parent: UInt64, name: [UInt8]) throws(FuseError) -> fuse_entry_param {
        let dir = try node(parent)
        guard name.count <= 255 else { throw FuseError(.fileNameTooLong) }
        let child: GuestNode?
        do { child = try tree.lookup(dir, name) } catch { throw FuseError(wrapping: error) }
        guard let child else {
            var negative = fuse_entry_param()
            negative.ino = 0
            negative.entry_timeout = options.negativeTimeout
            return negative
        }
        return try entry(for: child)
    }

    func forget(_ request: consuming Request, inode: UInt64, count: UInt64) {
        drop(inode, count: count)
        request.replyNone()
    }

    func forgetMany(_ request: consuming Request, _ items: UnsafeBufferPointer<fuse_forget_data>) {
        for item in items { drop(item.ino, count: item.nlookup) }
        request.replyNone()
    }

    /// Lowers a lookup count; when the kernel no longer holds the inode, its filesystem may
    /// free it (if it was unlinked meanwhile). Bookkeeping only on read-only mounts.
    func drop(_ inode: UInt64, count: UInt64) {
        guard let node = inodes.forget(inode, count: count), !options.readOnly else { return }
        // forget has no reply to carry an error: it is logged, and the inode stays an orphan
        // that unmount frees (or reports) again.
        do { try tree.writableFilesystem(of: node).releaseNode(node.inode) } catch {
            DebugLog.always("freeing unlinked inode \(node.inode) failed: \(error)")
        }
    }

    func opendir(_ request: consuming Request, inode: UInt64, info: fuse_file_info) {
        tuneReadaheadOnce()
        do throws(FuseError) {
            let dir = try node(inode)
            let listing = try self.listing(dir)
            var out = info
            out.fh = handles.insert(.directory(listing))
            // The tree cannot change under a read-only mount: let the kernel cache listings.
            if options.readOnly { out.cache_readdir = 1; out.keep_cache = 1 }
            request.reply(open: out)
        } catch {
            request.reply(error)
        }
    }

    /// The entries of `dir` as the guest sees them, with `.` and `..` first.
    private func listing(_ dir: GuestNode) throws(FuseError) -> DirectoryListing {
        let entries: [(name: [UInt8], node: GuestNode, type: NodeType)]
        // A name the kernel would refuse (a '/', a NUL, another '.' or '..') never reaches it.
        do { entries = try tree.entries(dir) { DebugLog.always($0.message) } } catch { throw FuseError(wrapping: error) }
        let parent = tree.isMountRoot(dir) ? (tree.parentOfMountRoot(dir.mount) ?? dir) : dir
        var items: [DirectoryListing.Item] = [
            .init(name: [0x2E], node: dir, type: .directory, isDot: true),
            .init(name: [0x2E, 0x2E], node: parent, type: .directory, isDot: true),
        ]
        items.reserveCapacity(entries.count + 2)
        for e in entries { items.append(.init(name: e.name, node: e.node, type: e.type, isDot: false)) }
        return DirectoryListing(items: items)
    }

    /// readdir and readdirplus, one implementation (passthrough_ll.c's lo_do_readdir):
    /// - with `plus`, every entry but `.` and `..` goes through the lookup path, so its count rises;
    /// - an entry that does not fit the buffer has that lookup undone at once;
    /// - an error after some entries were packed returns what was packed, so counts stay right.
    func readdir(_ request: consuming Request, inode: UInt64, size: Int, offset: Int64, handle: UInt64, plus: Bool) {
        guard case .directory(let listing)? = handles.get(handle) else {
            request.reply(error: .badFileDescriptor)
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 8)
        defer { buffer.deallocate() }
        let raw = request.raw
        let start = Int(max(offset, 0))
        // Read-only, a readdirplus chunk may go without attributes (ReaddirPlusHint.swift).
        let attributes = plus && (!options.readOnly || plusHint.wantsAttributes(offset: start))
        let result = DirectoryPacker.pack(listing, from: start, into: buffer, plus: attributes, server: self) { name, entry, next, room in
            name.withUnsafeBufferPointer { nameBuffer in
                nameBuffer.withMemoryRebound(to: CChar.self) { cname in
                    var e = entry
                    return plus
                        ? fuse_add_direntry_plus(raw, room.baseAddress, room.count, cname.baseAddress, &e, off_t(next))
                        : fuse_add_direntry(raw, room.baseAddress, room.count, cname.baseAddress, &e.attr, off_t(next))
                }
            }
        }
        switch result {
        case .success(let (used, looked)):
            if attributes && options.readOnly { plusHint.servedAttributes(looked) }
            request.reply(buffer: UnsafeRawBufferPointer(rebasing: buffer[..<used]))
        case .failure(let e): request.reply(e)
        }
    }

    func releasedir(_ request: consuming Request, inode: UInt64, handle: UInt64) {
        handles.remove(handle)
        request.replyOK()
    }
}

/// Packs directory entries into a reply buffer, keeping lookup counts right (the three rules
/// above). The function that writes one entry is passed in, so tests can pack without a kernel.
enum DirectoryPacker {
    /// `add(name, entry, nextOffset, room)` writes one entry into `room` if it fits and returns
    /// the size the entry needs (fuse_add_direntry's contract: more than `room.count` means
    /// "did not fit, nothing written"). Names passed are NUL-terminated.
    typealias Add = ([UInt8], fuse_entry_param, Int, UnsafeMutableRawBufferPointer) -> Int

    /// `plus`: entries carry attributes (each takes a lookup). Returns the bytes used and how
    /// many entries took a lookup.
    static func pack(_ listing: DirectoryListing, from start: Int, into buffer: UnsafeMutableRawBufferPointer,
                     plus: Bool, server: FuseServer, add: Add) -> Result<(used: Int, looked: Int), FuseError> {
        var used = 0
        var lookups = 0
        var index = start
        while index < listing.items.count {
            let item = listing.items[index]
            var e = fuse_entry_param()
            var looked = false
            if plus && !item.isDot {
                do {
                    e = try server.entry(for: item.node)
                    looked = true
                } catch {
                    return used == 0 ? .failure(error) : .success((used, lookups))
                }
            } else {
                // readdir, the dot entries and readdirplus without attributes: only d_ino and
                // d_type are used (node id 0 in a readdirplus entry: "no attributes"), no lookup
                // is taken.
                e.attr.st_ino = ino_t(Attributes.inodeNumber(item.node))
                e.attr.st_mode = Attributes.mode(type: item.type)
            }
            let room = UnsafeMutableRawBufferPointer(rebasing: buffer[used...])
            let needed = add(item.name + [0], e, index + 1, room)
            if needed > room.count {
                if looked { server.drop(e.ino, count: 1) }
                break
            }
            used += needed
            index += 1
            if looked { lookups += 1 }
        }
        return .success((used, lookups))
    }
}
