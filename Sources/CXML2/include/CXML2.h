// CXML2: libxml2, for libvirt domain XML (-d DOMAIN) and inspect --xpath, loaded when one of
// them first needs it rather than at start-up.
//
// Why lazily: Debian's libxml2 links ICU (libicuuc, libicudata) and liblzma, and ICU brings
// libstdc++'s relocations with it; linked, every process maps and relocates all of them, about
// 1 ms of each short command (`perf stat -e task-clock` of an empty program with and without
// -lxml2), for a library two options use. The seam is CNbd's (its header says more):
// `cxml2_load` dlopens the soname once with RTLD_NOW; each `cxml2_X` calls libxml2's `X`
// (libxml2's API documentation). Callers load first (before the sandbox: after it Landlock
// refuses to open the library file). A pkg-config module would link libxml2, so its headers
// are reached through include/libxml, a link to where libxml2-dev puts them (`pkg-config
// --cflags libxml-2.0` says /usr/include/libxml2), with a hand-written module map beside it.
//
// Debian builds libxml2 with ICU, so encoding.h includes the system's <unicode/ucnv.h>; a
// Swift module that also sees Foundation's own ICU (_FoundationICU) then fails to build
// ("'UErrorCode' has different definitions in different modules"), depending on build order.
// Hiding LIBXML_ICU_ENABLED after xmlversion.h keeps ICU's headers out of this module. The only
// thing it changes is the tail of xmlCharEncodingHandler (two converter pointers), a struct
// Swift never touches here: the library itself is unchanged.
#ifndef CXML2_H
#define CXML2_H

#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

/// Loads libxml2 and resolves its functions; 0 on success (also on later calls), else -1 and
/// `*error` points at a static one-line message. Thread-safe.
int cxml2_load(const char **error);

xmlDocPtr cxml2_xmlReadMemory(const char *buffer, int size, const char *URL, const char *encoding, int options);
void cxml2_xmlFreeDoc(xmlDocPtr cur);
xmlNodePtr cxml2_xmlDocGetRootElement(const xmlDoc *doc);
xmlChar *cxml2_xmlGetProp(const xmlNode *node, const xmlChar *name);
xmlXPathContextPtr cxml2_xmlXPathNewContext(xmlDocPtr doc);
void cxml2_xmlXPathFreeContext(xmlXPathContextPtr ctxt);
xmlXPathObjectPtr cxml2_xmlXPathEvalExpression(const xmlChar *str, xmlXPathContextPtr ctxt);
void cxml2_xmlXPathFreeObject(xmlXPathObjectPtr obj);
xmlChar *cxml2_xmlXPathCastToString(xmlXPathObjectPtr val);
xmlBufferPtr cxml2_xmlBufferCreate(void);
void cxml2_xmlBufferFree(xmlBufferPtr buf);
const xmlChar *cxml2_xmlBufferContent(const xmlBuffer *buf);
int cxml2_xmlNodeDump(xmlBufferPtr buf, xmlDocPtr doc, xmlNodePtr cur, int level, int format);
/// libxml2's deallocator for what it returns (`xmlFree`, a function-pointer variable there).
void cxml2_free(void *pointer);

#endif
