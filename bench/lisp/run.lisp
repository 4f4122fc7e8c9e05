;;;; run.lisp - run Lisp benchmarks named on the command line.
;;;;
;;;;   sbcl --non-interactive --no-sysinit --no-userinit --load bench/lisp/run.lisp \
;;;;        --end-toplevel-options BENCH ARG... [BENCH ARG...]...
;;;;
;;;; BENCH is one of the benchmarks of muproc-benches.lisp ("ping-pong",
;;;; "one-way", ...) or sbcl-anchors.lisp ("sbcl-ping-pong", ...).  muproc
;;;; is loaded (from the tree above bench/, libmuproc from $MUPROC_LIBDIR)
;;;; only when a muproc benchmark is asked for.  Prints RESULT lines.
;;;; Under bench/profile ($BENCH_PERF_CTL set), perf starts recording once
;;;; everything is loaded.

(defpackage #:muproc-bench.run (:use #:common-lisp))
(in-package #:muproc-bench.run)

(defvar *here* (make-pathname :name nil :type nil :defaults *load-truename*))
(defvar *root* (merge-pathnames "../../" *here*))

(defun main (args)
  (load (merge-pathnames "common.lisp" *here*))
  (when (some (lambda (a) (and (alpha-char-p (char a 0))
                               (not (eql 0 (search "sbcl-" a)))))
              args)
    (funcall (intern "LOAD-MUPROC" "MUPROC-BENCH") (truename *root*))
    (load (merge-pathnames "muproc-benches.lisp" *here*)))
  (when (some (lambda (a) (eql 0 (search "sbcl-" a))) args)
    (load (merge-pathnames "sbcl-anchors.lisp" *here*)))
  (when (sb-ext:posix-getenv "BENCH_PERF_CTL")
    (load (merge-pathnames "perf-map.lisp" *here*))
    (funcall (intern "START-PERF" "MUPROC-BENCH")))
  (funcall (intern "RUN-BENCHES" "MUPROC-BENCH") args))

(let ((code 0))
  (handler-case (main (rest sb-ext:*posix-argv*))
    (serious-condition (c)
      (format *error-output* "~&bench/lisp/run.lisp: ~a~%" c)
      (setf code 1)))
  (finish-output *standard-output*)
  (finish-output *error-output*)
  ;; :ABORT T: don't wait for muproc workers parked in C.
  (sb-ext:exit :code code :abort t))
