// CCrypto: libcrypto (OpenSSL 3), loaded when a command first needs a digest or a cipher
// (a LUKS or AES-encrypted image, `ls --checksum`) rather than at start-up.
//
// Why lazily: libcrypto.so.3 is 4.5 MB with thousands of relocations; linked, every process
// maps and relocates it, `cat -a disk.img` as much as a LUKS mount: about 0.8 ms of each short
// command (`perf stat -e task-clock` of an empty program with and without -lcrypto). It is
// the same seam as CNbd (include/CNbd.h there says more): `ccrypto_load` dlopens the soname
// once with RTLD_NOW and resolves every function below; each `ccrypto_X` calls libcrypto's `X`
// with the same arguments (the OpenSSL 3 manual pages). Types and constants come from
// OpenSSL's headers. Callers load first (Block/Crypto/CryptoLibrary.swift), before the sandbox
// is entered: after it, Landlock would refuse to open the library file.
//
// The two helpers that need no library are ours: `ccrypto_cleanse` (explicit_bzero, which the
// compiler may not remove, as OPENSSL_cleanse) and `ccrypto_equal` (a comparison whose time
// does not depend on where the buffers differ, as CRYPTO_memcmp), so that key material can be
// wiped and compared by processes that never load libcrypto.
#ifndef CCRYPTO_H
#define CCRYPTO_H

#include <stddef.h>
#include <openssl/evp.h>

/// Loads libcrypto and resolves its functions; 0 on success (also on later calls), else -1 and
/// `*error` points at a static one-line message. Thread-safe.
int ccrypto_load(const char **error);

EVP_MD_CTX *ccrypto_EVP_MD_CTX_new(void);
void ccrypto_EVP_MD_CTX_free(EVP_MD_CTX *ctx);
int ccrypto_EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
int ccrypto_EVP_DigestInit_ex2(EVP_MD_CTX *ctx, const EVP_MD *type, const OSSL_PARAM params[]);
int ccrypto_EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt);
int ccrypto_EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s);
int ccrypto_EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
                       const EVP_MD *type, ENGINE *impl);
const EVP_MD *ccrypto_EVP_get_digestbyname(const char *name);
int ccrypto_EVP_MD_get_size(const EVP_MD *md);
int ccrypto_EVP_DecodeBlock(unsigned char *t, const unsigned char *f, int n);
int ccrypto_PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                              int iter, const EVP_MD *digest, int keylen, unsigned char *out);
EVP_CIPHER *ccrypto_EVP_CIPHER_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties);
void ccrypto_EVP_CIPHER_free(EVP_CIPHER *cipher);
EVP_CIPHER_CTX *ccrypto_EVP_CIPHER_CTX_new(void);
void ccrypto_EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *c);
int ccrypto_EVP_CIPHER_CTX_set_padding(EVP_CIPHER_CTX *c, int pad);
int ccrypto_EVP_CipherInit_ex2(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const unsigned char *key,
                               const unsigned char *iv, int enc, const OSSL_PARAM params[]);
int ccrypto_EVP_CipherUpdate(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl, const unsigned char *in, int inl);

/// Overwrites `length` bytes at `buffer` with zeros, in a way the compiler keeps.
void ccrypto_cleanse(void *buffer, size_t length);
/// 0 when the `length` bytes at `a` and `b` are equal, else non-zero; the time taken depends
/// only on `length`.
int ccrypto_equal(const void *a, const void *b, size_t length);

#endif
