/* version.c - the version handshake the Lisp side checks at load time. */
#include "internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

unsigned muproc_version(void) { return MUPROC_VERSION_HEX; }

const char *muproc_version_string(void) {
  return STR(MUPROC_VERSION_MAJOR) "." STR(MUPROC_VERSION_MINOR) "." STR(
      MUPROC_VERSION_PATCH);
}
