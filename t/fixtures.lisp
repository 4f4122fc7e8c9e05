;;;; fixtures.lisp - watchdog and leak check around every test.

(in-package #:muproc-tests)

(define-condition watchdog-expired (error)
  ((seconds :initarg :seconds :reader watchdog-seconds))
  (:report (lambda (c s)
             (format s "Watchdog: the test did not finish within ~a s."
                     (watchdog-seconds c)))))

(defun call-with-watchdog (seconds thunk)
  "Call THUNK; if it runs longer than SECONDS, signal WATCHDOG-EXPIRED in
it, so a hung test fails instead of hanging the suite."
  (let* ((done (sb-thread:make-semaphore))
         (tester sb-thread:*current-thread*)
         (dog (sb-thread:make-thread
               (lambda ()
                 (unless (sb-thread:wait-on-semaphore done :timeout seconds)
                   (ignore-errors
                    (sb-thread:interrupt-thread
                     tester (lambda () (error 'watchdog-expired :seconds seconds))))))
               :name "test watchdog")))
    (unwind-protect (funcall thunk)
      (sb-thread:signal-semaphore done)
      (sb-thread:join-thread dog :default nil))))

;;; Time and waiting

(defun now ()
  "A timestamp in seconds with microsecond resolution (GET-INTERNAL-REAL-TIME
ticks in 4 ms steps on this SBCL)."
  (multiple-value-bind (seconds microseconds) (sb-ext:get-time-of-day)
    (+ seconds (/ microseconds 1d6))))

(defun seconds-since (start)
  "Seconds elapsed since START, a value of NOW."
  (- (now) start))

(defun await (predicate &key (timeout 10))
  "Spin (yielding the CPU) until PREDICATE returns true or TIMEOUT seconds
pass; return PREDICATE's last value.  For waiting on state that no message
announces (a muproc blocked in a receive, workers parked); never a sleep."
  (let ((start (now)))
    (loop
      (let ((v (funcall predicate)))
        (when (or v (> (seconds-since start) timeout))
          (return v)))
      (sb-thread:thread-yield))))

(defun spawn-and-wait (function &rest spawn-args)
  "Spawn an anonymous muproc running FUNCTION (no arguments, SPAWN-ARGS
passed on to MUPROC-SPAWN), wait at most 20 s for it to exit and return
its exit reason and the muproc."
  (let ((m (apply #'muproc-spawn nil function nil spawn-args)))
    (values (muproc-wait-for-exit m :timeout 20) m)))

(defun workers-settled-p ()
  "True when every worker thread is parked (none still finishing a muproc):
what a test that counts threads against the cap must wait for."
  (let ((stats (muproc-runtime-stats)))
    (= (getf stats :threads) (getf stats :parked))))

;;; Exiting busy muprocs

(defun exit-promptly (workload)
  "In a muproc: spawn one that announces itself and runs WORKLOAD, exit it
from here, and return (exit-returned reason seconds cleanup-ran)."
  (let* ((me (muproc-current-process))
         (cleanup nil)
         (target (muproc-spawn nil (lambda ()
                                     (unwind-protect
                                          (progn (mumsg-send me :ready t)
                                                 (funcall workload))
                                       (setf cleanup t)))
                               nil)))
    (mumsg-receive (from) ((ready) (eq from target)))
    (let* ((start (now))
           (returned (muproc-exit :stop target))
           (reason (muproc-wait-for-exit target :timeout 5)))
      (list returned reason (seconds-since start) cleanup))))

(defun spin-forever ()
  "Compute without end and without receiving."
  (let ((n 0))
    (loop (setf n (logand (1+ n) #xffff)))))

;;; Leaks

(defvar *baseline-threads* nil
  "Threads alive before the first test: everything else must be a parked
muproc worker after a test.")

(defun non-baseline-threads ()
  (set-difference (sb-thread:list-all-threads) *baseline-threads*))

(defun unfinished-muprocs ()
  "Every muproc not yet cleaned up: alive, or exited and not yet released,
and C muprocs."
  (union (muproc::live-muprocs)
         (muproc-all-processes)))

(defun wait-for-all-muprocs (seconds)
  "Wait for every muproc to be cleaned up; kill stragglers.  True if none
had to be killed."
  (let ((clean t))
    (dolist (m (unfinished-muprocs) clean)
      (unless (nth-value 1 (muproc-wait-for-exit m :timeout seconds))
        (setf clean nil)
        (muproc-kill m :leak-check)
        (muproc-wait-for-exit m :timeout seconds)))))

(defun check-no-leaks ()
  "Assert that the test left nothing behind: no muproc, no handle, no
message, timer, link, monitor or registered name, no thread but workers."
  (is-true (wait-for-all-muprocs 5) "muprocs were still running after the test")
  (let ((stats (muproc-runtime-stats)))
    (dolist (key '(:processes :handles :messages :registered :lisp-handles
                   :live-muprocs :timers :links :monitors :key-indexes))
      (is (zerop (getf stats key)) "leak: ~s = ~a after the test" key (getf stats key)))
    ;; A worker between two muprocs (not yet parked) is a pool thread,
    ;; not a leak: with no muproc left, every extra thread must be one.
    (let ((strays (remove muproc::*worker-thread-name* (non-baseline-threads)
                          :key #'sb-thread:thread-name :test #'string=)))
      (is (null strays) "leak: threads that are not muproc workers: ~a" strays))))

(defmacro deftest (name (&key (timeout 30)) &body body)
  "A test of NAME: BODY under a watchdog of TIMEOUT seconds, then the leak
check.  The docstring (first form) says what it checks."
  `(test ,name
     ,@(when (stringp (first body)) (list (pop body)))
     (unwind-protect (call-with-watchdog ,timeout (lambda () ,@body))
       (check-no-leaks))))

(defun collect-output (function)
  "Call FUNCTION with *TRACE-OUTPUT* and the errorstream going to a string
stream; return the string."
  (let* ((out (make-string-output-stream))
         (*trace-output* out)
         (muproc:*muproc-errorstream* out))
    (funcall function)
    (get-output-stream-string out)))

(defmacro deftest/settled (name (&rest options) &body body)
  "Another name for DEFTEST, kept while suites still use it: the leak check
now waits for what used to need settling."
  `(deftest ,name ,options ,@body))
