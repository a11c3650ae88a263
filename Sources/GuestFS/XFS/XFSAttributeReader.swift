/// Reads one inode's extended attributes in whichever form its attribute fork is ("XFS
/// Algorithms & Data Structures" §20 "Extended Attributes"), from what the inode reader
/// decoded: the attribute fork's inline bytes (shortform) or its extent list (leaf: one leaf
/// at attribute block 0; node: a dabtree rooted at block 0 over leaf blocks; values too big
/// for a leaf in remote blocks).
///
/// Names come back as Linux shows them: no flag → "user.", XFS_ATTR_ROOT → "trusted.",
/// XFS_ATTR_SECURE → "security."; incomplete entries and parent pointers are skipped. POSIX
/// ACLs (trusted SGI_ACL_FILE / SGI_ACL_DEFAULT) also appear as system.posix_acl_access /
/// _default in the Linux xattr form, right before the trusted name, as the kernel's
/// xfs_xattr_put_listent lists them to a privileged caller (it does not hide the raw names).
struct XFSAttributeReader {
    let geometry: XFSGeometry
    let inode: UInt64
    let fork: XFSForkContents
    let read: XFSBlockReader
    private let forkMap: Result<XFSForkMap, any Error>?

    init(geometry: XFSGeometry, inode: UInt64, fork: XFSForkContents, read: @escaping XFSBlockReader) {
        self.geometry = geometry
        self.inode = inode
        self.fork = fork
        self.read = read
        // The extent list is checked and indexed once per reader, so a caller that keeps the
        // reader (one per open directory, say) pays for it once.
        if case .extents(let extents) = fork {
            forkMap = Result { try XFSForkMap(extents: extents, geometry: geometry, read: read, owner: "attribute fork of inode \(inode)") }
        } else {
            forkMap = nil
        }
    }

    private func map(_ extents: [XFSExtent]) throws -> XFSForkMap {
        guard let forkMap else { return try XFSForkMap(extents: extents, geometry: geometry, read: read, owner: "attribute fork of inode \(inode)") }
        return try forkMap.get()
    }

    /// Every attribute with its value, in on-disk (hash) order.
    func all() throws -> [Xattr] {
        var out: [Xattr] = []
        let forkMap: XFSForkMap?
        if case .extents(let e) = fork { forkMap = try map(e) } else { forkMap = nil }
        for raw in try rawAttributes(forkMap) where raw.isVisible {
            let value = try self.value(of: raw, forkMap)
            if raw.namespace == XFSAttributeFormat.root, let system = XFSACL.systemName(forTrusted: raw.name) {
                out.append(Xattr(name: system, value: try XFSACL.linuxXattr(value, inode: inode)))
            }
            out.append(Xattr(name: Self.fullName(raw), value: value))
        }
        return out
    }

    /// Every attribute's name (remote values are not read).
    func names() throws -> [String] {
        let forkMap: XFSForkMap?
        if case .extents(let e) = fork { forkMap = try map(e) } else { forkMap = nil }
        return try rawAttributes(forkMap).filter(\.isVisible).flatMap { raw -> [String] in
            let name = Self.fullName(raw)
            if raw.namespace == XFSAttributeFormat.root, let system = XFSACL.systemName(forTrusted: raw.name) { return [system, name] }
            return [name]
        }
    }

    /// The value of the attribute `name` ("user.x", "security.selinux",
    /// "system.posix_acl_access", ...), found through the hash index; nil when there is none.
    func value(name: String) throws -> [UInt8]? {
        let acl = name == XFSACL.accessXattr ? XFSACL.accessName : name == XFSACL.defaultXattr ? XFSACL.defaultName : nil
        guard let (flags, diskName) = acl.map({ (XFSAttributeFormat.root, $0) }) ?? XFSAttributeFormat.split(name),
              diskName.count <= 255 else { return nil }
        let forkMap: XFSForkMap?
        if case .extents(let e) = fork { forkMap = try map(e) } else { forkMap = nil }
        guard let raw = try find(flags: flags, name: diskName, forkMap) else { return nil }
        let value = try self.value(of: raw, forkMap)
        return acl == nil ? value : try XFSACL.linuxXattr(value, inode: inode)
    }

    private static func fullName(_ raw: XFSRawAttribute) -> String {
        (XFSAttributeFormat.prefix(flags: raw.flags) ?? "") + String(decoding: raw.name, as: UTF8.self)
    }

    private func value(of raw: XFSRawAttribute, _ forkMap: XFSForkMap?) throws -> [UInt8] {
        switch raw.value {
        case .local(let bytes): return bytes
        case .remote(let block, let length):
            guard let forkMap else { throw ImageError(structure: "attributes of inode \(inode)", reason: "remote value in a shortform fork", errno: .ioError) }
            return try XFSAttributeRemote.read(block: block, length: length, map: forkMap, inode: inode, geometry: geometry)
        }
    }

    /// Reads attribute block `block` (one filesystem block), checking the v5 da3 header.
    private func load(_ forkMap: XFSForkMap, _ block: UInt64) throws -> XFSBytes {
        let structure = "attribute block \(block) of inode \(inode)"
        let (raw, fsb) = try forkMap.readBlocks(block, count: 1, structure: structure)
        let b = XFSBytes(raw, structure: structure, deviceOffset: geometry.byteOffset(fsblock: fsb))
        if geometry.isV5 { try XFSMetadataHeader.da3Blkinfo.verify(b, fsblock: fsb, inode: inode, geometry: geometry) }
        return b
    }

    /// All entries, visible or not: the shortform list, or every leaf of the dabtree walked
    /// depth first from block 0 (levels must fall by one per step; a block seen twice is a loop).
    private func rawAttributes(_ forkMap: XFSForkMap?) throws -> [XFSRawAttribute] {
        switch fork {
        case .local(let bytes):
            return try XFSAttributeShortform.parse(bytes, inode: inode)
        case .extents(let extents):
            guard let forkMap, !extents.isEmpty else { return [] }
            var out: [XFSRawAttribute] = []
            var visited: Set<UInt64> = []
            let v5 = geometry.isV5
            func walk(_ block: UInt64, level: Int?) throws {
                guard visited.insert(block).inserted else {
                    throw ImageError(structure: "attribute block \(block) of inode \(inode)", reason: "dabtree visits the block twice", errno: .ioError)
                }
                let b = try load(forkMap, block)
                if try XFSDaNode.isNode(b, v5: v5) {
                    let node = try XFSDaNode(b, v5: v5)
                    if let level, node.level != level { throw b.damaged("dabtree node has level \(node.level), its parent expects \(level)") }
                    for child in try node.children() { try walk(UInt64(child), level: node.level - 1) }
                    return
                }
                if let level, level != 0 { throw b.damaged("attribute leaf where a level \(level) node should be") }
                let leaf = try XFSAttributeLeaf(b, v5: v5)
                for i in 0 ..< leaf.count { out.append(try leaf.attribute(i)) }
            }
            try walk(0, level: nil)
            return out
        }
    }

    /// The visible entry with these namespace flags and name: a scan of the shortform list,
    /// else the hash's path down the dabtree and along leaves sharing the hash.
    private func find(flags: UInt8, name: [UInt8], _ forkMap: XFSForkMap?) throws -> XFSRawAttribute? {
        func matches(_ raw: XFSRawAttribute) -> Bool { raw.isVisible && raw.namespace == flags && raw.name == name }
        guard case .extents(let extents) = fork, let forkMap else {
            return try rawAttributes(nil).first(where: matches)
        }
        guard !extents.isEmpty else { return nil }
        let v5 = geometry.isV5
        let hash = XFSNameHash.hash(name)
        var (block, bytes) = try XFSDaNode.findLeaf(root: 0, hash: hash, v5: v5) { try load(forkMap, $0) }
        var visited: Set<UInt64> = []
        while true {
            guard visited.insert(block).inserted else { throw bytes.damaged("attribute leaves loop back to block \(block)") }
            let leaf = try XFSAttributeLeaf(bytes, v5: v5)
            var i = try leaf.lowerBound(hash)
            while i < leaf.count, try leaf.hash(i) == hash {
                let raw = try leaf.attribute(i)
                if matches(raw) { return raw }
                i += 1
            }
            guard i == leaf.count, leaf.forward != 0 else { return nil }
            block = UInt64(leaf.forward)
            bytes = try load(forkMap, block)
        }
    }
}
