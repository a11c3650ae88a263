/// Bytes on their way to stdout, written in large chunks. Listings of big trees go out as they
/// are produced instead of being held whole in memory.
struct OutputBuffer {
    private(set) var bytes: [UInt8] = []
    private let flushAt: Int

    init(flushAt: Int = 1 << 20) {
        self.flushAt = flushAt
        bytes.reserveCapacity(flushAt + 4096)
    }

    mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }
    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }
    mutating func append(byte: UInt8) { bytes.append(byte) }

    /// Ends a line and writes the buffer out once it is large.
    mutating func endLine() throws {
        bytes.append(0x0A)
        if bytes.count >= flushAt { try flush() }
    }

    mutating func flush() throws {
        guard !bytes.isEmpty else { return }
        try bytes.withUnsafeBytes { try StandardOutput.write($0) }
        bytes.removeAll(keepingCapacity: true)
    }
}
