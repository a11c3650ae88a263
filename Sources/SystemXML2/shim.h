// libxml2, for libvirt domain XML (-d DOMAIN).
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

// xmlFree is a global function-pointer variable, which Swift 6's strict concurrency refuses
// to read; this accessor is the one place that reads it.
static inline void systemxml2_free(void *pointer) { xmlFree(pointer); }
