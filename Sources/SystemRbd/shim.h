// librbd and librados (Ceph, Debian's librbd-dev). They ship no pkg-config file, so the module
// map links -lrbd -lrados itself. Only Sources/GuestFS/Block/RBD imports this module
// (scripts/check-layers.sh).
#include <rados/librados.h>
#include <rbd/librbd.h>
