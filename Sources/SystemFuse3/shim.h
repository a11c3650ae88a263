// libfuse3 low-level API, version 3.14 (Debian 12). FUSE_USE_VERSION must be set before the
// include, so it is set here, once, for every Swift and C user of the library.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
