// libarchive (tar-in and tar-out, Sources/ImageMount/Tar): the headers as they are; only
// ImageMount/Tar imports this module (scripts/check-layers.sh).
#include <archive.h>
#include <archive_entry.h>
