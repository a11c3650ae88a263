import SystemPackage

/// The qcow2 driver's one door to encryption (STYLE.md §1): sets up the cipher a qcow2 header
/// asks for and encrypts or decrypts guest data clusters with it. The rest of the driver calls
/// `decrypt`/`encrypt` and never sees a key or a cipher.
///
/// Two methods (qcow2 spec, "Header", crypt_method):
/// - 1, legacy AES (QEMU crypto/block-qcow.c): AES-128-CBC, plain64 IVs of the *guest* sector
///   number, 512-byte sectors, key = the passphrase's bytes up to the first NUL, truncated or
///   zero-padded to 16. There is no key check: a wrong passphrase reads as garbage (QEMU behaves
///   the same). Read only: writing is refused.
/// - 2, LUKS (qcow2 spec, "Full disk encryption header pointer"; QEMU crypto/block-luks.c): a LUKS1
///   header at the offset the FDE header extension gives, its key material offsets relative to
///   that header; the LUKS payload offset is ignored. Each data cluster is encrypted with IVs of
///   its *host* sector number (QEMU block/qcow2.c sets crypt_physical_offset for every method
///   but AES, and qcow2_co_encdec passes the host offset).
///
/// Compressed clusters are never encrypted (QEMU refuses to compress an encrypted image and
/// reads compressed clusters without decryption); the read path leaves them alone, and the writer
/// never compresses. The writer encrypts every data write of a LUKS image after its host cluster
/// is known (Qcow2Writer.writeData), so copy-on-write re-encrypts under the new host offset.
struct Qcow2Encryption: Sendable {
    enum Method: Sendable { case aes, luks }

    /// Bytes per encryption sector (QCRYPTO_BLOCK_QCOW_SECTOR_SIZE, QCRYPTO_BLOCK_LUKS_SECTOR_SIZE).
    static let sectorSize = 512
    /// Legacy AES key length (AES-128).
    static let aesKeyBytes = 16

    let method: Method
    let cipher: SectorCipher
    /// The LUKS header, for LUKS images.
    let header: LUKSHeader?

    /// Sets up decryption for the image whose metadata is `meta`, asking `keys` for the
    /// passphrases to try under the names `ids` (first the image path). Throws EACCES when no key
    /// was given or none matches, naming the image but never a key.
    static func open(meta: Qcow2Metadata, file: any BlockDevice, keys: KeyStore?, ids: [String]) throws -> Qcow2Encryption {
        let path = file.displayName
        guard let method: Method = meta.header.cryptMethod == Qcow2CryptMethod.aes.rawValue ? .aes
                : meta.header.cryptMethod == Qcow2CryptMethod.luks.rawValue ? .luks : nil else {
            throw ImageError(path: path, offset: 32, structure: "qcow2 header", reason: "unknown encryption method \(meta.header.cryptMethod)",
                             errno: .notSupported)
        }
        switch method {
        case .aes:
            return try legacyAES(path: path, keys: keys, ids: ids)
        case .luks:
            let passphrases = try Self.passphrases(path: path, name: "LUKS", keys: keys, ids: ids)
            guard let pointer = meta.extensions.encryptionHeader else {
                throw ImageError(path: path, structure: "header extension", reason: "LUKS-encrypted image without a full disk encryption header pointer")
            }
            let clusterSize = UInt64(meta.geometry.clusterSize)
            guard pointer.offset % clusterSize == 0, pointer.offset >= clusterSize, pointer.length > 0,
                  pointer.offset <= meta.fileSize, pointer.length <= meta.fileSize - pointer.offset else {
                throw ImageError(path: path, offset: pointer.offset, structure: "full disk encryption header",
                                 reason: "header (\(pointer.length) bytes at 0x\(String(pointer.offset, radix: 16))) is unaligned or outside the file")
            }
            let region = try SliceDevice(base: file, start: pointer.offset, size: pointer.length, name: path)
            let header: LUKSHeader
            do { header = try LUKSHeader.read(from: region) } catch {
                let inner = ImageError.wrap(error)
                throw ImageError(path: path, offset: pointer.offset, structure: "LUKS header (full disk encryption header)",
                                 reason: inner.reason, errno: inner.errno)
            }
            guard header.sectorSize == sectorSize else {
                throw ImageError(path: path, offset: pointer.offset, structure: "LUKS header",
                                 reason: "sector size \(header.sectorSize) inside qcow2 (QEMU uses 512)", errno: .notSupported)
            }
            let key = try LUKSVolume.unlock(header, device: region, passphrases: passphrases, limits: keys?.kdfLimits ?? .default)
            let cipher: SectorCipher
            do { cipher = try SectorCipher(spec: header.payloadCipher, key: key) } catch {
                throw ImageError(path: path, structure: "LUKS payload cipher", reason: error.description, errno: .notSupported)
            }
            return Qcow2Encryption(method: .luks, cipher: cipher, header: header)
        }
    }

    /// The legacy AES cipher of a qcow2 (crypt_method 1) or qcow v1 image (QEMU's
    /// qcrypto_block_qcow_open, shared by both drivers): the key is the first passphrase given
    /// for the image.
    static func legacyAES(path: String, keys: KeyStore?, ids: [String]) throws -> Qcow2Encryption {
        let passphrases = try Self.passphrases(path: path, name: "AES", keys: keys, ids: ids)
        // QEMU takes strlen(passphrase) bytes, at most 16; only the first key given is usable,
        // as nothing tells a right AES key from a wrong one.
        let key = passphrases[0].withBytes { p in
            SecretBytes(count: aesKeyBytes) { out in
                let n = min(aesKeyBytes, p.firstIndex(of: 0) ?? p.count)
                out.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[..<n]))
            }
        }
        let spec = try SectorCipherSpec.parse(cipherName: "aes", cipherMode: "cbc-plain64", keyBytes: aesKeyBytes)
        return Qcow2Encryption(method: .aes, cipher: try SectorCipher(spec: spec, key: key), header: nil)
    }

    /// The passphrases `keys` holds for the image, at least one; EACCES naming the image (never a
    /// key) when there is none.
    private static func passphrases(path: String, name: String, keys: KeyStore?, ids: [String]) throws -> [SecretBytes] {
        let passphrases = keys?.passphrases(for: ids, name: path) ?? []
        guard !passphrases.isEmpty else {
            throw ImageError(path: path, structure: "encryption", reason: "the image is \(name)-encrypted and no key was given for it (use --key \(path):key:PASSPHRASE, --key all:file:FILE or --keys-from-stdin)",
                             errno: .permissionDenied)
        }
        return passphrases
    }

    /// The IV sector number of data at `hostOffset` for guest offset `guestOffset`.
    func ivSector(hostOffset: UInt64, guestOffset: UInt64) -> UInt64 {
        (method == .luks ? hostOffset : guestOffset) / UInt64(Self.sectorSize)
    }

    /// Decrypts data read from `hostOffset` (the bytes of guest offset `guestOffset`) in place.
    /// Offsets and length must be multiples of 512.
    func decrypt(_ buffer: UnsafeMutableRawBufferPointer, hostOffset: UInt64, guestOffset: UInt64, parallel: Bool = true) {
        precondition(hostOffset % 512 == 0 && guestOffset % 512 == 0)
        cipher.decrypt(buffer, firstSector: ivSector(hostOffset: hostOffset, guestOffset: guestOffset), parallel: parallel)
    }

    /// Encrypts guest data in place before it is written at `hostOffset` (sector-aligned, as is
    /// the length): the writer's hook for every data write of a LUKS image. Legacy AES images are
    /// never written (`aesWriteRefusal`), so only the host offset picks the IVs.
    func encrypt(_ buffer: UnsafeMutableRawBufferPointer, hostOffset: UInt64) throws {
        guard method == .luks else { throw Self.aesWriteRefusal(path: nil) }
        precondition(hostOffset % UInt64(Self.sectorSize) == 0 && buffer.count % Self.sectorSize == 0)
        cipher.encrypt(buffer, firstSector: hostOffset / UInt64(Self.sectorSize))
    }

    /// Why legacy AES images are never written (QEMU itself refuses to open them read-write in
    /// its system emulator since 2.x, and the format is deprecated as insecure).
    static func aesWriteRefusal(path: String?) -> ImageError {
        ImageError(path: path, structure: "encryption",
                   reason: "writing legacy AES-encrypted qcow2 images is not supported (the format is insecure and deprecated); convert the image first, e.g. qemu-img convert --object secret,id=s,data=PASS --image-opts driver=qcow2,file.filename=OLD,encrypt.key-secret=s -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s NEW",
                   errno: .readOnlyFileSystem)
    }
}
