import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import SystemPackage
import CXML2
#if canImport(Glibc)
import Glibc
#endif

/// A libvirt domain's disks, for `-d DOMAIN` (libvirt "Domain XML format", <devices>/<disk>).
///
/// The XML comes from `virsh dumpxml` when virsh exists, otherwise from the file libvirt keeps
/// for a persistent QEMU domain, `/etc/libvirt/qemu/DOMAIN.xml` (the folder can be changed with
/// `IMAGEMOUNT_LIBVIRT_DIR`, which the tests use).
public struct LibvirtDomain: Sendable {
    public struct Disk: Sendable, Equatable {
        public let path: String
        public let format: ImageFormat?
        public let readOnly: Bool
        /// The UUID of the libvirt secret holding a Ceph key, from an rbd disk's
        /// `<auth username=…><secret type='ceph' uuid=…/></auth>` (libvirt "Domain XML format",
        /// the auth element); the key itself is libvirt's, read with `virsh secret-get-value`.
        public let cephSecretUUID: String?

        public init(path: String, format: ImageFormat?, readOnly: Bool, cephSecretUUID: String? = nil) {
            self.path = path
            self.format = format
            self.readOnly = readOnly
            self.cephSecretUUID = cephSecretUUID
        }
    }

    public let name: String
    /// The domain's `<uuid>`, as `virt-df --uuid` shows it (nil when the XML has none).
    public let uuid: String?
    /// Hard disks in the order the XML lists them (cdroms and floppies left out).
    public let disks: [Disk]
    /// Whether the domain is running now (its QEMU pid file names a live process).
    public let isRunning: Bool

    /// The folder holding persistent domain definitions.
    public static var configDirectory: String {
        getenv("IMAGEMOUNT_LIBVIRT_DIR").map { String(cString: $0) } ?? "/etc/libvirt/qemu"
    }

    /// The folder where libvirt's QEMU driver keeps running domains' pid files.
    public static var runDirectory: String {
        getenv("IMAGEMOUNT_LIBVIRT_RUN_DIR").map { String(cString: $0) } ?? "/run/libvirt/qemu"
    }

    /// Finds `name` and reads its disks. `xml` overrides the lookup (virsh's output).
    public static func load(name: String, xml: [UInt8]? = nil) throws -> LibvirtDomain {
        let file = configDirectory + "/" + name + ".xml"
        let bytes: [UInt8]
        if let xml {
            bytes = xml
        } else {
            guard !name.contains("/"), let data = try? readFile(file) else {
                throw ImageError(path: file, structure: "libvirt domain \(name)",
                                 reason: "no such domain (no \(file); is libvirt's virsh installed?)", errno: .noSuchFileOrDirectory)
            }
            bytes = data
        }
        let source = xml == nil ? file : "virsh dumpxml \(name)"
        let (disks, uuid) = try parse(bytes, source: source)
        return LibvirtDomain(name: name, uuid: uuid, disks: disks, isRunning: running(name))
    }

    /// The persistent domains libvirt keeps in `configDirectory` (one `NAME.xml` each), for
    /// tools that examine every domain when virsh is not installed. Sub-folders (`autostart`,
    /// `networks`) and other files are not domains.
    public static func definedNames() throws -> [String] {
        guard let dir = opendir(configDirectory) else {
            throw ImageError(path: configDirectory, structure: "libvirt domain folder",
                             reason: String(cString: strerror(errno)), errno: Errno(rawValue: errno))
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == DT_REG || entry.pointee.d_type == DT_UNKNOWN else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasSuffix(".xml"), !name.hasPrefix("."), name.utf8.count > 4 else { continue }
            names.append(String(name.dropLast(4)))
        }
        return names
    }

    /// The disks and the `<uuid>` of a domain's XML: `<disk type='file|block' device='disk'>`
    /// with `<source file|dev=…>` and `<driver type=…>`, network disks (`networkName`).
    static func parse(_ xml: [UInt8], source: String) throws -> (disks: [Disk], uuid: String?) {
        guard xml.count < 16 << 20 else {
            throw ImageError(path: source, structure: "domain XML", reason: "larger than 16 MiB", errno: .fileTooLarge)
        }
        // libxml2 is loaded on first use (Sources/CXML2: it is not linked).
        var loadError: UnsafePointer<CChar>?
        guard cxml2_load(&loadError) == 0 else {
            throw ImageError(path: source, structure: "domain XML", reason: loadError.map { String(cString: $0) } ?? "libxml2 could not be loaded",
                             errno: .noSuchFileOrDirectory)
        }
        // XML_PARSE_NONET: never fetch anything; XML_PARSE_NOENT off: no entity expansion.
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        guard let doc = xml.withUnsafeBufferPointer({ buffer in
            buffer.withMemoryRebound(to: CChar.self) { cxml2_xmlReadMemory($0.baseAddress, Int32($0.count), source, nil, options) }
        }) else {
            throw ImageError(path: source, structure: "domain XML", reason: "not well-formed XML", errno: .invalidArgument)
        }
        defer { cxml2_xmlFreeDoc(doc) }
        guard let root = cxml2_xmlDocGetRootElement(doc), name(of: root) == "domain" else {
            throw ImageError(path: source, structure: "domain XML", reason: "the root element is not <domain>", errno: .invalidArgument)
        }
        let uuid = children(of: root, named: "uuid").first.flatMap { text($0).split(whereSeparator: \.isWhitespace).first.map(String.init) }
        var disks: [Disk] = []
        for devices in children(of: root, named: "devices") {
            for disk in children(of: devices, named: "disk") {
                let device = attribute(disk, "device") ?? "disk"
                guard device == "disk" || device == "lun" else { continue }
                let auth = children(of: disk, named: "auth").first
                let network = attribute(disk, "type") == "network"
                guard let sourceNode = children(of: disk, named: "source").first,
                      let path = network
                        ? networkName(sourceNode, user: auth.flatMap { attribute($0, "username") })
                        : attribute(sourceNode, "file") ?? attribute(sourceNode, "dev") else { continue }
                let driver = children(of: disk, named: "driver").first.flatMap { attribute($0, "type") }
                let readOnly = !children(of: disk, named: "readonly").isEmpty
                let secret = network && attribute(sourceNode, "protocol") == "rbd" ? auth.flatMap(cephSecretUUID) : nil
                disks.append(Disk(path: path, format: driver.flatMap(ImageFormat.init(rawValue:)), readOnly: readOnly,
                                  cephSecretUUID: secret))
            }
        }
        return (disks, uuid)
    }

    /// The uuid of `<auth>`'s `<secret type='ceph' uuid=…/>`, when it is one (8-4-4-4-12 hex
    /// digits: it becomes an argument of virsh, so nothing else gets through). A secret named
    /// by `usage=` only is left to the keyring.
    static func cephSecretUUID(_ auth: xmlNodePtr) -> String? {
        guard let secret = children(of: auth, named: "secret").first, attribute(secret, "type") == "ceph",
              let uuid = attribute(secret, "uuid") else { return nil }
        let groups = uuid.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12],
              groups.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isHexDigit } }) else { return nil }
        return uuid.lowercased()
    }

    /// `<disk type='network'>`: the name `-a` would take for its `<source protocol=… name=…>`
    /// with its `<host>` elements (libvirt "Domain XML format", "Hard drives, floppy disks,
    /// CDROMs", network disks), or nil for a protocol imagemount does not open (iscsi, gluster,
    /// http…: the disk is skipped as other unusable disks are).
    /// - `nbd`: `nbd://HOST[:PORT]/NAME`, or `nbd+unix:///NAME?socket=PATH` for a Unix-socket host;
    ///   `tls='yes'` on the source gives `nbds`.
    /// - `rbd`: `rbd:POOL/IMAGE[@SNAP]` (QEMU's spelling, `\` escaping its delimiters), with the
    ///   hosts as `mon_host` and `<auth username=…>` as `id`. The secret's key is not part of the
    ///   name: it is looked up in libvirt's secret store (`cephSecretUUID`, ImageOptions).
    static func networkName(_ source: xmlNodePtr, user: String?) -> String? {
        let hosts = children(of: source, named: "host")
        switch attribute(source, "protocol") {
        case "nbd":
            let export = attribute(source, "name") ?? ""
            let scheme = attribute(source, "tls") == "yes" ? "nbds" : "nbd"
            if let host = hosts.first, attribute(host, "transport") == "unix", let socket = attribute(host, "socket") {
                return "\(scheme)+unix:///\(export)?socket=\(socket)"
            }
            guard let host = hosts.first, let hostName = attribute(host, "name") else { return nil }
            let address = hostName.contains(":") ? "[\(hostName)]" : hostName
            return "\(scheme)://\(address)\(attribute(host, "port").map { ":" + $0 } ?? "")/\(export)"
        case "rbd":
            guard let name = attribute(source, "name"), name.contains("/") else { return nil }
            // In QEMU's rbd: syntax ':' starts the options and '\' escapes; '/' and '@' keep their
            // meaning (pool/image@snapshot), as libvirt writes them.
            func escaped(_ text: String) -> String {
                var out = ""
                for c in text { if c == ":" || c == "\\" { out.append("\\") }; out.append(c) }
                return out
            }
            var result = "rbd:" + escaped(name)
            if let snapshot = children(of: source, named: "snapshot").first.flatMap({ attribute($0, "name") }), !name.contains("@") {
                result += "@" + escaped(snapshot)
            }
            if let user { result += ":id=" + escaped(user) }
            let monitors = hosts.compactMap { host in
                attribute(host, "name").map { escaped($0) + (attribute(host, "port").map { "\\:" + $0 } ?? "") }
            }
            if !monitors.isEmpty { result += ":mon_host=" + monitors.joined(separator: ",") }
            return result
        default:
            return nil
        }
    }

    /// A running QEMU domain has `<run dir>/NAME.pid` naming a live process.
    static func running(_ name: String) -> Bool {
        guard let bytes = try? readFile(runDirectory + "/" + name + ".pid"),
              let pid = Int32(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n")) else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        defer { try? fd.close() }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while out.count < 16 << 20 {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { break }
            out += chunk.prefix(n)
        }
        return out
    }

    static func name(of node: xmlNodePtr) -> String { node.pointee.name.map { String(cString: $0) } ?? "" }

    static func children(of node: xmlNodePtr, named wanted: String) -> [xmlNodePtr] {
        var result: [xmlNodePtr] = []
        var child = node.pointee.children
        while let c = child {
            if c.pointee.type == XML_ELEMENT_NODE, name(of: c) == wanted { result.append(c) }
            child = c.pointee.next
        }
        return result
    }

    /// The text directly inside an element (its text and CDATA children), at most 4 KiB.
    static func text(_ node: xmlNodePtr) -> String {
        var out: [UInt8] = []
        var child = node.pointee.children
        while let c = child, out.count < 4096 {
            if c.pointee.type == XML_TEXT_NODE || c.pointee.type == XML_CDATA_SECTION_NODE, let content = c.pointee.content {
                out += UnsafeBufferPointer(start: content, count: strlen(UnsafeRawPointer(content).assumingMemoryBound(to: CChar.self)))
            }
            child = c.pointee.next
        }
        return String(decoding: out.prefix(4096), as: UTF8.self)
    }

    static func attribute(_ node: xmlNodePtr, _ name: String) -> String? {
        guard let value = cxml2_xmlGetProp(node, name) else { return nil }
        defer { cxml2_free(value) }
        return String(cString: value)
    }
}
