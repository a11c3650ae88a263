// hivex (libhivex-dev): Windows registry hives, for inspection of Windows guests
// (Sources/GuestFS/Inspect/Hive.swift is the only importer; scripts/check-layers.sh).
//
// hivex opens a hive by file name only. Inspection reads the hive's bytes through our own
// filesystem drivers and hands hivex an anonymous memory file (memfd_create(2)) as
// /proc/self/fd/N, so no guest bytes ever land in a host file. glibc declares memfd_create
// only under _GNU_SOURCE, and defining that here changes other glibc structs (fd_set) against
// Swift's Glibc module; the raw system call is the one place it is called.
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/memfd.h>
#include <iconv.h>
#include <hivex.h>

static inline int systemhivex_memfd(const char *name) { return (int) syscall(SYS_memfd_create, name, MFD_CLOEXEC); }

// hivex converts key and value names with iconv (lib/handle.c `_hivex_get_iconv`): UTF-16LE is
// built into glibc, but Latin-1 (the "compressed" names nearly every hive uses) is a gconv
// module glibc loads from disk on first use, which the sandbox's Landlock rules then forbid.
// Opening the converters once, before the sandbox, and keeping them open keeps the module
// loaded, so hivex's own iconv_open calls inside the sandbox find it in memory.
static inline int systemhivex_load_converters(void) {
    iconv_t a = iconv_open("LATIN1", "UTF-8"), b = iconv_open("UTF-8", "LATIN1");
    return a == (iconv_t) -1 || b == (iconv_t) -1 ? -1 : 0;
}
