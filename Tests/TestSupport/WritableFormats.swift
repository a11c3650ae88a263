import Foundation

/// Runs a writing test on raw or qcow2: `prepare` turns a fresh raw filesystem image into the
/// image the test writes; `finish` checks a qcow2 with `qemu-img check` and converts it back to
/// raw, so e2fsck and the kernel's ext4 can be the oracles either way.
public enum WritableFormats {
    public static func prepare(_ raw: String, format: String) throws -> String {
        guard format == "qcow2" else { return raw }
        let image = raw + ".qcow2"
        try Shell.check("qemu-img convert -O qcow2 -o cluster_size=65536 \(Shell.quote(raw)) \(Shell.quote(image)) && rm -f \(Shell.quote(raw))")
        return image
    }

    public static func finish(_ image: String, format: String) throws -> String {
        guard format == "qcow2" else { return image }
        let check = try Shell.run("qemu-img check \(Shell.quote(image))")
        guard check.status == 0 else {
            throw Shell.Failure(command: "qemu-img check \(image)", status: check.status, stderr: check.text + check.stderr)
        }
        let raw = image + ".raw"
        try Shell.check("qemu-img convert -O raw \(Shell.quote(image)) \(Shell.quote(raw))")
        return raw
    }
}
