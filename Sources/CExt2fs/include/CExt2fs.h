// CExt2fs: the io_manager that lets libext2fs read and write through imagemount's own
// block devices (raw files, qcow2 images, partitions, LVs) instead of a host path.
//
// Why this is C: `struct struct_io_manager` (ext2fs/ext2_io.h) is a table of C function
// pointers that libext2fs keeps by address for the life of a filesystem, and
// `struct struct_io_channel` must be allocated with libext2fs's own allocator because
// `ext2fs_close` frees parts of it. Both are easy in C and awkward in Swift 6 (a mutable
// global table trips strict concurrency). The shim holds no policy: every call is turned
// into a byte range and forwarded to the callbacks Swift registers once at start-up.
// It can go away if libext2fs ever gains a callback-based io_manager.
#ifndef CEXT2FS_H
#define CEXT2FS_H

#include <ext2fs/ext2fs.h>
#include <et/com_err.h>
#include <stdint.h>

/// Callbacks into Swift. `context` is the opaque pointer `open` returned for a channel.
/// Every callback returns 0 or an errcode_t (errno values or EXT2_ET_*); none may unwind.
typedef struct cext2fs_callbacks {
    /// Resolve the name given to ext2fs_open2 to a retained device context; NULL if unknown.
    void *(*open)(const char *name, int writable);
    /// Release the context returned by `open`.
    void (*close)(void *context);
    errcode_t (*read)(void *context, uint64_t offset, uint64_t length, void *buffer);
    errcode_t (*write)(void *context, uint64_t offset, uint64_t length, const void *buffer);
    errcode_t (*flush)(void *context);
} cext2fs_callbacks;

/// Register the Swift callbacks. Call once, before the first ext2fs_open2 on our manager.
void cext2fs_set_callbacks(const cext2fs_callbacks *callbacks);

/// The io_manager to pass to ext2fs_open2.
io_manager cext2fs_io_manager(void);

/// The device context behind an open channel (for diagnostics), or NULL.
void *cext2fs_channel_context(io_channel channel);

/// Accessors for fields behind macros or bitfields Swift cannot reach directly.
static inline struct ext2_super_block *cext2fs_super(ext2_filsys fs) { return fs->super; }
static inline unsigned int cext2fs_blocksize(ext2_filsys fs) { return fs->blocksize; }
static inline const char *cext2fs_error_message(errcode_t code) { return error_message(code); }

/// EXT2_ET_* codes Swift needs by value (they are enum members of a generated header).
static inline errcode_t cext2fs_err_unimplemented(void) { return EXT2_ET_UNIMPLEMENTED; }
static inline errcode_t cext2fs_err_bad_magic(void) { return EXT2_ET_BAD_MAGIC; }
static inline errcode_t cext2fs_err_base(void) { return EXT2_ET_BASE; }

#endif
