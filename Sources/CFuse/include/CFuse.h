// CFuse: the few pieces of libfuse3's low-level API (3.14, FUSE_USE_VERSION 314) that
// Swift cannot call directly.
//
// Why this is C: `fuse_session_loop_mt` is a macro that picks a versioned symbol
// (fuse_session_loop_mt_312 here), and the loop configuration is an opaque struct built
// through several calls; wrapping both in one function keeps the version choice in one
// place. `struct stat` and `struct fuse_entry_param` are plain structs Swift fills itself.
// Delete a wrapper when the macro it hides goes away.
#ifndef CFUSE_H
#define CFUSE_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

/// Run the multi-threaded session loop with at most `max_threads` workers.
/// Wraps fuse_session_loop_mt (a versioned macro) and fuse_loop_cfg_*.
int cfuse_session_loop_mt(struct fuse_session *se, unsigned int max_threads, int clone_fd);

/// mallopt(M_ARENA_MAX, arenas) for the serving process: <malloc.h> is not in Swift's Glibc
/// module. Returns mallopt's result (1 on success).
int cfuse_limit_malloc_arenas(int arenas);

#endif
