import CRpm
import GuestFSBlock
import GuestFSFilesystem
import GuestFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The installed packages of an RPM guest, read by librpm from the guest's rpmdb, as libguestfs
/// reads them (daemon/rpm-c.c `guestfs_int_daemon_rpm_next_application`, called from
/// daemon/rpm.ml): every header of the Packages index, with NAME, VERSION, RELEASE, ARCH, URL,
/// SUMMARY and DESCRIPTION as `headerFormat` renders `%{TAG}` (so a tag the header lacks reads
/// "(none)", as `rpm -q --qf` prints it), and EPOCH as `headerGetNumber` gives it (0 when absent).
///
/// The formats are librpm's to read: the SQLite backend (`rpmdb.sqlite`, RHEL 9, Fedora ≥ 33)
/// and, for RHEL 7/8's Berkeley DB `Packages`, librpm's read-only `bdb_ro` backend. SUSE's
/// `ndb` (`Packages.db`) is not built into Debian's librpm and is reported as such.
///
/// librpm opens a database only by path, so the files are copied out of the guest, each
/// checked to be a regular file and all together at most `maxCopy` bytes, into a private
/// directory (RPMScratchDirectory.swift), which is emptied after each guest and removed at
/// the end. The library and rpm's own configuration are loaded before the process sandboxes
/// itself (`prepare`); the copy and librpm's reading of it run inside the sandbox, which grants
/// that directory and nothing else, and the reading in a child process of its own
/// (RPMQueryProcess.swift: librpm can loop or exit on a crafted database). librpm checks each header's digests (signatures are not:
/// libguestfs turns them off too, the guest's keys are not the host's); anything it reports as
/// an error, or a database it cannot open, makes one warning and an empty list.
public final class RPMDatabase {
    /// Where RPM distributions keep the database: /var/lib/rpm (often a symlink to the next,
    /// which Fedora ≥ 36 and openSUSE use, rpm 4.17 `%_dbpath`).
    static let locations = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"]
    /// Largest database copied: a Fedora workstation's rpmdb.sqlite is about 100–200 MiB.
    static let maxCopy: UInt64 = 512 << 20
    /// More packages than any distribution installs; a longer iteration is not a database.
    static let maxPackages = 1_000_000

    /// A database found in the guest: the backend that reads it and the files it consists of
    /// (the first is required; the others, SQLite's write-ahead log, copied when present since
    /// committed transactions may still be only there).
    struct Layout: Equatable {
        var backend: String
        var files: [String]
    }
    static let layouts = [
        Layout(backend: "sqlite", files: ["rpmdb.sqlite", "rpmdb.sqlite-wal"]),
        Layout(backend: "bdb_ro", files: ["Packages"]),
    ]

    private let scratch: RPMScratchDirectory?
    /// Why RPM applications cannot be listed on this host (librpm missing, no private
    /// directory), for the warning an RPM guest then gets.
    private let unavailable: String?

    private init(scratch: RPMScratchDirectory?, unavailable: String?) {
        self.scratch = scratch
        self.unavailable = unavailable
    }

    /// Loads librpm and rpm's configuration and makes the private directory; call before the
    /// sandbox. Never fails: what went wrong is kept for the first RPM guest's warning.
    public static func prepare() -> RPMDatabase {
        var error: UnsafePointer<CChar>?
        guard crpm_load(&error) == 0 else {
            return RPMDatabase(scratch: nil, unavailable: error.map { String(cString: $0) } ?? "librpm could not be loaded")
        }
        // rpm's own C tools do not check this either (libguestfs daemon/rpm-c.c notes it):
        // without configuration the defaults still read a database.
        _ = crpm_rpmReadConfigFiles(nil, nil)
        let scratch: RPMScratchDirectory
        do { scratch = try RPMScratchDirectory() } catch {
            return RPMDatabase(scratch: nil, unavailable: "no private directory for a copy of the RPM database under \(RPMScratchDirectory.base()): \(error)")
        }
        _ = crpm_rpmPushMacro(nil, "_dbpath", nil, scratch.path, crpm_macro_level_cmdline)
        return RPMDatabase(scratch: scratch, unavailable: nil)
    }

    /// The private directory and its parent (descriptors), for the sandbox's rules.
    public var sandboxDirectories: (directory: Int32, parent: Int32)? {
        scratch.map { ($0.directory.rawValue, $0.parent.rawValue) }
    }

    /// Removes the private directory (also done at deinit).
    public func remove() { scratch?.remove() }

    /// The applications of the RPM guest mounted as `tree` (`root` names it in warnings); an
    /// empty list, silently, when it has no rpmdb.
    func applications(_ tree: MountTree, root: String, warn: (String) -> Void) -> [Application] {
        guard let found = Self.find(tree) else {
            if let path = Self.locations.first(where: { Self.hasFile(tree, $0 + "/Packages.db") }) {
                warn("\(root): \(path)/Packages.db: an RPM ndb database, which this librpm cannot read; applications left out")
            }
            return []
        }
        guard let scratch else {
            warn("\(root): \(unavailable ?? "librpm is not available"); applications left out")
            return []
        }
        let (directory, layout) = found
        defer { scratch.empty() }
        do {
            try copy(tree, directory: directory, files: layout.files, into: scratch)
            let path = "\(directory)/\(layout.files[0])"
            return try RPMQueryProcess.run("\(path): RPM database (\(layout.backend))") { try query(backend: layout.backend, path: path) }
        } catch {
            warn("\(root): \(ImageError.wrap(error).description); applications left out")
            return []
        }
    }

    /// The first location holding a database one of `layouts` reads, and that layout.
    static func find(_ tree: MountTree) -> (String, Layout)? {
        for location in locations {
            for layout in layouts where hasFile(tree, location + "/" + layout.files[0]) { return (location, layout) }
        }
        return nil
    }

    static func hasFile(_ tree: MountTree, _ path: String) -> Bool {
        guard let node = try? tree.resolve(path) else { return false }
        return (try? tree.attributes(node))?.isRegular == true
    }

    /// Copies `files` of the guest's `directory` into the private directory; the first must be
    /// a regular file, the others are skipped when absent. Each is checked against what is
    /// left of `maxCopy` before a byte is copied.
    private func copy(_ tree: MountTree, directory: String, files: [String], into scratch: RPMScratchDirectory) throws {
        var budget = Self.maxCopy
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for (index, name) in files.enumerated() {
            let path = directory + "/" + name
            guard let node = try? tree.resolve(path) else {
                if index == 0 { throw ImageError(path: path, structure: "RPM database", reason: "not found", errno: .noSuchFileOrDirectory) }
                continue
            }
            guard try tree.attributes(node).isRegular else {
                throw ImageError(path: path, structure: "RPM database", reason: "not a regular file", errno: .invalidArgument)
            }
            let file = try tree.filesystem(of: node).openFile(node.inode)
            guard file.size <= budget else {
                throw ImageError(path: path, structure: "RPM database",
                                 reason: "\(file.size) bytes, more than the \(Self.maxCopy >> 20) MiB copied for librpm", errno: .fileTooLarge)
            }
            budget -= file.size
            let out = try scratch.create(name)
            defer { try? out.close() }
            var offset: UInt64 = 0
            while offset < file.size {
                let want = Int(min(UInt64(chunk.count), file.size - offset))
                let count = try chunk.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<want]), at: offset) }
                guard count > 0 else {
                    throw ImageError(path: path, offset: offset, structure: "RPM database", reason: "file ends before its size", errno: .ioError)
                }
                _ = try chunk.withUnsafeBytes { try out.writeAll(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                offset += UInt64(count)
            }
        }
    }

    /// What librpm logs while it reads: errors make the database unreadable; nothing reaches
    /// stderr directly (the warning says it once).
    private final class Log {
        var errors: [String] = []
    }

    /// Every header of the copied database, read with `backend` (`%_db_backend`).
    private func query(backend: String, path: String) throws -> [Application] {
        _ = crpm_rpmPushMacro(nil, "_db_backend", nil, backend, crpm_macro_level_cmdline)
        defer { _ = crpm_rpmPopMacro(nil, "_db_backend") }
        let log = Log()
        let box = Unmanaged.passRetained(log)
        defer { box.release() }
        let previous = crpm_rpmlogSetCallback({ record, data in
            guard let record, let data else { return 0 }
            if Int(crpm_rpmlogRecPriority(record).rawValue) <= Int(crpm_log_err), let message = crpm_rpmlogRecMessage(record) {
                let log = Unmanaged<Log>.fromOpaque(data).takeUnretainedValue()
                if log.errors.count < 8 { log.errors.append(String(cString: message).trimmingCharacters(in: "\n")) }
            }
            return 0
        }, box.toOpaque())
        defer { _ = crpm_rpmlogSetCallback(previous, nil) }
        func failure(_ fallback: String) -> ImageError {
            ImageError(path: path, structure: "RPM database (\(backend))",
                       reason: log.errors.first.map { "librpm: " + $0 } ?? fallback, errno: .invalidArgument)
        }

        guard let ts = crpm_rpmtsCreate() else { throw failure("rpmtsCreate failed") }
        defer { _ = crpm_rpmtsFree(ts) }
        _ = crpm_rpmtsSetVSFlags(ts, crpm_rpmtsVSFlags(ts) | crpm_vsflags_nosignatures)
        // NULL both when the database cannot be opened and, without an error, when it is empty.
        guard let iterator = crpm_rpmtsInitIterator(ts, crpm_dbi_packages, nil, 0) else {
            if log.errors.isEmpty { return [] }
            throw failure("cannot be opened")
        }
        defer { _ = crpm_rpmdbFreeIterator(iterator) }
        var apps: [Application] = []
        while let header = crpm_rpmdbNextIterator(iterator) {
            guard apps.count < Self.maxPackages else { throw failure("more than \(Self.maxPackages) packages") }
            var app = Application()
            func field(_ tag: String) -> String {
                guard let text = crpm_headerFormat(header, "%{\(tag)}", nil) else { return "" }
                defer { free(text) }
                return String(cString: text)
            }
            app.name = field("NAME")
            app.version = field("VERSION")
            app.release = field("RELEASE")
            app.arch = field("ARCH")
            app.url = field("URL")
            app.summary = field("SUMMARY")
            app.description = field("DESCRIPTION")
            // libguestfs keeps the epoch as an int32 (guestfs_application2.app2_epoch).
            app.epoch = Int(Int32(truncatingIfNeeded: crpm_headerGetNumber(header, crpm_tag_epoch)))
            apps.append(app)
        }
        // An error part way (a damaged page, a header whose digest fails) ends the iteration
        // early: the list would be silently short.
        if !log.errors.isEmpty { throw failure("read error") }
        return apps
    }
}
