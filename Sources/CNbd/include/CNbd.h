// CNbd: libnbd, loaded when the first NBD connection is made rather than at start-up.
//
// Why this is C, and why lazily: libnbd links GnuTLS, and GnuTLS brings eight more shared
// libraries (p11-kit, nettle, hogweed, gmp, tasn1, idn2, unistring, ffi) and their
// constructors. Linked normally they are mapped, relocated and initialised by every
// imagemount process, for `cat -a disk.img` as much as for `-a nbd://`: about 1.5 ms of every
// short command (bench/before-after.sh; `perf stat` of `imagemount --version` with and
// without a DT_NEEDED entry for libnbd.so.0). Only a process that opens an NBD URI pays it now.
//
// The shim holds no policy: `cnbd_load` dlopens libnbd's soname once (RTLD_NOW, so nothing is
// bound later, after the sandbox has closed the filesystem) and resolves every function below;
// each `cnbd_X` then calls libnbd's `nbd_X` with the same arguments (libnbd(3) documents them).
// The types and constants still come from <libnbd.h>. Calling a `cnbd_X` before `cnbd_load`
// returned 0 is a programming error, which NBDConnection's initialiser rules out.
#ifndef CNBD_H
#define CNBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libnbd.h>

/// Loads libnbd and resolves its functions; 0 on success (also on later calls), else -1 and
/// `*error` points at a static one-line message. Thread-safe.
int cnbd_load(const char **error);

struct nbd_handle *cnbd_create(void);
void cnbd_close(struct nbd_handle *h);
const char *cnbd_get_error(void);
int cnbd_get_errno(void);
int cnbd_set_uri_allow_transports(struct nbd_handle *h, uint32_t mask);
int cnbd_set_uri_allow_local_file(struct nbd_handle *h, bool allow);
int cnbd_set_handle_name(struct nbd_handle *h, const char *name);
int cnbd_add_meta_context(struct nbd_handle *h, const char *name);
int cnbd_can_meta_context(struct nbd_handle *h, const char *name);
int cnbd_supports_tls(struct nbd_handle *h);
int cnbd_aio_connect_uri(struct nbd_handle *h, const char *uri);
int cnbd_aio_is_connecting(struct nbd_handle *h);
int cnbd_aio_is_ready(struct nbd_handle *h);
int cnbd_aio_is_dead(struct nbd_handle *h);
int cnbd_aio_is_closed(struct nbd_handle *h);
int cnbd_poll(struct nbd_handle *h, int timeout);
int64_t cnbd_get_size(struct nbd_handle *h);
int cnbd_is_read_only(struct nbd_handle *h);
int64_t cnbd_get_block_size(struct nbd_handle *h, int size_type);
int cnbd_can_flush(struct nbd_handle *h);
int64_t cnbd_aio_pread(struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
                       nbd_completion_callback completion_callback, uint32_t flags);
int64_t cnbd_aio_pwrite(struct nbd_handle *h, const void *buf, size_t count, uint64_t offset,
                        nbd_completion_callback completion_callback, uint32_t flags);
int64_t cnbd_aio_block_status(struct nbd_handle *h, uint64_t count, uint64_t offset,
                              nbd_extent_callback extent_callback,
                              nbd_completion_callback completion_callback, uint32_t flags);
int64_t cnbd_aio_flush(struct nbd_handle *h, nbd_completion_callback completion_callback, uint32_t flags);
int cnbd_aio_disconnect(struct nbd_handle *h, uint32_t flags);
int cnbd_aio_command_completed(struct nbd_handle *h, uint64_t cookie);

#endif
