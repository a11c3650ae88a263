// See include/CEdit.h for why this file exists.
#include "CEdit.h"
#include "CLazyLibrary.h"
#include <stdlib.h>

// libedit's readline.h: functions, then variables (dlsym gives a variable's address).
static struct {
    char *(*readline)(const char *);
    int (*add_history)(const char *);
    int (*rl_initialize)(void);
    void (*stifle_history)(int);
    char **rl_line_buffer;
    int *rl_point;
    const char **rl_readline_name;
    int *rl_completion_append_character;
    char *(**rl_completion_entry_function)(const char *, int);
} api;
static const char *const names[] = {
    "readline", "add_history", "rl_initialize", "stifle_history", "rl_line_buffer", "rl_point",
    "rl_readline_name", "rl_completion_append_character", "rl_completion_entry_function",
};
static struct lazy_library library = LAZY_LIBRARY("libedit.so.2", "the shell's line editing needs libedit (libedit.so.2, Debian's libedit2)", names, api);

int cedit_load(const char **error) { return lazy_library_load(&library, error); }

int cedit_initialize(const char *name) {
    *api.rl_readline_name = name;
    int rc = api.rl_initialize();
    *api.rl_completion_append_character = 0;
    return rc;
}

char *cedit_readline(const char *prompt) { return api.readline(prompt); }
void cedit_free(void *pointer) { free(pointer); }
int cedit_add_history(const char *line) { return api.add_history(line); }
void cedit_stifle_history(int max) { api.stifle_history(max); }
void cedit_set_completion(char *(*generator)(const char *, int)) { *api.rl_completion_entry_function = generator; }
const char *cedit_line_buffer(void) { return *api.rl_line_buffer ? *api.rl_line_buffer : ""; }
int cedit_point(void) { return *api.rl_point; }
