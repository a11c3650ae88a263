// Debian's libargon2 (the reference implementation from the Password Hashing Competition):
// LUKS2 argon2i/argon2id keyslots derive their key with it (LUKS2 On-Disk Format, "kdf").
#include <argon2.h>
