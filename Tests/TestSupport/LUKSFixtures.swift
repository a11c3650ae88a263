import Foundation
import SystemCrypto

/// Encrypted guests, built once per run. Device-mapper is missing here (DESIGN.md §6), so
/// payloads are never written through `cryptsetup open`: LUKS1 comes whole from
/// `qemu-img convert -O luks` (header and payload, an independent implementation), and LUKS2
/// headers come from `cryptsetup luksFormat` on a file with a volume key the test chose, the
/// payload then encrypted here with libcrypto (`TestCipher`) from the header's parameters.
public enum LUKSFixtures {
    public static let passphrase = "luks test passphrase"
    /// A shell function that runs its arguments until they succeed, up to 12 times. qemu-img's
    /// PBKDF2 benchmark for a new LUKS header (crypto/pbkdf.c) fails with "Unable to get
    /// accurate CPU usage" when its thread's CPU time has not moved after a round, which a busy
    /// machine makes likely; the tries run at the highest priority (nice -20, the tests run as
    /// root), where the round runs uninterrupted, with a pause between them.
    public static let retryFunction = "retry() { for i in 1 2 3 4 5 6 7 8 9 10 11 12; do nice -n -20 \"$@\" && return 0; sleep $(( i < 4 ? i : 4 )); done; return 1; }"

    public static let fsUUID = "1dc0ffee-1dc0-4fee-8fee-00000000c0de"

    public struct Guest: Sendable {
        /// The disk image(s).
        public let image: String
        public let hostname: String
        /// The LUKS container's UUID (the plaintext is /dev/mapper/luks-UUID).
        public let luksUUID: String
        /// The LUKS container alone (a file) and the plaintext it must decrypt to.
        public let container: String
        public let plaintext: String
        /// Where the container lies in `image` (0 for a whole disk).
        public let containerOffset: UInt64
    }

    /// The LUKS UUID `cryptsetup luksUUID` (or qemu-img info) reports for `file`.
    static func luksUUID(_ file: String) throws -> String {
        try Shell.check("cryptsetup luksUUID \(Shell.quote(file))").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// An installed-looking root filesystem image of `size` bytes: root mounted by fs UUID.
    static func rootFS(_ dir: String, hostname: String, size: Int) throws -> String {
        let tree = try GuestFixtures.rootTree(dir + "/tree", hostname: hostname,
            osRelease: "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
            fstab: "UUID=\(fsUUID) / ext4 errors=remount-ro 0 1\n")
        try Shell.check("mkdir -p \(Shell.quote(tree))/srv && head -c 300000 /dev/urandom > \(Shell.quote(tree))/srv/random.bin")
        let fs = dir + "/root.ext4"
        try Shell.check("mke2fs -F -q -t ext4 -U \(fsUUID) -d \(Shell.quote(tree)) \(Shell.quote(fs)) \(size / 1024)k")
        return fs
    }

    /// LUKS1 (made by qemu-img, default aes-xts-plain64) on the LV `vgcrypt/root`, the PV on
    /// sda1 (MBR): "a root filesystem inside LUKS on LVM".
    public static func luksOnLVM() throws -> Guest {
        try cached("luks-on-lvm") { dir in
            let fs = try rootFS(dir, hostname: "luks-on-lvm", size: 24 << 20)
            let luks = dir + "/root.luks"
            try Shell.check(retryFunction + "\nretry qemu-img convert --object secret,id=sec0,data=\(Shell.quote(passphrase)) -O luks -o key-secret=sec0,iter-time=100 \(Shell.quote(fs)) \(Shell.quote(luks))")
            let extentBytes = 1 << 20
            let lv = LVMTestVolume(name: "root", uuid: "CryptL-aaaa-bbbb-cccc-dddd-eeee-ffff01", segments: [.init(extents: 28, stripes: [(0, 0)])])
            var content = try Data(contentsOf: URL(fileURLWithPath: luks))
            precondition(content.count <= lv.extents * extentBytes)
            content.append(Data(count: lv.extents * extentBytes - content.count))
            let image = dir + "/disk.img"
            try Shell.check("truncate -s 40M \(Shell.quote(image))")
            try Shell.check("sfdisk -q --no-reread --no-tell-kernel \(Shell.quote(image))", stdin: Data("label: dos\nstart=2048, type=8e\n".utf8))
            let builder = try LVMImageBuilder()
            let pv = LVMImageBuilder.PV(image: image, offset: 2048 * 512, size: (40 << 20) - 2048 * 512)
            let backup = try builder.withLoops([pv]) { loops in
                let backup = try builder.createVG("vgcrypt", loops: loops)
                try builder.restore("vgcrypt", backup: backup, logicalVolumes: lv.metadata, loops: loops)
                return backup
            }
            let peStart = (LVMImageBuilder.pvField(backup, pv: "pv0", "pe_start") ?? 2048) * 512
            try lv.write(content, pvs: [pv], peStart: [peStart], extentBytes: extentBytes)
            return Guest(image: image, hostname: "luks-on-lvm", luksUUID: try luksUUID(luks), container: luks, plaintext: fs,
                         containerOffset: 2048 * 512 + peStart)
        }
    }

    /// LUKS2 (cryptsetup, pbkdf2, 4096-byte sectors) on sda2 with LVM inside (`vginner/root`,
    /// the root filesystem): "LVM inside LUKS".
    public static func lvmInLUKS() throws -> Guest {
        try cached("lvm-in-luks") { dir in
            let partSize = 48 << 20
            let container = dir + "/part.luks"
            try Shell.check("truncate -s \(partSize) \(Shell.quote(container))")
            let key = try luksFormat(container, dir: dir, options: "--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096")
            let offset = try payloadOffset(container)
            // The plaintext: a PV with the root LV.
            let plain = dir + "/plain.img"
            try Shell.check("truncate -s \(partSize - Int(offset)) \(Shell.quote(plain))")
            let builder = try LVMImageBuilder()
            let pv = LVMImageBuilder.PV(image: plain)
            let lv = LVMTestVolume(name: "root", uuid: "InnerL-aaaa-bbbb-cccc-dddd-eeee-ffff01", segments: [.init(extents: 24, stripes: [(0, 0)])])
            let backup = try builder.withLoops([pv]) { loops in
                let backup = try builder.createVG("vginner", loops: loops)
                try builder.restore("vginner", backup: backup, logicalVolumes: lv.metadata, loops: loops)
                return backup
            }
            let peStart = (LVMImageBuilder.pvField(backup, pv: "pv0", "pe_start") ?? 2048) * 512
            let fs = try rootFS(dir, hostname: "lvm-in-luks", size: 24 << 20)
            try lv.write(try Data(contentsOf: URL(fileURLWithPath: fs)), pvs: [pv], peStart: [peStart], extentBytes: 1 << 20)
            try TestCipher.encryptPayload(plaintext: plain, into: container, at: offset, key: key, sectorSize: 4096)
            // The disk: sda1 a small ext2, sda2 the container.
            let image = dir + "/disk.img"
            let start = 18432 * 512
            try Shell.check("truncate -s \(start + partSize) \(Shell.quote(image))")
            try Shell.check("sfdisk -q --no-reread --no-tell-kernel \(Shell.quote(image))",
                            stdin: Data("label: dos\nstart=2048, size=16384, type=83\nstart=18432, type=83\n".utf8))
            try DiskFixtures.makeFS(image, (2048 * 512, 16384 * 512), type: "ext2", source: try DiskFixtures.smallTree("luks-boot"))
            try Shell.check("dd if=\(Shell.quote(container)) of=\(Shell.quote(image)) bs=1M seek=\(start) oflag=seek_bytes conv=notrunc status=none")
            return Guest(image: image, hostname: "lvm-in-luks", luksUUID: try luksUUID(container), container: container,
                         plaintext: plain, containerOffset: UInt64(start))
        }
    }

    /// LUKS2 with an argon2id keyslot (512-byte sectors) over a whole disk holding ext4 directly.
    public static func argon2WholeDisk() throws -> Guest {
        try cached("argon2-whole") { dir in
            let size = 28 << 20
            let container = dir + "/disk.img"
            try Shell.check("truncate -s \(size) \(Shell.quote(container))")
            let key = try luksFormat(container, dir: dir,
                                     options: "--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32768 --pbkdf-parallel 2 --sector-size 512")
            let offset = try payloadOffset(container)
            let fs = try rootFS(dir, hostname: "argon2-whole", size: size - Int(offset))
            try TestCipher.encryptPayload(plaintext: fs, into: container, at: offset, key: key, sectorSize: 512)
            return Guest(image: container, hostname: "argon2-whole", luksUUID: try luksUUID(container), container: container,
                         plaintext: fs, containerOffset: 0)
        }
    }

    /// `cryptsetup luksFormat --type luks2` on `file` with a random 64-byte volume key (returned).
    static func luksFormat(_ file: String, dir: String, options: String) throws -> [UInt8] {
        var key = [UInt8](repeating: 0, count: 64)
        var rng = SystemRandomNumberGenerator()
        for i in key.indices { key[i] = UInt8.random(in: 0...255, using: &rng) }
        let keyFile = dir + "/volume.key", passFile = dir + "/pass.txt"
        try Data(key).write(to: URL(fileURLWithPath: keyFile))
        try Data(passphrase.utf8).write(to: URL(fileURLWithPath: passFile))
        try Shell.check("cryptsetup luksFormat -q --type luks2 \(options) --volume-key-file \(Shell.quote(keyFile)) --key-file \(Shell.quote(passFile)) \(Shell.quote(file))")
        return key
    }

    /// The data segment offset `cryptsetup luksDump` reports, in bytes.
    static func payloadOffset(_ file: String) throws -> UInt64 {
        let dump = try Shell.check("cryptsetup luksDump \(Shell.quote(file))")
        guard let line = dump.split(separator: "\n").first(where: { $0.contains("offset:") && $0.contains("[bytes]") }),
              let value = UInt64(line.split(separator: " ").first(where: { UInt64($0) != nil }) ?? "") else {
            throw Shell.Failure(command: "luksDump", status: 1, stderr: "no segment offset in:\n\(dump)")
        }
        return value
    }

    private static let built = Locked<[String: Guest]>([:])

    private static func cached(_ name: String, _ build: (String) throws -> Guest) throws -> Guest {
        try built.withValue { cache in
            if let g = cache[name] { return g }
            let dir = Fixtures.scratch.file("luks-" + name)
            try Shell.check("mkdir -p \(Shell.quote(dir))")
            let g = try build(dir)
            cache[name] = g
            return g
        }
    }
}

/// aes-xts-plain64 as dm-crypt applies it, written out in the test with libcrypto so that LUKS2
/// payloads can be made without device-mapper: each `sectorSize` unit encrypted on its own,
/// the IV its 512-byte sector number from the payload start, little-endian.
public enum TestCipher {
    public static func xts(_ data: inout [UInt8], key: [UInt8], sectorSize: Int, encrypt: Bool) {
        let cipher = EVP_CIPHER_fetch(nil, key.count == 64 ? "AES-256-XTS" : "AES-128-XTS", nil)
        defer { EVP_CIPHER_free(cipher) }
        let ctx = EVP_CIPHER_CTX_new()
        defer { EVP_CIPHER_CTX_free(ctx) }
        data.withUnsafeMutableBytes { buffer in
            let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for unit in 0..<(buffer.count / sectorSize) {
                var iv = [UInt8](repeating: 0, count: 16)
                var sector = UInt64(unit * sectorSize / 512)
                for i in 0..<8 { iv[i] = UInt8(truncatingIfNeeded: sector); sector >>= 8 }
                precondition(EVP_CipherInit_ex2(ctx, cipher, key, iv, encrypt ? 1 : 0, nil) == 1)
                var n: Int32 = 0
                let p = base + unit * sectorSize
                precondition(EVP_CipherUpdate(ctx, p, &n, p, Int32(sectorSize)) == 1)
            }
        }
    }

    /// Encrypts the file `plaintext` and writes it into `container` at `offset`.
    public static func encryptPayload(plaintext: String, into container: String, at offset: UInt64, key: [UInt8], sectorSize: Int) throws {
        var data = Array(try Data(contentsOf: URL(fileURLWithPath: plaintext)))
        data += [UInt8](repeating: 0, count: (sectorSize - data.count % sectorSize) % sectorSize)
        xts(&data, key: key, sectorSize: sectorSize, encrypt: true)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: container))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(data))
    }
}
