// CRpm: librpm, for the applications of RPM guests (`inspect`), loaded when inspect starts
// rather than at start-up.
//
// Why lazily: librpm links librpmio, Lua, SQLite, popt, libcap and, through librpmio, a crypto
// library, zstd, lzma, bzip2 and libmagic's neighbours; linked, every imagemount process would
// map and relocate them for one command, and hosts without librpm9 could not run imagemount at
// all. The seam is CNbd's (CLazyLibrary.h says how): `crpm_load` dlopens librpm.so.9 once with
// RTLD_NOW; each `crpm_X` calls librpm's (or, through librpm's own dependencies, librpmio's) `X`
// with the same arguments (rpm's API documentation, /usr/include/rpm). inspect loads it before
// entering the sandbox, after which Landlock would refuse to open the library files and rpm's
// configuration (/usr/lib/rpm/rpmrc, macros).
//
// librpm only reads a database it is given by path: GuestFS/Inspect/RPMDatabase.swift copies
// the guest's rpmdb into a private directory first (its comment says why that is safe).
#ifndef CRPM_H
#define CRPM_H

#include <stdint.h>
#include <rpm/header.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmdb.h>
#include <rpm/rpmlog.h>
#include <rpm/rpmmacro.h>
#include <rpm/rpmtag.h>
#include <rpm/rpmts.h>

/// Loads librpm.so.9 and resolves its functions; 0 on success (also on later calls), else -1
/// and `*error` points at a static one-line message. Thread-safe.
int crpm_load(const char **error);

// Values of librpm's enums and macros Swift does not import as plain integers.
static const int32_t crpm_tag_epoch = RPMTAG_EPOCH;
static const int32_t crpm_dbi_packages = RPMDBI_PACKAGES;
static const int crpm_macro_level_cmdline = RMIL_CMDLINE;
static const int crpm_log_err = RPMLOG_ERR;
/// rpmts.h: signatures are not checked (libguestfs daemon/rpm-c.c does the same, RHBZ#2064182:
/// a guest's keys are not the host's); each header's own digests still are.
static const uint32_t crpm_vsflags_nosignatures = RPMVSF_MASK_NOSIGNATURES;

int crpm_rpmReadConfigFiles(const char *file, const char *target);
int crpm_rpmPushMacro(rpmMacroContext mc, const char *n, const char *o, const char *b, int level);
int crpm_rpmPopMacro(rpmMacroContext mc, const char *n);
rpmts crpm_rpmtsCreate(void);
rpmts crpm_rpmtsFree(rpmts ts);
rpmVSFlags crpm_rpmtsVSFlags(rpmts ts);
rpmVSFlags crpm_rpmtsSetVSFlags(rpmts ts, rpmVSFlags vsflags);
rpmdbMatchIterator crpm_rpmtsInitIterator(const rpmts ts, rpmDbiTagVal rpmtag, const void *keyp, size_t keylen);
Header crpm_rpmdbNextIterator(rpmdbMatchIterator mi);
rpmdbMatchIterator crpm_rpmdbFreeIterator(rpmdbMatchIterator mi);
char *crpm_headerFormat(Header h, const char *fmt, errmsg_t *errmsg);
uint64_t crpm_headerGetNumber(Header h, rpmTagVal tag);
rpmlogCallback crpm_rpmlogSetCallback(rpmlogCallback cb, rpmlogCallbackData data);
const char *crpm_rpmlogRecMessage(rpmlogRec rec);
rpmlogLvl crpm_rpmlogRecPriority(rpmlogRec rec);

#endif
