;;;; run.lisp - the one entry point of the suites: make check (through
;;;; RUN-TAP) and ASDF:TEST-SYSTEM both run the tests through RUN-TESTS.

(in-package #:muproc-tests)

(defun run-tests (&key (suite :muproc) (report #'explain!))
  "Run SUITE (default: every muproc test) and return what REPORT, called
with FiveAM's results, returns: by default FIVEAM:EXPLAIN!, which prints
them and returns true when no test failed.  ASDF:TEST-SYSTEM and
t/run-lisp-tests.sh (make check) both come here, so they run the same
suite the same way; each test's leak check takes the threads alive when
it begins as its baseline (see DEFTEST)."
  (funcall report (run suite)))
