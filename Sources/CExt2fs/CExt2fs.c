// See include/CExt2fs.h for why this file exists.
#include "CExt2fs.h"
#include <string.h>
#include <errno.h>

// A private magic for our per-channel data, checked before every dereference,
// in the way lib/ext2fs/unix_io.c checks EXT2_ET_MAGIC_UNIX_IO_CHANNEL.
#define CEXT2FS_PRIVATE_MAGIC 0x696d6d74u /* "immt" */

struct cext2fs_private {
    uint32_t magic;
    void *context;
};

static cext2fs_callbacks g_callbacks;

void cext2fs_set_callbacks(const cext2fs_callbacks *callbacks) { g_callbacks = *callbacks; }

static struct cext2fs_private *private_of(io_channel channel) {
    if (!channel || channel->magic != EXT2_ET_MAGIC_IO_CHANNEL) return NULL;
    struct cext2fs_private *p = channel->private_data;
    if (!p || p->magic != CEXT2FS_PRIVATE_MAGIC) return NULL;
    return p;
}

void *cext2fs_channel_context(io_channel channel) {
    struct cext2fs_private *p = private_of(channel);
    return p ? p->context : NULL;
}

// ext2_io.h: a negative count is a byte count, a positive one a block count.
static uint64_t byte_length(io_channel channel, int count) {
    return count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * (uint64_t)channel->block_size;
}

static errcode_t shim_close(io_channel channel);
static errcode_t shim_set_blksize(io_channel channel, int blksize);
static errcode_t shim_read_blk64(io_channel channel, unsigned long long block, int count, void *data);
static errcode_t shim_write_blk64(io_channel channel, unsigned long long block, int count, const void *data);
static errcode_t shim_read_blk(io_channel channel, unsigned long block, int count, void *data);
static errcode_t shim_write_blk(io_channel channel, unsigned long block, int count, const void *data);
static errcode_t shim_flush(io_channel channel);
static errcode_t shim_write_byte(io_channel channel, unsigned long offset, int count, const void *data);
static errcode_t shim_set_option(io_channel channel, const char *option, const char *arg);
static errcode_t shim_open(const char *name, int flags, io_channel *channel);

static struct struct_io_manager g_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "imagemount block device",
    .open = shim_open,
    .close = shim_close,
    .set_blksize = shim_set_blksize,
    .read_blk = shim_read_blk,
    .write_blk = shim_write_blk,
    .flush = shim_flush,
    .write_byte = shim_write_byte,
    .set_option = shim_set_option,
    .read_blk64 = shim_read_blk64,
    .write_blk64 = shim_write_blk64,
};

io_manager cext2fs_io_manager(void) { return &g_manager; }

static errcode_t shim_open(const char *name, int flags, io_channel *channel) {
    if (!name || !g_callbacks.open) return EXT2_ET_BAD_DEVICE_NAME;
    io_channel io = NULL;
    struct cext2fs_private *p = NULL;
    errcode_t rc = ext2fs_get_mem(sizeof(struct struct_io_channel), &io);
    if (rc) return rc;
    memset(io, 0, sizeof(*io));
    rc = ext2fs_get_mem(sizeof(*p), &p);
    if (rc) goto fail;
    memset(p, 0, sizeof(*p));
    rc = ext2fs_get_mem(strlen(name) + 1, &io->name);
    if (rc) goto fail;
    strcpy(io->name, name);
    p->magic = CEXT2FS_PRIVATE_MAGIC;
    p->context = g_callbacks.open(name, (flags & IO_FLAG_RW) != 0);
    if (!p->context) { rc = EXT2_ET_BAD_DEVICE_NAME; goto fail; }
    io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
    io->manager = &g_manager;
    io->block_size = 1024;
    io->refcount = 1;
    io->private_data = p;
    *channel = io;
    return 0;
fail:
    if (io && io->name) ext2fs_free_mem(&io->name);
    if (p) ext2fs_free_mem(&p);
    if (io) ext2fs_free_mem(&io);
    return rc;
}

static errcode_t shim_close(io_channel channel) {
    struct cext2fs_private *p = private_of(channel);
    if (!p) return EXT2_ET_MAGIC_IO_CHANNEL;
    if (--channel->refcount > 0) return 0;
    if (g_callbacks.close) g_callbacks.close(p->context);
    p->magic = 0;
    ext2fs_free_mem(&channel->private_data);
    if (channel->name) ext2fs_free_mem(&channel->name);
    ext2fs_free_mem(&channel);
    return 0;
}

static errcode_t shim_set_blksize(io_channel channel, int blksize) {
    if (!private_of(channel)) return EXT2_ET_MAGIC_IO_CHANNEL;
    if (blksize <= 0) return EXT2_ET_INVALID_ARGUMENT;
    channel->block_size = blksize;
    return 0;
}

static errcode_t shim_read_blk64(io_channel channel, unsigned long long block, int count, void *data) {
    struct cext2fs_private *p = private_of(channel);
    if (!p) return EXT2_ET_MAGIC_IO_CHANNEL;
    return g_callbacks.read(p->context, (uint64_t)block * (uint64_t)channel->block_size,
                            byte_length(channel, count), data);
}

static errcode_t shim_write_blk64(io_channel channel, unsigned long long block, int count, const void *data) {
    struct cext2fs_private *p = private_of(channel);
    if (!p) return EXT2_ET_MAGIC_IO_CHANNEL;
    return g_callbacks.write(p->context, (uint64_t)block * (uint64_t)channel->block_size,
                             byte_length(channel, count), data);
}

static errcode_t shim_read_blk(io_channel channel, unsigned long block, int count, void *data) {
    return shim_read_blk64(channel, block, count, data);
}

static errcode_t shim_write_blk(io_channel channel, unsigned long block, int count, const void *data) {
    return shim_write_blk64(channel, block, count, data);
}

static errcode_t shim_write_byte(io_channel channel, unsigned long offset, int count, const void *data) {
    struct cext2fs_private *p = private_of(channel);
    if (!p) return EXT2_ET_MAGIC_IO_CHANNEL;
    if (count < 0) return EXT2_ET_INVALID_ARGUMENT;
    return g_callbacks.write(p->context, (uint64_t)offset, (uint64_t)count, data);
}

static errcode_t shim_flush(io_channel channel) {
    struct cext2fs_private *p = private_of(channel);
    if (!p) return EXT2_ET_MAGIC_IO_CHANNEL;
    return g_callbacks.flush(p->context);
}

static errcode_t shim_set_option(io_channel channel, const char *option, const char *arg) {
    (void)option; (void)arg;
    if (!private_of(channel)) return EXT2_ET_MAGIC_IO_CHANNEL;
    return EXT2_ET_INVALID_ARGUMENT;
}
