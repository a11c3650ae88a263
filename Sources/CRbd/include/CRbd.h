// CRbd: librbd and librados (Ceph), loaded when the first rbd: image is opened rather than at
// start-up.
//
// Why lazily: librbd.so.1 needs 30 more shared libraries (librados, Ceph's common code, Boost,
// libstdc++, crypto, RDMA, ...); linked, every imagemount process would map, relocate and
// initialise them, `cat -a disk.img` as much as `-a rbd:pool/image`. The seam is CNbd's (its
// header says more): `crbd_load` dlopens librbd's soname once with RTLD_NOW (librados comes
// with it as a dependency, and dlsym on librbd's handle finds both libraries' functions); each
// `crbd_X` calls librbd's or librados's `X` with the same arguments. Types and constants come
// from their headers. The connection is made before the sandbox is entered, so the load is too.
#ifndef CRBD_H
#define CRBD_H

#include <rados/librados.h>
#include <rbd/librbd.h>

/// Loads librbd.so.1 and resolves its functions; 0 on success (also on later calls), else -1 and
/// `*error` points at a static one-line message. Thread-safe.
int crbd_load(const char **error);

int crbd_rados_conf_read_file(rados_t cluster, const char *path);
int crbd_rados_conf_set(rados_t cluster, const char *option, const char *value);
int crbd_rados_connect(rados_t cluster);
int crbd_rados_create2(rados_t *pcluster, const char *const clustername, const char * const name, uint64_t flags);
int crbd_rados_ioctx_create(rados_t cluster, const char *pool_name, rados_ioctx_t *ioctx);
void crbd_rados_ioctx_destroy(rados_ioctx_t io);
void crbd_rados_ioctx_set_namespace(rados_ioctx_t io, const char *nspace);
void crbd_rados_shutdown(rados_t cluster);
int crbd_rbd_aio_create_completion(void *cb_arg, rbd_callback_t complete_cb, rbd_completion_t *c);
ssize_t crbd_rbd_aio_get_return_value(rbd_completion_t c);
int crbd_rbd_aio_is_complete(rbd_completion_t c);
int crbd_rbd_aio_read(rbd_image_t image, uint64_t off, size_t len, char *buf, rbd_completion_t c);
void crbd_rbd_aio_release(rbd_completion_t c);
int crbd_rbd_aio_wait_for_complete(rbd_completion_t c);
int crbd_rbd_aio_write(rbd_image_t image, uint64_t off, size_t len, const char *buf, rbd_completion_t c);
int crbd_rbd_close(rbd_image_t image);
int crbd_rbd_flush(rbd_image_t image);
int crbd_rbd_get_features(rbd_image_t image, uint64_t *features);
int crbd_rbd_get_size(rbd_image_t image, uint64_t *size);
int crbd_rbd_is_exclusive_lock_owner(rbd_image_t image, int *is_owner);
ssize_t crbd_rbd_list_lockers(rbd_image_t image, int *exclusive, char *tag, size_t *tag_len, char *clients, size_t *clients_len, char *cookies, size_t *cookies_len, char *addrs, size_t *addrs_len);
int crbd_rbd_lock_acquire(rbd_image_t image, rbd_lock_mode_t lock_mode);
int crbd_rbd_lock_release(rbd_image_t image);
int crbd_rbd_open(rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name);
int crbd_rbd_open_read_only(rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name);
int crbd_rbd_stat(rbd_image_t image, rbd_image_info_t *info, size_t infosize);
int crbd_rbd_watchers_list(rbd_image_t image, rbd_image_watcher_t *watchers, size_t *max_watchers);
void crbd_rbd_watchers_list_cleanup(rbd_image_watcher_t *watchers, size_t num_watchers);

#endif
