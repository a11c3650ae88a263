#if canImport(Glibc)
import Glibc
#endif

/// What `imagemount info` shows about one image: the fields of `qemu-img info`, so the two can be
/// compared line by line (text) or key by key (JSON, `qemu-img info --output=json`).
public struct ImageInfo: Sendable {
    public var filename: String
    public var format: ImageFormat
    public var virtualSize: UInt64
    /// Bytes the file occupies on the host (st_blocks * 512); nil where the source cannot say
    /// (an RBD image: qemu-img prints "disk size: unavailable" and no actual-size).
    public var actualSize: UInt64?
    public var clusterSize: Int?
    public var encrypted: Bool
    public var dirty: Bool
    /// Whether qemu-img info would show the driver's info (cluster size, dirty flag) at all.
    public var hasDriverInfo: Bool
    public var backingFilename: String?
    /// The backing file name resolved against the image's folder.
    public var fullBackingFilename: String?
    public var backingFormat: String?
    public var snapshots: [ImageSnapshot]
    /// qemu-img's "Format specific information", as the format's registration gives it.
    public var specific: FormatSpecificInfo?

    /// Facts about `path` and, with `backingChain`, every image below it (top first).
    /// Only metadata is read, so this works for images the read engine refuses (encrypted ones).
    /// `path` may be an NBD URI or an RBD name (reached with `rbdClient`); backing files are
    /// host files only, as `ImageOpener` opens them (an image's bytes never name a server).
    public static func gather(path: String, format: ImageFormat? = nil, backingChain: Bool = false,
                              rbdClient: RBDClientOptions = RBDClientOptions()) throws -> [ImageInfo] {
        var infos: [ImageInfo] = []
        var seen: [(UInt64, UInt64)] = []
        var next: (String, ImageFormat?)? = (path, format)
        while let (current, forced) = next {
            guard infos.count < ImageOpener.maxBackingChainDepth else {
                throw ImageError(path: current, structure: "backing chain",
                                 reason: "backing chain is deeper than \(ImageOpener.maxBackingChainDepth) images",
                                 errno: .tooManySymbolicLinkLevels)
            }
            if NBDURI.isNBD(current) || RBDImageName.isRBD(current) {
                guard infos.isEmpty else {
                    throw ImageError(path: infos[infos.count - 1].filename, structure: "backing file",
                                     reason: "backing files on NBD servers or in Ceph RBD are not supported", errno: .notSupported)
                }
                let source: any ImageSource = NBDURI.isNBD(current)
                    ? try NBDSource(uri: current, writable: false)
                    : try RBDSource(name: current, client: rbdClient, writable: false)
                let info = try describe(source: source, format: forced)
                infos.append(info)
                guard backingChain, let full = info.fullBackingFilename else { break }
                next = try backingLink(of: info, current: current, full: full, forced: forced)
                continue
            }
            let file = try RawImage(path: current, writable: false)
            let st = try status(of: file)
            guard !seen.contains(where: { $0 == (UInt64(st.st_dev), UInt64(st.st_ino)) }) else {
                throw ImageError(path: current, structure: "backing chain", reason: "backing chain loops back to '\(current)'",
                                 errno: .tooManySymbolicLinkLevels)
            }
            seen.append((UInt64(st.st_dev), UInt64(st.st_ino)))
            let info = try ImageInfo(file: file, format: forced, actualSize: UInt64(st.st_blocks) * 512)
            infos.append(info)
            guard backingChain, let full = info.fullBackingFilename else { break }
            next = try backingLink(of: info, current: current, full: full, forced: forced)
        }
        return infos
    }

    /// The next link of a chain walk: the backing file `full` that `current` names, with its
    /// format; the probing policy first (the name is shown, but followed only when the format
    /// is vouched for).
    private static func backingLink(of info: ImageInfo, current: String, full: String,
                                    forced: ImageFormat?) throws -> (String, ImageFormat?) {
        var options = ImageOpenOptions(format: forced)
        options.mayOpenReferencedFiles = ImageOpener.formatIsVouched(path: current, given: forced, probed: info.format)
        try ImageOpener.checkMayOpen(full, as: "backing file", options: options, image: current, format: info.format)
        let backingFormat = try info.backingFormat.map { name in
            guard let f = ImageFormat(rawValue: name) else {
                throw ImageError(path: current, structure: "backing file", reason: "backing file format '\(name)' is not supported",
                                 errno: .notSupported)
            }
            return f
        }
        return (full, backingFormat)
    }

    /// What one image file that is already open holds, its backing file named but not opened
    /// (`info` without --backing-chain opens its files, enters the sandbox, then parses).
    public static func describe(_ file: RawImage, format: ImageFormat? = nil) throws -> ImageInfo {
        try ImageInfo(file: file, format: format, actualSize: UInt64(status(of: file).st_blocks) * 512)
    }

    /// The same for an image source with no host file (an RBD image): no disk size.
    /// An RBD image shows, under a raw format, what QEMU's rbd driver gives (qemu
    /// block/rbd.c, qemu_rbd_getinfo): its object size as the cluster size (and so a dirty flag).
    public static func describe(source: any ImageSource, format: ImageFormat? = nil) throws -> ImageInfo {
        var info = try ImageInfo(file: source, format: format, actualSize: nil)
        if let rbd = source as? RBDSource, info.format == .raw {
            info.clusterSize = Int(clamping: rbd.objectSize)
            info.hasDriverInfo = true
        }
        return info
    }

    private static func status(of file: RawImage) throws -> stat {
        do { return try Syscall.fileStatus(file.fd) } catch {
            throw ImageError(path: file.path, reason: "cannot stat: \(error.description)", errno: error)
        }
    }

    init(file: any ImageSource, format forced: ImageFormat?, actualSize: UInt64?) throws {
        filename = file.displayName
        self.actualSize = actualSize
        format = try forced ?? ImageFormat.probe(header: file.readBytes(at: 0, count: Int(min(file.size, 512))))
        // The format's registration reads its metadata (ImageFormatRegistry.swift).
        let d = try ImageFormatRegistry.driver(for: format).describe(file)
        virtualSize = d.virtualSize
        clusterSize = d.clusterSize
        encrypted = d.encrypted
        dirty = d.dirty
        hasDriverInfo = d.hasDriverInfo
        snapshots = d.snapshots
        specific = d.specific
        if let name = d.backingFilename {
            backingFilename = name
            fullBackingFilename = ImageOpener.resolve(name, relativeTo: file.displayName)
            backingFormat = d.backingFormat
        }
    }
}

// MARK: - qemu-img info text

extension ImageInfo {
    /// The lines `qemu-img info` prints for this image (QEMU 7.2's layout).
    public var text: String {
        var lines = ["image: \(filename)", "file format: \(format.rawValue)",
                     "virtual size: \(Self.humanSize(virtualSize)) (\(virtualSize) bytes)",
                     "disk size: \(actualSize.map(Self.humanSize) ?? "unavailable")"]
        if encrypted { lines.append("encrypted: yes") }
        if let clusterSize { lines.append("cluster_size: \(clusterSize)") }
        if let backingFilename {
            var line = "backing file: \(backingFilename)"
            if let full = fullBackingFilename, full != backingFilename { line += " (actual path: \(full))" }
            lines.append(line)
        }
        if let backingFormat { lines.append("backing file format: \(backingFormat)") }
        if dirty { lines.append("dirty flag: yes") }
        if !snapshots.isEmpty {
            lines.append("Snapshot list:")
            lines.append(Self.snapshotRow("ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"))
            for s in snapshots {
                lines.append(Self.snapshotRow(s.id, s.name, Self.humanSize(s.vmStateSize), Self.date(s.dateSeconds),
                                              Self.clock(s.vmClockNanoseconds), s.icount.map { "\($0)" } ?? ""))
            }
        }
        if let specific {
            lines.append("Format specific information:")
            lines += Self.textLines(specific.fields, indent: 4)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// "    key: value" lines, an object's fields one level deeper under "    key:".
    static func textLines(_ fields: [FormatSpecificInfo.Field], indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        return fields.flatMap { field -> [String] in
            switch field.value {
            case let .string(v): ["\(pad)\(field.label): \(v)"]
            case let .bool(v): ["\(pad)\(field.label): \(v)"]
            case let .integer(v): ["\(pad)\(field.label): \(v)"]
            case let .object(inner): ["\(pad)\(field.label):"] + textLines(inner, indent: indent + 4)
            case let .list(items):
                ["\(pad)\(field.label):"] + items.enumerated().flatMap { i, item in
                    ["\(pad)    [\(i)]:"] + textLines(item, indent: indent + 8)
                }
            }
        }
    }

    /// Several images as `qemu-img info --backing-chain` prints them: blank lines between.
    public static func text(_ infos: [ImageInfo]) -> String {
        infos.map(\.text).joined(separator: "\n")
    }

    /// Sizes as QEMU's size_to_str prints them: three significant digits, binary units, switching
    /// unit at 1000 of the smaller one ("196 KiB", "2.19 MiB", "0.977 MiB").
    public static func humanSize(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var index = 0
        while index < units.count - 1, Double(bytes) >= 1000 * Double(UInt64(1) << UInt64(10 * index)) { index += 1 }
        return "\(cFormat("%0.3g", Double(bytes) / Double(UInt64(1) << UInt64(10 * index)))) \(units[index])"
    }

    private static func snapshotRow(_ id: String, _ tag: String, _ size: String, _ date: String, _ clock: String,
                                     _ icount: String) -> String {
        pad(id, 9) + " " + pad(tag, 17) + " " + pad(size, 7, left: true) + pad(date, 20, left: true)
            + pad(clock, 13, left: true) + pad(icount, 11, left: true)
    }

    private static func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return left ? fill + s : s + fill
    }

    /// Local time, as qemu-img prints snapshot dates.
    private static func date(_ seconds: UInt32) -> String {
        var t = time_t(seconds)
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func clock(_ nanoseconds: UInt64) -> String {
        let ms = nanoseconds / 1_000_000
        func two(_ v: UInt64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let millis = ms % 1000
        return "\(two(ms / 3_600_000)):\(two(ms / 60_000 % 60)):\(two(ms / 1000 % 60))." + (millis < 10 ? "00" : millis < 100 ? "0" : "") + "\(millis)"
    }

    /// `value` formatted by C's printf (`"%0.2f"`), for output that must match QEMU's to the digit.
    public static func cFormat(_ format: String, _ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, format, $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

// MARK: - qemu-img info --output=json

extension ImageInfo {
    /// The object `qemu-img info --output=json` prints, keys in its order, 4-space indentation.
    public func json(indent: Int = 0) -> String {
        var fields: [(String, String)] = []
        if let backingFormat { fields.append(("backing-filename-format", Self.quote(backingFormat))) }
        if !snapshots.isEmpty {
            let items = snapshots.map { s -> String in
                var f: [(String, String)] = []
                if let icount = s.icount { f.append(("icount", "\(icount)")) }
                f += [("vm-clock-nsec", "\(s.vmClockNanoseconds % 1_000_000_000)"), ("name", Self.quote(s.name)),
                      ("date-sec", "\(s.dateSeconds)"), ("date-nsec", "\(s.dateNanoseconds)"),
                      ("vm-clock-sec", "\(s.vmClockNanoseconds / 1_000_000_000)"), ("id", Self.quote(s.id)),
                      ("vm-state-size", "\(s.vmStateSize)")]
                return Self.object(f, indent: indent + 8)
            }
            fields.append(("snapshots", "[\n" + items.map { String(repeating: " ", count: indent + 8) + $0 }.joined(separator: ",\n")
                           + "\n" + String(repeating: " ", count: indent + 4) + "]"))
        }
        fields.append(("virtual-size", "\(virtualSize)"))
        fields.append(("filename", Self.quote(filename)))
        if let clusterSize { fields.append(("cluster-size", "\(clusterSize)")) }
        fields.append(("format", Self.quote(format.rawValue)))
        if let actualSize { fields.append(("actual-size", "\(actualSize)")) }
        if encrypted { fields.append(("encrypted", "true")) }
        if let specific {
            fields.append(("format-specific", Self.object([("type", Self.quote(specific.type)),
                                                           ("data", Self.jsonObject(specific.fields, indent: indent + 8))],
                                                          indent: indent + 4)))
        }
        if let full = fullBackingFilename { fields.append(("full-backing-filename", Self.quote(full))) }
        if let backingFilename { fields.append(("backing-filename", Self.quote(backingFilename))) }
        if hasDriverInfo { fields.append(("dirty-flag", "\(dirty)")) }
        return Self.object(fields, indent: indent)
    }

    /// One image as an object, or a chain as an array (what `--backing-chain` prints).
    public static func json(_ infos: [ImageInfo], chain: Bool) -> String {
        guard chain else { return (infos.first?.json() ?? "{}") + "\n" }
        return "[\n" + infos.map { "    " + $0.json(indent: 4) }.joined(separator: ",\n") + "\n]\n"
    }

    /// A format's fields as a JSON object (nested objects one level deeper).
    static func jsonObject(_ fields: [FormatSpecificInfo.Field], indent: Int) -> String {
        object(fields.map { field in
            switch field.value {
            case let .string(v): (field.key, quote(v))
            case let .bool(v): (field.key, "\(v)")
            case let .integer(v): (field.key, "\(v)")
            case let .object(inner): (field.key, jsonObject(inner, indent: indent + 4))
            case let .list(items):
                (field.key, "[\n" + items.map { String(repeating: " ", count: indent + 8) + jsonObject($0, indent: indent + 8) }
                    .joined(separator: ",\n") + "\n" + String(repeating: " ", count: indent + 4) + "]")
            }
        }, indent: indent)
    }

    private static func object(_ fields: [(String, String)], indent: Int) -> String {
        let pad = String(repeating: " ", count: indent + 4)
        return "{\n" + fields.map { "\(pad)\"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n"
            + String(repeating: " ", count: indent) + "}"
    }

    /// A JSON string literal of `s` (RFC 8259 §7); every JSON imagemount prints quotes through it.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
