// See include/CArchive.h for why this library is loaded here and not linked.
#include "CArchive.h"

#include <CLazyLibrary.h>

// The functions used, with their parameters and arguments; those returning void apart (a void
// function may not `return` a void expression in C).
#define CARCHIVE_FUNCTIONS(X) \
    X(archive_entry_acl_add_entry, int, (struct archive_entry * a0, int a1, int a2, int a3, int a4, const char * a5), (a0, a1, a2, a3, a4, a5)) \
    X(archive_entry_acl_next, int, (struct archive_entry * a0, int a1, int * a2, int * a3, int * a4, int * a5, const char ** a6), (a0, a1, a2, a3, a4, a5, a6)) \
    X(archive_entry_acl_reset, int, (struct archive_entry * a0, int a1), (a0, a1)) \
    X(archive_entry_clear, struct archive_entry *, (struct archive_entry * a0), (a0)) \
    X(archive_entry_gid, la_int64_t, (struct archive_entry * a0), (a0)) \
    X(archive_entry_hardlink, const char *, (struct archive_entry * a0), (a0)) \
    X(archive_entry_mode, __LA_MODE_T, (struct archive_entry * a0), (a0)) \
    X(archive_entry_mtime, time_t, (struct archive_entry * a0), (a0)) \
    X(archive_entry_mtime_nsec, long, (struct archive_entry * a0), (a0)) \
    X(archive_entry_new, struct archive_entry *, (void), ()) \
    X(archive_entry_pathname, const char *, (struct archive_entry * a0), (a0)) \
    X(archive_entry_rdevmajor, dev_t, (struct archive_entry * a0), (a0)) \
    X(archive_entry_rdevminor, dev_t, (struct archive_entry * a0), (a0)) \
    X(archive_entry_size, la_int64_t, (struct archive_entry * a0), (a0)) \
    X(archive_entry_symlink, const char *, (struct archive_entry * a0), (a0)) \
    X(archive_entry_uid, la_int64_t, (struct archive_entry * a0), (a0)) \
    X(archive_entry_xattr_next, int, (struct archive_entry * a0, const char ** a1, const void ** a2, size_t * a3), (a0, a1, a2, a3)) \
    X(archive_entry_xattr_reset, int, (struct archive_entry * a0), (a0)) \
    X(archive_errno, int, (struct archive * a0), (a0)) \
    X(archive_error_string, const char *, (struct archive * a0), (a0)) \
    X(archive_filter_bytes, la_int64_t, (struct archive * a0, int a1), (a0, a1)) \
    X(archive_read_close, int, (struct archive * a0), (a0)) \
    X(archive_read_data_block, int, (struct archive *a, const void **buff, size_t *size, la_int64_t *offset), (a, buff, size, offset)) \
    X(archive_read_free, int, (struct archive * a0), (a0)) \
    X(archive_read_new, struct archive *, (void), ()) \
    X(archive_read_next_header, int, (struct archive * a0, struct archive_entry ** a1), (a0, a1)) \
    X(archive_read_open_fd, int, (struct archive * a0, int _fd, size_t _block_size), (a0, _fd, _block_size)) \
    X(archive_read_support_filter_all, int, (struct archive * a0), (a0)) \
    X(archive_read_support_filter_bzip2, int, (struct archive * a0), (a0)) \
    X(archive_read_support_filter_compress, int, (struct archive * a0), (a0)) \
    X(archive_read_support_filter_gzip, int, (struct archive * a0), (a0)) \
    X(archive_read_support_filter_xz, int, (struct archive * a0), (a0)) \
    X(archive_read_support_filter_zstd, int, (struct archive * a0), (a0)) \
    X(archive_read_support_format_gnutar, int, (struct archive * a0), (a0)) \
    X(archive_read_support_format_tar, int, (struct archive * a0), (a0)) \
    X(archive_write_add_filter_bzip2, int, (struct archive * a0), (a0)) \
    X(archive_write_add_filter_compress, int, (struct archive * a0), (a0)) \
    X(archive_write_add_filter_gzip, int, (struct archive * a0), (a0)) \
    X(archive_write_add_filter_xz, int, (struct archive * a0), (a0)) \
    X(archive_write_add_filter_zstd, int, (struct archive * a0), (a0)) \
    X(archive_write_close, int, (struct archive * a0), (a0)) \
    X(archive_write_data, la_ssize_t, (struct archive * a0, const void * a1, size_t a2), (a0, a1, a2)) \
    X(archive_write_free, int, (struct archive * a0), (a0)) \
    X(archive_write_header, int, (struct archive * a0, struct archive_entry * a1), (a0, a1)) \
    X(archive_write_new, struct archive *, (void), ()) \
    X(archive_write_open_fd, int, (struct archive * a0, int _fd), (a0, _fd)) \
    X(archive_write_set_bytes_in_last_block, int, (struct archive * a0, int bytes_in_last_block), (a0, bytes_in_last_block)) \
    X(archive_write_set_bytes_per_block, int, (struct archive * a0, int bytes_per_block), (a0, bytes_per_block)) \
    X(archive_write_set_format_option, int, (struct archive *_a, const char *m, const char *o, const char *v), (_a, m, o, v)) \
    X(archive_write_set_format_pax, int, (struct archive * a0), (a0))
#define CARCHIVE_VOID_FUNCTIONS(X) \
    X(archive_entry_copy_hardlink, (struct archive_entry * a0, const char * a1), (a0, a1)) \
    X(archive_entry_copy_pathname, (struct archive_entry * a0, const char * a1), (a0, a1)) \
    X(archive_entry_copy_symlink, (struct archive_entry * a0, const char * a1), (a0, a1)) \
    X(archive_entry_free, (struct archive_entry * a0), (a0)) \
    X(archive_entry_set_atime, (struct archive_entry * a0, time_t a1, long a2), (a0, a1, a2)) \
    X(archive_entry_set_gid, (struct archive_entry * a0, la_int64_t a1), (a0, a1)) \
    X(archive_entry_set_mode, (struct archive_entry * a0, __LA_MODE_T a1), (a0, a1)) \
    X(archive_entry_set_mtime, (struct archive_entry * a0, time_t a1, long a2), (a0, a1, a2)) \
    X(archive_entry_set_rdevmajor, (struct archive_entry * a0, dev_t a1), (a0, a1)) \
    X(archive_entry_set_rdevminor, (struct archive_entry * a0, dev_t a1), (a0, a1)) \
    X(archive_entry_set_size, (struct archive_entry * a0, la_int64_t a1), (a0, a1)) \
    X(archive_entry_set_uid, (struct archive_entry * a0, la_int64_t a1), (a0, a1)) \
    X(archive_entry_sparse_add_entry, (struct archive_entry * a0, la_int64_t a1, la_int64_t a2), (a0, a1, a2)) \
    X(archive_entry_xattr_add_entry, (struct archive_entry * a0, const char * a1, const void * a2, size_t a3), (a0, a1, a2, a3))

// One pointer per function, typed by the library's own declaration (so its headers check the
// list), and the names to resolve in the same order (CLazyLibrary.h).
#define CARCHIVE_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CARCHIVE_VOID_POINTER(name, params, args) __typeof__(&name) name;
#define CARCHIVE_NAME(name, ret, params, args) #name,
#define CARCHIVE_VOID_NAME(name, params, args) #name,
static struct { CARCHIVE_FUNCTIONS(CARCHIVE_POINTER) CARCHIVE_VOID_FUNCTIONS(CARCHIVE_VOID_POINTER) } api;
static const char *const names[] = { CARCHIVE_FUNCTIONS(CARCHIVE_NAME) CARCHIVE_VOID_FUNCTIONS(CARCHIVE_VOID_NAME) };
static struct lazy_library library = LAZY_LIBRARY("libarchive.so.13", "tar-in and tar-out need libarchive (libarchive.so.13, Debian's libarchive13)", names, api);

int carchive_load(const char **error) { return lazy_library_load(&library, error); }

#define CARCHIVE_FORWARD(name, ret, params, args) ret carchive_##name params { return api.name args; }
#define CARCHIVE_VOID_FORWARD(name, params, args) void carchive_##name params { api.name args; }
CARCHIVE_FUNCTIONS(CARCHIVE_FORWARD)
CARCHIVE_VOID_FUNCTIONS(CARCHIVE_VOID_FORWARD)
