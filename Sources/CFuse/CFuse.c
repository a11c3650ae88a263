// See include/CFuse.h for why this file exists.
#include "CFuse.h"
#include <malloc.h>

int cfuse_session_loop_mt(struct fuse_session *se, unsigned int max_threads, int clone_fd) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (!config) return -1;
    fuse_loop_cfg_set_clone_fd(config, (unsigned int)clone_fd);
    fuse_loop_cfg_set_max_threads(config, max_threads);
    fuse_loop_cfg_set_idle_threads(config, max_threads / 2 > 0 ? max_threads / 2 : 1);
    int rc = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return rc;
}

int cfuse_limit_malloc_arenas(int arenas) {
    return mallopt(M_ARENA_MAX, arenas);
}
