#!/bin/sh
# check-symbols.sh - the exported surface of libmuproc must not drift.
#
# Compares the functions exported by the built library (nm -D --defined-only,
# type T) with c/symbols.txt (one name per line), and c/symbols.txt with the
# MUPROC_API declarations of c/muproc.h.  Prints TAP.  Run by `make check`,
# which sets MUPROC_LIBDIR (the built c/.libs) and MUPROC_SRCDIR.
#
#   check-symbols.sh                       run the checks (TAP on stdout)
#   check-symbols.sh --header-symbols H    print the MUPROC_API functions
#                                          declared in header H, sorted
#                                          (`make update-symbols` uses it)

LC_ALL=C
export LC_ALL

# Names of the functions declared "MUPROC_API ... name(" in header $1.
header_symbols () {
  sed -n 's/^[[:space:]]*MUPROC_API[[:space:]][^(]*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' "$1" |
    sort -u
}

if test "$1" = --header-symbols; then
  test -n "$2" || { echo "usage: $0 --header-symbols HEADER" >&2; exit 2; }
  header_symbols "$2"
  exit $?
fi

srcdir=${MUPROC_SRCDIR:-$(dirname "$0")/../..}
libdir=${MUPROC_LIBDIR:-c/.libs}
symbols=$srcdir/c/symbols.txt
header=$srcdir/c/muproc.h

lib=
for f in "$libdir/libmuproc.so" "$libdir/libmuproc.so.0"; do
  if test -f "$f"; then lib=$f; break; fi
done

echo "1..3"
if test -z "$lib"; then
  echo "Bail out! no libmuproc.so in $libdir (set MUPROC_LIBDIR)"
  exit 1
fi
for f in "$symbols" "$header"; do
  if test ! -r "$f"; then
    echo "Bail out! cannot read $f"
    exit 1
  fi
done

tmp=${TMPDIR:-/tmp}/check-symbols.$$
mkdir "$tmp" || { echo "Bail out! cannot create $tmp"; exit 1; }
trap 'rm -rf "$tmp"' 0
trap 'exit 1' HUP INT PIPE TERM

# ${NM} may be "nm -B" (from libtool): leave it unquoted.
if ! ${NM:-nm} -D --defined-only "$lib" >"$tmp/nm.out" 2>"$tmp/nm.err"; then
  echo "Bail out! nm -D --defined-only $lib failed: $(head -n 1 "$tmp/nm.err")"
  exit 1
fi
awk '$(NF-1) == "T" { print $NF }' "$tmp/nm.out" | sed 's/@.*//' | sort -u >"$tmp/exported"
grep -v '^[[:space:]]*$' "$symbols" | grep -v '^#' | sed 's/[[:space:]]//g' | sort -u >"$tmp/listed"
header_symbols "$header" >"$tmp/declared"

fail=0
# report N DESCRIPTION FILE-OF-OFFENDERS WHAT
report () {
  if test -s "$3"; then
    echo "not ok $1 - $2"
    sed "s/^/#   $4: /" "$3"
    fail=1
  else
    echo "ok $1 - $2"
  fi
}

comm -23 "$tmp/listed" "$tmp/exported" >"$tmp/missing"
report 1 "every function in c/symbols.txt is exported by $(basename "$lib")" \
  "$tmp/missing" "not exported"

comm -13 "$tmp/listed" "$tmp/exported" >"$tmp/extra"
report 2 "the library exports no function missing from c/symbols.txt" \
  "$tmp/extra" "exported but not listed"

{ comm -23 "$tmp/declared" "$tmp/listed" | sed 's/$/ (declared MUPROC_API, not in symbols.txt)/'
  comm -13 "$tmp/declared" "$tmp/listed" | sed 's/$/ (in symbols.txt, not declared MUPROC_API)/'
} >"$tmp/drift"
report 3 "c/symbols.txt matches the MUPROC_API declarations of muproc.h (make update-symbols)" \
  "$tmp/drift" "mismatch"

exit $fail
