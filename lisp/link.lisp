;;;; link.lisp - links, monitors and trapping exits.
;;;;
;;;; The bookkeeping and the exit propagation live in libmuproc, so that a
;;;; link or monitor racing an exit still gets exactly one notice.

(in-package #:muproc)

(defun muproc-link (muproc1 &optional muproc2)
  "Link MUPROC1 and MUPROC2, or the current muproc and MUPROC1.  Links
are two-way and any exit travels over them, a normal one included: a
linked muproc that does not trap exits then exits with
(:LINKED-TO-EXIT name :FOR-REASON reason); one that traps exits receives
(:terminated muproc :reason reason).  Linking to a muproc that has already
exited gives that notice at once, with reason :NOPROC.  Muprocs may be
given as for MUPROC-KILL.  Returns T."
  (multiple-value-bind (a b)
      (if muproc2
          (values (find-muproc-or-lose muproc1 "MUPROC-LINK")
                  (find-muproc-or-lose muproc2 "MUPROC-LINK"))
          (values (current-muproc-or-lose "MUPROC-LINK")
                  (find-muproc-or-lose muproc1 "MUPROC-LINK")))
    (if (eq a b)
        t                               ; as Erlang's link(self()): nothing to do
        (let ((rc (muproc.ffi:%link (%muproc-pid a) (%muproc-pid b))))
          (cond ((zerop rc)
                 (trace-pair-event "link" a b)
                 t)
                (t                      ; +ESRCH+: A is gone
                 (signal 'muproc-send-to-terminated-muproc-condition :muproc a)
                 nil))))))

(defun muproc-unlink (muproc1 &optional muproc2)
  "Remove the link between MUPROC1 and MUPROC2 (or the current muproc and
MUPROC1).  Once this returns no exit travels over that link.  Muprocs may
be given as for MUPROC-KILL.  Returns T."
  (multiple-value-bind (a b)
      (if muproc2
          (values (find-muproc-or-lose muproc1 "MUPROC-UNLINK")
                  (find-muproc-or-lose muproc2 "MUPROC-UNLINK"))
          (values (current-muproc-or-lose "MUPROC-UNLINK")
                  (find-muproc-or-lose muproc1 "MUPROC-UNLINK")))
    (unless (eq a b)                    ; a muproc is never linked to itself
      (muproc.ffi:%unlink (%muproc-pid a) (%muproc-pid b))
      (trace-pair-event "unlink" a b))
    t))

(defun muproc-links (&optional (muproc (muproc-current-process)))
  "The muprocs linked to MUPROC."
  (let ((pid (%muproc-pid muproc)))
    (loop
      (let* ((n (max 0 (muproc.ffi:%links pid (cffi:null-pointer) 0)))
             (cap (+ n 8)))
        (cffi:with-foreign-object (buf :uint64 cap)
          (let ((got (muproc.ffi:%links pid buf cap)))
            (when (<= got cap)
              (return (loop for i below (max 0 got)
                            collect (pid-muproc (cffi:mem-aref buf :uint64 i)))))))))))

(defun muproc-monitor (muproc)
  "Make the current muproc monitor MUPROC and return the monitor's tag.
When MUPROC exits the current muproc receives (:terminated muproc :reason
reason :monitor tag); it is never killed by it.  Monitoring a muproc that
has already exited gives that message at once, with reason :NOPROC.
MUPROC may be given as for MUPROC-KILL."
  (let ((self (current-muproc-or-lose "MUPROC-MONITOR"))
        (muproc (find-muproc-or-lose muproc "MUPROC-MONITOR")))
    (cffi:with-foreign-object (out :uint64)
      (muproc.ffi:%monitor (%muproc-pid self) (%muproc-pid muproc) out)
      (trace-pair-event "monitor" self muproc)
      (%make-tag (cffi:mem-ref out :uint64)))))

(defun muproc-demonitor (tag &key flush)
  "Remove the current muproc's monitor TAG.  Returns T if it was removed
before it fired (no message will come), NIL if it had fired already.
With FLUSH, a message of that monitor already queued is removed too."
  (let* ((self (current-muproc-or-lose "MUPROC-DEMONITOR"))
         (armed (zerop (muproc.ffi:%demonitor (%muproc-pid self) (muproc-tag-id tag)))))
    (when (and flush (not armed))
      (mumsg-receive (from :timeout 0)
        ((monitor) (muproc-msgtag= monitor tag) nil)))
    armed))

(defun muproc-set-trap-exits (flag &optional (muproc (muproc-current-process)))
  "Make MUPROC (default: the current one) trap exits when FLAG is true:
exits of linked muprocs and exit signals then arrive as messages
(:terminated muproc :reason reason) instead of ending it, with :LINK T
when the exit came over a link.  What counts is the setting when MUPROC
acts on an exit signal, not when it was sent: turning trapping on also
traps the exit signals already sent but not yet acted on.  MUPROC-KILL is
never trapped.  Returns the previous setting."
  (unless muproc
    (error 'muproc-not-in-muproc :operation "MUPROC-SET-TRAP-EXITS"))
  (plusp (muproc.ffi:%set-trap-exits (%muproc-pid muproc) (if flag 1 0))))

(defun muproc-trap-exits-p (&optional (muproc (muproc-current-process)))
  "True if MUPROC (default: the current one) traps exits."
  (and muproc (= 1 (muproc.ffi:%trap-exits (%muproc-pid muproc)))))
