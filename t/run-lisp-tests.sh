#!/bin/sh
# run-lisp-tests.sh - run the muproc FiveAM suites, printing TAP on stdout.
#
# Run by `make check` (through the TAP driver), which sets:
#   SBCL            the sbcl executable (default: sbcl on PATH)
#   MUPROC_SRCDIR   the source tree holding muproc.asd (default: ..)
#   MUPROC_LIBDIR   the directory holding the built libmuproc.so.0
#   XDG_CACHE_HOME  where ASDF puts its fasls (the build tree)
# It can be run by hand too:  sh t/run-lisp-tests.sh
#
# Loads muproc/tests with ASDF and calls (muproc-tests:run-tap), which prints
# the plan and one ok/not ok line per test and returns T when all passed.
# Exit status 0 when all passed, 1 otherwise; a load error prints
# "Bail out! <message>".  Compiler chatter goes to stderr, keeping stdout TAP.

SBCL=${SBCL:-sbcl}
if test -z "$MUPROC_SRCDIR"; then
  MUPROC_SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
fi
export MUPROC_SRCDIR

if ! command -v "$SBCL" >/dev/null 2>&1; then
  echo "Bail out! sbcl not found (SBCL=$SBCL)"
  exit 1
fi
if test ! -r "$MUPROC_SRCDIR/muproc.asd"; then
  echo "Bail out! no muproc.asd in $MUPROC_SRCDIR"
  exit 1
fi

# One form per --eval: each is read only after the previous one ran, so the
# later ones may name ASDF and UIOP symbols.
exec "$SBCL" --noinform --non-interactive --no-sysinit --no-userinit \
  --eval '
(progn
  (defun cl-user::muproc-test-exit (code)
    (finish-output *standard-output*)
    (finish-output *error-output*)
    ;; :abort t: do not wait for (or unwind) other threads, e.g. workers
    ;; parked in C; stdout was flushed above.
    (sb-ext:exit :code code :abort t))
  (defun cl-user::muproc-test-bail (what condition)
    (let ((text (substitute #\Space #\Newline
                            (handler-case (princ-to-string condition)
                              (error () (format nil "~S" (type-of condition)))))))
      (format *error-output* "~&~A: ~A~%" what text)
      (format *standard-output* "~&Bail out! ~A: ~A~%" what text)
      (cl-user::muproc-test-exit 1)))
  (handler-case (require :asdf)
    (serious-condition (c) (cl-user::muproc-test-bail "cannot load ASDF" c))))' \
  --eval '
(handler-case
    (let ((*standard-output* *error-output*)
          (dir (uiop:parse-native-namestring (uiop:getenv "MUPROC_SRCDIR")
                                             :ensure-directory t)))
      (asdf:load-asd (merge-pathnames "muproc.asd" dir))
      (asdf:load-system :muproc/tests))
  (serious-condition (c) (cl-user::muproc-test-bail "cannot load muproc/tests" c)))' \
  --eval '
(cl-user::muproc-test-exit
 (handler-case (if (uiop:symbol-call :muproc-tests :run-tap) 0 1)
   (serious-condition (c) (cl-user::muproc-test-bail "error while running the tests" c))))'
