// See include/CXML2.h for why libxml2 is loaded here and not linked.
#include "CXML2.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// The libxml2 functions used, with their parameters and arguments; those returning void apart.
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

// Each pointer has the type of libxml2's own declaration, so its headers check the list.
#define CXML2_POINTER(name, ret, params, args) __typeof__(&name) name;
#define CXML2_VOID_POINTER(name, params, args) __typeof__(&name) name;
static struct {
    CXML2_FUNCTIONS(CXML2_POINTER) CXML2_VOID_FUNCTIONS(CXML2_VOID_POINTER)
    xmlFreeFunc *free;   // the address of libxml2's xmlFree variable
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error;
static char load_error_text[256];

static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (symbol == NULL && load_error == NULL) {
        snprintf(load_error_text, sizeof load_error_text, "libxml2.so.2 has no %s", name);
        load_error = load_error_text;
    }
    return symbol;
}

static void load(void) {
    // The soname (Debian's libxml2), not libxml2.so, which only libxml2-dev installs.
    void *library = dlopen("libxml2.so.2", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error_text, sizeof load_error_text, "domain XML and --xpath need libxml2 (libxml2.so.2): %s",
                 why ? why : "dlopen failed");
        load_error = load_error_text;
        return;
    }
#define CXML2_RESOLVE(name, ret, params, args) api.name = (__typeof__(&name))resolve(library, #name);
#define CXML2_VOID_RESOLVE(name, params, args) api.name = (__typeof__(&name))resolve(library, #name);
    CXML2_FUNCTIONS(CXML2_RESOLVE)
    CXML2_VOID_FUNCTIONS(CXML2_VOID_RESOLVE)
    api.free = (xmlFreeFunc *)resolve(library, "xmlFree");
}

int cxml2_load(const char **error) {
    pthread_once(&once, load);
    if (load_error != NULL) {
        if (error != NULL) *error = load_error;
        return -1;
    }
    return 0;
}

#define CXML2_FORWARD(name, ret, params, args) ret cxml2_##name params { return api.name args; }
#define CXML2_VOID_FORWARD(name, params, args) void cxml2_##name params { api.name args; }
CXML2_FUNCTIONS(CXML2_FORWARD)
CXML2_VOID_FUNCTIONS(CXML2_VOID_FORWARD)

void cxml2_free(void *pointer) { (*api.free)(pointer); }
