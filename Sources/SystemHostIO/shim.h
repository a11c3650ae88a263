// Host-side calls that Swift's Glibc module does not expose: extended attributes
// (<sys/xattr.h>) and device numbers (gnu_dev_makedev behind the makedev macro).
#include <sys/xattr.h>
#include <sys/sysmacros.h>
