/// Telling an NBD URI from a path, and what imagemount lets one ask for.
///
/// The URI itself is parsed by libnbd (`nbd_connect_uri`, the NBD URI specification
/// NetworkBlockDevice/nbd: doc/uri.md); this file only looks at the scheme, so that `-a` keeps
/// taking paths and libguestfs's `-a nbd://HOST[:PORT]/EXPORT`, `nbd+unix:///EXPORT?socket=PATH`
/// and `nbds://` (TLS) alike. It is bounded: one scan of at most `maxLength` bytes.
package enum NBDURI {
    /// Schemes opened: TCP and Unix sockets, each with or without TLS (doc/uri.md "Transport").
    package static let schemes = ["nbd", "nbds", "nbd+unix", "nbds+unix"]
    /// Schemes of the NBD family refused by name: vsock connects to the hypervisor from inside a
    /// VM, and later libnbd releases add `nbd+ssh` (runs ssh). Neither is a disk a user adds here.
    static let refusedSchemes = ["nbd+vsock", "nbds+vsock", "nbd+ssh", "nbds+ssh"]
    /// Longest URI accepted (a Unix socket path is at most 108 bytes; an export name, 4096).
    static let maxLength = 8192

    /// The scheme of `name` (before "://"), lowercased, when `name` starts like a URI.
    static func scheme(of name: String) -> String? {
        var scheme = ""
        for (count, c) in name.utf8.enumerated() {
            if count > 16 { return nil }
            if c == UInt8(ascii: ":") { break }
            guard (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == UInt8(ascii: "+") else { return nil }
            scheme.append(Character(Unicode.Scalar(c | 0x20)))
        }
        guard !scheme.isEmpty, name.utf8.dropFirst(scheme.utf8.count).starts(with: "://".utf8) else { return nil }
        return scheme
    }

    /// Whether `name` is meant as an NBD URI (any scheme of the family, refused ones included,
    /// so that `nbd+vsock://` gets its own refusal rather than "no such file").
    package static func isNBD(_ name: String) -> Bool {
        guard let scheme = scheme(of: name) else { return false }
        return schemes.contains(scheme) || refusedSchemes.contains(scheme)
    }

    /// Whether the URI asks for TLS (`nbds…`).
    static func requiresTLS(_ uri: String) -> Bool {
        scheme(of: uri)?.hasPrefix("nbds") ?? false
    }

    /// Checks what libnbd will be handed: a scheme opened here, a bounded length, no control
    /// characters (so the URI, which is the device's name in every message, stays one line).
    static func check(_ uri: String) throws {
        func refuse(_ reason: String) -> ImageError {
            ImageError(path: String(uri.prefix(200)), structure: "NBD URI", reason: reason, errno: .invalidArgument)
        }
        guard uri.utf8.count <= maxLength else { throw refuse("longer than \(maxLength) bytes") }
        guard !uri.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { throw refuse("contains control characters") }
        guard let scheme = scheme(of: uri), schemes.contains(scheme) else {
            throw refuse("the \(scheme(of: uri) ?? "?") transport is not supported: use \(schemes.map { $0 + "://" }.joined(separator: ", "))")
        }
    }
}
