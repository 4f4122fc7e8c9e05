;;;; deadline.lisp - timeouts and delays in seconds, checked and clamped.
;;;;
;;;; Every timeout and delay a user gives goes through here, so that none
;;;; reaches libmuproc's 64-bit nanosecond clock, or SBCL's waits, out of
;;;; range: a duration longer than a century means "no limit" for a wait
;;;; and "never" for a timer, instead of an overflow.

(in-package #:muproc)

(defconstant +longest-duration+ (* 100 365 24 3600)
  "Seconds; any longer duration is treated as no limit.  Its nanoseconds,
added to CLOCK_MONOTONIC, stay far inside a signed 64-bit integer.")

(defun checked-duration (seconds operation argument &key (allow-nil t))
  "SECONDS checked for OPERATION's ARGUMENT: a non-negative real (or NIL,
no limit, when ALLOW-NIL).  Returns SECONDS, or NIL for no limit: NIL, or
a duration of at least +LONGEST-DURATION+ (an infinity included).
Signals MUPROC-INVALID-ARGUMENT otherwise."
  (cond ((and (null seconds) allow-nil) nil)
        ((not (and (realp seconds)
                   (not (and (floatp seconds) (sb-ext:float-nan-p seconds)))
                   (>= seconds 0)))
         (invalid-argument operation argument seconds
                           (if allow-nil
                               "NIL or a non-negative number of seconds"
                               "a non-negative number of seconds")
                           (if allow-nil '(or null (real 0)) '(real 0))))
        ((>= seconds +longest-duration+) nil)
        (t seconds)))

(defun duration-ns (seconds operation argument)
  "SECONDS (checked, NIL not allowed) in nanoseconds, at most
+LONGEST-DURATION+'s."
  (round (* (or (checked-duration seconds operation argument :allow-nil nil)
                +longest-duration+)
            1000000000)))

(defun wait-deadline (timeout operation &optional (argument :timeout))
  "The libmuproc deadline of a wait of TIMEOUT seconds for OPERATION:
MUPROC.FFI:+FOREVER+ for NIL (or a duration beyond any limit),
MUPROC.FFI:+NOWAIT+ for 0."
  (let ((seconds (checked-duration timeout operation argument)))
    (cond ((null seconds) muproc.ffi:+forever+)
          ((zerop seconds) muproc.ffi:+nowait+)
          (t (+ (muproc.ffi:%now-ns) (round (* seconds 1000000000)))))))

(defun timer-deadline (delay operation &optional (argument :delay))
  "The libmuproc deadline DELAY seconds from now, for OPERATION's timer
(a delay beyond any limit: a deadline that never comes)."
  (+ (muproc.ffi:%now-ns) (duration-ns delay operation argument)))

(defun wait-seconds (timeout operation &optional (argument :timeout))
  "TIMEOUT checked for a Lisp-side wait of OPERATION: the seconds to pass
to SBCL, or NIL for no limit."
  (checked-duration timeout operation argument))
