// See include/CRbd.h for why this library is loaded here and not linked.
#include "CRbd.h"

#include <CLazyLibrary.h>

// The functions used, with their parameters and arguments; those returning void apart (a void
// function may not `return` a void expression in C).
#define CRBD_FUNCTIONS(X) \
    X(rados_conf_read_file, int, (rados_t cluster, const char *path), (cluster, path)) \
    X(rados_conf_set, int, (rados_t cluster, const char *option, const char *value), (cluster, option, value)) \
    X(rados_connect, int, (rados_t cluster), (cluster)) \
    X(rados_create2, int, (rados_t *pcluster, const char *const clustername, const char * const name, uint64_t flags), (pcluster, clustername, name, flags)) \
    X(rados_ioctx_create, int, (rados_t cluster, const char *pool_name, rados_ioctx_t *ioctx), (cluster, pool_name, ioctx)) \
    X(rbd_aio_create_completion, int, (void *cb_arg, rbd_callback_t complete_cb, rbd_completion_t *c), (cb_arg, complete_cb, c)) \
    X(rbd_aio_get_return_value, ssize_t, (rbd_completion_t c), (c)) \
    X(rbd_aio_is_complete, int, (rbd_completion_t c), (c)) \
    X(rbd_aio_read, int, (rbd_image_t image, uint64_t off, size_t len, char *buf, rbd_completion_t c), (image, off, len, buf, c)) \
    X(rbd_aio_wait_for_complete, int, (rbd_completion_t c), (c)) \
    X(rbd_aio_write, int, (rbd_image_t image, uint64_t off, size_t len, const char *buf, rbd_completion_t c), (image, off, len, buf, c)) \
    X(rbd_close, int, (rbd_image_t image), (image)) \
    X(rbd_flush, int, (rbd_image_t image), (image)) \
    X(rbd_get_features, int, (rbd_image_t image, uint64_t *features), (image, features)) \
    X(rbd_get_size, int, (rbd_image_t image, uint64_t *size), (image, size)) \
    X(rbd_is_exclusive_lock_owner, int, (rbd_image_t image, int *is_owner), (image, is_owner)) \
    X(rbd_list_lockers, ssize_t, (rbd_image_t image, int *exclusive, char *tag, size_t *tag_len, char *clients, size_t *clients_len, char *cookies, size_t *cookies_len, char *addrs, size_t *addrs_len), (image, exclusive, tag, tag_len, clients, clients_len, cookies, cookies_len, addrs, addrs_len)) \
    X(rbd_lock_acquire, int, (rbd_image_t image, rbd_lock_mode_t lock_mode), (image, lock_mode)) \
    X(rbd_lock_release, int, (rbd_image_t image), (image)) \
    X(rbd_open, int, (rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name), (io, name, image, snap_name)) \
    X(rbd_open_read_only, int, (rados_ioctx_t io, const char *name, rbd_image_t *image, const char *snap_name), (io, name, image, snap_name)) \
    X(rbd_stat, int, (rbd_image_t image, rbd_image_info_t *info, size_t infosize), (image, info, infosize)) \
    X(rbd_watchers_list, int, (rbd_image_t image, rbd_image_watcher_t *watchers, size_t *max_watchers), (image, watchers, max_watchers))
#define CRBD_VOID_FUNCTIONS(X) \
    X(rados_ioctx_destroy, (rados_ioctx_t io), (io)) \
    X(rados_ioctx_set_namespace, (rados_ioctx_t io, const char *nspace), (io, nspace)) \
    X(rados_shutdown, (rados_t cluster), (cluster)) \
    X(rbd_aio_release, (rbd_completion_t c), (c)) \
    X(rbd_watchers_list_cleanup, (rbd_image_watcher_t *watchers, size_t num_watchers), (watchers, num_watchers))

// One pointer per function, typed by the library's own declaration (so its headers check the
// list), and the names to resolve in the same order (CLazyLibrary.h).
#define CRBD_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CRBD_VOID_POINTER(name, params, args) __typeof__(&name) name;
#define CRBD_NAME(name, ret, params, args) #name,
#define CRBD_VOID_NAME(name, params, args) #name,
static struct { CRBD_FUNCTIONS(CRBD_POINTER) CRBD_VOID_FUNCTIONS(CRBD_VOID_POINTER) } api;
static const char *const names[] = { CRBD_FUNCTIONS(CRBD_NAME) CRBD_VOID_FUNCTIONS(CRBD_VOID_NAME) };
static struct lazy_library library = LAZY_LIBRARY("librbd.so.1", "rbd: images need librbd (librbd.so.1, Debian's librbd1)", names, api);

int crbd_load(const char **error) { return lazy_library_load(&library, error); }

#define CRBD_FORWARD(name, ret, params, args) ret crbd_##name params { return api.name args; }
#define CRBD_VOID_FORWARD(name, params, args) void crbd_##name params { api.name args; }
CRBD_FUNCTIONS(CRBD_FORWARD)
CRBD_VOID_FUNCTIONS(CRBD_VOID_FORWARD)
