// libseccomp (seccomp.h), for the syscall allowlist of the sandbox (ImageMount's Sandbox.swift).
// SCMP_ACT_ERRNO is a macro with an argument, which Swift cannot import: wrapped here.
#include <seccomp.h>

static inline uint32_t seccomp_shim_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
