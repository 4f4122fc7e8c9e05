;;;; exit.lisp - how a muproc ends: exit signals, kills, and safe points.
;;;;
;;;; Exits of other muprocs travel through the target's priority lane, so
;;;; a target blocked in C wakes up; a target busy in Lisp (or sleeping)
;;;; is also interrupted, and acts on the signal at that safe point.  Our
;;;; own critical sections run without interrupts, so a signal never
;;;; lands in the middle of one.

(in-package #:muproc)

;;; Safe points.  A signal is acted on only where that can't lose
;;; anything.  Exits, kills and timeouts end what the muproc is doing, so
;;; they may act anywhere but inside our own critical sections (which run
;;; without interrupts), a receive's guards included: the message a guard
;;; looks at is still queued.  Timer and interrupt functions are user code
;;; that returns and may itself receive, so they never run inside a
;;; receive's scan: taken from the lane there, they wait in the muproc's
;;; DEFERRED-SIGNALS, and the receive runs them between two scans (then
;;; scans afresh), or a poke runs them once the receive is over.

(defun consume-signal (msg &optional view)
  "Free signal message MSG (owned by the caller; VIEW, if given, a view of
it) and return its kind and plist.  Called without interrupts, so the
message can't leak."
  (flet ((consume (view)
           (let ((kind (view-kind view))
                 (plist (view-plist view)))
             (free-message msg view)
             (values kind plist))))
    (if view
        (consume view)
        (with-message-view (view msg) (consume view)))))

(defvar *active-timeouts* '()
  "Catch tags of the MUPROC-WITH-TIMEOUT forms the current muproc is in.")

(defvar *timeout-shield* '()
  "Inside the clause of a received message: the catch tags of the
MUPROC-WITH-TIMEOUT forms around that receive.  Their timeouts bound the
wait, not the handling: one that fires while the clause runs takes effect
when it returns, so a taken message always has its whole clause run.")

(defun postpone-timeout (tag)
  (pushnew tag (%muproc-postponed-timeouts *current-muproc*)))

(defun clause-ended ()
  "A receive clause returned: a timeout of a MUPROC-WITH-TIMEOUT around
its receive that fired meanwhile takes effect now (the oldest first)."
  (let* ((self *current-muproc*)
         (postponed (%muproc-postponed-timeouts self)))
    (when postponed
      (flet ((active-p (tag) (member tag *active-timeouts*))
             (shielded-p (tag) (member tag *timeout-shield*)))
        (let ((due (find-if (lambda (tag) (and (active-p tag) (not (shielded-p tag))))
                            (reverse postponed))))
          ;; Keep only what an enclosing clause still shields.
          (setf (%muproc-postponed-timeouts self)
                (remove-if-not (lambda (tag) (and (active-p tag) (shielded-p tag))) postponed))
          (when due (throw due :timeout)))))))

(defun deferrable-signal-p (kind plist)
  "True for signals that run user code and then return: timer functions
and interrupts.  Exits, kills and MUPROC-WITH-TIMEOUT timeouts (timer
signals that carry a catch tag) unwind instead."
  (or (= kind muproc.ffi:+k-interrupt+)
      (and (= kind muproc.ffi:+k-timer+) (not (getf plist :timeout-tag)))))

(defun act-on-signal (kind plist)
  "Act on a signal taken from the current muproc's priority lane: exit,
run a timer's function, run an interrupt."
  (cond
    ((= kind muproc.ffi:+k-kill+)
     (let ((reason (getf plist :reason)))
       ;; The seed logs a kill after the muproc's cleanups: RUN-MUPROC does.
       (unless (getf plist :quiet)
         (setf (%muproc-kill-reason *current-muproc*) (list reason)))
       (throw '%muproc-exit reason)))
    ((= kind muproc.ffi:+k-exit+)
     ;; Trapping muprocs never get here: libmuproc turns an exit signal
     ;; into a (:terminated ...) message when a muproc that traps exits
     ;; takes it from its lane, so trapping is decided now, not when the
     ;; signal was sent.
     (let ((reason (getf plist :reason)))
       (throw '%muproc-exit
         (if (getf plist :link)
             (list :linked-to-exit (let ((from (getf plist :from)))
                                     (and from (%muproc-name from)))
                   :for-reason reason)
             reason))))
    ((= kind muproc.ffi:+k-timer+)
     (let ((tag (getf plist :timeout-tag)))
       (cond ((null tag) (fire-timer (getf plist :timer) (getf plist :generation)))
             ((not (member tag *active-timeouts*)))          ; over already
             ((member tag *timeout-shield*) (postpone-timeout tag))
             (t (throw tag :timeout)))))
    ((= kind muproc.ffi:+k-interrupt+)
     (apply (getf plist :function) (getf plist :arguments)))))

(defvar *running-signal* nil
  "True while the current muproc runs a timer or interrupt function: a
signal arriving then may unwind it (an exit, a kill, a timeout), but
another function waits until this one returns.")

(defun run-signal (kind plist)
  "Act on a signal at a point where user code may run: timer and
interrupt functions run outside any receive, so they may receive
themselves, and with interrupts enabled (even when called from an
interruption), so an exit or a kill still reaches them."
  (let ((*receive-in-progress* nil)
        (*running-signal* t))
    (sb-sys:with-interrupts
      (act-on-signal kind plist))))

(defun defer-or-act (self kind plist)
  "Where no user function may run: act on an exit, kill or timeout now;
keep a timer or interrupt function for later."
  (if (deferrable-signal-p kind plist)
      (setf (%muproc-deferred-signals self)
            (nconc (%muproc-deferred-signals self) (list (cons kind plist))))
      (act-on-signal kind plist)))

(defun run-deferred-signals (self)
  "Run the signals that had to wait, oldest first."
  (loop for (kind . plist) = (pop (%muproc-deferred-signals self))
        while kind
        do (run-signal kind plist)))

(defun take-signal (pid)
  "The oldest signal in muproc PID's lane as (values kind plist), or NIL."
  (cffi:with-foreign-object (out :pointer)
    (sb-sys:without-interrupts
      (when (= (muproc.ffi:%recv-signal pid muproc.ffi:+nowait+ out)
               muproc.ffi:+signalled+)
        (consume-signal (cffi:mem-ref out :pointer))))))

(defun poll-signals (pid)
  "At a safe point in muproc PID: act on every pending signal, oldest
first.  Inside a receive's scan or a running timer or interrupt
function, act only on those that unwind and defer the others.  Between
a receive's take and the start of its clause, act on none: they wait
for the clause (see CLAUSE-BEGUN).  Runs with interrupts disabled when
called from an interruption, so interruptions never nest deeper than
one user function."
  (let ((self *current-muproc*))
    (when (and self (= pid (%muproc-pid self)))
      (cond
        ((%muproc-committing self)
         ;; An interruption deferred while a take ran fires right here:
         ;; acting now could unwind past the taken message's clause.
         (setf (%muproc-signals-after-clause self) t))
        ((or *receive-in-progress* *running-signal*)
         (loop
           (multiple-value-bind (kind plist) (take-signal pid)
             (unless kind (return))
             (defer-or-act self kind plist))))
        (t
         (loop
           (if (%muproc-deferred-signals self)
               (destructuring-bind (kind . plist) (pop (%muproc-deferred-signals self))
                 (run-signal kind plist))
               (multiple-value-bind (kind plist) (take-signal pid)
                 (unless kind (return))
                 (run-signal kind plist)))))))))

(defun send-signal (muproc kind plist)
  "Put a signal of KIND carrying PLIST into MUPROC's priority lane; the
runtime has its thread interrupted if it is not waiting in a receive.
Returns true if MUPROC was alive."
  (let ((rc (sb-sys:without-interrupts
              (let* ((msg (encode-plist plist t muproc))
                     (rc (muproc.ffi:%signal-send (%muproc-pid muproc) kind msg)))
                (unless (zerop rc) (free-message msg))
                rc))))
    (zerop rc)))

(defun muproc-exit (reason &optional muproc)
  "Make a muproc exit with REASON.  Without MUPROC (or with the current
one): unwind the current muproc (UNWIND-PROTECT cleanups run) and exit it;
does not return.  With another MUPROC: send it an exit signal, which
reaches it even while it sleeps, waits in a receive or computes (it acts
at its next safe point); a muproc that traps exits at that point gets the
message (:terminated SENDER :reason REASON) instead.  Returns true if
MUPROC was alive, else NIL.  MUPROC may be given as for MUPROC-KILL."
  (when muproc
    (setf muproc (find-muproc-or-lose muproc "MUPROC-EXIT")))
  (cond ((or (null muproc) (eq muproc *current-muproc*))
         (current-muproc-or-lose "MUPROC-EXIT")
         ;; cl-muproc's: handlers may see the exit coming (compat.lisp).
         (signal 'muproc-exit-condition :muproc *current-muproc* :reason reason)
         (throw '%muproc-exit reason))
        ((%muproc-exited muproc) nil)
        (t (let ((rc (sb-sys:without-interrupts
                       (multiple-value-bind (type value handle) (reason-term reason)
                         (prog1 (muproc.ffi:%send-exit (%muproc-pid muproc) type value)
                           (when handle (release-standalone-handle handle)))))))
             (when (= rc muproc.ffi:+enomem+)
               (error 'muproc-runtime-error :code rc :operation "muproc_send_exit"))
             (zerop rc)))))

(defun muproc-kill (muproc &optional (reason :killed))
  "Make MUPROC exit with REASON (default :KILLED); it can't trap this.
MUPROC: a muproc, the symbol naming a live muproc, or a keyword registered
as a port name (MUPROC-UNKNOWN-NAME, MUPROC-UNKNOWN-PORT-NAME or
MUPROC-NOT-A-MUPROC otherwise).  Killing the current muproc unwinds it at
once and does not return.  Returns true if MUPROC was alive, else NIL."
  (let ((muproc (find-muproc-or-lose muproc "MUPROC-KILL")))
    (if (eq muproc *current-muproc*)
        ;; Through the priority lane the kill would wait for a safe point,
        ;; and the caller could return (and finish its body) first.
        (act-on-signal muproc.ffi:+k-kill+ (list :reason reason))
        (and (not (%muproc-exited muproc))
             (send-signal muproc muproc.ffi:+k-kill+ (list :reason reason))))))

(defun muproc-interrupt (muproc function &rest arguments)
  "Make MUPROC apply FUNCTION to ARGUMENTS at its next safe point (in a
receive, or at once if it is computing or sleeping), inside its own
dynamic environment.  MUPROC may be given as for MUPROC-KILL.  Returns
true if MUPROC was alive.  An error FUNCTION signals ends MUPROC as any
unhandled error does.  Signals MUPROC-INVALID-ARGUMENT unless FUNCTION is
a function or the name of one."
  (setf muproc (find-muproc-or-lose muproc "MUPROC-INTERRUPT"))
  (unless (or (functionp function)
              (and (symbolp function) (fboundp function)
                   (not (macro-function function))
                   (not (special-operator-p function))))
    (invalid-argument "MUPROC-INTERRUPT" :function function
                      "a function or the name of one" '(or function symbol)))
  (and (not (%muproc-exited muproc))
       (send-signal muproc muproc.ffi:+k-interrupt+
                    (list :function (coerce function 'function)
                          :arguments arguments))))

;;; Exit reasons as libmuproc terms.

(defun reason-term (reason)
  "REASON as (values TYPE VALUE HANDLE); HANDLE is a standalone handle the
caller must release once libmuproc has taken its own reference."
  (typecase reason
    (null (values muproc.ffi:+t-nil+ 0 nil))
    ((and keyword (satisfies value-atom))
     (values muproc.ffi:+t-atom+ (value-atom reason) nil))
    (t (let ((handle (new-standalone-handle reason)))
         (values muproc.ffi:+t-handle+ handle handle)))))

(defun drain-inport (pid)
  "Free every message and signal left in exited muproc PID's inport."
  (cffi:with-foreign-object (out :pointer)
    (loop
      (let ((rc (muproc.ffi:%recv pid (cffi:null-pointer) (cffi:null-pointer)
                                  muproc.ffi:+nowait+ out)))
        (cond ((zerop rc)
               (let ((msg (cffi:mem-ref out :pointer)))
                 (muproc.ffi:%recv-take pid msg)
                 (free-message msg)))
              ((= rc muproc.ffi:+signalled+)
               (free-message (cffi:mem-ref out :pointer)))
              (t (return)))))))

(defvar *exit-lock* (sb-thread:make-mutex :name "muproc exits"))
(defvar *exit-queue* (sb-thread:make-waitqueue :name "muproc exits"))
;;; SBCL's CONDITION-BROADCAST always makes a futex syscall (about a
;;; microsecond, a fifth of a spawn) and wakes every waiter, though an exit
;;; is rarely waited for, and then by one waiter for that muproc (a MUPROC
;;; form's caller waits for its muproc while thousands of others come and
;;; go).  So a waiter counts itself, atomically, on the muproc it waits for
;;; (its EXIT-WAITERS) or, waiting for any exit event, here (in the CAR);
;;; an exit broadcasts only when one of the two counts is not zero.
(sb-ext:defglobal **exit-waiters** (list 0))

(defun announce-exit-event (&optional muproc)
  "With *EXIT-LOCK* held: wake whoever waits in WAIT-FOR-EXIT-EVENT for
MUPROC's exit (NIL: for a worker's) or for any exit.  A waiter counts
itself under the lock before it waits, so seeing none here means none can
miss this."
  (when (or (plusp (car **exit-waiters**))
            (and muproc (plusp (%muproc-exit-waiters muproc))))
    (sb-thread:condition-broadcast *exit-queue*)))

(defun finish-muproc (muproc reason)
  "Record REASON, exit in libmuproc, free the name, drain and release.
Runs without interrupts: nothing may stop an exit half-way."
  (sb-sys:without-interrupts
    (let ((pid (%muproc-pid muproc))
          (name (%muproc-name muproc)))
      (setf (%muproc-exit-reason muproc) reason)
      (when-traced (m muproc) (trace-event m "exit ~s" reason))
      (multiple-value-bind (type value handle) (reason-term reason)
        ;; Frees the port names and tells links and monitors.  The name is
        ;; free from the same moment (NAMED-MUPROC skips a muproc libmuproc
        ;; has seen exit), so whoever hears of the exit, or sees the name
        ;; free, may respawn it and register the same ports.
        (muproc.ffi:%proc-exit pid type value)
        (when name
          (sb-ext:with-locked-hash-table (*muproc-names*)
            (when (eq (gethash name *muproc-names*) muproc)
              (remhash name *muproc-names*))))
        (when handle (muproc.ffi:%handle-release handle))
        (drain-inport pid)
        (setf (%muproc-thread muproc) nil)
        ;; libmuproc cancelled the timers it made and those aimed at it.
        (reap-dropped-timer-messages)
        (note-finished muproc)
        (muproc.ffi:%proc-release pid)
        (when handle (forget-handle handle))
        ;; Last: whoever waits for this exit finds everything cleaned up.
        (sb-thread:with-mutex (*exit-lock*)
          (setf (%muproc-exited muproc) t)
          (announce-exit-event muproc))))))

(defun wait-for-exit-event (timeout &optional muproc)
  "With *EXIT-LOCK* held: wait until MUPROC's exit (NIL: any exit, a
worker's included) is announced or TIMEOUT seconds (NIL: no limit) pass;
return with the lock held either way (a timed-out CONDITION-WAIT returns
without it).  Other exits may wake it too."
  (flet ((wait ()
           (unless (sb-thread:condition-wait *exit-queue* *exit-lock* :timeout timeout)
             (sb-thread:grab-mutex *exit-lock*))))
    (if muproc
        (progn
          (sb-ext:atomic-incf (%muproc-exit-waiters muproc))
          (unwind-protect (wait)
            (sb-ext:atomic-decf (%muproc-exit-waiters muproc))))
        (progn
          (sb-ext:atomic-incf (car **exit-waiters**))
          (unwind-protect (wait)
            (sb-ext:atomic-decf (car **exit-waiters**)))))))

(defun muproc-wait-for-exit (muproc &key timeout)
  "Wait until MUPROC has exited and been cleaned up, at most TIMEOUT
seconds (NIL, or more than a century: no limit).  Returns (values REASON
T) once it has exited,
(values NIL NIL) on timeout.  Usable from any thread, muproc or not."
  (unless (muproc-p muproc)
    (invalid-argument "MUPROC-WAIT-FOR-EXIT" :muproc muproc "a muproc" 'muproc))
  (let* ((timeout (wait-seconds timeout "MUPROC-WAIT-FOR-EXIT"))
         (deadline (when timeout
                     (+ (get-internal-real-time)
                        (round (* timeout internal-time-units-per-second))))))
    (sb-thread:with-mutex (*exit-lock*)
      (loop
        (when (%muproc-exited muproc)
          (return (values (%muproc-exit-reason muproc) t)))
        (let ((left (when deadline
                      (/ (- deadline (get-internal-real-time))
                         internal-time-units-per-second))))
          (when (and left (<= left 0))
            (return (values nil nil)))
          (wait-for-exit-event left muproc))))))
