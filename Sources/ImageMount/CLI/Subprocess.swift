import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs the few programs imagemount may start (virsh, perl for `edit -e`, $EDITOR), without a
/// shell: arguments are passed as they are.
enum Subprocess {
    struct Result {
        let status: Int32
        let stdout: [UInt8]
    }

    /// Whether `program` is found on PATH.
    static func exists(_ program: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(program)", X_OK) == 0 }
    }

    /// Runs `arguments` (found on PATH), capturing stdout (at most `limit` bytes); stderr passes through.
    /// Wraps posix_spawnp(3) and waitpid(2).
    static func run(_ arguments: [String], captureOutput: Bool = true, limit: Int = 16 << 20) throws -> Result {
        var pipeFDs: [Int32] = [-1, -1]
        if captureOutput {
            let ends = try FileDescriptor.pipe()
            pipeFDs = [ends.readEnd.rawValue, ends.writeEnd.rawValue]
            // The child gets the write end as fd 1 through dup2; no other copy may leak into it.
            _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if captureOutput { posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1) }
        var cArgs = arguments.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, &cArgs, environ)
        if captureOutput { close(pipeFDs[1]) }
        guard rc == 0 else {
            if captureOutput { close(pipeFDs[0]) }
            throw CLIError(message: "cannot run \(arguments[0]): \(Errno(rawValue: rc).description)")
        }
        var output: [UInt8] = []
        if captureOutput {
            let fd = FileDescriptor(rawValue: pipeFDs[0])
            defer { try? fd.close() }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = (try? chunk.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
                if n <= 0 { break }
                if output.count < limit { output += chunk.prefix(min(n, limit - output.count)) }
            }
        }
        var status: Int32 = 0
        _ = try Syscall.valueOrErrno { waitpid(pid, &status, 0) }.get()
        // WIFEXITED / WEXITSTATUS are macros: exited normally when the low 7 bits are 0.
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitCode, stdout: output)
    }
}
