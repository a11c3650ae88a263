import Foundation
@testable import GuestFS
import Testing
import TestSupport

/// XFSAttributeReader over real mkfs.xfs images whose attributes were set on a kernel loop
/// mount (setfattr, setfacl, python's os.setxattr), against what the kernel's listxattr and
/// getxattr return on that mount (as root: trusted.* included).
@Suite(.serialized) struct XFSAttributeReaderTests {
    /// The kernel's xattrs of `path`, in listxattr order.
    static func kernelXattrs(_ path: String) throws -> [Xattr] {
        let out = try Shell.check("""
            python3 -c 'import os,sys
            for n in os.listxattr(sys.argv[1], follow_symlinks=False): print(n.encode().hex(), os.getxattr(sys.argv[1], n, follow_symlinks=False).hex())' \
            \(Shell.quote(path))
            """)
        func unhex(_ s: Substring) -> [UInt8] {
            let u = Array(s.utf8)
            return stride(from: 0, to: u.count, by: 2).map { UInt8(String(decoding: u[$0 ..< $0 + 2], as: UTF8.self), radix: 16)! }
        }
        return out.split(separator: "\n").map { line in
            let w = line.split(separator: " ", omittingEmptySubsequences: false)
            return Xattr(name: String(decoding: unhex(w[0]), as: UTF8.self), value: w.count > 1 ? unhex(w[1]) : [])
        }
    }

    /// Sets attributes with python: `spec` lines of "name length [byte]" on `file`.
    static func setMany(_ file: String, count: Int, prefix: String, valueLength: Int) throws {
        try Shell.check("""
            python3 -c 'import os,sys
            f=sys.argv[1]
            for i in range(int(sys.argv[2])): os.setxattr(f, sys.argv[3]+"%05d"%i, bytes((i*7+j)%251 for j in range(int(sys.argv[4]))))' \
            \(Shell.quote(file)) \(count) \(Shell.quote(prefix)) \(valueLength)
            """)
    }

    /// Files whose attribute forks take every form, on `options`' filesystem.
    static let cases: [(name: String, setup: String)] = [
        ("none", "touch F"),
        ("shortform", "touch F && setfattr -n user.a -v hello F && setfattr -n trusted.t -v tv F && setfattr -n security.selinux -v system_u:object_r:etc_t:s0 F"),
        ("acl", "touch F && setfacl -m u:1000:rw,g:100:r,m::rw F && setfattr -n user.x -v y F"),
        ("default-acl", "mkdir F && setfacl -m u:7:rx F && setfacl -d -m u:1000:rwx,g:5:r F"),
        ("empty-value", "touch F && setfattr -n user.empty F && setfattr -n security.e F"),
        ("remote", "touch F && python3 -c 'import os; r=os.urandom; os.setxattr(\"F\", \"user.big\", r(5000)); os.setxattr(\"F\", \"trusted.huge\", r(65536)); os.setxattr(\"F\", \"user.small\", b\"s\"); os.setxattr(\"F\", \"security.mid\", r(1500))'"),
    ]

    func check(_ reader: XFSAttributeReader, kernel: [Xattr], label: String) throws {
        let ours = try reader.all()
        #expect(ours.count == kernel.count, "\(label): \(ours.count) xattrs, the kernel lists \(kernel.count)")
        #expect(Dictionary(ours.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                == Dictionary(kernel.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a }), "\(label): xattrs differ")
        #expect(Set(try reader.names()) == Set(kernel.map(\.name)), "\(label): names")
        for x in kernel.prefix(300) {
            #expect(try reader.value(name: x.name) == x.value, "\(label): value of \(x.name)")
        }
        #expect(try reader.value(name: "user.no-such-attribute") == nil)
        #expect(try reader.value(name: "trusted.no-such-attribute") == nil)
    }

    @Test(arguments: ["", "-b size=1024", "-i size=1024", "-m crc=1,reflink=0 -i attr=2 -b size=2048"])
    func everyFormMatchesTheKernel(options: String) throws {
        let image = try XFSDbImage(options)
        var files: [(String, UInt64, [Xattr])] = []
        try image.withMount { mnt in
            for (name, setup) in Self.cases {
                try image.sh("mkdir w-\(name) && cd w-\(name) && " + setup)
                files.append((name, try KernelView.inode(mnt + "/w-\(name)/F"), try Self.kernelXattrs(mnt + "/w-\(name)/F")))
            }
            // Leaf (one block), node (a dabtree over many leaves), and node with remote values.
            for (name, count, length) in [("leaf", 20, 40), ("node", 3_000, 30), ("node-remote", 200, 3_000), ("many-secure", 600, 8)] {
                try image.sh("touch \(name)")
                try Self.setMany(mnt + "/\(name)", count: count, prefix: name == "many-secure" ? "security.s" : "user.attr-", valueLength: length)
                files.append((name, try KernelView.inode(mnt + "/\(name)"), try Self.kernelXattrs(mnt + "/\(name)")))
            }
        }
        var formats: [String: Int] = [:]
        for (name, ino, kernel) in files {
            let forks = try image.forks(ino)
            formats[name] = forks.attrFormat
            let reader = XFSAttributeReader(geometry: image.geometry, inode: ino, fork: forks.attr ?? .local([0, 4, 0, 0]), read: image.reader)
            try check(reader, kernel: kernel, label: "\(options) \(name)")
        }
        #expect(formats["shortform"] == 1 && formats["acl"] == 1)
        // 2 = extents, 3 = a bmbt (the node file's many attribute blocks on small blocks).
        #expect(formats["leaf"] == 2 && formats["remote"] == 2 && formats["node"].map { $0 >= 2 } == true, "\(options): \(formats)")
        // The node file's fork really is a dabtree: block 0 is a node.
        let node = try image.forks(files.first { $0.0 == "node" }!.1)
        guard case .extents(let e)? = node.attr else { Issue.record("node attr fork is not extents"); return }
        let root = try image.reader(try #require(e.first { $0.fileOffset == 0 }).startBlock, 1)
        #expect(try XFSDaNode.isNode(XFSBytes(root, structure: "root"), v5: image.geometry.isV5))
        #expect(files.first { $0.0 == "acl" }!.2.contains { $0.name == "system.posix_acl_access" })
        #expect(files.first { $0.0 == "default-acl" }!.2.contains { $0.name == "system.posix_acl_default" })
    }
}

extension XFSAttributeReaderTests {
    /// 600 user attributes whose names share one hash (entries over several leaves, so
    /// value(name:) follows the leaves' forward links), with the kernel's values.
    @Test func namesSharingOneHashAcrossLeaves() throws {
        let names = XFSHashCollisions.names(601)
        let image = try XFSDbImage()
        let listFile = try XFSHashCollisions.file(Array(names.prefix(600)), in: image.dir)
        let (ino, kernel) = try image.withMount { mnt in
            try image.sh("touch f")
            try Shell.check("python3 -c 'import os,sys\nfor i,n in enumerate(open(sys.argv[1]).read().split(\"\\n\")): os.setxattr(sys.argv[2], \"user.\"+n, str(i).encode()*3)' \(Shell.quote(listFile)) \(Shell.quote(mnt + "/f"))")
            return (try KernelView.inode(mnt + "/f"), try Self.kernelXattrs(mnt + "/f"))
        }
        #expect(kernel.count == 600)
        let reader = XFSAttributeReader(geometry: image.geometry, inode: ino, fork: try image.forks(ino).attr!, read: image.reader)
        try check(reader, kernel: kernel, label: "hash collisions")
        for x in kernel.suffix(300) { #expect(try reader.value(name: x.name) == x.value, "\(x.name)") }
        #expect(try reader.value(name: "user." + String(decoding: names[600], as: UTF8.self)) == nil)
        #expect(try reader.value(name: "trusted." + String(decoding: names[0], as: UTF8.self)) == nil, "same name, other namespace")
    }
}
