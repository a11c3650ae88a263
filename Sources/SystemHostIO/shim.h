// Host-side calls that Swift's Glibc module does not expose: extended attributes
// (<sys/xattr.h>), device numbers (gnu_dev_makedev behind the makedev macro), and system
// calls glibc 2.36 has no wrapper for, which Swift cannot reach through the variadic syscall(2).
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
