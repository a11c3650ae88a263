import Testing
import SystemSeccomp
@testable import ImageMount

/// The sandbox's BPF program (Sandbox+Filter.swift), run by a small interpreter of the few
/// classic-BPF instructions it uses: exactly the allowed numbers pass, on the native
/// architecture only, and x32 numbers never.
@Suite struct SeccompFilterTests {
    static let deny = seccomp_shim_ret_errno(1)
    static let allow = seccomp_shim_ret_allow

    /// Runs `program` on a seccomp_data with `nr` and `arch`; returns the action.
    static func run(_ program: [sock_filter], nr: UInt32, arch: UInt32) -> UInt32? {
        var pc = 0, acc: UInt32 = 0, steps = 0
        while pc < program.count, steps < 10_000 {
            steps += 1
            let i = program[pc]
            switch i.code {
            case Sandbox.loadWord:
                acc = i.k == seccomp_shim_offset_nr ? nr : i.k == seccomp_shim_offset_arch ? arch : 0
                pc += 1
            case Sandbox.jumpEqual: pc += 1 + Int(acc == i.k ? i.jt : i.jf)
            case Sandbox.jumpGreater: pc += 1 + Int(acc > i.k ? i.jt : i.jf)
            case Sandbox.jumpGreaterOrEqual: pc += 1 + Int(acc >= i.k ? i.jt : i.jf)
            case Sandbox.returnConstant: return i.k
            default: return nil
            }
        }
        return nil
    }

    static let lists: [[UInt32]] = [[0], [3, 1], Array(0..<5), [1, 2, 3, 4, 5, 7], Array(stride(from: UInt32(0), to: 600, by: 3))]

    @Test(arguments: lists)
    func exactlyTheAllowedNumbersPass(_ allowed: [UInt32]) throws {
        let arch = seccomp_arch_native()
        let program = try #require(Sandbox.filterProgram(allowing: allowed, arch: arch, deny: Self.deny))
        for nr in UInt32(0)..<700 {
            #expect(Self.run(program, nr: nr, arch: arch) == (allowed.contains(nr) ? Self.allow : Self.deny), "nr \(nr)")
        }
        #expect(Self.run(program, nr: allowed[0], arch: arch &+ 1) == Self.deny)
        #expect(Self.run(program, nr: allowed[0] | Sandbox.x32Bit, arch: arch) == Self.deny)
    }

    /// The sandbox's own list, resolved for this machine: the program is built (no fallback to
    /// libseccomp) and allows just those numbers.
    @Test func theSandboxListBuildsAProgram() throws {
        let numbers = Sandbox.allowedSyscalls.map { seccomp_syscall_resolve_name($0) }.filter { $0 >= 0 }.map(UInt32.init)
        let arch = seccomp_arch_native()
        let program = try #require(Sandbox.filterProgram(allowing: numbers, arch: arch, deny: Self.deny))
        for nr in UInt32(0)..<600 {
            #expect(Self.run(program, nr: nr, arch: arch) == (numbers.contains(nr) ? Self.allow : Self.deny), "nr \(nr)")
        }
        #expect(!numbers.contains(UInt32(seccomp_syscall_resolve_name("execve"))))
    }
}
