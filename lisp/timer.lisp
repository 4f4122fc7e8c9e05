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
  ;; Handles in the message libmuproc holds for this timer, cleared from
  ;; the handle table when it is unscheduled.  When libmuproc drops the
  ;; message (an exit, a full inport) REAP-DROPPED-TIMER-MESSAGES clears
  ;; them.
  (handles '() :type list))

(setf (documentation 'muproc-timer-p 'function)
      "True if OBJECT is a timer made by MUPROC-MAKE-INTERRUPT-TIMER,
MUPROC-SCHEDULE or MUPROC-SEND-AFTER.")

(defmethod print-object ((timer muproc-timer) stream)
  (print-unreadable-object (timer stream :identity t)
    (format stream "MUPROC-TIMER ~:[idle~;armed~]" (plusp (muproc-timer-id timer)))))

(defun forget-timer-handles (timer)
  (mapc #'forget-handle (muproc-timer-handles timer)))

(defun reap-dropped-timer-messages ()
  "Free the timer messages libmuproc dropped undelivered (their
destination or owner exited, or a bounded inport was full), clearing the
slots of their handles.  Cheap when there are none: every exit calls it."
  (loop
    (sb-sys:without-interrupts
      (let ((msg (muproc.ffi:%timer-reap)))
        (when (cffi:null-pointer-p msg)
          (return))
        (free-message msg)))))

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
      (when (= rc muproc.ffi:+esrch+)
        ;; The destination exited since it was looked up.
        (return-from arm-timer (send-to-terminated destination send-after-pid)))
      (setf (muproc-timer-id timer) (cffi:mem-ref out :uint64)
            (muproc-timer-handles timer) handles)
      ;; Those a long-lived muproc's timers dropped wait for no exit.
      (reap-dropped-timer-messages)
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

(defun schedule-timer-relative (timer delay repeat-interval operation)
  "MUPROC-SCHEDULE-TIMER-RELATIVE for OPERATION, the operation called."
  (unless (muproc-timer-p timer)
    (invalid-argument operation :timer timer "a timer" 'muproc-timer))
  (let ((deadline (timer-deadline delay operation))
        (repeat (if repeat-interval
                    (duration-ns repeat-interval operation :repeat-interval)
                    0)))
    (when (and repeat-interval (zerop repeat))
      (invalid-argument operation :repeat-interval repeat-interval
                        "a positive number of seconds" '(real (0))))
    (muproc-unschedule-timer timer)
    (arm-timer timer deadline repeat
               (list :timer timer
                     :generation (incf (muproc-timer-generation timer)))
               t (muproc-timer-owner timer)
               nil)))

(defun muproc-schedule-timer-relative (timer delay &optional repeat-interval)
  "Arm TIMER to fire DELAY seconds from now, then every REPEAT-INTERVAL
seconds if given.  Re-arming a timer first unschedules it.  A delay or
interval longer than a century is a century: the timer never fires.
Returns TIMER."
  (schedule-timer-relative timer delay repeat-interval
                           "MUPROC-SCHEDULE-TIMER-RELATIVE"))

(defun fire-timer (timer generation)
  "Run TIMER's function, unless this firing was queued before TIMER was
disarmed or re-armed."
  (when (= generation (muproc-timer-generation timer))
    (funcall (muproc-timer-function timer))))

(defun schedule-timer (timer universal-time repeat-interval operation)
  "MUPROC-SCHEDULE-TIMER for OPERATION, the operation called."
  (unless (realp universal-time)
    (invalid-argument operation :universal-time universal-time
                      "a universal time" 'real))
  (schedule-timer-relative timer (max 0 (- universal-time (get-universal-time)))
                           repeat-interval operation))

(defun muproc-schedule-timer (timer universal-time &optional repeat-interval)
  "Arm TIMER to fire at UNIVERSAL-TIME (now, if that has passed), then
every REPEAT-INTERVAL seconds if given.  Returns TIMER."
  (schedule-timer timer universal-time repeat-interval "MUPROC-SCHEDULE-TIMER"))

(defun muproc-unschedule-timer (timer)
  "Disarm TIMER.  Returns T if it was pending (it will not fire again),
NIL if it had fired (one-shot) or was never armed."
  (let ((id (muproc-timer-id timer)))
    (setf (muproc-timer-id timer) 0)
    (incf (muproc-timer-generation timer))
    (prog1 (and (plusp id) (zerop (muproc.ffi:%timer-cancel id)))
      (forget-timer-handles timer))))

(defun check-schedule-arguments (operation function time time-argument)
  "Errors that name OPERATION, the operator the user called, before any
timer is made: the arguments of MUPROC-SEND-AFTER come in the other order."
  (let ((usage (format nil "(~a FUNCTION ~a &optional REPEAT-INTERVAL): the ~
                            function first, unlike MUPROC-SEND-AFTER"
                       operation time-argument)))
    (check-argument operation :function function
                    (lambda (f) (or (functionp f) (and f (symbolp f) (fboundp f))))
                    "a function" usage)
    (check-argument operation time-argument time (lambda (x) (typep x '(real 0)))
                    "a number of seconds" usage))
  (current-muproc-or-lose operation))

(defun muproc-schedule (function universal-time &optional repeat-interval)
  "Make the current muproc call FUNCTION inside itself at UNIVERSAL-TIME,
then every REPEAT-INTERVAL seconds if given.  Returns the timer (see
MUPROC-UNSCHEDULE-TIMER).  All of a muproc's timers are cancelled when it
exits."
  (check-schedule-arguments "MUPROC-SCHEDULE" function universal-time :universal-time)
  (schedule-timer (muproc-make-interrupt-timer function) universal-time
                  repeat-interval "MUPROC-SCHEDULE"))

(defun muproc-schedule-relative (function delay &optional repeat-interval)
  "Like MUPROC-SCHEDULE, DELAY seconds from now."
  (check-schedule-arguments "MUPROC-SCHEDULE-RELATIVE" function delay :delay)
  (schedule-timer-relative (muproc-make-interrupt-timer function) delay
                           repeat-interval "MUPROC-SCHEDULE-RELATIVE"))

(defun muproc-send-after (delay destination &rest plist)
  "Send the mumsg PLIST to DESTINATION (a muproc or a registered port name,
resolved now) DELAY seconds from now.  Returns a timer: MUPROC-UNSCHEDULE-
TIMER cancels the send.  The send is cancelled if DESTINATION, or the
current muproc, exits first.  If DESTINATION's bounded inport is full when
the time comes, the message is dropped (nothing queued is lost, nothing
else happens): no one is left to be told, as a sender would be by
MUPROC-INPORT-FULL.  A DELAY longer than a century never comes."
  (check-plist plist)
  (let ((deadline (timer-deadline delay "MUPROC-SEND-AFTER"))
        (pid (destination-pid destination "MUPROC-SEND-AFTER")))
    (unless pid
      (return-from muproc-send-after (send-to-terminated destination)))
    (let ((kind (muproc.ffi:%proc-kind pid)))
      (when (minusp kind)
        (return-from muproc-send-after (send-to-terminated destination pid)))
      (arm-timer (%make-timer nil *current-muproc*)
                 deadline 0
                 plist (= kind muproc.ffi:+kind-lisp+) destination
                 pid))))

(defun call-with-muproc-timeout (timeout body on-timeout)
  (if *current-muproc*
      (call-with-timer-signal-timeout *current-muproc* timeout body on-timeout)
      (call-with-thread-timeout timeout body on-timeout)))

(defun call-with-timer-signal-timeout (self timeout body on-timeout)
  "Inside muproc SELF: libmuproc's timer signals SELF, which throws at its
next safe point (a receive included)."
  (let ((deadline (timer-deadline timeout "MUPROC-WITH-TIMEOUT" :timeout))
        (tag (list :muproc-timeout))
        (timer (%make-timer nil self)))
    (multiple-value-bind (timed-out values)
        (catch tag
          (unwind-protect
               (let ((*active-timeouts* (cons tag *active-timeouts*)))
                 (arm-timer timer deadline 0
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
  (let* ((seconds (checked-duration timeout "MUPROC-WITH-TIMEOUT" :timeout
                                    :allow-nil nil))
         (tag (list :muproc-timeout))
         (active t)
         (timer (sb-ext:make-timer (lambda () (when active (throw tag :timeout)))
                                   :name "muproc-with-timeout"
                                   :thread sb-thread:*current-thread*)))
    (multiple-value-bind (timed-out values)
        (catch tag
          (sb-sys:without-interrupts
            (unwind-protect
                 (sb-sys:with-local-interrupts
                   ;; Beyond any limit (NIL): never fires.
                   (when seconds (sb-ext:schedule-timer timer seconds))
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
