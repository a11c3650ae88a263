#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import SystemHivex
import SystemPackage

/// A Windows registry hive (the "regf" format), read through hivex, as libguestfs's inspection
/// reads one (daemon/inspect_fs_windows.ml `with_hive`).
///
/// The hive's bytes come from the guest through our own filesystem driver and never touch a
/// host file: they are copied into an anonymous memory file (memfd_create(2)), which hivex opens
/// as `/proc/self/fd/N` (read-only: hivex mmaps it, hivex/lib/handle.c `hivex_open`). hivex is
/// built to survive hostile hives (it checks every block offset against the bitmap of real
/// blocks it builds at open), and everything it hands back is hostile still: value sizes are
/// checked before a value is fetched, strings are decoded from UTF-16LE here with every code
/// unit checked, and any failure is a typed error for the one field that needed it.
final class Hive {
    /// Largest hive read. A Windows 10/11 SOFTWARE hive is typically 50–150 MiB, a SYSTEM hive
    /// 10–30 MiB; a larger file is not a hive inspection should map into memory.
    static let maxSize: UInt64 = 512 << 20
    /// Largest value fetched: the values inspection reads are short strings, DWORDs and the
    /// 12- or 24-byte MountedDevices blobs.
    static let maxValueSize = 64 << 10
    /// Most values or subkeys looked at in one key (MountedDevices holds a few dozen).
    static let maxValues = 16_384
    /// hivex refuses files under two pages (header + one hbin, handle.c).
    static let minSize: UInt64 = 0x2000

    /// The guest path the hive came from, for messages.
    let name: String
    private let handle: OpaquePointer
    private let descriptor: FileDescriptor

    /// hivex's handles: offsets of the nk and vk cells in the hive (size_t).
    typealias Node = hive_node_h
    typealias Value = hive_value_h

    /// Reads `file` (at most `maxSize` bytes) into memory and opens it.
    convenience init(file: any GuestFile, name: String) throws {
        guard file.size <= Self.maxSize else {
            throw ImageError(path: name, structure: "registry hive", reason: "\(file.size) bytes, more than the \(Self.maxSize >> 20) MiB a hive may have here",
                             errno: .fileTooLarge)
        }
        try self.init(size: file.size, name: name) { buffer in
            var done = 0
            while done < buffer.count {
                let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: UInt64(done))
                guard count > 0 else {
                    throw ImageError(path: name, offset: UInt64(done), structure: "registry hive", reason: "file ends before its size", errno: .ioError)
                }
                done += count
            }
        }
    }

    /// Opens hive bytes held in memory (the fuzz target, tests).
    convenience init(bytes: [UInt8], name: String) throws {
        guard UInt64(bytes.count) <= Self.maxSize else {
            throw ImageError(path: name, structure: "registry hive", reason: "too large", errno: .fileTooLarge)
        }
        try self.init(size: UInt64(bytes.count), name: name) { buffer in
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }

    /// Makes a memory file of `size` bytes, lets `fill` write it through a shared mapping, and
    /// hands it to hivex.
    private init(size: UInt64, name: String, fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        self.name = name
        guard size >= Self.minSize else {
            throw ImageError(path: name, structure: "registry hive", reason: "\(size) bytes, too small to be a registry hive (a header and one hbin page are 8 KiB)",
                             errno: .invalidArgument)
        }
        let raw = systemhivex_memfd("imagemount-hive")
        guard raw >= 0 else {
            throw ImageError(path: name, structure: "registry hive", reason: "memfd_create failed", errno: Errno(rawValue: errno))
        }
        let fd = FileDescriptor(rawValue: raw)
        do {
            guard ftruncate(raw, off_t(size)) == 0 else {
                throw ImageError(path: name, structure: "registry hive", reason: "cannot size the memory file", errno: Errno(rawValue: errno))
            }
            guard let mapping = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, raw, 0),
                  mapping != UnsafeMutableRawPointer(bitPattern: -1) else {
                throw ImageError(path: name, structure: "registry hive", reason: "cannot map the memory file", errno: Errno(rawValue: errno))
            }
            defer { munmap(mapping, Int(size)) }
            try fill(UnsafeMutableRawBufferPointer(start: mapping, count: Int(size)))
            errno = 0
            guard let h = hivex_open("/proc/self/fd/\(raw)", 0) else {
                let code = errno == 0 ? EINVAL : errno
                // hivex says which check failed only on stderr with HIVEX_OPEN_VERBOSE; the errno
                // is what it gives (handle.c): ENOTSUP for a broken structure, EINVAL for a bad
                // header checksum or size.
                let why = code == ENOTSUP ? "not a valid registry hive (bad signature, version, hbin page or root key)"
                    : code == EINVAL ? "not a valid registry hive (bad header checksum or size)"
                    : "hivex cannot open it: \(Errno(rawValue: code).description)"
                throw ImageError(path: name, structure: "registry hive", reason: why, errno: .ioError)
            }
            self.handle = h
            self.descriptor = fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// Loads what hivex needs from the host's disk before a sandbox forbids it (the Latin-1
    /// converter, SystemHivex/shim.h). Once per process; false when iconv has no Latin-1.
    static let convertersLoaded: Bool = systemhivex_load_converters() == 0

    deinit {
        hivex_close(handle)
        try? descriptor.close()
    }

    var root: Node { hivex_root(handle) }

    /// The subkey `name` of `node` (hivex compares case-insensitively, as Windows does), or nil.
    func child(_ node: Node, _ name: String) -> Node? {
        let found = hivex_node_get_child(handle, node, name)
        return found == 0 ? nil : found
    }

    /// The key at `path` below `node`, each component looked up as `child` does.
    func node(_ path: [String], from start: Node? = nil) -> Node? {
        var node = start ?? root
        for component in path {
            guard let next = child(node, component) else { return nil }
            node = next
        }
        return node
    }

    /// The subkeys of `node` with their names, at most `maxValues` (hivex_node_children).
    func children(_ node: Node) -> [(name: String, node: Node)] {
        guard let list = hivex_node_children(handle, node) else { return [] }
        defer { free(list) }
        var out: [(name: String, node: Node)] = []
        var index = 0
        while index < Self.maxValues, list[index] != 0 {
            let child = list[index]
            if let key = hivex_node_name(handle, child) {
                // hivex gives names as UTF-8 it converted itself (from Latin-1 or UTF-16LE).
                out.append((String(decoding: UnsafeRawBufferPointer(start: key, count: strlen(key)), as: UTF8.self), child))
                free(key)
            }
            index += 1
        }
        return out
    }

    /// The values of `node` with their names, at most `maxValues`.
    func values(_ node: Node) -> [(name: String, value: Value)] {
        guard let list = hivex_node_values(handle, node) else { return [] }
        defer { free(list) }
        var out: [(name: String, value: Value)] = []
        var index = 0
        while index < Self.maxValues, list[index] != 0 {
            let value = list[index]
            if let key = hivex_value_key(handle, value) {
                // hivex gives names as UTF-8 it converted itself (from Latin-1 or UTF-16LE).
                out.append((String(decoding: UnsafeRawBufferPointer(start: key, count: strlen(key)), as: UTF8.self), value))
                free(key)
            }
            index += 1
        }
        return out
    }

    /// The value named `name` (case-insensitively, as Windows compares value names), or nil.
    func value(_ node: Node, _ name: String) -> Value? {
        let lowered = name.lowercased()
        return values(node).first { $0.name.lowercased() == lowered }?.value
    }

    /// A value's registry type (REG_SZ = 1, REG_BINARY = 3, REG_DWORD = 4…) and bytes, the
    /// size checked against `maxValueSize` before anything is fetched.
    func data(_ value: Value) throws -> (type: UInt32, bytes: [UInt8]) {
        var type = hive_type(rawValue: 0)
        var length = 0
        guard hivex_value_type(handle, value, &type, &length) == 0 else {
            throw ImageError(path: name, structure: "registry value", reason: "cannot read its type: \(Errno(rawValue: errno).description)", errno: .ioError)
        }
        guard length <= Self.maxValueSize else {
            throw ImageError(path: name, structure: "registry value", reason: "\(length) bytes, more than the \(Self.maxValueSize) a value may have here", errno: .fileTooLarge)
        }
        var fetchedLength = 0
        guard let bytes = hivex_value_value(handle, value, &type, &fetchedLength) else {
            throw ImageError(path: name, structure: "registry value", reason: "cannot read its data: \(Errno(rawValue: errno).description)", errno: .ioError)
        }
        defer { free(bytes) }
        let count = min(fetchedLength, Self.maxValueSize)
        return (type.rawValue, Array(UnsafeRawBufferPointer(start: bytes, count: count)))
    }

    static let regSZ: UInt32 = 1, regExpandSZ: UInt32 = 2, regBinary: UInt32 = 3, regDWORD: UInt32 = 4, regDWORDBigEndian: UInt32 = 5

    /// A REG_SZ or REG_EXPAND_SZ value as text: UTF-16LE up to the first NUL unit.
    func string(_ value: Value) throws -> String {
        let (type, bytes) = try data(value)
        guard type == Self.regSZ || type == Self.regExpandSZ else {
            throw ImageError(path: name, structure: "registry value", reason: "type \(type), not a string (REG_SZ)", errno: .invalidArgument)
        }
        return try Self.decodeUTF16LE(bytes, name: name)
    }

    /// A REG_DWORD (little-endian) or REG_DWORD_BIG_ENDIAN value.
    func dword(_ value: Value) throws -> UInt32 {
        let (type, bytes) = try data(value)
        guard (type == Self.regDWORD || type == Self.regDWORDBigEndian), bytes.count == 4 else {
            throw ImageError(path: name, structure: "registry value", reason: "type \(type) with \(bytes.count) bytes, not a DWORD", errno: .invalidArgument)
        }
        let le = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        return type == Self.regDWORD ? le : le.byteSwapped
    }

    /// UTF-16LE text up to the first NUL code unit. An odd trailing byte is dropped (Windows
    /// writes a whole number of units); an unpaired surrogate is an error, not a guess.
    static func decodeUTF16LE(_ bytes: [UInt8], name: String) throws -> String {
        var units: [UInt16] = []
        units.reserveCapacity(bytes.count / 2)
        var i = 0
        while i + 1 < bytes.count {
            let unit = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
            if unit == 0 { break }
            units.append(unit)
            i += 2
        }
        var out = String.UnicodeScalarView()
        var iterator = units.makeIterator()
        var decoder = UTF16()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): out.append(scalar)
            case .emptyInput: break loop
            case .error:
                throw ImageError(path: name, structure: "registry value", reason: "string is not valid UTF-16 (an unpaired surrogate)", errno: .invalidArgument)
            }
        }
        return String(out)
    }
}
