;;;; package.lisp - the test package.

(defpackage #:muproc-tests
  (:use #:common-lisp #:muproc #:fiveam)
  (:documentation "FiveAM suites for muproc: one per area, every test
under a watchdog and followed by a leak check.")
  (:export #:run-tests #:run-tap))

(in-package #:muproc-tests)

(def-suite :muproc :description "All muproc tests.")
