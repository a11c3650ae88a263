// CArchive: libarchive, for tar-in and tar-out, loaded when one of them starts rather than at
// start-up.
//
// Why lazily: Debian's libarchive links libxml2 (and through it ICU and libstdc++), nettle,
// liblz4, libbz2, liblzma and libacl; linked, every imagemount process would map, relocate and
// initialise them, about 1.5 ms of every short command, for two commands. The seam is CNbd's
// (its header says more): `carchive_load` dlopens the soname once with RTLD_NOW; each
// `carchive_X` calls libarchive's `X` with the same arguments (libarchive's manual pages).
// Types and constants come from its headers. The commands load it before entering the sandbox,
// after which Landlock would refuse to open the library file.
#ifndef CARCHIVE_H
#define CARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

/// Loads libarchive.so.13 and resolves its functions; 0 on success (also on later calls), else -1 and
/// `*error` points at a static one-line message. Thread-safe.
int carchive_load(const char **error);

int carchive_archive_entry_acl_add_entry(struct archive_entry * a0, int a1, int a2, int a3, int a4, const char * a5);
int carchive_archive_entry_acl_next(struct archive_entry * a0, int a1, int * a2, int * a3, int * a4, int * a5, const char ** a6);
int carchive_archive_entry_acl_reset(struct archive_entry * a0, int a1);
struct archive_entry *carchive_archive_entry_clear(struct archive_entry * a0);
void carchive_archive_entry_copy_hardlink(struct archive_entry * a0, const char * a1);
void carchive_archive_entry_copy_pathname(struct archive_entry * a0, const char * a1);
void carchive_archive_entry_copy_symlink(struct archive_entry * a0, const char * a1);
void carchive_archive_entry_free(struct archive_entry * a0);
la_int64_t carchive_archive_entry_gid(struct archive_entry * a0);
const char *carchive_archive_entry_hardlink(struct archive_entry * a0);
__LA_MODE_T carchive_archive_entry_mode(struct archive_entry * a0);
time_t carchive_archive_entry_mtime(struct archive_entry * a0);
long carchive_archive_entry_mtime_nsec(struct archive_entry * a0);
struct archive_entry *carchive_archive_entry_new(void);
const char *carchive_archive_entry_pathname(struct archive_entry * a0);
dev_t carchive_archive_entry_rdevmajor(struct archive_entry * a0);
dev_t carchive_archive_entry_rdevminor(struct archive_entry * a0);
void carchive_archive_entry_set_atime(struct archive_entry * a0, time_t a1, long a2);
void carchive_archive_entry_set_gid(struct archive_entry * a0, la_int64_t a1);
void carchive_archive_entry_set_mode(struct archive_entry * a0, __LA_MODE_T a1);
void carchive_archive_entry_set_mtime(struct archive_entry * a0, time_t a1, long a2);
void carchive_archive_entry_set_rdevmajor(struct archive_entry * a0, dev_t a1);
void carchive_archive_entry_set_rdevminor(struct archive_entry * a0, dev_t a1);
void carchive_archive_entry_set_size(struct archive_entry * a0, la_int64_t a1);
void carchive_archive_entry_set_uid(struct archive_entry * a0, la_int64_t a1);
la_int64_t carchive_archive_entry_size(struct archive_entry * a0);
void carchive_archive_entry_sparse_add_entry(struct archive_entry * a0, la_int64_t a1, la_int64_t a2);
const char *carchive_archive_entry_symlink(struct archive_entry * a0);
la_int64_t carchive_archive_entry_uid(struct archive_entry * a0);
void carchive_archive_entry_xattr_add_entry(struct archive_entry * a0, const char * a1, const void * a2, size_t a3);
int carchive_archive_entry_xattr_next(struct archive_entry * a0, const char ** a1, const void ** a2, size_t * a3);
int carchive_archive_entry_xattr_reset(struct archive_entry * a0);
int carchive_archive_errno(struct archive * a0);
const char *carchive_archive_error_string(struct archive * a0);
la_int64_t carchive_archive_filter_bytes(struct archive * a0, int a1);
int carchive_archive_read_close(struct archive * a0);
int carchive_archive_read_data_block(struct archive *a, const void **buff, size_t *size, la_int64_t *offset);
int carchive_archive_read_free(struct archive * a0);
struct archive *carchive_archive_read_new(void);
int carchive_archive_read_next_header(struct archive * a0, struct archive_entry ** a1);
int carchive_archive_read_open_fd(struct archive * a0, int _fd, size_t _block_size);
int carchive_archive_read_support_filter_all(struct archive * a0);
int carchive_archive_read_support_filter_bzip2(struct archive * a0);
int carchive_archive_read_support_filter_compress(struct archive * a0);
int carchive_archive_read_support_filter_gzip(struct archive * a0);
int carchive_archive_read_support_filter_xz(struct archive * a0);
int carchive_archive_read_support_filter_zstd(struct archive * a0);
int carchive_archive_read_support_format_gnutar(struct archive * a0);
int carchive_archive_read_support_format_tar(struct archive * a0);
int carchive_archive_write_add_filter_bzip2(struct archive * a0);
int carchive_archive_write_add_filter_compress(struct archive * a0);
int carchive_archive_write_add_filter_gzip(struct archive * a0);
int carchive_archive_write_add_filter_xz(struct archive * a0);
int carchive_archive_write_add_filter_zstd(struct archive * a0);
int carchive_archive_write_close(struct archive * a0);
la_ssize_t carchive_archive_write_data(struct archive * a0, const void * a1, size_t a2);
int carchive_archive_write_free(struct archive * a0);
int carchive_archive_write_header(struct archive * a0, struct archive_entry * a1);
struct archive *carchive_archive_write_new(void);
int carchive_archive_write_open_fd(struct archive * a0, int _fd);
int carchive_archive_write_set_bytes_in_last_block(struct archive * a0, int bytes_in_last_block);
int carchive_archive_write_set_bytes_per_block(struct archive * a0, int bytes_per_block);
int carchive_archive_write_set_format_option(struct archive *_a, const char *m, const char *o, const char *v);
int carchive_archive_write_set_format_pax(struct archive * a0);

#endif
