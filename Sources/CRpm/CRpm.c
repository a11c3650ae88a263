// See include/CRpm.h for why this library is loaded here and not linked.
#include "CRpm.h"

#include <CLazyLibrary.h>

// The functions used, with their parameters and arguments.
#define CRPM_FUNCTIONS(X) \
    X(rpmReadConfigFiles, int, (const char *file, const char *target), (file, target)) \
    X(rpmPushMacro, int, (rpmMacroContext mc, const char *n, const char *o, const char *b, int level), (mc, n, o, b, level)) \
    X(rpmPopMacro, int, (rpmMacroContext mc, const char *n), (mc, n)) \
    X(rpmtsCreate, rpmts, (void), ()) \
    X(rpmtsFree, rpmts, (rpmts ts), (ts)) \
    X(rpmtsVSFlags, rpmVSFlags, (rpmts ts), (ts)) \
    X(rpmtsSetVSFlags, rpmVSFlags, (rpmts ts, rpmVSFlags vsflags), (ts, vsflags)) \
    X(rpmtsInitIterator, rpmdbMatchIterator, (const rpmts ts, rpmDbiTagVal rpmtag, const void *keyp, size_t keylen), (ts, rpmtag, keyp, keylen)) \
    X(rpmdbNextIterator, Header, (rpmdbMatchIterator mi), (mi)) \
    X(rpmdbFreeIterator, rpmdbMatchIterator, (rpmdbMatchIterator mi), (mi)) \
    X(headerFormat, char *, (Header h, const char *fmt, errmsg_t *errmsg), (h, fmt, errmsg)) \
    X(headerGetNumber, uint64_t, (Header h, rpmTagVal tag), (h, tag)) \
    X(rpmlogSetCallback, rpmlogCallback, (rpmlogCallback cb, rpmlogCallbackData data), (cb, data)) \
    X(rpmlogRecMessage, const char *, (rpmlogRec rec), (rec)) \
    X(rpmlogRecPriority, rpmlogLvl, (rpmlogRec rec), (rec))

// One pointer per function, typed by the library's own declaration (so its headers check the
// list), and the names to resolve in the same order (CLazyLibrary.h).
#define CRPM_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CRPM_NAME(name, ret, params, args) #name,
static struct { CRPM_FUNCTIONS(CRPM_POINTER) } api;
static const char *const names[] = { CRPM_FUNCTIONS(CRPM_NAME) };
static struct lazy_library library = LAZY_LIBRARY("librpm.so.9", "listing an RPM guest's applications needs librpm (librpm.so.9, Debian's librpm9)", names, api);

int crpm_load(const char **error) { return lazy_library_load(&library, error); }

#define CRPM_FORWARD(name, ret, params, args) ret crpm_##name params { return api.name args; }
CRPM_FUNCTIONS(CRPM_FORWARD)
