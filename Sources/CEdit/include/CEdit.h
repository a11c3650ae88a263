// CEdit: libedit (BSD editline, Debian's libedit2), for the shell's interactive prompt: line
// editing, history and completion, through libedit's readline-compatible entry points.
//
// Why lazily: only an interactive `imagemount shell` on a terminal uses it; linked, every
// process would map and relocate libedit and its libtinfo and libbsd. The seam is CNbd's
// (CLazyLibrary.h): `cedit_load` dlopens the soname once and resolves what is used. No header
// of libedit is included (libedit-dev is not needed): the functions and variables are reached
// through dlsym with the types libedit's readline.h gives them.
//
// The session initialises libedit before entering the sandbox (it reads terminfo and ~/.editrc);
// afterwards it only reads the terminal it already has open.
#ifndef CEDIT_H
#define CEDIT_H

/// Loads libedit.so.2; 0 on success (also on later calls), else -1 and `*error` points at a
/// static one-line message.
int cedit_load(const char **error);

/// rl_initialize, with `name` as rl_readline_name (for ~/.editrc's per-program settings) and
/// no character appended to a completion (a directory completes with its '/').
int cedit_initialize(const char *name);

/// readline: the line typed (malloc'd, without its newline; free with cedit_free), or NULL at
/// end of input.
char *cedit_readline(const char *prompt);
void cedit_free(void *pointer);

int cedit_add_history(const char *line);
void cedit_stifle_history(int max);

/// Completion: `generator(text, state)` as readline's rl_completion_entry_function (state 0
/// starts a new word; each call returns one malloc'd candidate, NULL after the last).
void cedit_set_completion(char *(*generator)(const char *text, int state));

/// The line being edited and the cursor's offset in it, while a completion runs.
const char *cedit_line_buffer(void);
int cedit_point(void);

#endif
