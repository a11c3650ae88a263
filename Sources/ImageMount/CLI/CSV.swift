/// Comma-separated output as the virt-* tools write it (`write_csv_field` in guestfs-tools
/// `cat/filesystems.c`, `df/output.c`, and `output_string` in `cat/ls.c`): a field is quoted
/// only when it holds a space, a double quote, a newline or a comma, and a double quote inside
/// a quoted field is doubled. Empty and missing fields are written as nothing.
///
/// Works on bytes, because guest file names need not be UTF-8 and are written as they are.
enum CSV {
    static func field(_ bytes: [UInt8]) -> [UInt8] {
        // ' ', '"', '\n', ','
        guard bytes.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 == 0x0A || $0 == 0x2C }) else { return bytes }
        var out: [UInt8] = [0x22]
        out.reserveCapacity(bytes.count + 2)
        for b in bytes {
            out.append(b)
            if b == 0x22 { out.append(0x22) }
        }
        out.append(0x22)
        return out
    }

    static func field(_ text: String) -> String { String(decoding: field(Array(text.utf8)), as: UTF8.self) }

    /// One record: the fields quoted as needed, joined by commas, ending in a newline.
    static func line(_ fields: [String?]) -> String {
        fields.map { $0.map(field) ?? "" }.joined(separator: ",") + "\n"
    }
}
