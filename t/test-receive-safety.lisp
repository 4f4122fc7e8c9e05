;;;; test-receive-safety.lisp - user code inside a receive: guards, timer
;;;; and interrupt functions, MUPROC-WITH-TIMEOUT around a receive, kills
;;;; and exits landing at every step.  A message is either still queued or
;;;; its clause ran; a signal is never dropped.

(in-package #:muproc-tests)

(def-suite :muproc/receive-safety :in :muproc
  :description "Receives that user code runs inside of.")
(in-suite :muproc/receive-safety)

(defun spin (seconds)
  "Compute, without receiving or sleeping, for SECONDS."
  (let ((end (+ (now) seconds)) (n 0))
    (loop while (< (now) end) do (setf n (logand (1+ n) #xffff)))
    n))

(defun await-waiting-with (muproc count)
  "Wait until MUPROC is blocked in a receive with COUNT messages queued:
its receive has examined and rejected all of them.  Usable in a muproc
(FiveAM's checks are not): an error if that never happens."
  (unless (await (lambda () (and (eq (muproc-state muproc) :waiting)
                                 (= count (muproc-unmatched-input-count muproc)))))
    (error "~a never waited with ~d messages queued" muproc count)))

(defun await-signal (semaphore what)
  (is-true (sb-thread:wait-on-semaphore semaphore :timeout 10) "~a never happened" what))

(defun picky-receiver (report-to)
  "A muproc body that takes only :x above 1000 until :stop, then reports
the values it took, in order."
  (lambda ()
    (let ((got '()))
      (loop (mumsg-receive (from)
              ((x) (> x 1000) (push x got))
              ((stop) t (return))))
      (mumsg-send report-to :got (reverse got)))))

(defun discard-under-receive (arm-discard)
  "Fill a picky receiver with 50 messages it rejects, have ARM-DISCARD
(called with the receiver and the test muproc) make it discard its input
from inside its receive, then send 50 it wants: it must take exactly
those, in order."
  (muproc ()
    (let* ((me (muproc-current-process))
           (m (muproc-spawn nil (picky-receiver me) nil)))
      (dotimes (i 50) (mumsg-send m :x i))
      (await-waiting-with m 50)
      (funcall arm-discard m me)
      (let ((discarded (mumsg-receive (from) ((discarded) t discarded))))
        (dotimes (i 50) (mumsg-send m :x (+ 2000 i)))
        (mumsg-send m :stop t)
        (list discarded
              (mumsg-receive (from) ((got) t got))
              (nth-value 1 (muproc-wait-for-exit m :timeout 10)))))))

(deftest receive-safety.interrupt-discards-under-receive ()
  "An interrupt function that discards the inport while its muproc waits
in a receive whose guard rejected every message: the receive goes on with
what arrives next (0.2.0 followed a freed message: it hung, or took
messages out of order, or another muproc's)."
  (destructuring-bind (discarded got exited)
      (discard-under-receive
       (lambda (m me)
         (muproc-interrupt m (lambda ()
                               (mumsg-send me :discarded (muproc-discard-all-pending-input))))))
    (is (= 50 discarded))
    (is (equal (loop for i below 50 collect (+ 2000 i)) got))
    (is-true exited)))

(deftest receive-safety.timer-discards-under-receive ()
  "The same with a timer function armed by the receiver itself."
  (destructuring-bind (discarded got exited)
      (muproc ()
        (let* ((me (muproc-current-process))
               (m (muproc-spawn
                   nil (lambda ()
                         (mumsg-receive (from) ((go) t))
                         (muproc-schedule-relative
                          (lambda () (mumsg-send me :discarded (muproc-discard-all-pending-input)))
                          0.05)
                         (funcall (picky-receiver me)))
                   nil)))
          (dotimes (i 50) (mumsg-send m :x i))
          (mumsg-send m :go t)
          (let ((discarded (mumsg-receive (from) ((discarded) t discarded))))
            (dotimes (i 50) (mumsg-send m :x (+ 2000 i)))
            (mumsg-send m :stop t)
            (list discarded
                  (mumsg-receive (from) ((got) t got))
                  (nth-value 1 (muproc-wait-for-exit m :timeout 10))))))
    (is (= 50 discarded))
    (is (equal (loop for i below 50 collect (+ 2000 i)) got))
    (is-true exited)))

(deftest receive-safety.discarding-in-a-guard-signals ()
  "A guard may not discard the input it is looking at."
  (is (eq :refused
          (muproc ()
            (mumsg-send *muproc-inport* :x 1)
            (handler-case (mumsg-receive (from :timeout 0)
                            ((x) (progn (muproc-discard-all-pending-input) t) :discarded))
              (muproc-nested-receive () :refused))))))

;;; Signals that land while a guard runs

(defun receiver-in-long-guard (in-guard)
  "A muproc body whose guard signals IN-GUARD, then computes a while
and accepts; the clause body then computes forever without receiving."
  (lambda ()
    (mumsg-receive (from)
      ((x) (progn (sb-thread:signal-semaphore in-guard) (spin 0.3) t)
       (spin-forever)))))

(deftest receive-safety.kill-during-guard ()
  "A kill that arrives while a guard runs is acted on, even though the
clause body then computes without receiving again (0.2.0 dropped it)."
  (let* ((in-guard (sb-thread:make-semaphore))
         (m (muproc-spawn nil (receiver-in-long-guard in-guard) nil)))
    (mumsg-send m :x 1)
    (await-signal in-guard "the guard")
    (muproc-kill m :die)
    (is (equal '(:die t) (multiple-value-list (muproc-wait-for-exit m :timeout 5))))))

(deftest receive-safety.exit-during-guard ()
  "So is an exit signal."
  (let* ((in-guard (sb-thread:make-semaphore))
         (m (muproc-spawn nil (receiver-in-long-guard in-guard) nil)))
    (mumsg-send m :x 1)
    (await-signal in-guard "the guard")
    (muproc-exit :bye m)
    (is (equal '(:bye t) (multiple-value-list (muproc-wait-for-exit m :timeout 5))))))

(deftest receive-safety.timeout-during-guard-leaves-message-queued ()
  "A MUPROC-WITH-TIMEOUT that fires while a guard runs abandons the
receive, and the message the guard accepted stays queued."
  (is (equal '(:timed-out 1 (:x 1))
             (muproc ()
               (mumsg-send *muproc-inport* :x 1)
               (list (muproc-with-timeout (0.05 :timed-out)
                       (mumsg-receive (from) ((x) (progn (spin 0.5) t) :clause-ran)))
                     (muproc-unmatched-input-count)
                     (mumsg-receive (from :timeout 0) (() t (mumsg-plist *muproc-packet*))))))))

(deftest receive-safety.interrupt-waits-for-guard ()
  "An interrupt function never runs inside a guard: it runs once the
guard has returned, before the message the guard accepted is taken."
  (let* ((in-guard (sb-thread:make-semaphore))
         (events '())
         (lock (sb-thread:make-mutex))
         (m (muproc-spawn nil
                          (lambda ()
                            (mumsg-receive (from)
                              ((x) (progn (sb-thread:signal-semaphore in-guard)
                                          (spin 0.2)
                                          (sb-thread:with-mutex (lock) (push :guard-done events))
                                          t)
                               (sb-thread:with-mutex (lock) (push :clause events)))))
                          nil)))
    (mumsg-send m :x 1)
    (await-signal in-guard "the guard")
    (muproc-interrupt m (lambda () (sb-thread:with-mutex (lock) (push :interrupt events))))
    (is-true (nth-value 1 (muproc-wait-for-exit m :timeout 5)))
    ;; The guard may run again after the interrupt: the scan starts afresh.
    (let ((events (reverse events)))
      (is (eq :guard-done (first events)))
      (is (eq :interrupt (second events)))
      (is (eq :clause (car (last events)))))))

;;; Timer and interrupt functions run from inside a receive

(deftest receive-safety.timer-function-in-receive-is-killable ()
  "A timer function that loops, run while its muproc waits in a receive,
is killed by one kill (0.2.0: never)."
  (let* ((started (sb-thread:make-semaphore))
         (m (muproc-spawn nil (lambda ()
                                (muproc-schedule-relative
                                 (lambda () (sb-thread:signal-semaphore started) (spin-forever))
                                 0.01)
                                (mumsg-receive (from) ((never) t)))
                          nil)))
    (await-signal started "the timer function")
    (muproc-kill m :die)
    (is (equal '(:die t) (multiple-value-list (muproc-wait-for-exit m :timeout 5))))))

(deftest receive-safety.interrupt-of-busy-muproc-is-killable ()
  "An interrupt function that loops, run while its muproc computes, is
killed by one kill."
  (let* ((started (sb-thread:make-semaphore))
         (running (sb-thread:make-semaphore))
         (m (muproc-spawn nil (lambda ()
                                (sb-thread:signal-semaphore running)
                                (spin-forever))
                          nil)))
    (await-signal running "the muproc")
    (muproc-interrupt m (lambda () (sb-thread:signal-semaphore started) (spin-forever)))
    (await-signal started "the interrupt function")
    (muproc-kill m :die)
    (is (equal '(:die t) (multiple-value-list (muproc-wait-for-exit m :timeout 5))))))

(defun receive-from-timer (waiting)
  "In a muproc: arm a timer whose function receives :ping and answers
:pong, while the muproc WAITING in a receive of its own or computing; the
test sends :ping.  Returns what the timer function received."
  (muproc ()
    (let* ((me (muproc-current-process))
           (m (muproc-spawn
               nil (lambda ()
                     (muproc-schedule-relative
                      (lambda ()
                        (mumsg-receive (from) ((ping) t (mumsg-send me :pong ping))))
                      0.01)
                     (if waiting
                         (mumsg-receive (from) ((stop) t))
                         (progn (spin 0.3)
                                (mumsg-receive (from) ((stop) t)))))
               nil)))
      (mumsg-send m :ping 42)
      (prog1 (mumsg-receive (from) ((pong) t pong))
        (mumsg-send m :stop t)
        (muproc-wait-for-exit m :timeout 10)))))

(deftest receive-safety.timer-function-receives-while-waiting ()
  "A timer function may receive when its muproc waits in a receive
(0.2.0: MUPROC-NESTED-RECEIVE) and when it computes."
  (is (eql 42 (receive-from-timer t)))
  (is (eql 42 (receive-from-timer nil))))

(deftest receive-safety.outer-receive-resumes-after-nested-one ()
  "An interrupt function that takes, from under a waiting receive, the
very message that receive examined last: the outer receive then finds
what arrives next, and what it rejected is still queued, in order."
  (destructuring-bind (nested taken left)
      (muproc ()
        (let* ((me (muproc-current-process))
               (m (muproc-spawn
                   nil (lambda ()
                         (let ((taken (loop repeat 2
                                            collect (mumsg-receive (from)
                                                      ((a) t (list :a a))
                                                      ((b) (evenp b) (list :b b))))))
                           (mumsg-send me :taken taken
                                          :left (loop repeat 3
                                                      collect (mumsg-receive (from :timeout 0)
                                                                (() t (mumsg-plist *muproc-packet*)))))))
                   nil)))
          (mumsg-send m :b 3)
          (mumsg-send m :c 0)
          (mumsg-send m :b 5)
          (await-waiting-with m 3)
          (muproc-interrupt m (lambda ()
                                (mumsg-send me :nested (mumsg-receive (from) ((b) (= b 5) b)))))
          (let ((nested (mumsg-receive (from) ((nested) t nested))))
            (mumsg-send m :a 1)
            (mumsg-send m :b 4)
            (prog1 (mumsg-receive (from) ((taken left) t (list nested taken left)))
              (muproc-wait-for-exit m :timeout 10)))))
    (is (eql 5 nested))
    (is (equal '((:a 1) (:b 4)) taken))
    (is (equal '((:b 3) (:c 0) nil) left))))

;;; MUPROC-WITH-TIMEOUT around a receive

(deftest receive-safety.with-timeout-loses-no-message (:timeout 120)
  "A receive loop under a short MUPROC-WITH-TIMEOUT, fed at a pace that
makes timeouts race with arrivals: every message is either still queued
or its clause ran (0.2.0 took some and never ran their clause)."
  (let ((n 20000))
    (destructuring-bind (got timeouts queued)
        (muproc (100)
          (let* ((me (muproc-current-process))
                 (m (muproc-spawn
                     nil (lambda ()
                           (let ((got (make-array n :fill-pointer 0))
                                 (timeouts 0))
                             (loop
                               (when (eq :stop
                                         (muproc-with-timeout (0.0002 (incf timeouts))
                                           (mumsg-receive (from)
                                             ((n) t (vector-push n got))
                                             ((stop) t :stop))))
                                 (return)))
                             (mumsg-send me :got got :timeouts timeouts
                                            :queued (muproc-unmatched-input-count))))
                     nil)))
            (dotimes (i n)
              (mumsg-send m :n i)
              ;; A pace near the timeout: arrivals and timeouts interleave.
              (when (zerop (mod i 4)) (spin 0.0002)))
            (mumsg-send m :stop t)
            (prog1 (mumsg-receive (from) ((got timeouts queued) t (list got timeouts queued)))
              (muproc-wait-for-exit m :timeout 10))))
      (is (zerop queued))
      (is (plusp timeouts) "no timeout fired: the test did not race anything")
      (is (= n (length got)) "~d of ~d messages lost" (- n (length got)) n)
      (is (every #'= got (loop for i below n collect i)) "messages out of order"))))

(deftest receive-safety.with-timeout-waits-for-the-clause ()
  "A MUPROC-WITH-TIMEOUT around a receive bounds the wait, not the
handling: one that fires while the clause of a taken message runs takes
effect when the clause returns; one made inside the clause acts at once."
  (destructuring-bind (outer clause-finished inner)
      (muproc ()
        (let ((finished nil))
          (mumsg-send *muproc-inport* :x 1)
          (list (muproc-with-timeout (0.05 :timed-out)
                  (mumsg-receive (from) ((x) t (spin 0.3) (setf finished t) :clause)))
                finished
                (progn
                  (mumsg-send *muproc-inport* :x 2)
                  (mumsg-receive (from)
                    ((x) t (muproc-with-timeout (0.05 :inner) (spin-forever))))))))
    (is (eq :timed-out outer))
    (is-true clause-finished)
    (is (eq :inner inner))))

;;; Clauses that could never work are refused when the form is expanded.

(defun expansion-problem (form)
  "The MUPROC-RECEIVE-SYNTAX-ERROR that expanding FORM signals, or NIL."
  (handler-case (progn (macroexpand-1 form) nil)
    (muproc-receive-syntax-error (c) c)))

(deftest receive-safety.clauses-that-never-match-are-refused ()
  "A clause without a guard, a :TIMEOUT clause without the :TIMEOUT
option, a keyword or a constant as a key, a key twice: each is refused
at macroexpansion with muproc's own condition, naming the clause."
  (dolist (form '((mumsg-receive (from) ((x)))
                  (mumsg-receive (from) ((x) t x) (:timeout :late))
                  (mumsg-receive (from :timeout 1) (:timeout 1) (:timeout 2))
                  (mumsg-receive (from) ((:x) t :x))
                  (mumsg-receive (from) ((t) t 1))
                  (mumsg-receive (from) ((x x) t x))
                  (mumsg-receive (from) (x t x))
                  (mumsg-receive (:from) ((x) t x))))
    (let ((c (expansion-problem form)))
      (is (typep c 'muproc-receive-syntax-error) "~s was accepted" form)
      (when c
        (is (search "MUMSG-RECEIVE" (princ-to-string c)))))))

(deftest receive-safety.clause-key-may-shadow-from ()
  "A clause key spelled like FROM binds the message's value in that
clause (as in cl-muproc); other clauses still see the sender."
  (is (equal '(:done-value t)
             (muproc ()
               (let ((me (muproc-current-process)))
                 (mumsg-send me :from :done-value)
                 (mumsg-send me :other 1)
                 (list (mumsg-receive (from) ((from) t from))
                       (mumsg-receive (from) ((other) t (eq from me)))))))))

;;; A timer function may call a generic server and flush a monitor while
;;; its muproc waits in a receive.

(defpackage #:muproc-tests.receive-safety-echo
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:documentation "A generic server that answers what it is given."))

(in-package #:muproc-tests.receive-safety-echo)

(defun initialize () nil)

(muproc-define-call-handler echo (state from x)
  x)

(in-package #:muproc-tests)

(deftest receive-safety.timer-function-calls-and-demonitors-while-waiting ()
  "While its muproc waits in a receive, a timer function makes a generic
call and removes a monitor whose notice is queued (:flush t)."
  (destructuring-bind (answer flushed queued)
      (muproc ()
        (let* ((me (muproc-current-process))
               (server (muproc-spawn nil (lambda ()
                                           (muproc.generic-server:muproc-generic-start
                                            :package :muproc-tests.receive-safety-echo))
                                     nil))
               (doomed (muproc-spawn nil (lambda () (mumsg-receive (from) ((go) t))) nil))
               (m (muproc-spawn
                   nil (lambda ()
                         (let ((tag (muproc-monitor doomed)))
                           (mumsg-send doomed :go t)
                           ;; Once the notice is queued, have the timer run.
                           (mumsg-receive (from) ((terminated monitor) (muproc-msgtag= monitor tag)
                                                  (mumsg-send *muproc-inport* :terminated terminated
                                                                              :monitor monitor)))
                           (muproc-schedule-relative
                            (lambda ()
                              (mumsg-send me
                                          :answer (muproc-tests.receive-safety-echo::echo* server 42)
                                          :flushed (muproc-demonitor tag :flush t)
                                          :queued (muproc-unmatched-input-count)))
                            0.01)
                           (mumsg-receive (from) ((stop) t))))
                   nil)))
          (prog1 (mumsg-receive (from) ((answer flushed queued) t (list answer flushed queued)))
            (mumsg-send m :stop t)
            (muproc-wait-for-exit m :timeout 10)
            (muproc.generic-server:muproc-generic-stop server))))
    (is (eql 42 answer))
    (is (null flushed) "the monitor had fired: demonitor returns NIL")
    (is (zerop queued) "the queued notice was flushed")))
