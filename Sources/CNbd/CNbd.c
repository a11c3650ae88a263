// See include/CNbd.h for why this library is loaded here and not linked.
#include "CNbd.h"

#include <CLazyLibrary.h>

// The functions used, with their parameters and arguments; those returning void apart (a void
// function may not `return` a void expression in C).
#define CNBD_FUNCTIONS(X) \
    X(nbd_create, struct nbd_handle *, (void), ()) \
    X(nbd_get_error, const char *, (void), ()) \
    X(nbd_get_errno, int, (void), ()) \
    X(nbd_set_uri_allow_transports, int, (struct nbd_handle *h, uint32_t mask), (h, mask)) \
    X(nbd_set_uri_allow_local_file, int, (struct nbd_handle *h, bool allow), (h, allow)) \
    X(nbd_set_handle_name, int, (struct nbd_handle *h, const char *name), (h, name)) \
    X(nbd_add_meta_context, int, (struct nbd_handle *h, const char *name), (h, name)) \
    X(nbd_can_meta_context, int, (struct nbd_handle *h, const char *name), (h, name)) \
    X(nbd_supports_tls, int, (struct nbd_handle *h), (h)) \
    X(nbd_aio_connect_uri, int, (struct nbd_handle *h, const char *uri), (h, uri)) \
    X(nbd_aio_is_connecting, int, (struct nbd_handle *h), (h)) \
    X(nbd_aio_is_ready, int, (struct nbd_handle *h), (h)) \
    X(nbd_aio_is_dead, int, (struct nbd_handle *h), (h)) \
    X(nbd_aio_is_closed, int, (struct nbd_handle *h), (h)) \
    X(nbd_poll, int, (struct nbd_handle *h, int timeout), (h, timeout)) \
    X(nbd_get_size, int64_t, (struct nbd_handle *h), (h)) \
    X(nbd_is_read_only, int, (struct nbd_handle *h), (h)) \
    X(nbd_get_block_size, int64_t, (struct nbd_handle *h, int size_type), (h, size_type)) \
    X(nbd_can_flush, int, (struct nbd_handle *h), (h)) \
    X(nbd_aio_pread, int64_t, (struct nbd_handle *h, void *buf, size_t count, uint64_t offset, \
                           nbd_completion_callback cb, uint32_t flags), (h, buf, count, offset, cb, flags)) \
    X(nbd_aio_pwrite, int64_t, (struct nbd_handle *h, const void *buf, size_t count, uint64_t offset, \
                            nbd_completion_callback cb, uint32_t flags), (h, buf, count, offset, cb, flags)) \
    X(nbd_aio_block_status, int64_t, (struct nbd_handle *h, uint64_t count, uint64_t offset, \
                                  nbd_extent_callback ecb, nbd_completion_callback cb, uint32_t flags), \
                                  (h, count, offset, ecb, cb, flags)) \
    X(nbd_aio_flush, int64_t, (struct nbd_handle *h, nbd_completion_callback cb, uint32_t flags), (h, cb, flags)) \
    X(nbd_aio_disconnect, int, (struct nbd_handle *h, uint32_t flags), (h, flags)) \
    X(nbd_aio_command_completed, int, (struct nbd_handle *h, uint64_t cookie), (h, cookie))
#define CNBD_VOID_FUNCTIONS(X) \
    X(nbd_close, (struct nbd_handle *h), (h))

// One pointer per function, typed by the library's own declaration (so its headers check the
// list), and the names to resolve in the same order (CLazyLibrary.h).
#define CNBD_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CNBD_VOID_POINTER(name, params, args) __typeof__(&name) name;
#define CNBD_NAME(name, ret, params, args) #name,
#define CNBD_VOID_NAME(name, params, args) #name,
static struct { CNBD_FUNCTIONS(CNBD_POINTER) CNBD_VOID_FUNCTIONS(CNBD_VOID_POINTER) } api;
static const char *const names[] = { CNBD_FUNCTIONS(CNBD_NAME) CNBD_VOID_FUNCTIONS(CNBD_VOID_NAME) };
static struct lazy_library library = LAZY_LIBRARY("libnbd.so.0", "NBD needs libnbd (libnbd.so.0, Debian's libnbd0)", names, api);

int cnbd_load(const char **error) { return lazy_library_load(&library, error); }

#define CNBD_FORWARD(name, ret, params, args) ret c##name params { return api.name args; }
#define CNBD_VOID_FORWARD(name, params, args) void c##name params { api.name args; }
CNBD_FUNCTIONS(CNBD_FORWARD)
CNBD_VOID_FUNCTIONS(CNBD_VOID_FORWARD)
