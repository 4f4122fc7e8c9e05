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

(defun stray-threads (threads-before)
  "Threads alive now that are neither in THREADS-BEFORE (those alive when
the test began: a REPL's own, the signal dispatcher, whatever ran the
suite) nor muproc workers.  A worker between two muprocs (not yet parked)
is a pool thread, not a leak: with no muproc left, every extra thread must
be one."
  (remove-if (lambda (thread)
               (or (member thread threads-before)
                   (string= (sb-thread:thread-name thread) muproc::*worker-thread-name*)))
             (sb-thread:list-all-threads)))

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

(defun check-no-leaks (threads-before)
  "Assert that the test left nothing behind: no muproc, no handle, no
message, timer, link, monitor or registered name, no thread but workers
and THREADS-BEFORE."
  (is-true (wait-for-all-muprocs 5) "muprocs were still running after the test")
  (let ((stats (muproc-runtime-stats)))
    (dolist (key '(:processes :handles :messages :registered :lisp-handles
                   :live-muprocs :timers :links :monitors :key-indexes))
      (is (zerop (getf stats key)) "leak: ~s = ~a after the test" key (getf stats key)))
    (let ((strays (stray-threads threads-before)))
      (is (null strays) "leak: threads that are not muproc workers: ~a" strays))))

(defmacro deftest (name (&key (timeout 30)) &body body)
  "A test of NAME: BODY under a watchdog of TIMEOUT seconds, then the leak
check.  The docstring (first form) says what it checks.  The threads alive
when the test begins are its baseline, so the check holds however the
suite is run (RUN-TESTS, FIVEAM:RUN! at a REPL, ASDF:TEST-SYSTEM)."
  (let ((threads-before (gensym "THREADS-BEFORE")))
    `(test ,name
       ,@(when (stringp (first body)) (list (pop body)))
       (let ((,threads-before (sb-thread:list-all-threads)))
         (unwind-protect (call-with-watchdog ,timeout (lambda () ,@body))
           (check-no-leaks ,threads-before))))))

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

;;; A child SBCL, for what must run in an image of its own (reloading
;;; muproc, a fresh REPL, crash cases).

(defun fresh-temporary-directory ()
  "A directory name under the temporary directory that no other test uses
(not created)."
  (uiop:ensure-directory-pathname
   (format nil "~amuproc-test-~d-~d/" (uiop:temporary-directory)
           (sb-unix:unix-getpid) (random 1000000000 (make-random-state t)))))

(defun run-lisp-in-child (source &key (asd (asdf:system-source-file "muproc"))
                                      environment (timeout 300))
  "Start a fresh SBCL that loads muproc from ASD, then evaluates SOURCE
(Lisp source text) form by form as LOAD does, IN-PACKAGE included.
ENVIRONMENT: more \"VAR=value\" strings for the child.  The child is
killed after TIMEOUT seconds.  Returns its standard output, its exit
status and its error output.  Status 0: everything ran; 3: loading muproc
or a form signalled an error, and the child printed \"CONDITION type\" and
the report, each on a line of its own."
  (let ((file (merge-pathnames (format nil "muproc-child-~d-~d.lisp" (sb-unix:unix-getpid)
                                       (random 1000000000 (make-random-state t)))
                               (uiop:temporary-directory))))
    (with-open-file (out file :direction :output :if-exists :supersede)
      (write-string source out))
    (unwind-protect
         (multiple-value-bind (out err code)
             (uiop:run-program
              (append (list "env") environment
                      (list "timeout" "-k" "10" (princ-to-string timeout)
                            (or (uiop:getenv "SBCL") "sbcl")
                            "--non-interactive" "--no-sysinit" "--no-userinit"
                            "--eval" "(require :asdf)"
                            "--eval" (format nil "(asdf:load-asd ~s)" (namestring asd))
                            "--eval" (format nil "(handler-case (progn (asdf:load-system :muproc)
                                                                      (load ~s))
                                                    (error (c)
                                                      (format t \"~~&CONDITION ~~a~~%~~a~~%\"
                                                              (type-of c) c)
                                                      (finish-output)
                                                      (sb-ext:exit :code 3 :abort t)))"
                                             (namestring file))))
              :output :string :error-output :string :ignore-error-status t)
           (values out code err))
      (delete-file file))))
