// See include/CNbd.h for why libnbd is loaded here and not linked.
#include "CNbd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// One line per libnbd function used: its name, return type and parameters (libnbd(3)). The
// list generates the pointer table, its dlsym lookups and the forwarding functions alike.
#define CNBD_FUNCTIONS(X) \
    X(create, struct nbd_handle *, (void), ()) \
    X(get_error, const char *, (void), ()) \
    X(get_errno, int, (void), ()) \
    X(set_uri_allow_transports, int, (struct nbd_handle *h, uint32_t mask), (h, mask)) \
    X(set_uri_allow_local_file, int, (struct nbd_handle *h, bool allow), (h, allow)) \
    X(set_handle_name, int, (struct nbd_handle *h, const char *name), (h, name)) \
    X(supports_tls, int, (struct nbd_handle *h), (h)) \
    X(aio_connect_uri, int, (struct nbd_handle *h, const char *uri), (h, uri)) \
    X(aio_is_connecting, int, (struct nbd_handle *h), (h)) \
    X(aio_is_ready, int, (struct nbd_handle *h), (h)) \
    X(aio_is_dead, int, (struct nbd_handle *h), (h)) \
    X(aio_is_closed, int, (struct nbd_handle *h), (h)) \
    X(poll, int, (struct nbd_handle *h, int timeout), (h, timeout)) \
    X(get_size, int64_t, (struct nbd_handle *h), (h)) \
    X(is_read_only, int, (struct nbd_handle *h), (h)) \
    X(get_block_size, int64_t, (struct nbd_handle *h, int size_type), (h, size_type)) \
    X(can_flush, int, (struct nbd_handle *h), (h)) \
    X(aio_pread, int64_t, (struct nbd_handle *h, void *buf, size_t count, uint64_t offset, \
                           nbd_completion_callback cb, uint32_t flags), (h, buf, count, offset, cb, flags)) \
    X(aio_pwrite, int64_t, (struct nbd_handle *h, const void *buf, size_t count, uint64_t offset, \
                            nbd_completion_callback cb, uint32_t flags), (h, buf, count, offset, cb, flags)) \
    X(aio_flush, int64_t, (struct nbd_handle *h, nbd_completion_callback cb, uint32_t flags), (h, cb, flags)) \
    X(aio_disconnect, int, (struct nbd_handle *h, uint32_t flags), (h, flags)) \
    X(aio_command_completed, int, (struct nbd_handle *h, uint64_t cookie), (h, cookie))

// Each pointer has the type of libnbd's own declaration, so <libnbd.h> checks the list.
#define CNBD_POINTER(name, ret, params, args) __typeof__(&nbd_##name) name;
static struct { CNBD_FUNCTIONS(CNBD_POINTER) __typeof__(&nbd_close) close; } api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error;
static char load_error_text[256];

static void load(void) {
    // The soname, not libnbd.so: the unversioned link exists only with libnbd-dev installed.
    void *library = dlopen("libnbd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error_text, sizeof load_error_text, "NBD needs libnbd (libnbd.so.0, Debian's libnbd0): %s",
                 why ? why : "dlopen failed");
        load_error = load_error_text;
        return;
    }
#define CNBD_RESOLVE(name, ret, params, args) \
    if ((api.name = (__typeof__(&nbd_##name))dlsym(library, "nbd_" #name)) == NULL) { \
        snprintf(load_error_text, sizeof load_error_text, "libnbd.so.0 has no nbd_%s", #name); \
        load_error = load_error_text; \
        return; \
    }
    CNBD_FUNCTIONS(CNBD_RESOLVE)
    if ((api.close = (__typeof__(&nbd_close))dlsym(library, "nbd_close")) == NULL) {
        snprintf(load_error_text, sizeof load_error_text, "libnbd.so.0 has no nbd_close");
        load_error = load_error_text;
    }
}

int cnbd_load(const char **error) {
    pthread_once(&once, load);
    if (load_error != NULL) {
        if (error != NULL) *error = load_error;
        return -1;
    }
    return 0;
}

#define CNBD_FORWARD(name, ret, params, args) ret cnbd_##name params { return api.name args; }
CNBD_FUNCTIONS(CNBD_FORWARD)

void cnbd_close(struct nbd_handle *h) { api.close(h); }
