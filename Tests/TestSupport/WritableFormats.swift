import Foundation

/// Runs a writing test on raw, qcow2, LUKS-encrypted qcow2 or another writable format (`vdi`,
/// ...): `prepare` turns a fresh raw filesystem image into the image the test writes;
/// `arguments` are what imagemount needs to open it (the key of an encrypted one); `finish`
/// checks the image with `qemu-img check` (where qemu-img checks the format) and converts it
/// back to raw, so e2fsck and the kernel's ext4 can be the oracles either way.
public enum WritableFormats {
    /// The passphrase of "qcow2-luks" images, kept in a key file beside the image (so it is
    /// never on a command line: qemu-img reads it with `secret,file=`, imagemount with `--key all:file:`).
    public static let luksPassphrase = "writable formats' passphrase"

    public static func keyFile(_ image: String) -> String { image + ".key" }

    public static func prepare(_ raw: String, format: String) throws -> String {
        switch format {
        case "qcow2":
            let image = raw + ".qcow2"
            try Shell.check("qemu-img convert -O qcow2 -o cluster_size=65536 \(Shell.quote(raw)) \(Shell.quote(image)) && rm -f \(Shell.quote(raw))")
            return image
        case "qcow2-luks":
            let image = raw + ".qcow2"
            try Data(luksPassphrase.utf8).write(to: URL(fileURLWithPath: keyFile(image)))
            // iter-time keeps PBKDF2 short; qemu-img may fail timing it on a loaded machine: retried.
            try Shell.check("\(LUKSFixtures.retryFunction)\nretry qemu-img convert \(secretObject(image)) -O qcow2 " +
                            "-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,cluster_size=65536 " +
                            "\(Shell.quote(raw)) \(Shell.quote(image)) && rm -f \(Shell.quote(raw))")
            return image
        case _ where otherFormats[format] != nil:
            let image = raw + "." + format
            try Shell.check("qemu-img convert -O \(otherFormats[format]!) \(Shell.quote(raw)) \(Shell.quote(image)) && rm -f \(Shell.quote(raw))")
            return image
        default:
            return raw
        }
    }

    /// The writable formats besides raw and qcow2, by test name: the `qemu-img -O` argument
    /// that makes one.
    public static let otherFormats: [String: String] = ["vdi": "vdi", "vpc": "vpc", "vhdx": "vhdx", "qed": "qed", "parallels": "parallels"]

    /// Formats `qemu-img check` has a check for (vpc has none).
    static let checkedFormats: Set<String> = ["qcow2", "qcow2-luks", "vdi", "vhdx", "qed", "parallels"]

    /// What imagemount needs besides `-a image` to open an image of `format`.
    public static func arguments(_ image: String, format: String) -> [String] {
        format == "qcow2-luks" ? ["--key", "all:file:" + keyFile(image)] : []
    }

    /// How qemu-img names an image of `format`: its path, or for an encrypted image the secret
    /// object and `--image-opts`.
    public static func qemuName(_ image: String, format: String) -> String {
        guard format == "qcow2-luks" else { return Shell.quote(image) }
        return "\(secretObject(image)) --image-opts driver=qcow2,file.filename=\(Shell.quote(image.replacingOccurrences(of: ",", with: ",,"))),encrypt.key-secret=sec0"
    }

    private static func secretObject(_ image: String) -> String {
        "--object secret,id=sec0,file=\(Shell.quote(keyFile(image).replacingOccurrences(of: ",", with: ",,")))"
    }

    public static func finish(_ image: String, format: String) throws -> String {
        guard format.hasPrefix("qcow2") || otherFormats[format] != nil else { return image }
        let name = qemuName(image, format: format)
        if checkedFormats.contains(format) {
            let check = try Shell.run("qemu-img check \(name)")
            guard check.status == 0 else {
                throw Shell.Failure(command: "qemu-img check \(image)", status: check.status, stderr: check.text + check.stderr)
            }
        }
        let raw = image + ".raw"
        try Shell.check("qemu-img convert \(name) -O raw \(Shell.quote(raw))")
        return raw
    }
}
