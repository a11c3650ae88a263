// Host-side calls that Swift's Glibc module does not expose: extended attributes
// (<sys/xattr.h>), device numbers (gnu_dev_makedev behind the makedev macro), and system
// calls glibc 2.36 has no wrapper for, which Swift cannot reach through the variadic syscall(2).
// No _GNU_SOURCE here: it changes glibc structs (fd_set) and a clean build then fails
// with module conflicts against CFuse. GNU-only values come from glibc's __ names.
#include <fcntl.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

/// openat2(2) (Linux >= 5.6): -1 with errno set on failure, ENOSYS on older kernels.
/// Delete when glibc wraps it.
static inline int hostio_openat2(int dirfd, const char *path, unsigned long long flags,
                                 unsigned long long mode, unsigned long long resolve) {
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (linux/openat2.h macros).
static const unsigned long long hostio_resolve_beneath_no_symlinks = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;

// Landlock (linux/landlock.h, Linux >= 5.13) and no_new_privs, for the sandbox the parsing
// process enters (ImageMount's Sandbox.swift). Thin syscall wrappers: glibc has none.
#include <linux/landlock.h>
#include <sys/prctl.h>

/// The Landlock ABI version the kernel speaks, or -1 (errno ENOSYS/EOPNOTSUPP) without Landlock.
static inline int hostio_landlock_abi(void) {
    return (int)syscall(SYS_landlock_create_ruleset, (void *)0, 0, LANDLOCK_CREATE_RULESET_VERSION);
}

/// A ruleset handling `handled_fs` (LANDLOCK_ACCESS_FS_* bits): a descriptor, or -1.
static inline int hostio_landlock_create_ruleset(unsigned long long handled_fs) {
    struct landlock_ruleset_attr attr = { .handled_access_fs = handled_fs };
    return (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
}

/// Allows `access` beneath the directory open as `dirfd`.
static inline int hostio_landlock_allow_beneath(int ruleset, int dirfd, unsigned long long access) {
    struct landlock_path_beneath_attr rule = { .allowed_access = access, .parent_fd = dirfd };
    return (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
}

static inline int hostio_landlock_restrict_self(int ruleset) {
    return (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1): no exec can gain privileges (and seccomp may be loaded).
static inline int hostio_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/// O_PATH (a GNU flag Swift's Glibc module leaves out): a descriptor that only names a place.
/// glibc defines __O_PATH unconditionally and O_PATH only under _GNU_SOURCE.
static const int hostio_o_path = __O_PATH;

/// The CPUs this process may run on, from the raw sched_getaffinity(2) (the glibc wrapper and
/// CPU_COUNT need _GNU_SOURCE); 1 when the call fails. A syscall, not /sys or /proc, so it
/// answers inside the sandbox too.
static inline int hostio_cpu_count(void) {
    unsigned long mask[16] = {0};
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (bytes <= 0) return 1;
    int count = 0;
    for (long i = 0; i < bytes / (long)sizeof mask[0]; i++) count += __builtin_popcountl(mask[i]);
    return count > 0 ? count : 1;
}
