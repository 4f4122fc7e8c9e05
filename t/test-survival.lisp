;;;; test-survival.lisp - user mistakes end no more than the muproc involved.
;;;;
;;;; A mistake made in a muproc (a circular value in a log line, a closed
;;;; errorstream, an erroring interrupt before its first form, a report
;;;; that fails) ends that muproc with (:ERROR-IN-PROCESS . condition) and
;;;; a log line; a bad argument signals MUPROC-INVALID-ARGUMENT naming the
;;;; operation called.  Mistakes that used to end the whole image run in a
;;;; child SBCL (t/survival-child.lisp), so that a regression fails this
;;;; suite instead of killing it.

(in-package #:muproc-tests)

(def-suite :muproc/survival :in :muproc
  :description "User mistakes: a clear condition at the call, or the end of
the muproc involved; never a dead image.")
(in-suite :muproc/survival)

(defun child-case-results (lines)
  "The (:CASE name . plist) LINES a child printed, as an alist."
  (loop for line in lines
        when (and (> (length line) 6) (string= "(:CASE" line :end2 6))
          collect (let ((form (let ((*package* (find-package '#:muproc-tests))
                                    (*read-eval* nil))
                                (read-from-string line))))
                    (cons (second form) (cddr form)))))

(deftest survival.mistakes-that-killed-the-image (:timeout 300)
  "In a child SBCL: an error whose report holds a circular list, a
generic server dropping a message that holds one, a closed errorstream,
an erroring interrupt acted on before the muproc's first form, a condition
whose report fails, and an unprintable value in a log line each end only
their muproc, with (:ERROR-IN-PROCESS . condition) and a log line (on
*ERROR-OUTPUT* when the errorstream is closed), or not at all where the
log line was the only trouble; a constant in :INITIAL-BINDINGS and an
errorstream that is not a stream are refused by MUPROC-SPAWN.  The image
lives through them all."
  (multiple-value-bind (lines err code)
      ;; RUN-CHILD-SBCL is t/test-link.lisp's.
      (run-child-sbcl (list "--non-interactive" "--no-sysinit" "--no-userinit"
                            "--load" "examples/load-muproc.lisp"
                            "--load" "t/survival-child.lisp")
                      :timeout 240)
    (let ((results (child-case-results lines))
          (tail (subseq err (max 0 (- (length err) 2000)))))
      (is (eql 0 code) "the child exited with ~a; its last words:~%~a" code tail)
      (is (member "SURVIVED" lines :test #'string=)
          "the child did not live through the cases:~%~a" tail)
      (loop for (name . expected)
              in '((:circular-error :exit :error-in-process :logged t)
                   (:circular-message-dropped-by-server :exit :killed :answered :pong
                    :logged t)
                   (:closed-errorstream :exit :error-in-process)
                   (:erroring-interrupt-before-first-form :exit :error-in-process
                    :logged t)
                   (:failing-condition-report :exit :error-in-process :logged t)
                   (:unprintable-value-logged :exit :normal :logged t)
                   (:constant-in-initial-bindings :signalled muproc-invalid-argument)
                   (:errorstream-not-a-stream :signalled muproc-invalid-argument))
            do (let ((got (assoc name results)))
                 (is (equal expected (rest got)) "~s: expected ~s, got ~s"
                     name expected (if got (rest got) "nothing (the image died?)"))))
      (is (search "closed-stream marker one" err)
          "a log line of a muproc whose errorstream was closed is lost")
      (is (search "Unhandled SIMPLE-ERROR: closed-stream marker two" err)
          "the error of a muproc whose errorstream was closed went unlogged"))))

(deftest survival.spawn-refuses-an-unusable-errorstream ()
  "MUPROC-SPAWN refuses an errorstream it could not log to (not a stream,
closed, input only) with MUPROC-INVALID-ARGUMENT naming MUPROC-SPAWN, and
starts nothing."
  (let ((closed (make-string-output-stream))
        (input (make-string-input-stream "")))
    (close closed)
    (dolist (stream (list 42 "log" closed input))
      (let ((c (handler-case (muproc-spawn nil (lambda () nil) nil :errorstream stream)
                 (muproc-invalid-argument (c) c))))
        (is (typep c 'muproc-invalid-argument) "~s was accepted" stream)
        (when (typep c 'muproc-invalid-argument)
          (is (equal "MUPROC-SPAWN" (invalid-argument-operation c)))
          (is (eq :errorstream (invalid-argument-name c)))
          (is (search "MUPROC-SPAWN" (princ-to-string c))))))
    (is (null (muproc-all-processes)))))

(defun invalid-argument-of (thunk)
  "The operation and argument named by the MUPROC-INVALID-ARGUMENT that
calling THUNK signals, or what it signalled or returned instead."
  (handler-case (list :returned (funcall thunk))
    (muproc-invalid-argument (c)
      (list (invalid-argument-operation c) (invalid-argument-name c)))
    (error (c) (list :signalled (type-of c)))))

(deftest survival.bad-arguments-name-the-operation ()
  "MUPROC-INTERRUPT of something that is not a function, or of something
that is not a muproc, and MUPROC-TRIM-WORKERS with a negative or
fractional :KEEP signal MUPROC-INVALID-ARGUMENT naming the operation, as
do timeouts and delays that are not durations."
  (let ((m (muproc-spawn nil #'block-forever nil :errorstream (make-broadcast-stream))))
    (is (equal '("MUPROC-INTERRUPT" :function)
               (invalid-argument-of (lambda () (muproc-interrupt m 42)))))
    (is (equal '("MUPROC-INTERRUPT" :function)
               (invalid-argument-of (lambda () (muproc-interrupt m 'no-such-function-anywhere)))))
    (is (equal '("MUPROC-INTERRUPT" :muproc)
               (invalid-argument-of (lambda () (muproc-interrupt 42 (lambda ()))))))
    (muproc-kill m)
    (is (eq :killed (muproc-wait-for-exit m :timeout 10))))
  (is (equal '("MUPROC-TRIM-WORKERS" :keep)
             (invalid-argument-of (lambda () (muproc-trim-workers :keep -1)))))
  (is (equal '("MUPROC-TRIM-WORKERS" :keep)
             (invalid-argument-of (lambda () (muproc-trim-workers :keep 1.5)))))
  (is (equal '("MUPROC-WAIT-FOR-EXIT" :timeout)
             (invalid-argument-of (lambda () (muproc-wait-for-exit
                                              (muproc-spawn nil (lambda ()) nil)
                                              :timeout -1)))))
  (is (equal '("MUPROC-SEND-AFTER" :delay)
             (invalid-argument-of (lambda () (muproc-send-after "soon" :nobody :x 1)))))
  (is (equal '(("MUMSG-RECEIVE" :timeout) ("MUPROC-WITH-TIMEOUT" :timeout)
               ("MUPROC-SCHEDULE-RELATIVE" :delay))
             (muproc ()
               (list (invalid-argument-of
                      (lambda () (mumsg-receive (from :timeout -0.5) (() t))))
                     (invalid-argument-of
                      (lambda () (muproc-with-timeout (:never) :body)))
                     (invalid-argument-of
                      (lambda () (muproc-schedule-relative (lambda ()) -1))))))))

(deftest survival.huge-timeouts-mean-no-limit ()
  "Timeouts and delays too long for the clock (1d10 s, MOST-POSITIVE-FIXNUM
s, 1e30 s, an infinity) mean no limit: a receive still takes what is
queued, a wait for an exit still sees it, a timer far away stays pending
until it is cancelled, a MUPROC-WITH-TIMEOUT body runs to its end."
  (dolist (huge (list 1d10 most-positive-fixnum 1e30
                      sb-ext:double-float-positive-infinity))
    (is (equal '(:got :body t t)
               (muproc ()
                 (mumsg-send *muproc-inport* :x 1)
                 (list (mumsg-receive (from :timeout huge) ((x) t :got))
                       (muproc-with-timeout (huge :timed-out) :body)
                       (muproc-unschedule-timer
                        (muproc-send-after huge *muproc-inport* :never t))
                       (muproc-unschedule-timer
                        (muproc-schedule-relative (lambda ()) huge huge)))))
        "with ~s" huge)
    (is (eq :normal (muproc-wait-for-exit (muproc-spawn nil (lambda ()) nil)
                                          :timeout huge))
        "with ~s" huge)))
