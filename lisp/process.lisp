;;;; process.lisp - the muproc object, and finding muprocs.

(in-package #:muproc)

(defstruct (muproc (:constructor %make-muproc)
                   (:conc-name %muproc-)
                   (:predicate muproc-p)
                   (:copier nil))
  (pid 0 :type (unsigned-byte 64) :read-only t)
  (name nil :type symbol)
  (kind :lisp :type (member :lisp :c :unknown))
  (function nil)
  (arglist nil :type list)
  (errorstream nil)
  (initial-bindings nil :type list)
  (thread nil)
  (exit-reason nil)
  (exited nil)
  ;; Set when a kill is unwinding it: logged once its cleanups have run.
  (kill-reason nil)
  ;; Threads in MUPROC-WAIT-FOR-EXIT for it (see ANNOUNCE-EXIT-EVENT).
  (exit-waiters 0 :type sb-ext:word)
  ;; The muproc that sent the last message this one received: senders
  ;; repeat, and this saves finding the muproc by pid.  Only its own
  ;; thread touches it.
  (last-sender nil)
  ;; Timer and interrupt signals taken from the priority lane while a
  ;; receive could not run them (see POLL-SIGNALS), oldest first, as
  ;; (kind . plist).  Only its own thread touches it.
  (deferred-signals '() :type list)
  ;; True from the moment a receive takes a message until its clause
  ;; begins: signals wait for the clause (see POLL-SIGNALS).
  (committing nil)
  ;; Signals came while COMMITTING: the clause, once begun, asks for them.
  (signals-after-clause nil)
  ;; Catch tags of MUPROC-WITH-TIMEOUTs that fired while a receive clause
  ;; ran inside them (see *TIMEOUT-SHIELD*).
  (postponed-timeouts '() :type list)
  ;; Observing (lisp/trace.lisp): a TRACER while MUPROC-TRACE is on, and
  ;; the crash dossier's ring of recently taken messages (or its size
  ;; until the first take).
  (tracer nil)
  (recent 0))

(setf (documentation 'muproc-p 'function)
      "True if OBJECT is a muproc (alive or not).")

(defvar *current-muproc* nil
  "The muproc the current thread runs, or NIL.")

(defvar *muproc-inport* nil
  "Inside a muproc: its own inport, a destination for MUMSG-SEND (so
(mumsg-send *muproc-inport* :wakeup t) sends to oneself).  NIL elsewhere.")

(defvar *muproc-errorstream* nil
  "The stream MUPROC-LOG-ERRORSTREAM writes to.  Inside a muproc it is the
errorstream given to MUPROC-SPAWN, or the spawner's; NIL outside a muproc,
where *TRACE-OUTPUT* is used.")

;;; Lisp muprocs by pid number, the index of their slot in libmuproc's
;;; process table: an unfinished muproc strongly, then, once it has
;;; finished, through a weak pointer until a spawn reuses the slot.  A
;;; spawn and an exit each store one word there: no lock, no hashing, and
;;; no weak hash table, whose insertion cost half a microsecond per exit
;;; and whose entries every GC had to cull.  Only the slot's spawner and
;;; then its muproc's worker write it, one after the other (libmuproc
;;; reuses a slot only after its release, which follows the exit's write).
(declaim (type simple-vector **muproc-slots**))
(sb-ext:defglobal **muproc-slots**
    (make-array (1+ muproc.ffi:+max-procs+) :initial-element nil))

;;; Muprocs learned otherwise (C muprocs from messages, and finished Lisp
;;; muprocs still referenced when their slot was reused), weakly.
(defvar *known-muprocs* (make-hash-table :synchronized t :weakness :value))
(defvar *muproc-names* (make-hash-table :test 'eq :synchronized t)
  "Names of live Lisp muprocs.")

(declaim (inline pid-index))
(defun pid-index (pid)
  "PID's slot in **MUPROC-SLOTS**, or NIL for a pid outside it."
  (let ((number (ldb (byte 32 0) pid)))
    (and (<= 1 number muproc.ffi:+max-procs+) number)))

(defun live-muproc (pid)
  "The Lisp muproc of PID if it has not finished, else NIL."
  (let* ((index (pid-index pid))
         (entry (and index (svref **muproc-slots** index))))
    (and (muproc-p entry) (= pid (%muproc-pid entry)) entry)))

(defun live-muprocs ()
  "Every Lisp muproc that has not finished."
  (loop for entry across **muproc-slots**
        when (muproc-p entry) collect entry))

(defun note-spawned (muproc)
  "Make MUPROC (just created in libmuproc) findable by its pid."
  (let* ((index (pid-index (%muproc-pid muproc)))
         (old (svref **muproc-slots** index))
         (dead (and (sb-ext:weak-pointer-p old) (sb-ext:weak-pointer-value old))))
    ;; Whoever holds the slot's previous muproc must still find that
    ;; object (EQ) by its pid.
    (when dead
      (setf (gethash (%muproc-pid dead) *known-muprocs*) dead))
    (setf (svref **muproc-slots** index) muproc)))

(defun note-finished (muproc)
  "Before MUPROC's pid is released: keep it findable while referenced."
  (setf (svref **muproc-slots** (pid-index (%muproc-pid muproc)))
        (sb-ext:make-weak-pointer muproc)))

(defun pid-muproc (pid)
  "The muproc object for PID, made on first sight for C muprocs."
  (or (let* ((index (pid-index pid))
             (entry (and index (svref **muproc-slots** index)))
             (muproc (if (sb-ext:weak-pointer-p entry)
                         (sb-ext:weak-pointer-value entry)
                         entry)))
        (and muproc (= pid (%muproc-pid muproc)) muproc))
      (gethash pid *known-muprocs*)
      (let ((kind (muproc.ffi:%proc-kind pid)))
        (setf (gethash pid *known-muprocs*)
              (if (minusp kind)
                  (%make-muproc :pid pid :kind :unknown :exited t)
                  (let ((name-atom (muproc.ffi:%proc-name pid)))
                    (%make-muproc :pid pid
                                  :kind (if (= kind muproc.ffi:+kind-c+) :c :lisp)
                                  :name (when (plusp name-atom)
                                          (atom-keyword name-atom)))))))))

(defun muproc-current-process ()
  "The muproc running the calling thread, or NIL outside a muproc."
  *current-muproc*)

(defun in-muproc-p ()
  "True when called inside a muproc."
  (not (null *current-muproc*)))

(defun current-muproc-or-lose (operation)
  (or *current-muproc* (error 'muproc-not-in-muproc :operation operation)))

(defun muproc-name (&optional (muproc (current-muproc-or-lose "MUPROC-NAME")))
  "The name of MUPROC (default: the current one; MUPROC-NOT-IN-MUPROC
outside a muproc): the symbol given to MUPROC-SPAWN (NIL for an anonymous
muproc), or a keyword for a C muproc.  MUPROC may be given as for
MUPROC-KILL."
  (%muproc-name (find-muproc-or-lose muproc "MUPROC-NAME")))

(defun muproc-state (muproc)
  "The state of MUPROC: :CREATED (not yet started), :RUNNING, :WAITING
(blocked in a receive), or :DEAD."
  (if (%muproc-exited muproc)
      :dead
      (let ((state (muproc.ffi:%proc-state (%muproc-pid muproc))))
        (cond ((= state muproc.ffi:+s-created+) :created)
              ((= state muproc.ffi:+s-running+) :running)
              ((= state muproc.ffi:+s-waiting+) :waiting)
              (t :dead)))))

(defun muproc-alive-p (muproc)
  "True while MUPROC has not exited."
  (not (eq (muproc-state muproc) :dead)))

(defun muproc-exit-reason (muproc)
  "The reason MUPROC exited with (NIL while it is alive): :NORMAL for a
normal return, the reason given to MUPROC-EXIT, or (:ERROR-IN-PROCESS .
condition) after an unhandled error."
  (%muproc-exit-reason muproc))

(defun pid-string (pid)
  (let ((number (ldb (byte 32 0) pid))
        (serial (ldb (byte 32 32) pid)))
    (if (zerop serial)
        (format nil "~d" number)
        (format nil "~d.~d" number serial))))

(defmethod print-object ((m muproc) stream)
  (print-unreadable-object (m stream)
    (let* ((state (muproc-state m))
           (pending (if (eq state :dead)
                        0
                        (max 0 (muproc.ffi:%mbox-count (%muproc-pid m))))))
      ;; Uninterned names (gensyms, supervisors' {A*B}) print bare, as the
      ;; seed's transcripts show them.
      (format stream "MUPROC ~a ~a ~s~[~:; pending ~:*~d~]"
              (pid-string (%muproc-pid m))
              (let ((name (%muproc-name m)))
                (cond ((null name) "-")
                      ((symbol-package name) (prin1-to-string name))
                      (t (symbol-name name))))
              state pending)
      (when (eq state :dead)
        (print-exit-reason m stream)))))

(defun muproc-all-processes ()
  "A list of every live muproc (Lisp and C), oldest slot first."
  (let ((n (muproc.ffi:%proc-list (cffi:null-pointer) 0)))
    (loop
      (let ((cap (+ n 16)))
        (cffi:with-foreign-object (buf :uint64 cap)
          (setf n (muproc.ffi:%proc-list buf cap))
          (when (<= n cap)
            (return (loop for i below n
                          collect (pid-muproc (cffi:mem-aref buf :uint64 i))))))))))

(defun named-muproc (name)
  "The live muproc named NAME, or NIL.  A muproc that libmuproc has seen
exit no longer holds its name, although its exit may still be finishing:
its name is free the moment its port names are."
  (let ((muproc (gethash name *muproc-names*)))
    (and muproc (muproc-alive-p muproc) muproc)))

(defun find-muproc-or-lose (designator operation)
  "The muproc DESIGNATOR designates, for the operator named OPERATION: a
muproc itself, a symbol naming a live muproc, or a keyword registered as a
port name.  Otherwise signals MUPROC-UNKNOWN-NAME,
MUPROC-UNKNOWN-PORT-NAME or MUPROC-NOT-A-MUPROC, naming OPERATION."
  (typecase designator
    (muproc designator)
    (null (error 'muproc-not-a-muproc :operation operation :datum designator))
    (keyword (or (muproc-get-registered-port designator)
                 (error 'muproc-unknown-port-name :name designator :operation operation)))
    (symbol (or (named-muproc designator)
                (error 'muproc-unknown-name :name designator :operation operation)))
    (t (error 'muproc-not-a-muproc :operation operation :datum designator))))

(defun muproc-find (name &key as-list-p)
  "Find live muprocs by name.  NAME a symbol: the live muproc of that name,
or NIL (with AS-LIST-P, cl-muproc's, a list of it, or NIL).  NAME a
string: a list of the live muprocs whose name contains it, ignoring case."
  (etypecase name
    (symbol (let ((muproc (named-muproc name)))
              (if as-list-p (and muproc (list muproc)) muproc)))
    (string (remove-if-not (lambda (m)
                             (and (%muproc-name m)
                                  (search name (string (%muproc-name m))
                                          :test #'char-equal)))
                           (muproc-all-processes)))))
