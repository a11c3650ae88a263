#if canImport(Glibc)
import Glibc
#endif

/// Where a differencing VHD's parent is ("Dynamic Disk Header Format", Parent Locator Entries
/// and Parent Unicode Name): the file names the locators hold, turned into host paths resolved
/// relative to the child, as QEMU resolves backing names.
enum VHDParentLocator {
    /// Platform codes ("Parent Locator Entry", Platform Code).
    static let relativeWindows: UInt32 = 0x5732_7275   // "W2ru": relative path, UTF-16LE
    static let absoluteWindows: UInt32 = 0x5732_6B75   // "W2ku": absolute path, UTF-16LE
    static let macOSX: UInt32 = 0x4D61_6358            // "MacX": file:// URL, UTF-8
    /// Longest locator imagemount reads: a path, not a table.
    static let maxLocatorBytes: UInt32 = 64 * 1024
    static let structure = "VHD parent locator"

    /// The host paths the header names for the parent, most specific first: the relative
    /// locator, the absolute ones, then the parent's bare name beside the child.
    static func candidates(_ header: VHDFormat.DynamicHeader, headerOffset: UInt64, file: any BlockDevice) throws -> [String] {
        let child = file.displayName
        var relative: [String] = [], absolute: [String] = []
        for (i, locator) in header.parentLocators.enumerated()
        where [relativeWindows, absoluteWindows, macOSX].contains(locator.platformCode) && locator.dataLength > 0 {
            let at = headerOffset + 576 + UInt64(24 * i)
            guard locator.dataLength <= maxLocatorBytes else {
                throw ImageError(path: child, offset: at, structure: structure,
                                 reason: "locator of \(locator.dataLength) bytes is longer than \(maxLocatorBytes)")
            }
            let (end, overflow) = locator.dataOffset.addingReportingOverflow(UInt64(locator.dataLength))
            guard !overflow, end <= file.size else {
                throw ImageError(path: child, offset: at, structure: structure,
                                 reason: "locator data at 0x\(String(locator.dataOffset, radix: 16)) runs past the end of the file")
            }
            let bytes = try file.readBytes(at: locator.dataOffset, count: Int(locator.dataLength))
            switch locator.platformCode {
            case relativeWindows:
                if let name = windowsPath(utf16LE(bytes)) { relative.append(ImageOpener.resolve(stripDotSlash(name), relativeTo: child)) }
            case absoluteWindows:
                if let name = windowsPath(utf16LE(bytes)), name.hasPrefix("/") { absolute.append(name) }
            default:
                let url = String(decoding: bytes, as: UTF8.self)
                if url.hasPrefix("file://") {
                    let path = String(url.dropFirst("file://".count))
                    absolute.append(path.hasPrefix("/") ? path : ImageOpener.resolve(stripDotSlash(path), relativeTo: child))
                }
            }
        }
        var names = relative + absolute
        let unicode = utf16BE(header.parentUnicodeName)
        if !unicode.isEmpty, let name = windowsPath(unicode) {
            names.append(ImageOpener.resolve(stripDotSlash(name.split(separator: "/").last.map(String.init) ?? name), relativeTo: child))
        }
        return names.filter { !$0.isEmpty && !$0.contains("\0") }
    }

    /// The first candidate that exists on the host.
    static func existing(_ candidates: [String]) -> String? {
        candidates.first { access($0, F_OK) == 0 }
    }

    /// A Windows path with '/' separators; nil for a drive-letter path ("C:\..."), which names
    /// nothing on this host.
    private static func windowsPath(_ s: String) -> String? {
        let path = String(s.map { $0 == "\\" ? "/" : $0 })
        let scalars = Array(path.unicodeScalars)
        if scalars.count >= 2, scalars[1] == ":" { return nil }
        return path
    }

    private static func stripDotSlash(_ s: String) -> String {
        var s = Substring(s)
        while s.hasPrefix("./") { s = s.dropFirst(2) }
        return String(s)
    }

    private static func utf16LE(_ bytes: [UInt8]) -> String {
        let units = stride(from: 0, to: bytes.count - 1, by: 2).map { UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8 }
        return String(decoding: units.prefix { $0 != 0 }, as: UTF16.self)
    }

    private static func utf16BE(_ bytes: [UInt8]) -> String {
        let units = stride(from: 0, to: bytes.count - 1, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        return String(decoding: units.prefix { $0 != 0 }, as: UTF16.self)
    }
}
