// See include/CCrypto.h for why this library is loaded here and not linked.
#include "CCrypto.h"

#include <CLazyLibrary.h>
#define _DEFAULT_SOURCE   // explicit_bzero (glibc 2.25, string.h)
#include <string.h>

// The functions used, with their parameters and arguments; those returning void apart (a void
// function may not `return` a void expression in C).
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

// One pointer per function, typed by the library's own declaration (so its headers check the
// list), and the names to resolve in the same order (CLazyLibrary.h).
#define CCRYPTO_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CCRYPTO_VOID_POINTER(name, params, args) __typeof__(&name) name;
#define CCRYPTO_NAME(name, ret, params, args) #name,
#define CCRYPTO_VOID_NAME(name, params, args) #name,
static struct { CCRYPTO_FUNCTIONS(CCRYPTO_POINTER) CCRYPTO_VOID_FUNCTIONS(CCRYPTO_VOID_POINTER) } api;
static const char *const names[] = { CCRYPTO_FUNCTIONS(CCRYPTO_NAME) CCRYPTO_VOID_FUNCTIONS(CCRYPTO_VOID_NAME) };
static struct lazy_library library = LAZY_LIBRARY("libcrypto.so.3", "encryption and digests need libcrypto (libcrypto.so.3, Debian's libssl3)", names, api);

int ccrypto_load(const char **error) { return lazy_library_load(&library, error); }

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
