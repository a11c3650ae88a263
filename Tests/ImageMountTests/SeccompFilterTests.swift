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
            case Sandbox.jumpAlways: pc += 1 + Int(i.k)
            case Sandbox.returnConstant: return i.k
            default: return nil
            }
        }
        return nil
    }

    /// Single numbers, runs, runs next to single numbers, and 200 isolated numbers (whose lower
    /// halves are too long for 8-bit jumps, so `ja` is used).
    static let lists: [[UInt32]] = [[0], [3, 1], Array(0..<5), [1, 2, 3, 4, 5, 7], [9, 2, 3, 4, 20, 21, 22, 600, 0],
                                    Array(stride(from: UInt32(0), to: 600, by: 3))]

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

    /// The sandbox's own list: every compile-time number is the one libseccomp resolves the name
    /// to on this machine (a wrong constant would allow one syscall and refuse another), no name
    /// twice, the architecture constant is libseccomp's native one, and the program is built (no
    /// fallback to libseccomp) and allows just those numbers.
    @Test func theSandboxListIsWhatLibseccompResolves() throws {
        var seen = Set<String>()
        for (name, number) in Sandbox.allowedSyscalls + Sandbox.networkClient {
            #expect(seen.insert(name).inserted, "\(name) listed twice")
            #expect(seccomp_syscall_resolve_name(name) == number, "\(name)")
        }
        #expect(seccomp_shim_audit_arch == seccomp_arch_native())
        let numbers = Sandbox.allowedSyscalls.map { UInt32($0.number) }
        let arch = seccomp_shim_audit_arch
        let program = try #require(Sandbox.filterProgram(allowing: numbers, arch: arch, deny: Self.deny))
        for nr in UInt32(0)..<600 {
            #expect(Self.run(program, nr: nr, arch: arch) == (numbers.contains(nr) ? Self.allow : Self.deny), "nr \(nr)")
        }
        #expect(!numbers.contains(UInt32(seccomp_syscall_resolve_name("execve"))))
        #expect(!numbers.contains(UInt32(seccomp_syscall_resolve_name("socket"))))
        // The size the kernel's install time follows (Sandbox+Filter.swift): runs, not numbers.
        // R runs: R - 1 bounded leaves of 3, the last of 4, R - 1 inner jumps, 6 before them.
        let runs = Sandbox.runs(of: numbers).count
        #expect(program.count == 6 + 4 * runs)
    }

    /// A list too long for the kernel's 4096 instructions gets no program (libseccomp builds it).
    @Test func tooLongAListGetsNoProgram() {
        #expect(Sandbox.filterProgram(allowing: Array(stride(from: UInt32(0), to: 4000, by: 2)), arch: seccomp_shim_audit_arch, deny: Self.deny) == nil)
    }

    /// Repeated numbers and an empty list: one comparison each, and an empty list denies all.
    @Test func duplicatesAndTheEmptyList() throws {
        let arch = seccomp_shim_audit_arch
        let once = try #require(Sandbox.filterProgram(allowing: [5, 9, 11, 30, 40, 41], arch: arch, deny: Self.deny))
        let twice = try #require(Sandbox.filterProgram(allowing: [41, 5, 9, 9, 11, 5, 30, 40, 41, 41], arch: arch, deny: Self.deny))
        #expect(once.count == twice.count)
        for nr in UInt32(0)..<64 { #expect(Self.run(twice, nr: nr, arch: arch) == Self.run(once, nr: nr, arch: arch)) }
        let none = try #require(Sandbox.filterProgram(allowing: [], arch: arch, deny: Self.deny))
        for nr in UInt32(0)..<64 { #expect(Self.run(none, nr: nr, arch: arch) == Self.deny) }
    }
}
