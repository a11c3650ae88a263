// CLazyLibrary: the loader the lazily loaded library shims share (CNbd, CCrypto, CXML2,
// CArchive, CRbd, CRpm; each header says why its library is loaded on first use instead of linked).
//
// A shim lists the functions it uses once (an X-macro), which gives it a struct of pointers
// typed by the library's own declarations and the names to resolve, in the same order. This
// loader dlopens the soname once (RTLD_NOW, so nothing is bound later, after the sandbox has
// closed the filesystem) and fills the struct with dlsym; it keeps the first failure as a
// one-line message. Writing dlsym's `void *` into function-pointer slots is what POSIX's dlsym
// documents; the slots are all pointers, so the struct has no padding between them.
#ifndef CLAZYLIBRARY_H
#define CLAZYLIBRARY_H

#include <pthread.h>
#include <stddef.h>

struct lazy_library {
    const char *soname;              // "libnbd.so.0": the soname, which the runtime package installs
    const char *purpose;             // "NBD needs libnbd (Debian's libnbd0)": starts the error line
    const char *const *names;        // what to resolve, in the order of `slots`
    void **slots;                    // the shim's struct of pointers
    size_t count;
    pthread_mutex_t lock;
    int state;                       // 0 not tried, 1 loaded, -1 failed
    char error[256];
};

/// The initialiser of a `struct lazy_library` for `slots` (a struct of pointers) and `names`.
#define LAZY_LIBRARY(soname, purpose, names, slots) \
    { soname, purpose, names, (void **)&(slots), sizeof(names) / sizeof((names)[0]), PTHREAD_MUTEX_INITIALIZER, 0, { 0 } }

/// Loads `library` once (later calls return the first result); 0 on success, else -1 and
/// `*error` points at the library's one-line message. Thread-safe.
int lazy_library_load(struct lazy_library *library, const char **error);

#endif
