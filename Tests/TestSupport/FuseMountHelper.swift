import Foundation

/// A FUSE mount made by `imagemount` for one test. `close()` (call it in a `defer`) unmounts
/// and makes sure the server is gone, on every path: `imagemount unmount`, then
/// `fusermount3 -u -z`, then SIGKILL of the recorded pid. The server is started in the
/// background mode, whose stdio is /dev/null, so it never holds the test runner's pipes.
public final class FuseMount: @unchecked Sendable {
    public let directory: TempDir
    public var path: String { directory.file("mnt") }
    public let pidFile: String
    public let output: Shell.Output
    private var closed = false
    /// The images' state before a read-only mount, checked once the server is gone.
    private var witness: ReadOnlyWitness?
    private var arguments: [String] = []

    /// Mounts `images` with `arguments` (e.g. ["-m", "/dev/sda"]) and throws when imagemount fails.
    public init(images: [String], arguments: [String] = [], stdin: Data? = nil) throws {
        directory = try TempDir("imagemount-mnt")
        try FileManager.default.createDirectory(atPath: directory.file("mnt"), withIntermediateDirectories: false)
        pidFile = directory.file("server.pid")
        var args: [String] = []
        for image in images { args += ["-a", image] }
        args += arguments + ["--pid-file", pidFile, directory.file("mnt")]
        witness = ReadOnlyWitness(arguments: args)
        self.arguments = args
        output = try ImageMountBinary.run(args, stdin: stdin)
        guard output.status == 0 else {
            close()
            throw Shell.Failure(command: "imagemount " + args.joined(separator: " "), status: output.status, stderr: output.stderr)
        }
    }

    /// The server's pid, from --pid-file.
    public var serverPID: Int32? {
        (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        let pid = serverPID
        _ = try? ImageMountBinary.run(["unmount", "-q", "--timeout", "20", path])
        if FuseMount.isMounted(path) { _ = try? Shell.run("fusermount3 -u -z \(Shell.quote(path)) </dev/null >/dev/null 2>&1") }
        if let pid, kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        if let pid { Self.waitGone(pid) }
        witness?.verify(arguments)
    }

    /// The server exits after unmounting (it is not our child, so poll): up to 10 s.
    private static func waitGone(_ pid: Int32) {
        for _ in 0..<200 where kill(pid, 0) == 0 { usleep(50_000) }
    }

    deinit { close() }

    /// Whether `path` is a mountpoint now (from /proc/self/mountinfo).
    public static func isMounted(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? path
        return text.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].replacingOccurrences(of: "\\040", with: " ") == target
        }
    }
}

/// The kernel's own ext4 over a loop device, read-only: the oracle for stat and statfs.
public final class KernelMount: @unchecked Sendable {
    public let directory: TempDir
    public var path: String { directory.file("mnt") }
    private var closed = false

    /// Read-only unless `writable` (the oracle for write tests: the same steps on the kernel's ext4).
    public init(image: String, offset: UInt64 = 0, writable: Bool = false) throws {
        directory = try TempDir("imagemount-kernel")
        try FileManager.default.createDirectory(atPath: directory.file("mnt"), withIntermediateDirectories: false)
        let options = writable ? "rw,loop" : "ro,loop,noload"
        try Shell.check("mount -t ext4 -o \(options),offset=\(offset) \(Shell.quote(image)) \(Shell.quote(path))")
    }

    public func close() {
        guard !closed else { return }
        closed = true
        _ = try? Shell.run("umount \(Shell.quote(path)) || umount -l \(Shell.quote(path))")
    }

    deinit { close() }
}
