import SystemPackage

/// What LUKS1 and LUKS2 headers both come down to: the payload cipher and where the payload
/// lies, the keyslots, and the digests that say which master key is right.
package struct LUKSHeader: Sendable {
    package let version: Int
    package let uuid: String
    package let label: String?
    /// The payload cipher (LUKS1 cipher-name/cipher-mode; LUKS2 segment "encryption").
    package let payloadCipher: SectorCipherSpec
    /// Payload start in bytes from the start of the header's device.
    package let payloadOffset: UInt64
    /// Payload length in bytes, or nil for "to the end of the device" (LUKS2 "dynamic"; LUKS1 always).
    package let payloadSize: UInt64?
    /// Bytes per encryption sector (512 for LUKS1; LUKS2 "sector_size").
    package let sectorSize: Int
    package let keyslots: [LUKSKeyslot]
    /// Digests with the keyslots each applies to (LUKS1: one digest for every slot).
    package let digests: [(digest: LUKSDigest, keyslots: Set<Int>)]
    /// Where the key material stops.
    package let metadataEnd: UInt64

    /// Reads the LUKS1 or LUKS2 header at the start of `device` (the version field decides).
    package static func read(from device: any BlockDevice) throws -> LUKSHeader {
        do {
            guard device.size >= 8 else { throw LUKSError.damaged("device is smaller than a LUKS header") }
            let start = try device.readBytes(at: 0, count: 8)
            guard Array(start[0..<6]) == LUKS1Header.magic else { throw LUKSError.damaged("bad magic, not a LUKS header") }
            switch LUKS1Header.be16(start, 6) {
            case 1: return try LUKS1Header.read(from: device)
            case 2: return try LUKS2Header.read(from: device)
            case let v: throw LUKSError.unsupported("LUKS version \(v)")
            }
        } catch {
            throw LUKSVolume.imageError(error, device: device, structure: "LUKS header", offset: 0)
        }
    }
}

/// Opening a LUKS volume: find the master key with a passphrase, then expose the payload as a
/// `DecryptingDevice`. The master key is recovered as LUKS1 spec 1.2.3 §2.5 ("Key slot
/// recovery") and the LUKS2 spec ("keyslots", "digests") describe: for each keyslot, derive,
/// decrypt, AF-merge, and accept the key whose PBKDF2 digest matches.
package enum LUKSVolume {
    /// The master key that `passphrases` unlock, trying each passphrase on each usable keyslot
    /// (highest priority first). Throws EACCES when none matches, naming no passphrase.
    ///
    /// Key slots (and digests) whose KDF costs more than `limits` are not tried; when nothing
    /// else unlocks the volume, the error names the first such cost and the limit.
    package static func unlock(_ header: LUKSHeader, device: any BlockDevice, passphrases: [SecretBytes],
                              limits: LUKSKDFLimits = .default) throws -> SecretBytes {
        let active = header.keyslots.filter { $0.priority > 0 }.sorted { ($0.priority, -$0.index) > ($1.priority, -$1.index) }
        guard !active.isEmpty else {
            throw ImageError(path: device.displayName, structure: "LUKS keyslots", reason: "the volume has no active key slot",
                             errno: .permissionDenied)
        }
        // The cost cap, before any work: a slot over it (or whose digest is over it) is skipped.
        var overCap: [String] = []
        let slots = active.filter { slot in
            // Numbers past the hard limits are damage, reported as such when the slot is tried.
            guard (try? slot.kdf.validate()) != nil else { return true }
            let digestExcess = header.digests.filter { $0.keyslots.contains(slot.index) }
                .compactMap { limits.excess(of: .pbkdf2(hash: $0.digest.hash, iterations: $0.digest.iterations, salt: [])) }
            if let excess = limits.excess(of: slot.kdf) ?? digestExcess.first {
                overCap.append("key slot \(slot.index): \(excess)")
                return false
            }
            return true
        }
        var problems: [String] = []
        for passphrase in passphrases {
            for slot in slots {
                let digests = header.digests.filter { $0.keyslots.contains(slot.index) }.map(\.digest)
                guard !digests.isEmpty else { continue }
                do {
                    let candidate = try slot.candidateKey(passphrase: passphrase, header: device)
                    for digest in digests where try digest.matches(candidate) { return candidate }
                } catch {
                    let text = "\(error)"
                    if !problems.contains(text) { problems.append(text) }
                }
            }
        }
        if let first = overCap.first {
            throw ImageError(path: device.displayName, structure: "LUKS keyslots",
                             reason: "\(first) (a key derivation this costly is refused; raise the limit if the image is trusted)",
                             errno: .permissionDenied)
        }
        let reason = passphrases.isEmpty ? "no key given" : passphrases.count == 1 ? "the key matches no key slot (wrong passphrase?)"
            : "none of the \(passphrases.count) keys matches a key slot (wrong passphrase?)"
        throw ImageError(path: device.displayName, structure: "LUKS keyslots",
                         reason: problems.isEmpty ? reason : reason + "; damaged key slots: " + problems.joined(separator: "; "),
                         errno: .permissionDenied)
    }

    /// Unlocks the LUKS volume on `device` and returns its plaintext payload as a device named
    /// `name` (writable when `device` is).
    package static func open(_ device: any BlockDevice, passphrases: [SecretBytes], name: String,
                            limits: LUKSKDFLimits = .default) throws -> DecryptingDevice {
        let header = try LUKSHeader.read(from: device)
        let key = try unlock(header, device: device, passphrases: passphrases, limits: limits)
        let cipher: SectorCipher
        do { cipher = try SectorCipher(spec: header.payloadCipher, key: key, sectorSize: header.sectorSize) } catch {
            throw imageError(error, device: device, structure: "LUKS payload cipher", offset: nil)
        }
        guard header.payloadOffset <= device.size else {
            throw ImageError(path: device.displayName, offset: header.payloadOffset, structure: "LUKS payload",
                             reason: "payload offset 0x\(String(header.payloadOffset, radix: 16)) lies past the end of the device (\(device.size) bytes)")
        }
        let available = device.size - header.payloadOffset
        let size = header.payloadSize ?? available
        guard size <= available else {
            throw ImageError(path: device.displayName, offset: header.payloadOffset, structure: "LUKS payload",
                             reason: "payload of \(size) bytes runs past the end of the device")
        }
        let usable = size / UInt64(header.sectorSize) * UInt64(header.sectorSize)
        return try DecryptingDevice(base: device, payloadOffset: header.payloadOffset, size: usable, cipher: cipher,
                                firstIVSector: 0, name: name, header: header)
    }

    /// A LUKSError (or any error) as an ImageError for `device`.
    static func imageError(_ error: any Error, device: any BlockDevice, structure: String, offset: UInt64?) -> ImageError {
        if let e = error as? ImageError { return e.withPath(device.displayName) }
        let errno: Errno
        switch error as? LUKSError {
        case .unsupported?: errno = .notSupported
        default: errno = .ioError
        }
        if let e = error as? SectorCipherError {
            return ImageError(path: device.displayName, offset: offset, structure: structure, reason: e.description, errno: .notSupported)
        }
        return ImageError(path: device.displayName, offset: offset, structure: structure, reason: "\(error)", errno: errno)
    }
}
