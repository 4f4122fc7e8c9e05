;;;; Run: sbcl --script examples/supervision-tree.lisp
;;;; supervision-tree.lisp - the seed's supervisor examples I-III, replayed
;;;; as its transcripts I-IV.
;;;;
;;;; A two-level all-for-one tree: PROC1, PROC2 and the supervisor
;;;; {PROC31*PROC32} under {PROC1*PROC2*{PROC31*PROC32}}.  PROC1, PROC2 and
;;;; PROC31 print now and then; PROC32 traps exits, wakes up on a timer, and
;;;; takes its time to go when told to.  MAIN starts the tree, exits PROC1
;;;; (the whole tree restarts, once PROC32 has shut itself down), exits
;;;; PROC32 (only the inner supervisor's children restart), then exits every
;;;; muproc of the tree.  The lines are timestamped; PROC2 stops after the
;;;; inner supervisor and the tree restarts only when all are down, as OTP
;;;; has it (children stop in reverse order).  Prints, between the periodic
;;;; "HERE" and "Got WAKEUP" lines:
;;;;   10:16:56.979 - > (start-super1 *standard-output*)
;;;;   10:16:56.980 PROC1 PROC1 starting
;;;;   ... PROC2, PROC31, PROC32 starting
;;;;   10:16:58.190 - > (muproc-exit :adieu (muproc-find 'proc1))
;;;;   10:16:58.190 PROC1 PROC1 terminating
;;;;   10:16:58.191 PROC32 Got SHUTDOWN
;;;;   10:16:58.492 PROC32 PROC32 terminating
;;;;   10:16:58.492 PROC31 PROC31 terminating
;;;;   10:16:58.492 PROC31 PROC31 was terminated due to #<EXIT PROC31 :SUPERVISOR-KILL>.
;;;;   10:16:58.493 {PROC31*PROC32} SUPERVISOR #<SUPERVISOR {PROC31*PROC32} ALL-FOR-ONE:2:5 DOWN:DOWN STABLE> terminating.
;;;;   10:16:58.493 PROC2 PROC2 terminating
;;;;   10:16:58.494 PROC1 PROC1 starting
;;;;   10:16:58.494 {PROC1*PROC2*{PROC31*PROC32}} SUPERVISOR restarted child PROC1 (ended with reason :ADIEU) as #<MUPROC 9 MUPROC-EXAMPLE.SUPERVISION-TREE:PROC1 :RUNNING>.
;;;;   ... PROC2, PROC31, PROC32 starting, and the restarts of PROC2 and {PROC31*PROC32}
;;;;   ...
;;;;
;;;; The seed's times are scaled by *TIME-SCALE* (1/10: PROC1 prints every
;;;; second, PROC32 takes 0.3 s to shut down) so that the whole session
;;;; takes a few seconds; (setf *time-scale* 1) replays the seed's timing.

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(defpackage #:muproc-example.supervision-tree
  (:use #:common-lisp #:muproc #:muproc.supervisor)
  (:export #:*time-scale* #:seed-seconds
           #:proc1 #:proc2 #:proc31 #:proc32 #:start-super1
           #:which-children #:tree-muprocs #:main))

(in-package #:muproc-example.supervision-tree)

(defvar *time-scale* 1/10
  "Seconds of this example per second of the seed's transcripts: the
procs' periods and PROC32's shutdown time are the seed's times multiplied
by it.  Set its global value (muprocs start with fresh dynamic bindings,
so they don't see a LET of it).")

(defun seed-seconds (seconds)
  "SECONDS of the seed's time, in this example's (see *TIME-SCALE*)."
  (* seconds *time-scale*))

;;; Supervisor example I: these just periodically print stuff.  The seed
;;; writes proc1, proc2 and proc31 out in full; they differ only in name
;;; and period, so one function serves all three.

(defun periodic-proc (name period)
  "Log NAME starting, then NAME HERE every PERIOD seed seconds, and NAME
terminating however it ends."
  (muproc-log-errorstream "~a starting" name)
  (unwind-protect
       (loop
         (sleep (seed-seconds period))
         (muproc-log-errorstream "~a HERE" name))
    (muproc-log-errorstream "~a terminating" name)))

(defun proc1 () (periodic-proc "PROC1" 10))
(defun proc2 () (periodic-proc "PROC2" 8))
(defun proc31 () (periodic-proc "PROC31" 6))

;;; Supervisor example II: PROC32 traps exits and takes a while to terminate.

(defun proc32 ()
  (muproc-set-trap-exits t)
  (muproc-log-errorstream "PROC32 starting")
  (muproc-schedule-timer-relative
   (muproc-make-interrupt-timer (lambda ()
                                  (mumsg-send *muproc-inport* :wakeup nil)))
   0 (seed-seconds 4))
  (muproc-log-errorstream "PROC32 HERE")
  (unwind-protect
       (loop
         (mumsg-receive (from)
           ((terminated reason) t
            (muproc-log-errorstream "Got SHUTDOWN")
            (sleep (seed-seconds 3))
            (muproc-exit :shutting-down-myself))
           ((wakeup) t
            (muproc-log-errorstream "Got WAKEUP"))
           (() t
            (muproc-log-errorstream "Got unknown package ~s."
                                    *muproc-packet*))))
    (muproc-log-errorstream "PROC32 terminating")))

;;; Supervisor example III, as the seed's slide has it: no more than 2
;;; restarts per 5 seconds, restart all children if one terminates, both
;;; kill and waiting termination.

(defun start-super1 (&optional (errorstream *muproc-errorstream*))
  (supervisor-start
    (supervisor
      :all-for-one 2 5
      (:permanent :kill (supervised-muproc proc1 #'proc1 ()))
      (:permanent 10 (supervised-muproc proc2 #'proc2 ()))
      (:permanent 5
        (supervisor
          :all-for-one 2 5
          (:permanent :kill (supervised-muproc proc31 #'proc31 ()))
          (:permanent 5 (supervised-muproc proc32 #'proc32 ())))
        ))
      :errorstream errorstream))

;;; The session of the transcripts.

(defun which-children (supervisor)
  "SUPERVISOR-WHICH-CHILDREN of SUPERVISOR, asked from a fresh muproc.
A supervisor answers calls in turn with everything it was sent before:
once it answers, it has started its children, and has finished a restart
whose cause reached it before the call."
  (muproc (60)
    (let ((muproc.generic-server:*muproc-generic-call-timeout* 60))
      (supervisor-which-children supervisor))))

(defun tree-muprocs (supervisor)
  "SUPERVISOR and the live muprocs of its tree, top-down: a supervisor
before its children, children in start order."
  (cons supervisor
        (loop for (nil muproc nil kind) in (which-children supervisor)
              when muproc
                append (if (eq kind :supervisor)
                           (tree-muprocs muproc)
                           (list muproc)))))

(defun session (control &rest arguments)
  "Log what the seed's user typed at the REPL, as a line \"- > form\"."
  (apply #'muproc-log-errorstream (concatenate 'string "> " control) arguments))

(defun watch (seed-seconds)
  "Let the tree print for SEED-SECONDS of the seed's time, as the seed's
user did between commands.  Pacing only: nothing waits on it."
  (sleep (seed-seconds seed-seconds)))

(defun await-proc32-trapping ()
  "Wait until the tree's current PROC32 traps exits (its first form).  At
the seed's REPL the user's typing always gave it that long; a restarted
PROC32 told to exit before then would die without its SHUTDOWN line."
  (loop with deadline = (+ (get-internal-real-time) (* 10 internal-time-units-per-second))
        until (let ((proc32 (muproc-find 'proc32)))
                (and proc32 (muproc-trap-exits-p proc32)))
        do (when (> (get-internal-real-time) deadline)
             (error "PROC32 did not trap exits within 10 s."))
           (sleep 0.005)))

(defun main ()
  "Replay the seed's supervisor transcripts I-IV on *STANDARD-OUTPUT*
(the tree's errorstream), and return once every muproc of the tree has
ended.  Returns the top supervisor's exit reason, :ADIEU."
  (let* ((*muproc-errorstream* *standard-output*)
         (top (progn (session "(start-super1 *standard-output*)")
                     (start-super1 *standard-output*)))
         ;; Every muproc the tree ever had, to wait for at the end.
         (seen (tree-muprocs top)))
    ;; Transcript I: the tree runs.
    (watch 12)
    ;; Transcript II: PROC1 exits; the top supervisor stops the others in
    ;; reverse order ({PROC31*PROC32} waits for PROC32, which takes its
    ;; time) and starts all three again.
    (await-proc32-trapping)
    (let ((proc1 (muproc-find 'proc1)))
      (session "(muproc-exit :adieu (muproc-find 'proc1))")
      (muproc-exit :adieu proc1)
      (muproc-wait-for-exit proc1)
      ;; PROC1's exit notice is in the supervisor's inport now, so this
      ;; answer comes after the restart.
      (setf seen (union seen (tree-muprocs top))))
    (watch 10)
    ;; Transcript III: PROC32 exits; only {PROC31*PROC32} restarts its
    ;; children.  PROC1 and PROC2 are the same muprocs as before.
    (await-proc32-trapping)
    (let ((proc32 (muproc-find 'proc32)))
      (session "(muproc-exit :adieu (muproc-find 'proc32))")
      (muproc-exit :adieu proc32)
      (muproc-wait-for-exit proc32)
      (setf seen (union seen (tree-muprocs top))))
    (watch 5)
    ;; Transcript IV: exit every muproc.  The seed exits
    ;; (muproc-all-processes) in whatever order they come; top-down order
    ;; makes sure each supervisor hears of its own exit before one of its
    ;; children's, which it would answer with a restart.
    (await-proc32-trapping)
    (let ((tree (tree-muprocs top)))
      (session "(mapcar (lambda (p) (muproc-exit :adieu p)) (tree-muprocs top))")
      (mapcar (lambda (p) (muproc-exit :adieu p)) tree)
      (prog1 (muproc-wait-for-exit top)
        (mapc #'muproc-wait-for-exit (union seen tree))))))

(muproc-examples:main-on-load 'main)
