// See include/CXML2.h for why this library is loaded here and not linked.
#include "CXML2.h"

#include <CLazyLibrary.h>

// The functions used, with their parameters and arguments; those returning void apart (a void
// function may not `return` a void expression in C).
#define CXML2_FUNCTIONS(X) \
    X(xmlReadMemory, xmlDocPtr, (const char *buffer, int size, const char *URL, const char *encoding, int options), \
      (buffer, size, URL, encoding, options)) \
    X(xmlDocGetRootElement, xmlNodePtr, (const xmlDoc *doc), (doc)) \
    X(xmlGetProp, xmlChar *, (const xmlNode *node, const xmlChar *name), (node, name)) \
    X(xmlXPathNewContext, xmlXPathContextPtr, (xmlDocPtr doc), (doc)) \
    X(xmlXPathEvalExpression, xmlXPathObjectPtr, (const xmlChar *str, xmlXPathContextPtr ctxt), (str, ctxt)) \
    X(xmlXPathCastToString, xmlChar *, (xmlXPathObjectPtr val), (val)) \
    X(xmlBufferCreate, xmlBufferPtr, (void), ()) \
    X(xmlBufferContent, const xmlChar *, (const xmlBuffer *buf), (buf)) \
    X(xmlNodeDump, int, (xmlBufferPtr buf, xmlDocPtr doc, xmlNodePtr cur, int level, int format), \
      (buf, doc, cur, level, format))
#define CXML2_VOID_FUNCTIONS(X) \
    X(xmlFreeDoc, (xmlDocPtr cur), (cur)) \
    X(xmlXPathFreeContext, (xmlXPathContextPtr ctxt), (ctxt)) \
    X(xmlXPathFreeObject, (xmlXPathObjectPtr obj), (obj)) \
    X(xmlBufferFree, (xmlBufferPtr buf), (buf))

// One pointer per function, typed by the library's own declaration (so its headers check the
// list), and the names to resolve in the same order (CLazyLibrary.h).
#define CXML2_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CXML2_VOID_POINTER(name, params, args) __typeof__(&name) name;
#define CXML2_NAME(name, ret, params, args) #name,
#define CXML2_VOID_NAME(name, params, args) #name,
static struct { CXML2_FUNCTIONS(CXML2_POINTER) CXML2_VOID_FUNCTIONS(CXML2_VOID_POINTER) xmlFreeFunc *free_function; } api;
static const char *const names[] = { CXML2_FUNCTIONS(CXML2_NAME) CXML2_VOID_FUNCTIONS(CXML2_VOID_NAME) "xmlFree" };
static struct lazy_library library = LAZY_LIBRARY("libxml2.so.2", "domain XML and --xpath need libxml2 (libxml2.so.2)", names, api);

int cxml2_load(const char **error) { return lazy_library_load(&library, error); }

#define CXML2_FORWARD(name, ret, params, args) ret cxml2_##name params { return api.name args; }
#define CXML2_VOID_FORWARD(name, params, args) void cxml2_##name params { api.name args; }
CXML2_FUNCTIONS(CXML2_FORWARD)
CXML2_VOID_FUNCTIONS(CXML2_VOID_FORWARD)

// xmlFree is a variable in libxml2 (a pointer to its deallocator): the slot holds its address.
void cxml2_free(void *pointer) { (*api.free_function)(pointer); }
