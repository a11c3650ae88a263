import CArchive

/// libarchive, loaded when tar-in or tar-out starts instead of linked
/// (Sources/CArchive/include/CArchive.h says why). Both commands call `load` before entering
/// the sandbox, after which Landlock would refuse to open the library file.
enum TarLibrary {
    static func load() throws {
        var error: UnsafePointer<CChar>?
        guard carchive_load(&error) == 0 else {
            throw CLIError(message: error.map { String(cString: $0) } ?? "libarchive could not be loaded")
        }
    }
}
