;;;; timer.lisp - timers that run functions inside a muproc, send-after,
;;;; and MUPROC-WITH-TIMEOUT.
;;;;
;;;; libmuproc's timer thread delivers a timer signal to the muproc at the
;;;; deadline; the muproc runs the function itself at its next safe point
;;;; (in a receive, or interrupted if it is computing or sleeping), so the
;;;; function sees the muproc's own dynamic environment.

(in-package #:muproc)

(defstruct (muproc-timer (:constructor %make-timer (function owner))
                         (:predicate muproc-timer-p)
                         (:copier nil))
  (function nil)
  (owner nil)
  (id 0 :type (unsigned-byte 64))
  ;; Bumped at each arming and disarming: a firing already queued when the
  ;; timer was disarmed or re-armed carries an older generation and is
  ;; ignored.
  (generation 0 :type fixnum)
  ;; Handles in the message libmuproc holds for this timer: cleared from
  ;; the handle table once libmuproc no longer needs them.
  (handles '() :type list))

(setf (documentation 'muproc-timer-p 'function)
      "True if OBJECT is a timer made by MUPROC-MAKE-INTERRUPT-TIMER,
MUPROC-SCHEDULE or MUPROC-SEND-AFTER.")

(defmethod print-object ((timer muproc-timer) stream)
  (print-unreadable-object (timer stream :identity t)
    (format stream "MUPROC-TIMER ~:[idle~;armed~]" (plusp (muproc-timer-id timer)))))

(defun seconds->ns (seconds)
  (check-type seconds (real 0))
  (round (* seconds 1000000000)))

(defun note-owned-timer (owner timer)
  "Remember TIMER on its OWNER, forgetting timers that are finished."
  (when owner
    (setf (%muproc-timers owner)
          (cons timer (delete-if-not #'timer-holds-handles-p (%muproc-timers owner))))))

(defun timer-holds-handles-p (timer)
  (some (lambda (h) (plusp (muproc.ffi:%handle-live h))) (muproc-timer-handles timer)))

(defun forget-timer-handles (timer)
  (mapc #'forget-handle (muproc-timer-handles timer)))

(defun arm-timer (timer deadline repeat-ns plist lisp-receiver-p destination
                  send-after-pid)
  "Encode PLIST (for DESTINATION, by reference if LISP-RECEIVER-P) and hand
it to libmuproc's timer thread for TIMER, which owns it from then on."
  (cffi:with-foreign-object (out :uint64)
    (multiple-value-bind (rc handles)
        ;; From encoding to handing over, the message is owned here: no
        ;; exit may unwind in between and leak it.
        (sb-sys:without-interrupts
          (let* ((msg (encode-plist plist lisp-receiver-p destination))
                 (handles (message-handles msg))
                 (rc (if send-after-pid
                         (muproc.ffi:%timer-send-after send-after-pid deadline msg out)
                         (muproc.ffi:%timer-signal (%muproc-pid (muproc-timer-owner timer))
                                                   deadline repeat-ns msg out))))
            (unless (zerop rc) (free-message msg))
            (values rc handles)))
      (muproc.ffi:check rc "arming a timer")
      (setf (muproc-timer-id timer) (cffi:mem-ref out :uint64)
            (muproc-timer-handles timer) handles)
      (note-owned-timer (muproc-timer-owner timer) timer)
      timer)))

(defun muproc-make-interrupt-timer (function &key dont-register)
  "A timer that, once scheduled, makes the current muproc call FUNCTION
(no arguments) inside itself.  Schedule it with MUPROC-SCHEDULE-TIMER or
MUPROC-SCHEDULE-TIMER-RELATIVE.  Signals MUPROC-NOT-IN-MUPROC outside a
muproc.  DONT-REGISTER (cl-muproc's) is accepted and has no effect: every
timer of a muproc is cancelled when it exits."
  (declare (ignore dont-register))
  (%make-timer (coerce function 'function)
               (current-muproc-or-lose "MUPROC-MAKE-INTERRUPT-TIMER")))

(defun muproc-schedule-timer-relative (timer delay &optional repeat-interval)
  "Arm TIMER to fire DELAY seconds from now, then every REPEAT-INTERVAL
seconds if given.  Re-arming a timer first unschedules it.  Returns TIMER."
  (muproc-unschedule-timer timer)
  (let ((deadline (+ (muproc.ffi:%now-ns) (seconds->ns delay)))
        (repeat (if repeat-interval (seconds->ns repeat-interval) 0)))
    (when (and repeat-interval (zerop repeat))
      (error 'type-error :datum repeat-interval :expected-type '(real (0))))
    (arm-timer timer deadline repeat
               (list :timer timer
                     :generation (incf (muproc-timer-generation timer)))
               t (muproc-timer-owner timer)
               nil)))

(defun fire-timer (timer generation)
  "Run TIMER's function, unless this firing was queued before TIMER was
disarmed or re-armed."
  (when (= generation (muproc-timer-generation timer))
    (funcall (muproc-timer-function timer))))

(defun muproc-schedule-timer (timer universal-time &optional repeat-interval)
  "Arm TIMER to fire at UNIVERSAL-TIME (now, if that has passed), then
every REPEAT-INTERVAL seconds if given.  Returns TIMER."
  (muproc-schedule-timer-relative timer (max 0 (- universal-time (get-universal-time)))
                                  repeat-interval))

(defun muproc-unschedule-timer (timer)
  "Disarm TIMER.  Returns T if it was pending (it will not fire again),
NIL if it had fired (one-shot) or was never armed."
  (let ((id (muproc-timer-id timer)))
    (setf (muproc-timer-id timer) 0)
    (incf (muproc-timer-generation timer))
    (prog1 (and (plusp id) (zerop (muproc.ffi:%timer-cancel id)))
      (forget-timer-handles timer))))

(defun muproc-schedule (function universal-time &optional repeat-interval)
  "Make the current muproc call FUNCTION inside itself at UNIVERSAL-TIME,
then every REPEAT-INTERVAL seconds if given.  Returns the timer (see
MUPROC-UNSCHEDULE-TIMER).  All of a muproc's timers are cancelled when it
exits."
  (muproc-schedule-timer (muproc-make-interrupt-timer function) universal-time
                         repeat-interval))

(defun muproc-schedule-relative (function delay &optional repeat-interval)
  "Like MUPROC-SCHEDULE, DELAY seconds from now."
  (muproc-schedule-timer-relative (muproc-make-interrupt-timer function) delay
                                  repeat-interval))

(defun muproc-send-after (delay destination &rest plist)
  "Send the mumsg PLIST to DESTINATION (a muproc or a registered port name,
resolved now) DELAY seconds from now.  Returns a timer: MUPROC-UNSCHEDULE-
TIMER cancels the send.  The send is cancelled if DESTINATION, or the
current muproc, exits first."
  (check-plist plist)
  (let ((pid (destination-pid destination)))
    (unless pid
      (return-from muproc-send-after (send-to-terminated destination)))
    (let ((kind (muproc.ffi:%proc-kind pid)))
      (when (minusp kind)
        (return-from muproc-send-after (send-to-terminated destination pid)))
      (arm-timer (%make-timer nil *current-muproc*)
                 (+ (muproc.ffi:%now-ns) (seconds->ns delay)) 0
                 plist (= kind muproc.ffi:+kind-lisp+) destination
                 pid))))

(defun call-with-muproc-timeout (timeout body on-timeout)
  (if *current-muproc*
      (call-with-timer-signal-timeout *current-muproc* timeout body on-timeout)
      (call-with-thread-timeout timeout body on-timeout)))

(defun call-with-timer-signal-timeout (self timeout body on-timeout)
  "Inside muproc SELF: libmuproc's timer signals SELF, which throws at its
next safe point (a receive included)."
  (let ((tag (list :muproc-timeout))
        (timer (%make-timer nil self)))
    (multiple-value-bind (timed-out values)
        (catch tag
          (unwind-protect
               (let ((*active-timeouts* (cons tag *active-timeouts*)))
                 (arm-timer timer (+ (muproc.ffi:%now-ns) (seconds->ns timeout)) 0
                            (list :timeout-tag tag) t self nil)
                 (values nil (multiple-value-list (funcall body))))
            (muproc-unschedule-timer timer)))
      (if (eq timed-out :timeout)
          (funcall on-timeout)
          (values-list values)))))

(defun call-with-thread-timeout (timeout body on-timeout)
  "Outside a muproc (the REPL, any thread): an SBCL timer interrupts this
thread, which throws.  Only while ACTIVE: once BODY has returned, a firing
already on its way does nothing."
  (let* ((tag (list :muproc-timeout))
         (active t)
         (timer (sb-ext:make-timer (lambda () (when active (throw tag :timeout)))
                                   :name "muproc-with-timeout"
                                   :thread sb-thread:*current-thread*)))
    (multiple-value-bind (timed-out values)
        (catch tag
          (sb-sys:without-interrupts
            (unwind-protect
                 (sb-sys:with-local-interrupts
                   (sb-ext:schedule-timer timer (max 0 timeout))
                   (values nil (multiple-value-list (funcall body))))
              (setf active nil)
              (sb-ext:unschedule-timer timer))))
      (if (eq timed-out :timeout)
          (funcall on-timeout)
          (values-list values)))))

(defmacro muproc-with-timeout ((timeout &body timeout-forms) &body body)
  "Evaluate BODY; if it takes more than TIMEOUT seconds, abandon it
(unwinding, so cleanups run) and evaluate TIMEOUT-FORMS instead.  Returns
the values of whichever ran.  Works in any thread, the REPL included.
Inside a muproc the timeout reaches BODY in a receive, in Lisp code and
in SLEEP alike; elsewhere it interrupts the thread."
  `(call-with-muproc-timeout ,timeout (lambda () ,@body) (lambda () ,@timeout-forms)))
