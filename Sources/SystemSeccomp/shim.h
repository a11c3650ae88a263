// libseccomp (seccomp.h), for the syscall allowlist of the sandbox (ImageMount's Sandbox.swift):
// its generator is the fallback when our own BPF program cannot be built, and its resolver
// checks, in the tests, the syscall numbers sys/syscall.h gives the allowlist. SCMP_ACT_ERRNO is a macro with an
// argument, which Swift cannot import: wrapped here. The filter itself is a classic BPF program
// Sandbox+Filter.swift builds; installing it is one prctl (linux/seccomp.h, linux/filter.h).
#include <seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#include <sys/syscall.h>

static inline uint32_t seccomp_shim_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }

/// SECCOMP_RET_ALLOW and SECCOMP_RET_ERRNO | errno (linux/seccomp.h).
static const uint32_t seccomp_shim_ret_allow = SECCOMP_RET_ALLOW;
static inline uint32_t seccomp_shim_ret_errno(uint16_t e) { return SECCOMP_RET_ERRNO | e; }

/// The AUDIT_ARCH_* value of the architecture this is compiled for (struct seccomp_data's
/// arch), what libseccomp's seccomp_arch_native() returns, without a call.
#if defined(__x86_64__)
static const uint32_t seccomp_shim_audit_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
static const uint32_t seccomp_shim_audit_arch = AUDIT_ARCH_AARCH64;
#else
#error "the sandbox's syscall filter knows only x86_64 and aarch64"
#endif

/// Offsets of struct seccomp_data's nr and arch, for BPF_LD|BPF_W|BPF_ABS.
static const uint32_t seccomp_shim_offset_nr = offsetof(struct seccomp_data, nr);
static const uint32_t seccomp_shim_offset_arch = offsetof(struct seccomp_data, arch);

/// Installs `count` BPF instructions as this thread's seccomp filter (no_new_privs must be set).
static inline int seccomp_shim_install(const struct sock_filter *filter, unsigned short count) {
    struct sock_fprog program = { .len = count, .filter = (struct sock_filter *)filter };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0);
}

/// The same filter for every thread of the process at once (seccomp(2),
/// SECCOMP_FILTER_FLAG_TSYNC): for threads a library started before the sandbox (librados's).
/// 0 on success; -1 with errno, or the id of a thread that could not be synchronized.
static inline long seccomp_shim_install_all_threads(const struct sock_filter *filter, unsigned short count) {
    struct sock_fprog program = { .len = count, .filter = (struct sock_filter *)filter };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
}
