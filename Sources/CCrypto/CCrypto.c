// See include/CCrypto.h for why libcrypto is loaded here and not linked.
#define _DEFAULT_SOURCE   // explicit_bzero (glibc 2.25, string.h)
#include "CCrypto.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

// The libcrypto functions used, with their parameters and arguments. Functions returning void
// are listed apart (a void function may not `return` a void expression in C).
#define CCRYPTO_FUNCTIONS(X) \
    X(EVP_MD_CTX_new, EVP_MD_CTX *, (void), ()) \
    X(EVP_DigestInit_ex, int, (EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl), (ctx, type, impl)) \
    X(EVP_DigestInit_ex2, int, (EVP_MD_CTX *ctx, const EVP_MD *type, const OSSL_PARAM params[]), (ctx, type, params)) \
    X(EVP_DigestUpdate, int, (EVP_MD_CTX *ctx, const void *d, size_t cnt), (ctx, d, cnt)) \
    X(EVP_DigestFinal_ex, int, (EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s), (ctx, md, s)) \
    X(EVP_Digest, int, (const void *data, size_t count, unsigned char *md, unsigned int *size, \
                        const EVP_MD *type, ENGINE *impl), (data, count, md, size, type, impl)) \
    X(EVP_get_digestbyname, const EVP_MD *, (const char *name), (name)) \
    X(EVP_MD_get_size, int, (const EVP_MD *md), (md)) \
    X(EVP_DecodeBlock, int, (unsigned char *t, const unsigned char *f, int n), (t, f, n)) \
    X(PKCS5_PBKDF2_HMAC, int, (const char *pass, int passlen, const unsigned char *salt, int saltlen, \
                               int iter, const EVP_MD *digest, int keylen, unsigned char *out), \
      (pass, passlen, salt, saltlen, iter, digest, keylen, out)) \
    X(EVP_CIPHER_fetch, EVP_CIPHER *, (OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties), \
      (ctx, algorithm, properties)) \
    X(EVP_CIPHER_CTX_new, EVP_CIPHER_CTX *, (void), ()) \
    X(EVP_CIPHER_CTX_set_padding, int, (EVP_CIPHER_CTX *c, int pad), (c, pad)) \
    X(EVP_CipherInit_ex2, int, (EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const unsigned char *key, \
                                const unsigned char *iv, int enc, const OSSL_PARAM params[]), \
      (ctx, cipher, key, iv, enc, params)) \
    X(EVP_CipherUpdate, int, (EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl, const unsigned char *in, int inl), \
      (ctx, out, outl, in, inl))
#define CCRYPTO_VOID_FUNCTIONS(X) \
    X(EVP_MD_CTX_free, (EVP_MD_CTX *ctx), (ctx)) \
    X(EVP_CIPHER_free, (EVP_CIPHER *cipher), (cipher)) \
    X(EVP_CIPHER_CTX_free, (EVP_CIPHER_CTX *c), (c))

// Each pointer has the type of OpenSSL's own declaration, so its headers check the list.
#define CCRYPTO_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CCRYPTO_VOID_POINTER(name, params, args) __typeof__(&name) name;
static struct { CCRYPTO_FUNCTIONS(CCRYPTO_POINTER) CCRYPTO_VOID_FUNCTIONS(CCRYPTO_VOID_POINTER) } api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error;
static char load_error_text[256];

static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (symbol == NULL && load_error == NULL) {
        snprintf(load_error_text, sizeof load_error_text, "libcrypto.so.3 has no %s", name);
        load_error = load_error_text;
    }
    return symbol;
}

static void load(void) {
    // The soname (Debian's libssl3), not libcrypto.so, which only libssl-dev installs.
    void *library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error_text, sizeof load_error_text, "encryption and digests need libcrypto (libcrypto.so.3, Debian's libssl3): %s",
                 why ? why : "dlopen failed");
        load_error = load_error_text;
        return;
    }
#define CCRYPTO_RESOLVE(name, ret, params, args) api.name = (__typeof__(&name))resolve(library, #name);
#define CCRYPTO_VOID_RESOLVE(name, params, args) api.name = (__typeof__(&name))resolve(library, #name);
    CCRYPTO_FUNCTIONS(CCRYPTO_RESOLVE)
    CCRYPTO_VOID_FUNCTIONS(CCRYPTO_VOID_RESOLVE)
}

int ccrypto_load(const char **error) {
    pthread_once(&once, load);
    if (load_error != NULL) {
        if (error != NULL) *error = load_error;
        return -1;
    }
    return 0;
}

#define CCRYPTO_FORWARD(name, ret, params, args) ret ccrypto_##name params { return api.name args; }
#define CCRYPTO_VOID_FORWARD(name, params, args) void ccrypto_##name params { api.name args; }
CCRYPTO_FUNCTIONS(CCRYPTO_FORWARD)
CCRYPTO_VOID_FUNCTIONS(CCRYPTO_VOID_FORWARD)

void ccrypto_cleanse(void *buffer, size_t length) {
    explicit_bzero(buffer, length);
}

int ccrypto_equal(const void *a, const void *b, size_t length) {
    // Every byte is read whatever the earlier ones were; volatile keeps the loop whole.
    const volatile unsigned char *x = a, *y = b;
    unsigned char difference = 0;
    for (size_t i = 0; i < length; i++) difference |= x[i] ^ y[i];
    return difference;
}
