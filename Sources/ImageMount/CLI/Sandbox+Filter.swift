import SystemSeccomp

/// The seccomp allowlist as a classic BPF program we build ourselves
/// (Documentation/userspace-api/seccomp_filter.rst).
///
/// Why not libseccomp's seccomp_load: its rule database and code generator cost about 0.5 ms
/// per process (measured: 0.15 ms to add the rules, 0.33 ms to generate and load), a
/// measurable share of a 7 ms `cat`. The program needed is simple: check the architecture,
/// refuse x32 numbers, then a balanced search over the sorted syscall numbers, each leaf a
/// few comparisons ending in allow. libseccomp still resolves the names for the running
/// architecture. It is built in a few microseconds and costs about log2(160) ≈ 8 comparisons
/// per syscall.
extension Sandbox {
    /// Opcodes (linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K,
    /// BPF_JMP|BPF_JGT|BPF_K, BPF_JMP|BPF_JGE|BPF_K, BPF_RET|BPF_K.
    static let loadWord: UInt16 = 0x00 | 0x00 | 0x20
    static let jumpEqual: UInt16 = 0x05 | 0x10 | 0x00
    static let jumpGreater: UInt16 = 0x05 | 0x20 | 0x00
    static let jumpGreaterOrEqual: UInt16 = 0x05 | 0x30 | 0x00
    static let returnConstant: UInt16 = 0x06 | 0x00
    /// Syscall numbers with this bit set are the x32 ABI on x86-64, never used here.
    static let x32Bit: UInt32 = 0x4000_0000
    /// Leaves compare at most this many numbers in a row.
    static let leafSize = 4

    /// The program for `numbers` (syscalls allowed) on `arch` (an AUDIT_ARCH_* value); every
    /// other syscall, and any other architecture, gets `deny`. Nil when a jump would not fit in
    /// BPF's 8-bit offsets (then libseccomp builds the filter).
    static func filterProgram(allowing numbers: [UInt32], arch: UInt32, deny: UInt32) -> [sock_filter]? {
        let sorted = Array(Set(numbers)).sorted()
        var tree: [sock_filter] = []
        guard emit(sorted[...], into: &tree, deny: deny) else { return nil }
        var program = [
            sock_filter(code: loadWord, jt: 0, jf: 0, k: seccomp_shim_offset_arch),
            sock_filter(code: jumpEqual, jt: 1, jf: 0, k: arch),
            sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny),
            sock_filter(code: loadWord, jt: 0, jf: 0, k: seccomp_shim_offset_nr),
            sock_filter(code: jumpGreaterOrEqual, jt: 0, jf: 1, k: x32Bit),
            sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny),
        ]
        program += tree
        return program.count <= Int(UInt16.max) ? program : nil
    }

    /// The search over `numbers` (sorted), the syscall number in the accumulator: a leaf
    /// compares each and allows on a match, else denies; an inner node jumps over its lower
    /// half when the number is greater than the half's last.
    private static func emit(_ numbers: ArraySlice<UInt32>, into out: inout [sock_filter], deny: UInt32) -> Bool {
        if numbers.count <= leafSize {
            // jeq n_i: jump to the allow at the end (past the later comparisons and the deny).
            for (i, n) in numbers.enumerated() {
                let jt = UInt8(numbers.count - i)
                out.append(sock_filter(code: jumpEqual, jt: jt, jf: 0, k: n))
            }
            out.append(sock_filter(code: returnConstant, jt: 0, jf: 0, k: deny))
            out.append(sock_filter(code: returnConstant, jt: 0, jf: 0, k: seccomp_shim_ret_allow))
            return true
        }
        let middle = numbers.startIndex + numbers.count / 2
        let lower = numbers[..<middle], upper = numbers[middle...]
        var lowerCode: [sock_filter] = []
        guard emit(lower, into: &lowerCode, deny: deny), lowerCode.count <= Int(UInt8.max),
              let last = lower.last else { return false }
        out.append(sock_filter(code: jumpGreater, jt: UInt8(lowerCode.count), jf: 0, k: last))
        out += lowerCode
        return emit(upper, into: &out, deny: deny)
    }
}
