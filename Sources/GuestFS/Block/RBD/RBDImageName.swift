/// An RBD image as `-a` names it, in the two spellings of QEMU and libguestfs:
///
/// - `rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:OPTION=VALUE...]`, QEMU's legacy file name
///   (qemu block/rbd.c, qemu_rbd_parse_filename): `\` escapes the next character; the options
///   are Ceph settings, of which only those that say *how to reach* the cluster are taken here
///   (`RBDImageName.acceptedOptions`): `id`, `conf`, `keyring`, `mon_host`, `auth_supported`.
///   QEMU passes any option to rados_conf_set; a user's `log_file=` or `admin_socket=` would make
///   this root process write or listen where the option says, so those are refused by name.
/// - `rbd://[HOST[:PORT][,HOST[:PORT]...]]/POOL[/NAMESPACE]/IMAGE[@SNAP]`, libguestfs's URI
///   (guestfish `add-uri`, `-a rbd://…`): the hosts are the monitors (`mon_host`); none means
///   those of ceph.conf. `%XX` escapes are decoded in the path.
///
/// Parsing is one bounded scan of at most `maxLength` bytes; names keep no control characters,
/// so the name, which is the device's name in every message, stays one line.
package struct RBDImageName: Sendable, Equatable {
    package var pool: String
    package var namespace: String?
    package var image: String
    package var snapshot: String?
    /// Ceph settings given in the name (QEMU's `:OPTION=VALUE`, or the URI's hosts as `mon_host`), in order.
    package var options: [Option]
    /// What the user typed: the drive's name in messages.
    package var text: String

    package struct Option: Sendable, Equatable {
        package var key: String
        package var value: String
        package init(_ key: String, _ value: String) { self.key = key; self.value = value }
    }

    /// The Ceph settings a name may carry (see the type's comment). `id` picks the client name
    /// (client.ID), `conf` reads a configuration file, the others are rados_conf_set as given.
    static let acceptedOptions = ["id", "conf", "keyring", "mon_host", "auth_supported", "auth_client_required"]
    /// Longest name accepted (Ceph's own names are far shorter: RBD_MAX_IMAGE_NAME_SIZE is 96).
    static let maxLength = 4096

    /// Whether `name` is meant as an RBD image (`rbd:` or `rbd://`, as QEMU tells its protocol).
    package static func isRBD(_ name: String) -> Bool {
        name.utf8.starts(with: "rbd:".utf8)
    }

    /// Parses `text`; errors name it (cut to 200 bytes) and say what is wrong.
    package static func parse(_ text: String) throws -> RBDImageName {
        func refuse(_ reason: String) -> ImageError {
            ImageError(path: String(text.prefix(200)), structure: "RBD image name", reason: reason, errno: .invalidArgument)
        }
        guard text.utf8.count <= maxLength else { throw refuse("longer than \(maxLength) bytes") }
        guard !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { throw refuse("contains control characters") }
        var name: RBDImageName
        if text.utf8.starts(with: "rbd://".utf8) {
            name = try parseURI(Array(text.utf8.dropFirst(6)), refuse)
        } else if text.utf8.starts(with: "rbd:".utf8) {
            name = try parseLegacy(Array(text.utf8.dropFirst(4)), refuse)
        } else {
            throw refuse("expected rbd:POOL/IMAGE[@SNAP] or rbd://[HOST[:PORT]]/POOL/IMAGE[@SNAP]")
        }
        name.text = text
        for option in name.options where !acceptedOptions.contains(option.key) {
            throw refuse("the Ceph option '\(option.key)' is not accepted in an image name (accepted: \(acceptedOptions.joined(separator: ", ")))")
        }
        return name
    }

    /// `POOL[/NAMESPACE]/IMAGE[@SNAP][:OPTIONS]` with `\` escapes (qemu_rbd_parse_filename's
    /// tokens: the first unescaped `/`, `@` and `:` end the pool, image and snapshot).
    private static func parseLegacy(_ bytes: [UInt8], _ refuse: (String) -> ImageError) throws -> RBDImageName {
        // Split on unescaped delimiters, unescaping as we go.
        var fields: [(text: [UInt8], endedBy: UInt8?)] = []
        var current: [UInt8] = []
        var i = 0
        // Delimiters in force: '/' and '@' only before the options start.
        var inOptions = false
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\\"), i + 1 < bytes.count {
                current.append(bytes[i + 1]); i += 2; continue
            }
            if c == UInt8(ascii: ":") || (!inOptions && (c == UInt8(ascii: "/") || c == UInt8(ascii: "@"))) {
                fields.append((current, c)); current = []
                if c == UInt8(ascii: ":") { inOptions = true }
                i += 1; continue
            }
            current.append(c); i += 1
        }
        fields.append((current, nil))
        // Path fields are those before the first ':'.
        var pathFields: [(text: [UInt8], endedBy: UInt8?)] = []
        var optionFields: [[UInt8]] = []
        var seenColon = false
        for field in fields {
            if seenColon { optionFields.append(field.text) } else { pathFields.append(field) }
            if field.endedBy == UInt8(ascii: ":") { seenColon = true }
        }
        var path: [String] = [], snapshot: String?
        for (index, field) in pathFields.enumerated() {
            let previous = index > 0 ? pathFields[index - 1].endedBy : nil
            if previous == UInt8(ascii: "@") {
                guard snapshot == nil else { throw refuse("more than one '@' (escape it as \\@)") }
                snapshot = String(decoding: field.text, as: UTF8.self)
                if field.endedBy == UInt8(ascii: "/") { throw refuse("a '/' after the snapshot name") }
            } else {
                path.append(String(decoding: field.text, as: UTF8.self))
            }
        }
        var options: [Option] = []
        for field in optionFields {
            guard let eq = field.firstIndex(of: UInt8(ascii: "=")), eq > 0 else {
                throw refuse("option '\(String(decoding: field, as: UTF8.self))' is not OPTION=VALUE")
            }
            options.append(Option(String(decoding: field[..<eq], as: UTF8.self), String(decoding: field[(eq + 1)...], as: UTF8.self)))
        }
        return try make(path: path, snapshot: snapshot, options: options, refuse)
    }

    /// `[HOSTS]/POOL[/NAMESPACE]/IMAGE[@SNAP]` with `%XX` escapes in the path.
    private static func parseURI(_ bytes: [UInt8], _ refuse: (String) -> ImageError) throws -> RBDImageName {
        guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { throw refuse("no /POOL/IMAGE after the host") }
        let hosts = String(decoding: bytes[..<slash], as: UTF8.self)
        guard !bytes[slash...].contains(UInt8(ascii: "?")), !bytes[slash...].contains(UInt8(ascii: "#")) else {
            throw refuse("query strings and fragments are not supported in rbd:// names")
        }
        var decoded: [UInt8] = []
        var i = slash + 1
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let high = HexDigit.value(bytes[i + 1]), let low = HexDigit.value(bytes[i + 2]) else {
                    throw refuse("a '%' not followed by two hex digits")
                }
                decoded.append(high << 4 | low); i += 3
            } else {
                decoded.append(bytes[i]); i += 1
            }
        }
        guard !decoded.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { throw refuse("contains control characters") }
        var snapshot: String?
        var pathBytes = decoded[...]
        if let at = decoded.firstIndex(of: UInt8(ascii: "@")) {
            let snap = decoded[(at + 1)...]
            guard !snap.contains(UInt8(ascii: "@")), !snap.contains(UInt8(ascii: "/")) else {
                throw refuse("the snapshot name holds '@' or '/'")
            }
            snapshot = String(decoding: snap, as: UTF8.self)
            pathBytes = decoded[..<at]
        }
        let path = pathBytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var options: [Option] = []
        if !hosts.isEmpty {
            for host in hosts.split(separator: ",", omittingEmptySubsequences: false) where host.isEmpty {
                throw refuse("an empty host in '\(hosts)'")
            }
            options.append(Option("mon_host", hosts))
        }
        return try make(path: path, snapshot: snapshot, options: options, refuse)
    }

    private static func make(path: [String], snapshot: String?, options: [Option], _ refuse: (String) -> ImageError) throws -> RBDImageName {
        guard path.count == 2 || path.count == 3 else {
            throw refuse("expected POOL/IMAGE or POOL/NAMESPACE/IMAGE, found \(path.count) part\(path.count == 1 ? "" : "s")")
        }
        guard !path.contains(where: \.isEmpty) else { throw refuse("an empty pool, namespace or image name") }
        if let snapshot, snapshot.isEmpty { throw refuse("an empty snapshot name after '@'") }
        return RBDImageName(pool: path[0], namespace: path.count == 3 ? path[1] : nil, image: path[path.count - 1],
                            snapshot: snapshot, options: options, text: "")
    }

    /// The value of the last `key=` option, if any.
    func option(_ key: String) -> String? { options.last { $0.key == key }?.value }
}
