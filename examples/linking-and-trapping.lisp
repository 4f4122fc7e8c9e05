;;;; Run: sbcl --script examples/linking-and-trapping.lisp
;;;; linking-and-trapping.lisp - the seed's "muproc linking & trapping" I and II.
;;;;
;;;; PARENT traps exits and spawns COUNT linked children; each sleeps a
;;;; random period below MAX seconds and exits with (:finished-after .
;;;; period).  PARENT reports every child's termination, then ends.
;;;; PARENT2 ends at the first one, and its exit takes the remaining
;;;; children with it: "Linked muproc terminate together".  Prints, for
;;;; (start-parent 3 2):
;;;;   #<MUPROC 3 G601 :RUNNING> exiting.
;;;;   PARENT -- #<MUPROC 3 G601 :DEAD (:FINISHED-AFTER . 0)> terminated with reason (FINISHED-AFTER . 0).
;;;;   ... the same for the other two children ...
;;;;   PARENT -- terminating.
;;;; and for (start-parent2 3 10) the first child's two lines, "PARENT --
;;;; terminating." and then at once the other children's "exiting." lines.

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(defpackage #:muproc-example.linking-and-trapping
  (:use #:common-lisp #:muproc)
  (:export #:out #:child #:parent #:parent2 #:start-parent #:start-parent2 #:main))

(in-package #:muproc-example.linking-and-trapping)

(defvar *out-lock* (sb-thread:make-mutex :name "example output")
  "Held while OUT writes a line, so that lines never interleave.")

(defun write-whole-line (line)
  "Write LINE and a newline on the current muproc's errorstream
(*TRACE-OUTPUT* outside a muproc), all at once, and flush it."
  (let ((stream (or *muproc-errorstream* *trace-output*)))
    (sb-thread:with-mutex (*out-lock*)
      (write-line line stream)
      (force-output stream))))

(defmacro out (control &rest arguments)
  "Print CONTROL applied to ARGUMENTS (as by FORMAT) as one line on the
current muproc's errorstream; lines of different muprocs never
interleave.  Symbols print as in the package the OUT form was read in,
as at a REPL in that package; the pretty printer never breaks the line."
  `(write-whole-line
    (let ((*package* (load-time-value (find-package ,(package-name *package*))))
          (*print-pretty* nil))
      (format nil ,control ,@arguments))))

;;; Linking & trapping I

(defun child (max &optional period)
  "Sleep PERIOD seconds (default: a random number below MAX), then exit
with (:finished-after . period)."
  (unwind-protect
    (let ((period (or period (random max))))
      (sleep period)
      (muproc-exit (cons :finished-after period)))
    (out "~s exiting." (muproc-current-process))))

(defun parent (count max &optional periods)
  "Spawn COUNT linked children (the first ones sleeping PERIODS, if
given), and report each one's termination."
  (loop repeat count
    do (muproc-spawn (gensym) #'child (list max (pop periods))
                   :link t))

  (loop repeat count
    do (mumsg-receive (from)
        ((terminated reason) t
         (out "PARENT -- ~a terminated with reason ~a."
              terminated reason))))
  (out "PARENT -- terminating."))

(defun start-parent (count max &optional periods)
  (muproc-spawn 'parent #'parent (list count max periods)
                :trap-exits t
                :errorstream *trace-output*))

;;; Linking & trapping II

(defun parent2 (count max &optional periods)
  "Like PARENT, but end after the first child's termination."
  (loop repeat count
    do (muproc-spawn (gensym) #'child (list max (pop periods))
                   :link t))
  ;; No loop - exit on first 'child' termination
  (mumsg-receive (from)
    ((terminated reason) t
     (out "PARENT -- ~a terminated with reason ~a."
          terminated reason)))
  (out "PARENT -- terminating."))

(defun start-parent2 (count max &optional periods)
  (muproc-spawn 'parent2 #'parent2 (list count max periods)
               :trap-exits t
               :errorstream *trace-output*))

;;; Running the example

(defun wait-for-every-muproc ()
  "Wait until every muproc has ended: children outlive their parent by a
moment."
  (mapc #'muproc-wait-for-exit (muproc-all-processes)))

(defun main ()
  "Run (start-parent 3 2), then (start-parent2 3 10), each announced by a
\";; (start-...)\" line, printing on *STANDARD-OUTPUT*; return once every
muproc has ended.  Seeds the random state, so the periods differ from run
to run."
  ;; A fresh image always starts from the same random state.
  (setf *random-state* (make-random-state t))
  (let ((*trace-output* *standard-output*))
    (out ";; (start-parent 3 2)")
    (muproc-wait-for-exit (start-parent 3 2))
    (wait-for-every-muproc)
    (out ";; (start-parent2 3 10)")
    (muproc-wait-for-exit (start-parent2 3 10))
    (wait-for-every-muproc)))

(muproc-examples:main-on-load 'main)
