import SystemPackage
import Synchronization

/// Passphrases by selector, as libguestfs's `--key` gives them (guestfish(1), "--key SELECTOR";
/// options/keys.c): `ID:key:PASSPHRASE`, `ID:file:FILENAME`, where ID is a device name
/// (`/dev/sda2`, `/dev/VG/LV`), a LUKS UUID, an image path, or `all` for every volume.
/// A volume tries the keys given for its own names first, then the `all` keys, then — only when
/// none were given — asks `fallback` once (the CLI's no-echo prompt or `--keys-from-stdin`).
///
/// Keys are `SecretBytes`: wiped when the store goes, never printed.
public final class KeyStore: Sendable {
    public struct Entry: Sendable {
        /// A device name, LUKS UUID, image path, or "all".
        public let id: String
        public let secret: SecretBytes
        public init(id: String, secret: SecretBytes) { self.id = id; self.secret = secret }
    }

    public let entries: [Entry]
    /// The most key-derivation work one unlock may cost (`LUKSKDFLimits`); a CLI option raises it.
    public let kdfLimits: LUKSKDFLimits
    /// Asked for a key for the volume named by its argument when no entry applies.
    private let fallback: (@Sendable (String) -> SecretBytes?)?
    /// What `fallback` answered, by volume name: it is asked once per volume.
    private let asked = Mutex<[String: SecretBytes?]>([:])

    /// Whether keys may be asked for interactively or from stdin (a fallback is set).
    public var hasFallback: Bool { fallback != nil }

    /// The keys the fallback gave, each as an entry for the volume it was asked for.
    public var answered: [Entry] {
        asked.withLock { $0.compactMap { name, secret in secret.map { Entry(id: name, secret: $0) } } }
    }

    /// The largest key file read (cryptsetup's default `--keyfile-size` limit is 8 MiB).
    public static let maxKeyFileBytes = 8 << 20

    public init(entries: [Entry] = [], fallback: (@Sendable (String) -> SecretBytes?)? = nil,
                kdfLimits: LUKSKDFLimits = .default) {
        self.entries = entries
        self.kdfLimits = kdfLimits
        self.fallback = fallback
    }

    /// Parses one `--key` selector; a `file:` key is read now (whole file, as cryptsetup's
    /// `--key-file` takes it). Errors never contain the passphrase.
    public static func parseSelector(_ selector: String) throws -> Entry {
        let parts = selector.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[0].isEmpty, !parts[0].contains("\n") else {
            throw ImageError(structure: "--key", reason: "expected ID:key:PASSPHRASE or ID:file:FILENAME (ID a device, a LUKS UUID or 'all')",
                             errno: .invalidArgument)
        }
        switch parts[1] {
        case "key":
            return Entry(id: parts[0], secret: SecretBytes(utf8: parts[2]))
        case "file":
            return Entry(id: parts[0], secret: try readKeyFile(parts[2]))
        case let kind:
            throw ImageError(structure: "--key \(parts[0])", reason: "key type '\(kind)' is not supported (use key or file)",
                             errno: .invalidArgument)
        }
    }

    /// The keys to try for a volume known by `ids` (first its own, then `all`, then the fallback,
    /// asked with `name`).
    public func passphrases(for ids: [String], name: String) -> [SecretBytes] {
        let own = entries.filter { e in ids.contains { $0.caseInsensitiveEquals(e.id) } }.map(\.secret)
        let all = entries.filter { $0.id == "all" }.map(\.secret)
        if !own.isEmpty || !all.isEmpty { return own + all }
        guard let fallback else { return [] }
        if let answered = asked.withLock({ $0[name] }) { return answered.map { [$0] } ?? [] }
        let answer = fallback(name)
        asked.withLock { $0[name] = .some(answer) }
        return answer.map { [$0] } ?? []
    }

    static func readKeyFile(_ path: String) throws -> SecretBytes {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) } catch {
            throw ImageError(path: path, structure: "key file", reason: "cannot open: \(error)", errno: (error as? Errno) ?? .ioError)
        }
        defer { try? fd.close() }
        // Grown as needed (key files are usually a few bytes; zeroing and wiping the 8 MiB
        // maximum up front cost ~10 ms per command); every buffer given up is wiped.
        var buffer = [UInt8](repeating: 0, count: 4096)
        defer { SecretBytes.wipe(&buffer) }
        var total = 0
        while total <= maxKeyFileBytes {
            if total == buffer.count {
                var larger = [UInt8](repeating: 0, count: min(buffer.count * 4, maxKeyFileBytes + 1))
                larger.withUnsafeMutableBytes { l in buffer.withUnsafeBytes { l.copyMemory(from: $0) } }
                SecretBytes.wipe(&buffer)
                buffer = larger
            }
            let n = try buffer.withUnsafeMutableBytes { b in
                try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: b[total...]))
            }
            if n == 0 { break }
            total += n
        }
        guard total <= maxKeyFileBytes else {
            throw ImageError(path: path, structure: "key file", reason: "is larger than \(maxKeyFileBytes) bytes", errno: .fileTooLarge)
        }
        return buffer.withUnsafeBytes { SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[..<total])) }
    }
}

extension String {
    /// Key ids and device names compare without regard to case (`--key /dev/SDA1:…`).
    package func caseInsensitiveEquals(_ other: String) -> Bool { lowercased() == other.lowercased() }
}
