;;;; worker.lisp - MUPROC-SPAWN and the worker threads that run muprocs.
;;;;
;;;; A worker is an SBCL thread that runs a muproc, then parks in C until
;;;; it is handed the next one: spawning costs a hand-off, not a thread
;;;; creation.  Each muproc starts from the global dynamic environment
;;;; plus its own bindings; nothing of a previous occupant survives,
;;;; because every binding it made is unwound before the worker parks.

(in-package #:muproc)

(defvar *muproc-enter-debugger-on-error* nil
  "When true, an unhandled error in a muproc invokes the debugger in that
muproc's thread instead of ending the muproc.  Off by default: a muproc
that fails logs a backtrace on its errorstream and exits with reason
(:ERROR-IN-PROCESS . condition), and no other muproc is affected.")

(defvar *muproc-worker-idle-seconds* 10
  "How long a worker thread stays parked without work before it ends.")

(defvar *worker-threads* (make-hash-table :synchronized t)
  "Every worker thread alive (-> T): a thread enters it when it starts and
leaves it when it ends, never in between, so a spawn doesn't touch it.")

(defvar *worker-thread-name* "muproc worker"
  "The name of every worker thread (they are pool threads, not muprocs).")

(defun log-unhandled (condition)
  (muproc-log-errorstream "Unhandled ~a: ~a~%~a~a" (type-of condition)
                          (report-text condition) (backtrace-text 40)
                          (crash-dossier *current-muproc*)))

(defun call-ending-muproc-on-error (function)
  "Call FUNCTION; an unhandled error in it (unless the debugger is wanted)
is logged, and ends the muproc with (:ERROR-IN-PROCESS . condition).  The
handler itself can't fail: logging never signals."
  (handler-bind ((serious-condition
                   (lambda (condition)
                     (unless *muproc-enter-debugger-on-error*
                       (log-unhandled condition)
                       (throw '%muproc-exit (cons :error-in-process condition))))))
    (funcall function)))

(defun run-muproc (muproc)
  "Run MUPROC to its end on the current thread.  Everything the user has
a hand in (the initial bindings, signals acted on before the first form,
the function, logging the kill) runs inside the handler that ends only
this muproc, and inside the bindings that make signals reach it: no
mistake of the user's can escape to the worker, which would end the
image."
  (let ((pid (%muproc-pid muproc))
        (bindings (%muproc-initial-bindings muproc)))
    (muproc.ffi:%proc-start pid)
    (setf (%muproc-thread muproc) sb-thread:*current-thread*)
    (sb-thread:barrier (:write))
    (finish-muproc
     muproc
     (catch '%muproc-exit
       (call-ending-muproc-on-error
        (lambda ()
          ;; Signals act only once *CURRENT-MUPROC* is bound (see
          ;; POLL-SIGNALS), which is inside the handler.
          (let ((*current-muproc* muproc)
                (*muproc-inport* muproc)
                (*muproc-errorstream* (%muproc-errorstream muproc))
                (*muproc-packet* nil)
                (*receive-in-progress* nil))
            (unwind-protect
                 (progv (mapcar #'car bindings) (mapcar #'cdr bindings)
                   ;; An exit sent before this thread was published is waiting.
                   (poll-signals pid)
                   (apply (%muproc-function muproc) (%muproc-arglist muproc)))
              (log-kill muproc)))))
       :normal))))

(defun log-kill (muproc)
  "The seed's line for a muproc killed from outside, once its cleanups ran."
  (let ((reason (%muproc-kill-reason muproc)))
    (when reason
      (let ((name (or (%muproc-name muproc) "-")))
        (muproc-log-errorstream "~a was terminated due to #<EXIT ~a ~s>."
                                name name (first reason))))))

(defun idle-deadline ()
  "When a worker parked now should end.  A bad *MUPROC-WORKER-IDLE-SECONDS*
(set by hand) counts as the default: it must not end the worker, and the
image with it."
  (flet ((after (seconds) (timer-deadline seconds "*MUPROC-WORKER-IDLE-SECONDS*")))
    (handler-case (after *muproc-worker-idle-seconds*)
      (muproc-invalid-argument () (after 10)))))

(defun park-worker ()
  "Park until handed the next muproc; NIL when this worker should end."
  (cffi:with-foreign-object (out :uint64)
    (let ((rc (sb-sys:without-interrupts
                (muproc.ffi:%worker-park (idle-deadline) out))))
      (when (zerop rc)
        (live-muproc (cffi:mem-ref out :uint64))))))

(defun worker-main (first)
  ;; The thread enters the table itself: it can't leave it before entering.
  (setf (gethash sb-thread:*current-thread* *worker-threads*) t)
  (unwind-protect
       (let ((muproc first))
         (loop
           (run-muproc muproc)
           (setf muproc (park-worker))
           (unless muproc (return))))
    (remhash sb-thread:*current-thread* *worker-threads*)
    (muproc.ffi:%worker-exit)
    (sb-thread:with-mutex (*exit-lock*)
      (announce-exit-event))))

(defun abandon-spawn (muproc &optional linked-to)
  "Undo a spawn whose muproc never ran, leaving no trace: no name, and no
link to LINKED-TO (the spawner of a :LINK T spawn), so that its exit
tells nobody."
  (sb-sys:without-interrupts
    (let ((pid (%muproc-pid muproc)))
      (when linked-to
        (muproc.ffi:%unlink (%muproc-pid linked-to) pid))
      (sb-ext:with-locked-hash-table (*muproc-names*)
        (when (eq (gethash (%muproc-name muproc) *muproc-names*) muproc)
          (remhash (%muproc-name muproc) *muproc-names*)))
      ;; Never returned to anyone: nobody can look it up.
      (setf (svref **muproc-slots** (pid-index pid)) nil)
      (muproc.ffi:%proc-exit pid muproc.ffi:+t-nil+ 0)
      (setf (%muproc-exited muproc) t)
      ;; It never had a receiver: releasing frees whatever was sent to it.
      (muproc.ffi:%proc-release pid))))

(defun start-worker (muproc linked-to)
  "Hand MUPROC to a parked worker, or start a new worker thread for it.
LINKED-TO: the muproc it was linked to at spawn, or NIL."
  (let ((rc (muproc.ffi:%worker-offer (%muproc-pid muproc))))
    (cond ((zerop rc))
          ((= rc muproc.ffi:+worker-needed+)
           (let ((ok nil))
             (unwind-protect
                  (progn
                    (sb-thread:make-thread #'worker-main
                                           :name *worker-thread-name*
                                           :arguments (list muproc))
                    (setf ok t))
               (unless ok
                 (muproc.ffi:%worker-unreserve)
                 (abandon-spawn muproc linked-to)))))
          ((= rc muproc.ffi:+ethreads+)
           (abandon-spawn muproc linked-to)
           (error 'muproc-thread-limit :cap (muproc.ffi:%thread-cap)))
          (t (abandon-spawn muproc linked-to)
             (error 'muproc-runtime-error :code rc :operation "muproc_worker_offer")))))

(defun check-errorstream (errorstream)
  "Signal MUPROC-INVALID-ARGUMENT unless ERRORSTREAM is an open output
stream: a muproc must be able to log its own failure."
  (unless (and (streamp errorstream) (open-stream-p errorstream)
               (output-stream-p errorstream))
    (invalid-argument "MUPROC-SPAWN" :errorstream errorstream
                      "an open output stream"
                      '(and stream (satisfies open-stream-p)
                        (satisfies output-stream-p)))))

(defun check-initial-bindings (bindings)
  "Signal MUPROC-INVALID-ARGUMENT unless BINDINGS is a proper list of
(variable . value) that PROGV can bind, as the new muproc will: constants,
global variables and values of the wrong declared type are refused here,
in the caller, instead of ending the muproc before it runs a form."
  (flet ((invalid (datum expected)
           (invalid-argument "MUPROC-SPAWN" :initial-bindings datum expected
                             '(cons symbol t))))
    (unless (listp bindings)
      (invalid bindings "a list of (variable . value)"))
    (do ((tail bindings (cdr tail)))
        ((null tail))
      (unless (consp tail)
        (invalid bindings "a proper list of (variable . value)"))
      (let ((binding (car tail)))
        (unless (and (consp binding) (symbolp (car binding)) (car binding))
          (invalid binding "a (variable . value) pair"))
        (unless (handler-case
                    (progv (list (car binding)) (list (cdr binding)) t)
                  (error () nil))
          (invalid binding "a binding of a variable that may be bound to that value"))))))

(defun muproc-spawn (name function arglist &key errorstream initial-bindings
                                                inport-capacity link trap-exits
                                                (dossier-size 5))
  "Start a new muproc named NAME that applies FUNCTION to ARGLIST, and
return it at once.  When FUNCTION returns the muproc exits with :NORMAL;
an unhandled error makes it exit with (:ERROR-IN-PROCESS . condition) after
logging a backtrace to its errorstream (see
*MUPROC-ENTER-DEBUGGER-ON-ERROR*).
NAME: a symbol unique among live muprocs (MUPROC-NAME-TAKEN otherwise), or
NIL for an anonymous muproc.  ERRORSTREAM: its *MUPROC-ERRORSTREAM*, an
open output stream, inherited from the caller (or *TRACE-OUTPUT*) when NIL;
should it fail later (closed, say), log lines go to *ERROR-OUTPUT*.
INITIAL-BINDINGS: an alist of (special-variable . value) bound in the new
muproc (constants and global variables can't be bound).
Invalid arguments signal MUPROC-INVALID-ARGUMENT (a TYPE-ERROR) or
TYPE-ERROR, before anything is started.
INPORT-CAPACITY: bound its inport to that many messages (senders then get
MUPROC-INPORT-FULL); NIL: unbounded.  LINK: link the new muproc to the
caller before it runs.  TRAP-EXITS: the new muproc traps exits.
DOSSIER-SIZE: how many of the messages it took last its crash log shows
(see MUPROC-INFO); 0: none.
Signals MUPROC-THREAD-LIMIT when no worker is free and the thread cap is
reached; nothing is started then."
  (check-type name symbol)
  (check-type arglist list)
  (check-type inport-capacity (or null (integer 1 #xffffffff)))
  (check-type dossier-size (integer 0 1000))
  (when (and link (not *current-muproc*))
    (error 'muproc-not-in-muproc :operation "MUPROC-SPAWN :LINK"))
  (when errorstream
    (check-errorstream errorstream))
  (check-initial-bindings initial-bindings)
  (let ((function (if (functionp function) function (fdefinition function))))
    (let ((muproc
            (cffi:with-foreign-object (out :uint64)
              (muproc.ffi:%proc-create 0 muproc.ffi:+kind-lisp+ (or inport-capacity 0) out)
              (%make-muproc :pid (cffi:mem-ref out :uint64)
                            :name name
                            :function function
                            :arglist arglist
                            :errorstream (or errorstream *muproc-errorstream*
                                             *trace-output*)
                            :initial-bindings initial-bindings
                            :recent dossier-size))))
      (note-spawned muproc)
      (when name
        (sb-ext:with-locked-hash-table (*muproc-names*)
          (when (named-muproc name)
            (abandon-spawn muproc)
            (error 'muproc-name-taken :name name))
          (setf (gethash name *muproc-names*) muproc)))
      ;; Both before the muproc runs a single form.
      (when trap-exits
        (muproc.ffi:%set-trap-exits (%muproc-pid muproc) 1))
      (when link
        (let ((rc (muproc.ffi:%link (%muproc-pid *current-muproc*) (%muproc-pid muproc))))
          (unless (zerop rc)
            (abandon-spawn muproc)
            (error 'muproc-runtime-error :code rc :operation "muproc_link"))))
      (start-worker muproc (and link *current-muproc*))
      (when-traced (self) (trace-event self "spawn ~a" (muproc-label muproc)))
      muproc)))

