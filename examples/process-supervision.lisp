;;;; Run: sbcl --script examples/process-supervision.lisp
;;;; process-supervision.lisp - the seed's example 13, Process Supervision.
;;;;
;;;; SUPERVISOR-PARENT traps exits and keeps a linked child running: each
;;;; time the child terminates it is restarted, COUNT times; the next
;;;; termination is one too many and the supervisor exits with
;;;; :TOO-MANY-RESTARTS.  The child exits at once, like Erlang's
;;;; exit(died).  (This is the hand-made supervisor of the seed's example;
;;;; SUPERVISOR-START is the name of the supervisor DSL, so the start
;;;; function here is START-SUPERVISION.)  Prints, for (start-supervision 5):
;;;;   SUPERVISOR-PARENT -- #<MUPROC 3 CHILD-ONE :DEAD :DONE> terminated.
;;;;   ... five of these in all ...
;;;;   SUPERVISOR-PARENT -- Too many restarts.
;;;;   ;; exit reason: :TOO-MANY-RESTARTS

(load (merge-pathnames "load-muproc.lisp" *load-truename*))
;;; OUT, the line printer of the seed's examples.
(muproc-examples:load-example "linking-and-trapping")

(defpackage #:muproc-example.process-supervision
  (:use #:common-lisp #:muproc)
  (:import-from #:muproc-example.linking-and-trapping #:out)
  (:export #:supervision-child #:supervisor-parent #:start-supervision #:main))

(in-package #:muproc-example.process-supervision)

(defun supervision-child ()
  (muproc-exit :done))

(defun supervisor-parent (count)
  "Keep a linked SUPERVISION-CHILD running, restarting it COUNT times;
then exit with :TOO-MANY-RESTARTS."
  (flet ((spawn-one ()
          (muproc-spawn 'child-one #'supervision-child ()
                        :link t)))
    (spawn-one)
    (loop
     (mumsg-receive (from)
      ((terminated reason) (> count 0)
       ;; side-effects in a guard is a bad idea
       (decf count)
       (out "SUPERVISOR-PARENT -- ~a terminated." terminated)
       (spawn-one))
      ((terminated reason) t
       (out "SUPERVISOR-PARENT -- Too many restarts.")
       (muproc-exit :too-many-restarts))))))

(defun start-supervision (count)
  "Start SUPERVISOR-PARENT (the seed's SUPERVISOR-START) as the muproc
SUPERVISOR; return it."
  (muproc-spawn 'supervisor #'supervisor-parent (list count)
               :trap-exits t
               :errorstream *trace-output*))

(defun main ()
  "Run (start-supervision 5), five restarts as in Erlang's example,
printing the transcript and the supervisor's exit reason on
*STANDARD-OUTPUT*; return once it has exited."
  (let ((*trace-output* *standard-output*))
    (out ";; exit reason: ~s" (muproc-wait-for-exit (start-supervision 5)))))

(muproc-examples:main-on-load 'main)
