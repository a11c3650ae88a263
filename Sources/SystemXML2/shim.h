// libxml2, for libvirt domain XML (-d DOMAIN) and inspect --xpath.
//
// Debian builds libxml2 with ICU, so encoding.h includes the system's <unicode/ucnv.h>; a
// Swift module that also sees Foundation's own ICU (_FoundationICU) then fails to build
// ("'UErrorCode' has different definitions in different modules"), depending on build order.
// Hiding LIBXML_ICU_ENABLED after xmlversion.h keeps ICU's headers out of this module. The only
// thing it changes is the tail of xmlCharEncodingHandler (two converter pointers), a struct
// Swift never touches here: the library itself is unchanged.
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

// xmlFree is a global function-pointer variable, which Swift 6's strict concurrency refuses
// to read; this accessor is the one place that reads it.
static inline void systemxml2_free(void *pointer) { xmlFree(pointer); }
