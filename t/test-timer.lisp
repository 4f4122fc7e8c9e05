;;;; test-timer.lisp - timers that run functions inside a muproc,
;;;; MUPROC-SEND-AFTER, and MUPROC-WITH-TIMEOUT.
;;;;
;;;; Helpers from t/fixtures.lisp (NOW, AWAIT, DEFTEST, whose leak check
;;;; also wants no timer left pending) and t/test-link.lisp (RUN-ON-GO,
;;;; LINKAGE-COUNTS, ...).  "Nothing fires later" is checked with
;;;; a marker sent after the deadline in question: it must come first.

(in-package #:muproc-tests)

(def-suite :muproc/timer :in :muproc
  :description "Timers, MUPROC-SEND-AFTER and MUPROC-WITH-TIMEOUT.")
(in-suite :muproc/timer)

(defvar *timer-test-special* :global
  "Bound in a muproc, to show that timer functions run in its dynamic
environment.")

(defun pending-timers ()
  (third (linkage-counts)))

(defun send-self-now ()
  "A function that sends the current muproc (:fired <time it ran>)."
  (lambda () (mumsg-send *muproc-inport* :fired (now))))

(defun receive-fired (&optional (timeout 5))
  "In a muproc: the value of the next (:fired value) message, or :NONE if
none comes within TIMEOUT seconds."
  (mumsg-receive (from :timeout timeout)
    ((fired) t fired)
    (:timeout :none)))

(deftest timer.schedule-relative-runs-inside-the-muproc ()
  "MUPROC-SCHEDULE-RELATIVE returns a timer and, after the delay (not
before), makes the muproc call the function inside itself: it sees the
muproc's current dynamic bindings and *MUPROC-INPORT*.  Once it has fired
MUPROC-UNSCHEDULE-TIMER returns NIL and no timer is pending.  Outside a
muproc it signals MUPROC-NOT-IN-MUPROC."
  (destructuring-bind (me timerp start fired unscheduled pending)
      (muproc ()
        (let* ((*timer-test-special* :bound-here)
               (start (now))
               (timer (muproc-schedule-relative
                       (lambda ()
                         (mumsg-send *muproc-inport*
                                     :fired (list (now) (muproc-current-process)
                                                  *muproc-inport* *timer-test-special*)))
                       0.05)))
          (list (muproc-current-process) (muproc-timer-p timer) start
                (receive-fired)
                (muproc-unschedule-timer timer)
                (pending-timers))))
    (is-true timerp)
    (is (consp fired) "the timer did not fire")
    (when (consp fired)
      (let ((seconds (- (first fired) start)))
        (is (<= 0.049 seconds 1) "fired after ~,3f s" seconds))
      (is (equal (list me me :bound-here) (rest fired))))
    (is (null unscheduled))
    (is (zerop pending)))
  (signals muproc-not-in-muproc (muproc-schedule-relative (lambda ()) 1)))

(deftest timer.repeating-until-unscheduled ()
  "A timer scheduled with a repeat interval (the seed's PROC32: delay 0,
sending itself :wakeup) fires at once and then every interval: three
wakeups come no sooner than two intervals.  MUPROC-UNSCHEDULE-TIMER returns T (it was
pending) and no wakeup comes after it."
  (destructuring-bind (start wakeups unscheduled pending late)
      (muproc ()
        (let* ((start (now))
               (timer (muproc-schedule-timer-relative
                       (muproc-make-interrupt-timer
                        (lambda () (mumsg-send *muproc-inport* :wakeup (now))))
                       0 0.05))
               (wakeups (loop repeat 3
                              collect (mumsg-receive (from :timeout 5)
                                        ((wakeup) t wakeup)
                                        (:timeout :none))))
               (unscheduled (muproc-unschedule-timer timer))
               (pending (pending-timers)))
          (muproc-send-after 0.2 *muproc-inport* :done t)
          (list start wakeups unscheduled pending
                (loop for what = (mumsg-receive (from) ((wakeup) t :wakeup) ((done) t :done))
                      until (eq what :done)
                      collect what))))
    (is (every #'realp wakeups) "wakeups: ~s" wakeups)
    (when (every #'realp wakeups)
      ;; The deadlines are fixed-rate (start, +0.05, +0.1), so the third
      ;; wakeup is never before 0.1 s, however late the muproc ran the
      ;; first two (a stalled muproc handles queued wakeups back to back).
      (let ((first (- (first wakeups) start))
            (third (- (third wakeups) start)))
        (is (< first 0.5) "the first wakeup came after ~,3f s" first)
        (is (<= 0.049 (- (second wakeups) start) 2)
            "the second wakeup came after ~,3f s" (- (second wakeups) start))
        (is (<= 0.099 third 2) "the third wakeup came after ~,3f s" third)))
    (is (eq t unscheduled))
    (is (zerop pending))
    (is (null late) "~d wakeups after the unschedule" (length late))))

(defun compute-for (seconds)
  "Compute, without receiving, for SECONDS."
  (let ((end (+ (now) seconds)))
    (loop while (< (now) end))))

(deftest timer.unschedule-wins-over-a-firing (:timeout 60)
  "Once MUPROC-UNSCHEDULE-TIMER has returned T the timer's function does
not run again, even if the timer fired a moment before and the muproc has
not acted on it yet (300 tries: a 1 ms repeating timer, unscheduled after
up to 3 ms of computing; a run after the unschedule would show within the
5 ms waited afterwards)."
  (destructuring-bind (not-pending late)
      (muproc (50)
        (let ((not-pending 0)
              (late 0))
          (dotimes (i 300)
            (let* ((calls 0)
                   (timer (muproc-schedule-relative (lambda () (incf calls)) 0 0.001)))
              (compute-for (random 0.003))
              (let* ((pending (muproc-unschedule-timer timer))
                     (calls-then calls))
                (muproc-send-after 0.005 *muproc-inport* :done t)
                (mumsg-receive (from) ((done) t))
                (unless pending (incf not-pending))
                (when (> calls calls-then) (incf late)))))
          (list not-pending late)))
    (is (zerop not-pending) "~d times a repeating timer was not pending" not-pending)
    (is (zerop late) "~d of 300 times the function ran after the unschedule returned" late)))

(deftest timer.schedule-at-a-universal-time ()
  "MUPROC-SCHEDULE runs the function at the universal time given (to its
1 s resolution: between 0 and 2 s from a time one second ahead), and at
once for a time that has passed."
  (destructuring-bind (start ahead past-start past)
      (muproc ()
        (let ((start (now)))
          (muproc-schedule (send-self-now) (+ (get-universal-time) 1))
          (let ((ahead (receive-fired))
                (past-start (now)))
            (muproc-schedule (send-self-now) (- (get-universal-time) 10))
            (list start ahead past-start (receive-fired)))))
    (is (realp ahead) "did not fire")
    (when (realp ahead)
      (is (< 0 (- ahead start) 2) "fired after ~,3f s" (- ahead start)))
    (is (realp past) "did not fire")
    (when (realp past)
      (is (< (- past past-start) 0.5) "fired after ~,3f s" (- past past-start)))))

(deftest timer.send-after ()
  "MUPROC-SEND-AFTER returns a timer and delivers the message after the
delay (not before), to a muproc or a port name, from a muproc or a plain
thread; MUPROC-UNSCHEDULE-TIMER cancels it (T); it is cancelled when the
destination exits, and when the muproc that set it exits; to a terminated
muproc it signals MUPROC-SEND-TO-TERMINATED-MUPROC-CONDITION and returns
NIL."
  (destructuring-bind (timerp start got cancelled first-after-cancel)
      (muproc ()
        (let* ((start (now))
               (timer (muproc-send-after 0.05 *muproc-inport* :ping 1 :at 2))
               (got (mumsg-receive (from :timeout 5)
                      ((ping at) t (list (now) ping at))
                      (:timeout :none)))
               ;; Far enough ahead to be pending still at the next call,
               ;; whatever pauses the machine.
               (cancelled (muproc-unschedule-timer
                           (muproc-send-after 0.5 *muproc-inport* :cancelled t))))
          (muproc-send-after 0.7 *muproc-inport* :marker t)
          (list (muproc-timer-p timer) start got cancelled
                (mumsg-receive (from) (() t (mumsg-plist *muproc-packet*))))))
    (is-true timerp)
    (is (consp got) "nothing came")
    (when (consp got)
      (is (<= 0.049 (- (first got) start) 1) "came after ~,3f s" (- (first got) start))
      (is (equal '(1 2) (rest got))))
    (is (eq t cancelled))
    (is (equal '(:marker t) first-after-cancel)
        "the cancelled message came: ~s" first-after-cancel))
  (destructuring-bind (while-alive after-exit)
      (muproc ()
        (let ((destination (spawn-idle)))
          (muproc-send-after 30 destination :never t)
          (list (pending-timers) (progn (go-and-wait destination (lambda () nil))
                                        (pending-timers)))))
    (is (= 1 while-alive))
    (is (zerop after-exit) "the send outlived its destination"))
  (let* ((destination (spawn-idle))
         (setter (muproc-spawn nil (lambda () (muproc-send-after 30 destination :never t)) nil)))
    (is (eq :normal (muproc-wait-for-exit setter :timeout 5)))
    (is (zerop (pending-timers)) "the send outlived the muproc that set it")
    (is (zerop (muproc-unmatched-input-count destination)))
    (is (eq :normal (go-and-wait destination (lambda () nil)))))
  (let ((destination (spawn-idle)))
    (is (muproc-timer-p (muproc-send-after 0.01 destination :go (lambda () :from-a-thread))))
    (is (eq :normal (muproc-wait-for-exit destination :timeout 5))))
  (let ((destination (muproc-spawn nil (lambda ()
                                         (muproc-with-registered-port (:timer-test-port)
                                           (run-on-go)))
                                   nil)))
    (is-true (await (lambda () (muproc-get-registered-port :timer-test-port))))
    (muproc-send-after 0.01 :timer-test-port :go (lambda () :via-the-port))
    (is (eq :normal (muproc-wait-for-exit destination :timeout 5))))
  (let ((dead (nth-value 1 (spawn-and-wait (lambda () nil))))
        (signalled nil))
    (is (null (handler-bind ((muproc-send-to-terminated-muproc-condition
                               (lambda (c) (setf signalled c))))
                (muproc-send-after 0.01 dead :x 1))))
    (is (eq dead (and signalled (muproc-condition-muproc signalled))))))

(deftest timer.all-cancelled-when-the-muproc-exits ()
  "Every timer of a muproc (one-shot, repeating, at a universal time,
MUPROC-SEND-AFTER, a pending MUPROC-WITH-TIMEOUT) is pending while it
lives and cancelled when it exits."
  (let* ((counted nil)
         (m (muproc-spawn nil (lambda ()
                                (muproc-schedule-relative (lambda ()) 30)
                                (muproc-schedule-relative (lambda ()) 30 1)
                                (muproc-schedule (lambda ()) (+ (get-universal-time) 60))
                                (muproc-send-after 30 *muproc-inport* :never t)
                                (muproc-with-timeout (60 :late)
                                  (setf counted (pending-timers))
                                  (block-forever)))
                          nil)))
    (is-true (await (lambda () (eql 5 counted))) "~a timers pending" counted)
    (muproc-exit :stop m)
    (is (eq :stop (muproc-wait-for-exit m :timeout 5)))
    (is (zerop (pending-timers)) "~d timers outlived their muproc" (pending-timers))))

(deftest timer.with-timeout-abandons-the-body ()
  "MUPROC-WITH-TIMEOUT abandons a body that waits in a receive, sleeps or
computes once the timeout passes (not before, and promptly), running its
UNWIND-PROTECT cleanups, and returns the values of the timeout forms; the
muproc goes on normally (it receives) and no timer is left."
  (let ((results
          (muproc (20)
            (loop for workload in (list #'block-forever (lambda () (sleep 10)) #'spin-forever)
                  collect (let* ((cleanup nil)
                                 (start (now))
                                 (values (multiple-value-list
                                          (muproc-with-timeout (0.1 (values :timed-out :second))
                                            (unwind-protect (funcall workload)
                                              (setf cleanup t)))))
                                 (seconds (seconds-since start)))
                            (mumsg-send *muproc-inport* :after t)
                            (list values cleanup seconds
                                  (mumsg-receive (from :timeout 1) ((after) t after))
                                  (pending-timers)))))))
    (loop for (values cleanup seconds after pending) in results
          for what in '(:receiving :sleeping :computing)
          do (report-measurement "timer.with-timeout-abandons-the-body: ~(~a~) body abandoned ~
                                  after ~,1f ms (timeout 100 ms)" what (* 1000 seconds))
             (is (equal '(:timed-out :second) values) "~s: returned ~s" what values)
             (is-true cleanup "~s: cleanup did not run" what)
             (is (<= 0.099 seconds 1) "~s: abandoned after ~,3f s" what seconds)
             (is (eq t after) "~s: the muproc does not receive afterwards" what)
             (is (zerop pending) "~s: ~d timers left" what pending))))

(deftest timer.with-timeout-body-in-time ()
  "A body that finishes in time returns all its values (the timeout forms
are not evaluated) and its timer is gone at once; outside a muproc it
works too (see the compat suite)."
  (destructuring-bind (values forms-ran pending received)
      (muproc ()
        (let* ((forms-ran nil)
               (values (multiple-value-list
                        (muproc-with-timeout (5 (setf forms-ran t) :late)
                          (values 1 2 3)))))
          (mumsg-send *muproc-inport* :x 42)
          (list values forms-ran (pending-timers)
                (muproc-with-timeout (5 :late)
                  (mumsg-receive (from) ((x) t x))))))
    (is (equal '(1 2 3) values))
    (is (null forms-ran))
    (is (zerop pending))
    (is (eql 42 received)))
  (is (eq :body (muproc-with-timeout (1 :late) :body))))

(deftest timer.nested-with-timeout ()
  "Nested MUPROC-WITH-TIMEOUT forms each fire their own timeout forms: an
inner shorter timeout returns the inner forms' value and the outer body
goes on; an outer shorter timeout abandons the inner form too (its
cleanups run, its timeout forms do not) and returns the outer forms'
value."
  (destructuring-bind (inner-first outer-first inner-forms-ran inner-cleanup seconds pending)
      (muproc (20)
        (let ((inner-forms-ran nil)
              (inner-cleanup nil)
              (start nil))
          (list (muproc-with-timeout (5 :outer)
                  (list (muproc-with-timeout (0.05 :inner) (sleep 10))
                        :outer-body-went-on))
                (progn (setf start (now))
                       (muproc-with-timeout (0.05 :outer)
                         (muproc-with-timeout (5 (setf inner-forms-ran t) :inner)
                           (unwind-protect (sleep 10)
                             (setf inner-cleanup t)))))
                inner-forms-ran inner-cleanup (seconds-since start) (pending-timers))))
    (is (equal '(:inner :outer-body-went-on) inner-first))
    (is (eq :outer outer-first))
    (is (null inner-forms-ran))
    (is-true inner-cleanup)
    (is (< seconds 1) "the outer timeout took ~,3f s" seconds)
    (is (zerop pending))))

(defun timer-lateness (arm-and-receive n)
  "Seconds by which each of N 10 ms timers fired after its deadline.
ARM-AND-RECEIVE arms a 10 ms timer and returns the time it fired."
  (loop repeat n
        collect (let ((start (now)))
                  (- (funcall arm-and-receive) start 0.01))))

(defun median (numbers)
  (let ((sorted (sort (copy-list numbers) #'<)))
    (nth (floor (length sorted) 2) sorted)))

(deftest timer.accuracy ()
  "50 interrupt timers and 50 MUPROC-SEND-AFTERs of 10 ms, one at a time:
none fires before its deadline (1 ms allowed between the clocks) and the
median lateness is under 50 ms (a generous bound: it is far less on an
idle machine).  Median and maximum go to *ERROR-OUTPUT* and, if the
environment variable MUPROC_TIMER_REPORT names a file, to that file."
  (destructuring-bind (interrupt send-after)
      (muproc (30)
        (list (timer-lateness (lambda ()
                                (muproc-schedule-relative (send-self-now) 0.01)
                                (receive-fired))
                              50)
              (timer-lateness (lambda ()
                                (muproc-send-after 0.01 *muproc-inport* :sent t)
                                (mumsg-receive (from) ((sent) t (now))))
                              50)))
    (let ((lines (loop for (what lateness) in `(("interrupt timer" ,interrupt)
                                                ("send-after" ,send-after))
                       collect (format nil "timer.accuracy: ~a of 10 ms, ~d runs: lateness ~
                                            median ~,3f ms, max ~,3f ms, min ~,3f ms"
                                       what (length lateness) (* 1000 (median lateness))
                                       (* 1000 (reduce #'max lateness))
                                       (* 1000 (reduce #'min lateness)))))
          (file (uiop:getenv "MUPROC_TIMER_REPORT")))
      (dolist (line lines) (report-measurement "~a" line))
      (when (and file (plusp (length file)))
        (with-open-file (out file :direction :output :if-exists :supersede
                                  :if-does-not-exist :create)
          (format out "~{~a~%~}" lines))))
    (loop for (what lateness) in `((:interrupt ,interrupt) (:send-after ,send-after))
          do (is (>= (reduce #'min lateness) -0.001)
                 "~s: a timer fired ~,3f ms early" what (* -1000 (reduce #'min lateness)))
             (is (< (median lateness) 0.05)
                 "~s: median lateness ~,3f ms" what (* 1000 (median lateness))))))

(defun lisp-handles ()
  (getf (muproc-runtime-stats) :lisp-handles))

(deftest timer.send-after-to-an-exited-destination-leaves-no-handle (:timeout 60)
  "A send-after carrying Lisp objects whose destination exits before it
fires leaves nothing in the Lisp handle table: set from outside a muproc;
set by a muproc that lives on and sets another timer; or 500 of them
racing their destinations' exits."
  (let ((destination (spawn-idle)))
    (muproc-send-after 30 destination :payload (list :outside))
    (is (eq :normal (go-and-wait destination (lambda () nil))))
    (is (zerop (lisp-handles)) "set outside a muproc: ~d handles left" (lisp-handles)))
  (is (eql 0 (muproc ()
               (let ((destination (spawn-idle)))
                 (muproc-send-after 30 destination :payload (list :inside))
                 (go-and-wait destination (lambda () nil))
                 ;; No new handle: it would reuse the freed slot.
                 (muproc-unschedule-timer (muproc-send-after 30 *muproc-inport* :x 1))
                 (lisp-handles))))
      "set by a muproc that lives on")
  (let ((destinations (loop repeat 500 collect (spawn-idle))))
    ;; Due at once, soon, or long after the destination's exit.
    (loop for d in destinations
          for i from 0
          do (muproc-send-after (nth (mod i 3) '(0 0.001 30)) d :payload (list i)))
    (dolist (d destinations)
      (mumsg-send d :go (constantly nil)))
    (dolist (d destinations)
      (is (eq :normal (muproc-wait-for-exit d :timeout 10))))
    (is (zerop (lisp-handles)) "racing exits: ~d handles left" (lisp-handles))))

(deftest timer.send-after-to-a-full-inport-is-dropped ()
  "MUPROC-SEND-AFTER to a bounded inport follows the full-inport policy:
with capacity 1, of two send-afters the first is queued and the second,
finding the inport full, is dropped (and its Lisp object released, which
the leak check sees)."
  (let* ((go (sb-thread:make-semaphore))
         (destination
           (muproc-spawn nil (lambda ()
                               (sb-thread:wait-on-semaphore go)
                               (muproc-exit
                                (list :got (mumsg-receive (from :timeout 0)
                                             ((n) t n))
                                      :left (muproc-unmatched-input-count))))
                         nil :inport-capacity 1)))
    (muproc-send-after 0 destination :n 1 :payload (list 1))
    (muproc-send-after 0.01 destination :n 2 :payload (list 2))
    (is-true (await (lambda () (zerop (pending-timers)))))
    ;; Arming a timer waits for the timer thread to finish firing (it
    ;; fires under the lock arming takes): both firings are over after.
    (muproc-unschedule-timer (muproc-send-after 30 destination :n 3))
    (is (= 1 (muproc-unmatched-input-count destination)))
    (sb-thread:signal-semaphore go)
    (is (equal '(:got 1 :left 0) (muproc-wait-for-exit destination :timeout 10)))))

(deftest timer.schedule-errors-name-the-operator-called ()
  "MUPROC-SCHEDULE-RELATIVE and MUPROC-SCHEDULE given their arguments in
MUPROC-SEND-AFTER's order (the time first) signal MUPROC-INVALID-ARGUMENT,
whose report names the operator called, the argument and the order
expected; outside a muproc they signal MUPROC-NOT-IN-MUPROC naming
themselves, not the timer operators they call.  No timer is left."
  (flet ((report-of (thunk)
           (handler-case (progn (funcall thunk) nil)
             (error (c) (list (type-of c) (princ-to-string c))))))
    (destructuring-bind (relative absolute)
        (muproc ()
          (list (report-of (lambda () (muproc-schedule-relative 0.1 (lambda ()))))
                (report-of (lambda () (muproc-schedule (get-universal-time) (lambda ()))))))
      (is (eq 'muproc-invalid-argument (first relative)) "signalled ~s" relative)
      (is (search "MUPROC-SCHEDULE-RELATIVE: its FUNCTION argument is 0.1" (second relative))
          "report: ~s" (second relative))
      (is (search "(MUPROC-SCHEDULE-RELATIVE FUNCTION DELAY" (second relative)))
      (is (search "MUPROC-SEND-AFTER" (second relative)))
      (is (eq 'muproc-invalid-argument (first absolute)) "signalled ~s" absolute)
      (is (search "(MUPROC-SCHEDULE FUNCTION UNIVERSAL-TIME" (second absolute))
          "report: ~s" (second absolute)))
    (let ((outside (report-of (lambda () (muproc-schedule-relative (lambda ()) 0.1)))))
      (is (eq 'muproc-not-in-muproc (first outside)))
      (is (search "MUPROC-SCHEDULE-RELATIVE must be called inside a muproc" (second outside))
          "report: ~s" (second outside)))
    (let ((outside (report-of (lambda () (muproc-schedule (lambda ()) (get-universal-time))))))
      (is (search "MUPROC-SCHEDULE must be called" (second outside)) "report: ~s" outside))))
