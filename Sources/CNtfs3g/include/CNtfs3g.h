// CNtfs3g: the device that lets libntfs-3g read and write through imagemount's own block
// devices (raw files, qcow2 images, partitions, LVs) instead of a host path, plus the few
// accessors Swift cannot express.
//
// Why this is C: `struct ntfs_device_operations` (ntfs-3g/device.h) is a table of C function
// pointers that libntfs-3g keeps by address for the life of a volume, and the logging hook
// (ntfs-3g/logging.h) takes a va_list. MFT records and attribute records are packed structs
// with unions (ntfs-3g/layout.h) that Swift does not import field by field. The shim holds no
// policy: every device call becomes a byte range forwarded to the callback Swift registers,
// bounded to the device size first, so libntfs-3g never sees a read past the end.
//
// libntfs-3g is not thread-safe; every function here, like every libntfs-3g call, runs under
// the lock of the NTFS filesystem that owns the volume (NTFSVolume.swift). The captured log
// line is one per process and is read under that same lock right after the failing call.
#ifndef CNTFS3G_H
#define CNTFS3G_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <ntfs-3g/types.h>
#include <ntfs-3g/layout.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/reparse.h>
#include <ntfs-3g/unistr.h>
#include <ntfs-3g/logging.h>
#include <ntfs-3g/runlist.h>
#include <ntfs-3g/cache.h>
#include <ntfs-3g/logfile.h>
#include <ntfs-3g/security.h>
#include <ntfs-3g/ntfstime.h>

/// Reads `length` bytes at `offset` of the device behind `context` into `buffer`; returns 0 or
/// an errno value. The range is already within the device. Must not unwind.
typedef int (*cntfs3g_read_fn)(void *context, uint64_t offset, uint64_t length, void *buffer);

/// Writes `length` bytes from `buffer` at `offset` (already within the device); 0 or an errno.
typedef int (*cntfs3g_write_fn)(void *context, uint64_t offset, uint64_t length, const void *buffer);
/// Makes the device's earlier writes durable; 0 or an errno.
typedef int (*cntfs3g_flush_fn)(void *context);

/// Registers the Swift callbacks and routes libntfs-3g's log to the capture buffer.
/// Call once, before the first mount.
void cntfs3g_setup(cntfs3g_read_fn read, cntfs3g_write_fn write, cntfs3g_flush_fn flush);

/// An ntfs_device over `context` (`size` bytes), read-only unless `writable`: a read-only
/// device refuses an O_RDWR open and every write with EROFS, whatever libntfs-3g asks. NULL
/// with errno set on failure. `*private_data` receives our per-device state: free it with
/// `cntfs3g_private_free` once the device is gone. The device itself is freed by ntfs_umount
/// (volume.c), or by ntfs_device_free when ntfs_device_mount failed.
struct ntfs_device *cntfs3g_device_alloc(const char *name, void *context, uint64_t size, int writable, void **private_data);
void cntfs3g_private_free(void *private_data);

/// The last error or warning libntfs-3g logged since `cntfs3g_log_clear`, or "" (one line).
const char *cntfs3g_log_last(void);
void cntfs3g_log_clear(void);

/// Fields of the base MFT record (ntfs-3g/layout.h MFT_RECORD), which Swift cannot reach.
int cntfs3g_is_directory(const ntfs_inode *ni);
uint16_t cntfs3g_link_count(const ntfs_inode *ni);
uint32_t cntfs3g_file_attributes(const ntfs_inode *ni);

/// AT_UNNAMED and NTFS_INDEX_I30 (attrib.h, dir.h) by address: libntfs-3g compares the name
/// pointer with AT_UNNAMED to mean "the unnamed attribute", which an empty Swift buffer is not.
static inline ntfschar *cntfs3g_unnamed(void) { return AT_UNNAMED; }
static inline ntfschar *cntfs3g_index_i30(void) { return NTFS_INDEX_I30; }

/// NAttrNonResident() (attrib.h), a macro over the attribute's state bits.
static inline int cntfs3g_attr_non_resident(ntfs_attr *na) { return NAttrNonResident(na) ? 1 : 0; }

/// MREF() of ntfs-3g/layout.h: the MFT record number of a reference.
static inline uint64_t cntfs3g_mref(uint64_t reference) { return MREF(reference); }

/// Steps `ctx` to the next $DATA attribute of the inode (ntfs_attr_lookup, AT_DATA, any name);
/// 0 with its name (UTF-16LE units, not terminated) or -1 (errno ENOENT at the end).
int cntfs3g_next_data_attribute(ntfs_attr_search_ctx *ctx, const ntfschar **name, uint32_t *name_length);

/// NInoSetDirty() and NInoFileNameSetDirty() (inode.h), macros over the inode's state bits:
/// ntfs_inode_close writes the record (and the names' copies of its times and flags) back.
static inline void cntfs3g_inode_mark_dirty(ntfs_inode *ni) { NInoSetDirty(ni); NInoFileNameSetDirty(ni); }

/// lowntfs-3g's set_archive: a changed file gets FILE_ATTR_ARCHIVE (directories do not), as
/// Windows sets it for backup tools.
static inline void cntfs3g_set_archive(ntfs_inode *ni) {
    if (ni->mrec && (ni->mrec->flags & MFT_RECORD_IS_DIRECTORY)) return;
    if (!(ni->flags & FILE_ATTR_ARCHIVE)) { ni->flags |= FILE_ATTR_ARCHIVE; NInoSetDirty(ni); NInoFileNameSetDirty(ni); }
}

/// makedev() (sys/sysmacros.h), a macro, for ntfs_create_device.
static inline dev_t cntfs3g_makedev(uint32_t major, uint32_t minor) { return makedev(major, minor); }

/// Writes back the volume's own records libntfs-3g keeps dirty until ntfs_umount ($MFT,
/// $MFTMirr, $Bitmap: __ntfs_volume_release in volume.c), then syncs the device: what fsync
/// needs so that a crash after it leaves a volume ntfsfix accepts. 0 or -1 with errno.
int cntfs3g_volume_sync(ntfs_volume *vol);

/// ntfs_current_time() and timespec2ntfs() (ntfstime.h), static inlines Swift may not import.
static inline uint64_t cntfs3g_now(void) { return (uint64_t)ntfs_current_time(); }
static inline uint64_t cntfs3g_time(int64_t seconds, int32_t nanoseconds) {
    struct timespec t = { .tv_sec = (time_t)seconds, .tv_nsec = nanoseconds };
    return (uint64_t)timespec2ntfs(t);
}

/// Whether $LogFile is clean, as libntfs-3g's ntfs_volume_check_logfile (volume.c) decides a
/// rw mount: 0 clean, 1 unclean, 2 unclean with a version 2.0 restart page (Windows kept
/// metadata cached for Fast Startup, which no recovery may discard), -1 with errno when the
/// log cannot be read. Only reads.
int cntfs3g_logfile_state(ntfs_volume *vol);

#endif
