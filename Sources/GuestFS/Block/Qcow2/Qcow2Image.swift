/// Placeholder until the qcow2 engine lands (issue: qcow2 reading).
extension ImageOpener {
    static func openQcow2(file: RawImage, writable: Bool) throws -> any BlockDevice {
        throw ImageError(path: file.path, structure: "qcow2 header", reason: "qcow2 images are not supported yet",
                         errno: .notSupported)
    }
}
