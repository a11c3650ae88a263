// See include/CLazyLibrary.h.
#include "CLazyLibrary.h"

#include <dlfcn.h>
#include <stdio.h>

static void load(struct lazy_library *library) {
    void *handle = dlopen(library->soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        snprintf(library->error, sizeof library->error, "%s: %s", library->purpose, why ? why : "dlopen failed");
        library->state = -1;
        return;
    }
    for (size_t i = 0; i < library->count; i++) {
        library->slots[i] = dlsym(handle, library->names[i]);
        if (library->slots[i] == NULL) {
            snprintf(library->error, sizeof library->error, "%s has no %s", library->soname, library->names[i]);
            library->state = -1;
            return;
        }
    }
    library->state = 1;
}

int lazy_library_load(struct lazy_library *library, const char **error) {
    pthread_mutex_lock(&library->lock);
    if (library->state == 0) load(library);
    int state = library->state;
    pthread_mutex_unlock(&library->lock);
    if (state == 1) return 0;
    if (error != NULL) *error = library->error;
    return -1;
}
