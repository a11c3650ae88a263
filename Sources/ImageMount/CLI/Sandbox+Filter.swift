import SystemSeccomp

/// The seccomp allowlist as a classic BPF program we build ourselves
/// (Documentation/userspace-api/seccomp_filter.rst).
///
/// Why not libseccomp's seccomp_load: its rule database and code generator cost about 0.5 ms
/// per process (measured: 0.15 ms to add the rules, 0.33 ms to generate and load), a
/// measurable share of a 7 ms `cat`. The program needed is simple: check the architecture,
/// refuse x32 numbers, then a balanced search over the allowed numbers, merged into runs of
/// consecutive numbers (the 162 of x86-64 are 52 runs), each leaf one run. The numbers are
/// compile-time constants (Sandbox+Syscalls.swift), and the program is written into one
/// preallocated array.
///
/// Its size is what matters most: installing it is the kernel's work, which converts and JITs
/// the program and then runs it once for every syscall number to find the ones it always
/// allows (kernel/seccomp.c, seccomp_cache_prepare), so the cost grows with length × depth.
/// Measured with `strace -T` on the prctl: 0.15 ms for the first version (one leaf per four
/// numbers, 359 instructions), 0.07 ms for this one (214).
extension Sandbox {
    /// Opcodes (linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K,
    /// BPF_JMP|BPF_JGT|BPF_K, BPF_JMP|BPF_JGE|BPF_K, BPF_JMP|BPF_JA, BPF_RET|BPF_K.
    static let loadWord: UInt16 = 0x00 | 0x00 | 0x20
    static let jumpEqual: UInt16 = 0x05 | 0x10 | 0x00
    static let jumpGreater: UInt16 = 0x05 | 0x20 | 0x00
    static let jumpGreaterOrEqual: UInt16 = 0x05 | 0x30 | 0x00
    static let jumpAlways: UInt16 = 0x05 | 0x00
    static let returnConstant: UInt16 = 0x06 | 0x00
    /// Syscall numbers with this bit set are the x32 ABI on x86-64, never used here.
    static let x32Bit: UInt32 = 0x4000_0000
    /// BPF_MAXINSNS (linux/bpf_common.h): the longest program the kernel takes.
    static let maximumLength = 4096

    /// A run of consecutive allowed numbers.
    struct Run: Equatable {
        var first: UInt32
        var last: UInt32
    }

    /// The program for `numbers` (syscalls allowed) on `arch` (an AUDIT_ARCH_* value); every
    /// other syscall, and any other architecture, gets `deny`. Nil when it would be longer than
    /// the kernel takes (then libseccomp builds the filter).
    static func filterProgram(allowing numbers: [UInt32], arch: UInt32, deny: UInt32) -> [sock_filter]? {
        let runs = runs(of: numbers)
        let length = 6 + (runs.isEmpty ? 1 : instructionCount(runs.count, boundedAbove: false))
        guard length <= maximumLength else { return nil }
        var program: [sock_filter] = []
        program.reserveCapacity(length)
        program += [
            sock_filter(code: loadWord, jt: 0, jf: 0, k: seccomp_shim_offset_arch),
            sock_filter(code: jumpEqual, jt: 1, jf: 0, k: arch),
            sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny),
            sock_filter(code: loadWord, jt: 0, jf: 0, k: seccomp_shim_offset_nr),
            sock_filter(code: jumpGreaterOrEqual, jt: 0, jf: 1, k: x32Bit),
            sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny),
        ]
        if runs.isEmpty {
            program.append(sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny))
        } else {
            emit(runs[...], boundedAbove: false, into: &program, deny: deny)
        }
        return program
    }

    /// `numbers` sorted, without repeats, as runs of consecutive numbers.
    static func runs(of numbers: [UInt32]) -> [Run] {
        var runs: [Run] = []
        for n in numbers.sorted() {
            if let last = runs.last?.last, n == last || (last < UInt32.max && n == last + 1) {
                runs[runs.count - 1].last = n
            } else {
                runs.append(Run(first: n, last: n))
            }
        }
        return runs
    }

    /// How many instructions `emit` writes for `count` runs. A leaf is `jge first` and the two
    /// returns, with a `jgt last` before them when nothing above has bounded the number (the
    /// rightmost leaf); an inner node is one jump (two when its lower half is too long for an
    /// 8-bit offset) and its halves.
    private static func instructionCount(_ count: Int, boundedAbove: Bool) -> Int {
        if count == 1 { return boundedAbove ? 3 : 4 }
        let lower = instructionCount(count / 2, boundedAbove: true)
        return (lower > Int(UInt8.max) ? 2 : 1) + lower + instructionCount(count - count / 2, boundedAbove: boundedAbove)
    }

    /// The search over `runs`, the syscall number in the accumulator and known to be above the
    /// run before them. An inner node jumps over its lower half when the number is greater than
    /// the half's last; so within the lower half the number is bounded above by that last.
    private static func emit(_ runs: ArraySlice<Run>, boundedAbove: Bool, into out: inout [sock_filter], deny: UInt32) {
        if runs.count == 1 {
            let run = runs[runs.startIndex]
            if !boundedAbove {
                // jgt last: to the deny.
                out.append(sock_filter(code: jumpGreater, jt: 1, jf: 0, k: run.last))
            }
            out.append(sock_filter(code: jumpGreaterOrEqual, jt: 1, jf: 0, k: run.first))
            out.append(sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny))
            out.append(sock_filter(code: returnConstant, jt: 0, jf: 0, k: seccomp_shim_ret_allow))
            return
        }
        let middle = runs.startIndex + runs.count / 2
        let lower = runs[..<middle], upper = runs[middle...]
        let lowerLength = instructionCount(lower.count, boundedAbove: true)
        let split = runs[middle - 1].last
        if lowerLength <= Int(UInt8.max) {
            out.append(sock_filter(code: jumpGreater, jt: UInt8(lowerLength), jf: 0, k: split))
        } else {
            // jgt to a `ja` over the lower half (its 32-bit offset has no 8-bit limit).
            out.append(sock_filter(code: jumpGreater, jt: 0, jf: 1, k: split))
            out.append(sock_filter(code: jumpAlways, jt: 0, jf: 0, k: UInt32(lowerLength)))
        }
        emit(lower, boundedAbove: true, into: &out, deny: deny)
        emit(upper, boundedAbove: boundedAbove, into: &out, deny: deny)
    }
}
