/// A `-d` domain's Ceph key, from libvirt's secret store.
extension ImageOptions {
    /// Longest key accepted from virsh (a cephx key is 40 base64 characters).
    static let maxCephKeyLength = 1024

    /// `virsh [-c URI] secret-get-value UUID`: the key of the libvirt secret an rbd disk's
    /// `<auth><secret type='ceph' uuid=…/>` names (libvirt "Secret XML format", ceph usage),
    /// run before the sandbox as `virsh dumpxml` is. nil when virsh is not installed (the
    /// keyring is then what authenticates). The key must look like one (base64, one line), so
    /// that what virsh prints cannot smuggle other options into librados.
    static func cephKey(secret uuid: String, domain: String, connect: String?) throws -> String? {
        guard Subprocess.exists("virsh") else { return nil }
        let result = try Subprocess.run(["virsh"] + (connect.map { ["-c", $0] } ?? []) + ["secret-get-value", uuid],
                                        limit: maxCephKeyLength + 2)
        guard result.status == 0 else {
            throw CLIError(message: "domain \(domain): virsh secret-get-value \(uuid) failed (exit \(result.status))")
        }
        var bytes = result.stdout[...]
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        func isBase64(_ c: UInt8) -> Bool {
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "/") || c == UInt8(ascii: "=")
        }
        guard !bytes.isEmpty, bytes.count <= maxCephKeyLength, bytes.allSatisfy(isBase64) else {
            throw CLIError(message: "domain \(domain): the libvirt secret \(uuid) does not hold a Ceph key (base64 expected)")
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
