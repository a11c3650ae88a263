// See include/CNtfs3g.h for why this file exists.
#include "CNtfs3g.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

// A private magic for our per-device data, checked before every dereference.
#define CNTFS3G_PRIVATE_MAGIC 0x696d6e74u /* "imnt" */

struct cntfs3g_private {
    uint32_t magic;
    void *context;
    uint64_t size;
    int64_t position;   // for the seek/read pair; libntfs-3g mostly uses pread
    int writable;
};

static cntfs3g_read_fn g_read;
static cntfs3g_write_fn g_write;
static cntfs3g_flush_fn g_flush;
static char g_log[512];

static struct cntfs3g_private *private_of(struct ntfs_device *dev) {
    if (!dev) return NULL;
    struct cntfs3g_private *p = dev->d_private;
    if (!p || p->magic != CNTFS3G_PRIVATE_MAGIC) return NULL;
    return p;
}

// Keeps the last error-or-worse line (libntfs-3g's own reason for refusing a volume), so the
// Swift caller can name it in its one-line error; everything else is dropped, as ntfs-3g does
// without its `debug` option.
static int log_capture(const char *function, const char *file, int line, u32 level, void *data,
                       const char *format, va_list args) {
    (void)function; (void)file; (void)line; (void)data;
    if (!(level & (NTFS_LOG_LEVEL_ERROR | NTFS_LOG_LEVEL_PERROR | NTFS_LOG_LEVEL_CRITICAL))) return 0;
    int n = vsnprintf(g_log, sizeof g_log, format, args);
    if (n < 0) { g_log[0] = 0; return 0; }
    // One line: cut at the first newline.
    char *nl = strchr(g_log, '\n');
    if (nl) *nl = 0;
    return n;
}

void cntfs3g_setup(cntfs3g_read_fn read, cntfs3g_write_fn write, cntfs3g_flush_fn flush) {
    g_read = read;
    g_write = write;
    g_flush = flush;
    ntfs_log_set_handler(log_capture);
    ntfs_log_set_levels(NTFS_LOG_LEVEL_ERROR | NTFS_LOG_LEVEL_PERROR | NTFS_LOG_LEVEL_CRITICAL);
}

const char *cntfs3g_log_last(void) { return g_log; }
void cntfs3g_log_clear(void) { g_log[0] = 0; }

static int dev_open(struct ntfs_device *dev, int flags) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p) { errno = EINVAL; return -1; }
    if ((flags & O_ACCMODE) != O_RDONLY && !p->writable) { errno = EROFS; return -1; }
    if (NDevOpen(dev)) { errno = EBUSY; return -1; }
    NDevSetOpen(dev);
    if ((flags & O_ACCMODE) == O_RDONLY) NDevSetReadOnly(dev); else NDevClearReadOnly(dev);
    return 0;
}

static int dev_close(struct ntfs_device *dev) {
    if (!private_of(dev)) { errno = EINVAL; return -1; }
    if (!NDevOpen(dev)) { errno = EBADF; return -1; }
    NDevClearOpen(dev);
    return 0;
}

static s64 dev_pread(struct ntfs_device *dev, void *buf, s64 count, s64 offset) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p || !buf || count < 0 || offset < 0) { errno = EINVAL; return -1; }
    // Bound to the device: libntfs-3g asks for what hostile metadata says; past the end is EOF.
    if ((uint64_t)offset >= p->size || count == 0) return 0;
    uint64_t n = p->size - (uint64_t)offset;
    if ((uint64_t)count < n) n = (uint64_t)count;
    int err = g_read ? g_read(p->context, (uint64_t)offset, n, buf) : EIO;
    if (err) { errno = err; return -1; }
    return (s64)n;
}

static s64 dev_seek(struct ntfs_device *dev, s64 offset, int whence) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p) { errno = EINVAL; return -1; }
    int64_t base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = p->position; break;
    case SEEK_END: base = (int64_t)p->size; break;
    default: errno = EINVAL; return -1;
    }
    int64_t to;
    if (__builtin_add_overflow(base, offset, &to) || to < 0) { errno = EINVAL; return -1; }
    p->position = to;
    return to;
}

static s64 dev_read(struct ntfs_device *dev, void *buf, s64 count) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p) { errno = EINVAL; return -1; }
    s64 n = dev_pread(dev, buf, count, p->position);
    if (n > 0) p->position += n;
    return n;
}

static s64 dev_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 offset) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p || !buf || count < 0 || offset < 0) { errno = EINVAL; return -1; }
    if (!p->writable || NDevReadOnly(dev)) { errno = EROFS; return -1; }
    if (count == 0) return 0;
    // A write past the end is refused, never shortened: libntfs-3g treats a short write of
    // metadata as an error anyway, and the device cannot grow.
    uint64_t end;
    if (__builtin_add_overflow((uint64_t)offset, (uint64_t)count, &end) || end > p->size) { errno = ENOSPC; return -1; }
    int err = g_write ? g_write(p->context, (uint64_t)offset, (uint64_t)count, buf) : EIO;
    if (err) { errno = err; return -1; }
    NDevSetDirty(dev);
    return count;
}

static s64 dev_write(struct ntfs_device *dev, const void *buf, s64 count) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p) { errno = EINVAL; return -1; }
    s64 n = dev_pwrite(dev, buf, count, p->position);
    if (n > 0) p->position += n;
    return n;
}

static int dev_sync(struct ntfs_device *dev) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p) { errno = EINVAL; return -1; }
    if (!p->writable || NDevReadOnly(dev)) return 0;
    int err = g_flush ? g_flush(p->context) : 0;
    if (err) { errno = err; return -1; }
    NDevClearDirty(dev);
    return 0;
}

static int dev_stat(struct ntfs_device *dev, struct stat *buf) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p || !buf) { errno = EINVAL; return -1; }
    memset(buf, 0, sizeof *buf);
    // A regular file, as an image file is: libntfs-3g then takes the size from st_size.
    buf->st_mode = S_IFREG | (p->writable ? 0644 : 0444);
    buf->st_size = (off_t)p->size;
    buf->st_blksize = 4096;
    buf->st_blocks = (blkcnt_t)(p->size / 512);
    return 0;
}

static int dev_ioctl(struct ntfs_device *dev, unsigned long request, void *argp) {
    struct cntfs3g_private *p = private_of(dev);
    if (!p || !argp) { errno = EINVAL; return -1; }
    switch (request) {
    case BLKGETSIZE64: *(uint64_t *)argp = p->size; return 0;
    case BLKSSZGET: *(int *)argp = 512; return 0;
    case BLKBSZSET: return 0;
    default: errno = ENOTTY; return -1;
    }
}

static struct ntfs_device_operations g_ops = {
    .open = dev_open,
    .close = dev_close,
    .seek = dev_seek,
    .read = dev_read,
    .write = dev_write,
    .pread = dev_pread,
    .pwrite = dev_pwrite,
    .sync = dev_sync,
    .stat = dev_stat,
    .ioctl = dev_ioctl,
};

struct ntfs_device *cntfs3g_device_alloc(const char *name, void *context, uint64_t size, int writable, void **private_data) {
    if (!private_data) { errno = EINVAL; return NULL; }
    if (size > (uint64_t)INT64_MAX) { errno = EFBIG; return NULL; }
    struct cntfs3g_private *p = calloc(1, sizeof *p);
    if (!p) { errno = ENOMEM; return NULL; }
    p->magic = CNTFS3G_PRIVATE_MAGIC;
    p->context = context;
    p->size = size;
    p->writable = writable ? 1 : 0;
    struct ntfs_device *dev = ntfs_device_alloc(name, 0, &g_ops, p);
    if (!dev) { free(p); return NULL; }
    *private_data = p;
    return dev;
}

void cntfs3g_private_free(void *private_data) {
    struct cntfs3g_private *p = private_data;
    if (!p || p->magic != CNTFS3G_PRIVATE_MAGIC) return;
    p->magic = 0;
    free(p);
}

int cntfs3g_is_directory(const ntfs_inode *ni) {
    return ni && ni->mrec && (ni->mrec->flags & MFT_RECORD_IS_DIRECTORY) != 0;
}

uint16_t cntfs3g_link_count(const ntfs_inode *ni) {
    return (ni && ni->mrec) ? le16_to_cpu(ni->mrec->link_count) : 0;
}

uint32_t cntfs3g_file_attributes(const ntfs_inode *ni) {
    return ni ? le32_to_cpu(ni->flags) : 0;
}

int cntfs3g_next_data_attribute(ntfs_attr_search_ctx *ctx, const ntfschar **name, uint32_t *name_length) {
    if (!ctx || !name || !name_length) { errno = EINVAL; return -1; }
    if (ntfs_attr_lookup(AT_DATA, NULL, 0, CASE_SENSITIVE, 0, NULL, 0, ctx)) return -1;
    ATTR_RECORD *a = ctx->attr;
    *name_length = a->name_length;
    *name = (const ntfschar *)((const u8 *)a + le16_to_cpu(a->name_offset));
    return 0;
}

int cntfs3g_logfile_state(ntfs_volume *vol) {
    if (!vol) { errno = EINVAL; return -1; }
    ntfs_inode *ni = ntfs_inode_open(vol, FILE_LogFile);
    if (!ni) return -1;
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na) { int e = errno; ntfs_inode_close(ni); errno = e; return -1; }
    RESTART_PAGE_HEADER *rp = NULL;
    int state = 0;
    if (!ntfs_check_logfile(na, &rp) || !ntfs_is_logfile_clean(na, rp)) state = 1;
    // A version 2.0 restart page: metadata cached by Windows (volume.c rejects it with EPERM
    // even under NTFS_MNT_RECOVER).
    if (rp && le16_to_cpu(rp->major_ver) == 2 && le16_to_cpu(rp->minor_ver) == 0) state = 2;
    free(rp);
    ntfs_attr_close(na);
    ntfs_inode_close(ni);
    return state;
}

int cntfs3g_volume_sync(ntfs_volume *vol) {
    if (!vol) { errno = EINVAL; return -1; }
    int failed = 0;
    ntfs_inode *records[] = { vol->mft_ni, vol->mftmirr_ni, vol->lcnbmp_ni };
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
        if (records[i] && NInoDirty(records[i]) && ntfs_inode_sync(records[i])) failed = 1;
    }
    if (ntfs_device_sync(vol->dev)) failed = 1;
    return failed ? -1 : 0;
}
