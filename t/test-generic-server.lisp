;;;; test-generic-server.lisp - generic servers (lisp/generic-server.lisp).
;;;;
;;;; The seed's REPL session with its generic area server, then the OTP
;;;; contract of calls (not running, server down, timeout, late replies,
;;;; handler errors), casts and their order, deferred replies, the ways a
;;;; server ends (TERMINATE on each), LINKED-EXIT, UNHANDLED-MESSAGE, and
;;;; handlers redefined while the server runs.
;;;;
;;;; Server types are packages (the area server is the example's, the
;;;; others are defined below); the tests live in their own
;;;; package so that none of these names meets another suite's.  Every
;;;; server gets a string stream as errorstream (its log lines are checked
;;;; there, and stay out of the TAP output).  Synchronisation is by
;;;; messages and calls only: sleeping happens only as a handler's workload.

;;; Server types

;;; The seed's generic area server is examples/generic-area-server.lisp,
;;; loaded (without running its MAIN) as the examples suite does, so that
;;; the seed session below tests the example's code rather than a copy.
;;; Loaded at compile time too: this file's forms name its package.

(eval-when (:compile-toplevel :load-toplevel :execute)
  (unless (find-package '#:muproc-examples)
    (load (asdf:system-relative-pathname "muproc" "examples/load-muproc.lisp")))
  (uiop:symbol-call '#:muproc-examples '#:load-example "generic-area-server"))

(defpackage #:muproc-tests.gs-counter
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:export #:counter #:counter-count #:counter-items #:gs-failure #:gs-failure-datum)
  (:documentation "A server type with every optional callback: a counter,
a list, and handlers that sleep, fail, exit, defer their reply."))

(defpackage #:muproc-tests.gs-plain
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:documentation "A server type with INITIALIZE, TERMINATE and handlers
only: no LINKED-EXIT, no UNHANDLED-MESSAGE, no default server name."))

(defpackage #:muproc-tests.generic-server
  (:use #:common-lisp #:muproc #:muproc.generic-server #:fiveam)
  (:import-from #:muproc-tests #:deftest #:now #:seconds-since)
  (:local-nicknames (#:gs-area #:muproc-example.generic-area-server))
  (:documentation "The generic-server suite; GS-AREA is the package of
examples/generic-area-server.lisp."))

;;; A counter with every callback.

(in-package #:muproc-tests.gs-counter)

(muproc-default-server-name counter)

(defstruct counter
  (count 0)
  (items '())
  (unhandled '())
  (linked-exits '()))

(define-condition gs-failure (error)
  ((datum :initarg :datum :reader gs-failure-datum))
  (:report (lambda (c s) (format s "Failure on ~s." (gs-failure-datum c)))))

(defun initialize (&key (start 0))
  (muproc-log-errorstream "COUNTER initializing.")
  (make-counter :count start))

(defun terminate (state)
  (muproc-log-errorstream "COUNTER terminating (count=~a)." (counter-count state)))

(defun linked-exit (state terminated reason)
  (push (list (muproc-name terminated) reason) (counter-linked-exits state)))

(defun unhandled-message (state mumsg)
  (when (mumsg-get mumsg :explode)
    (error "Exploding on ~a." mumsg))
  (push mumsg (counter-unhandled state)))

(muproc-define-call-handler add (state from n)
  (incf (counter-count state) n))

(muproc-define-call-handler get-count (state from)
  (counter-count state))

(muproc-define-call-handler get-state (state from)
  state)

(muproc-define-call-handler whoami (state from)
  (list (muproc-name) from *muproc-generic-server-package*
        *muproc-generic-server-port-name*))

(muproc-define-call-handler values-of (state from a &optional (b :b-default) &rest more)
  (apply #'values a b more))

(muproc-define-call-handler nap (state from seconds &optional notify)
  (when notify
    (mumsg-send notify :napping (muproc-current-process)))
  (sleep seconds)
  :rested)

(muproc-define-call-handler die-after (state from seconds reason)
  (sleep seconds)
  (muproc-exit reason))

(muproc-define-call-handler fail (state from datum)
  (error 'gs-failure :datum datum))

(muproc-define-cast-handler fail-cast (state from datum)
  (error 'gs-failure :datum datum))

(muproc-define-cast-handler push-item (state from item)
  (push item (counter-items state)))

(muproc-define-cast-handler slow-push (state from seconds item)
  (sleep seconds)
  (push item (counter-items state)))

(muproc-define-cast-handler note-caster (state from)
  (push (list :cast-from from) (counter-items state)))

(muproc-define-call-handler changed-mind (state from)
  (muproc-exit-after-handler :bye)
  (muproc-exit-after-handler :bye :unsettingp t)
  :staying)

(muproc-define-call-handler push-item/call (state from item)
  (push item (counter-items state))
  (length (counter-items state)))

(muproc-define-call-handler items (state from)
  (reverse (counter-items state)))

(muproc-define-call-handler defer-to (state from helper x)
  ;; The reply is HELPER's business now.
  (mumsg-send helper :token (muproc-generic-defer-reply) :x x
                     :server (muproc-current-process))
  :not-the-reply)

(muproc-define-call-handler last-words (state from reason value)
  (muproc-exit-after-handler reason)
  (incf (counter-count state))
  value)

(muproc-define-call-handler unhandled (state from)
  (reverse (counter-unhandled state)))

(muproc-define-call-handler linked-exits (state from)
  (reverse (counter-linked-exits state)))

(muproc-define-call-handler version (state from)
  :v1)

;;; The plain server type.

(in-package #:muproc-tests.gs-plain)

(defun initialize ()
  (list 0))

(defun terminate (state)
  (muproc-log-errorstream "PLAIN terminating (count=~a)." (first state)))

(muproc-define-call-handler plain-add (state from n)
  (incf (first state) n))

(muproc-define-call-handler plain-get (state from)
  (first state))

;;; The tests

(in-package #:muproc-tests.generic-server)

(def-suite :muproc/generic-server :in :muproc
  :description "Generic servers: the seed's session, OTP calls, casts,
deferred replies, life cycle.")
(in-suite :muproc/generic-server)

(defvar *servers* '()
  "The servers the running test started (see START-SERVER).")

(defvar *log* nil
  "The errorstream of the servers the running test started.")

(defun start-server (name package &key initargs port-name trap-exits link)
  "Spawn a generic server of type PACKAGE (a package designator) named
NAME, logging to *LOG*; return the muproc."
  (let ((server (muproc-spawn name
                              (lambda ()
                                (muproc-generic-start :package package
                                                      :initargs initargs
                                                      :port-name port-name))
                              nil
                              :errorstream *log* :trap-exits trap-exits :link link)))
    (push server *servers*)
    server))

(defun kill-leftover-servers ()
  "Kill (and wait for) the servers of this test still running: a test that
failed half-way must not leave the leak check to wait for them."
  (dolist (server *servers*)
    (when (and server (muproc-kill server :test-cleanup))
      (muproc-wait-for-exit server :timeout 5))))

(defmacro gs-test (name (&rest options) &body body)
  "DEFTEST with *LOG* bound to a fresh string stream (also *TRACE-OUTPUT*,
so every muproc of the test logs there) and the servers it started killed
if still running when BODY ends."
  (let ((doc (when (stringp (first body)) (list (pop body)))))
    `(deftest ,name ,options
       ,@doc
       (let* ((*log* (make-string-output-stream))
              (*trace-output* *log*)
              (*servers* '()))
         (unwind-protect (progn ,@body)
           (kill-leftover-servers))))))

(defmacro client (&body body)
  "BODY's values, evaluated in a fresh muproc (the MUPROC form, at most 20 s)."
  `(muproc (20) ,@body))

(defmacro outcome (&body body)
  "Evaluate BODY (in a muproc); return (:VALUES value...) or (:ERROR
condition) for a generic-server error, and the seconds it took."
  `(let ((start (now)))
     (values (handler-case (cons :values (multiple-value-list (progn ,@body)))
               (generic-server-error (c) (list :error c)))
             (seconds-since start))))

(defun log-text ()
  "What the servers of this test logged so far (read it once they are done)."
  (get-output-stream-string *log*))

(defun text-lines (text)
  (remove "" (uiop:split-string text :separator '(#\Newline)) :test #'string=))

(defun log-line-p (line name text)
  "True if LINE is \"HH:MM:SS.mmm NAME TEXT\", as MUPROC-LOG-ERRORSTREAM writes."
  (and (> (length line) 13)
       (every (lambda (i) (digit-char-p (char line i))) '(0 1 3 4 6 7 9 10 11))
       (char= #\: (char line 2) (char line 5))
       (char= #\. (char line 8))
       (char= #\Space (char line 12))
       (string= (format nil "~a ~a" name text) (subseq line 13))))

(defun logged-p (text log)
  "True if some line of LOG (a string) ends with \" TEXT\" after its time."
  (some (lambda (line) (and (> (length line) 13) (search text line :start2 13)))
        (text-lines log)))

(defun exit-reason (server)
  "SERVER's exit reason, waiting at most 10 s for its exit (:STILL-RUNNING then)."
  (multiple-value-bind (reason exited) (muproc-wait-for-exit server :timeout 10)
    (if exited reason :still-running)))

(defmacro in-package-eval (package string)
  "Read STRING in PACKAGE and evaluate it there, as typed at the REPL,
without redefinition warnings."
  `(let ((*package* (find-package ,package)))
     (handler-bind ((warning #'muffle-warning))
       (eval (read-from-string ,string)))))

;;; The seed's session

(gs-test generic-server.seed-session ()
  "The seed's REPL session: (start-generic-area-server) returns the server
muproc; in MUPROC forms (generic-add-square 10) => 100, (generic-get-areas)
=> 100, (generic-get-areas* 'generic-area-server) => 100,
(generic-add-rectangle 10 30) => 400.  The server logs
\"HH:MM:SS.mmm GENERIC-AREA-SERVER GENERIC AREA SERVER initializing.\" and,
stopped, \"... terminating (count=400).\""
  (let ((server (gs-area::start-generic-area-server)))
    (push server *servers*)
    (is (muproc-p server))
    (is (eq 'gs-area::generic-area-server (muproc-name server)))
    (is (eql 100 (client (gs-area::generic-add-square 10))))
    (is (eql 100 (client (gs-area::generic-get-areas))))
    (is (eql 100 (client (gs-area::generic-get-areas*
                          'gs-area::generic-area-server))))
    (is (eql 400 (client (gs-area::generic-add-rectangle 10 30))))
    (is (eq t (client (muproc-generic-stop 'gs-area::generic-area-server))))
    (is (eq :normal (exit-reason server)))
    (is (null (muproc-find 'gs-area::generic-area-server)))
    (let ((lines (text-lines (log-text))))
      (is (= 2 (length lines)) "Expected two log lines, got:~%~{~a~%~}" lines)
      (is (log-line-p (first lines) "GENERIC-AREA-SERVER"
                      "GENERIC AREA SERVER initializing.")
          "Not the seed's initializing line: ~s" (first lines))
      (is (log-line-p (second lines) "GENERIC-AREA-SERVER"
                      "GENERIC AREA SERVER terminating (count=400).")
          "Not the seed's terminating line: ~s" (second lines)))))

(gs-test generic-server.client-functions ()
  "MUPROC-DEFINE-CALL-HANDLER defines NAME and NAME*, not exported (so
that the server's file compiles and loads again without package-variance
warnings), and the handler CALL-HANDLER/NAME (the seed's expansion);
handler lambda lists take &optional and &rest parameters, and a call
returns all the handler's values."
  (dolist (name '("GENERIC-ADD-SQUARE" "GENERIC-ADD-SQUARE*"))
    (is (eq :internal (nth-value 1 (find-symbol name '#:muproc-example.generic-area-server)))
        "~a is exported" name))
  (is (fboundp (find-symbol "CALL-HANDLER/GENERIC-ADD-SQUARE" '#:muproc-example.generic-area-server)))
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (is (equal '((1 :b-default) (1 2) (1 2 3 4) (1 2 3 4))
               (client (list (multiple-value-list (muproc-tests.gs-counter::values-of 1))
                             (multiple-value-list (muproc-tests.gs-counter::values-of 1 2))
                             (multiple-value-list
                              (muproc-tests.gs-counter::values-of 1 2 3 4))
                             (multiple-value-list
                              (muproc-tests.gs-counter::values-of* server 1 2 3 4))))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.example-transcript (:timeout 60)
  "examples/generic-area-server.lisp replays the seed's session: the
forms with 100, 100, 100 and 400, the server's initializing and terminating
log lines, and stops the server."
  (load (asdf:system-relative-pathname "muproc" "examples/load-muproc.lisp"))
  (let* ((main (uiop:symbol-call '#:muproc-examples '#:load-example "generic-area-server"))
         (lines (text-lines (with-output-to-string (*standard-output*)
                              (funcall main)))))
    (is (= 8 (length lines)) "Expected 8 lines, got:~%~{~a~%~}" lines)
    (when (= 8 (length lines))
      (is (equal '("(start-generic-area-server)"
                   "(muproc () (generic-add-square 10)) => 100"
                   "(muproc () (generic-get-areas)) => 100"
                   "(muproc () (generic-get-areas* 'generic-area-server)) => 100"
                   "(muproc () (generic-add-rectangle 10 30)) => 400"
                   "(muproc () (muproc-generic-stop 'generic-area-server)) => T")
                 (append (subseq lines 0 1) (subseq lines 2 6) (last lines))))
      (is (log-line-p (second lines) "GENERIC-AREA-SERVER"
                      "GENERIC AREA SERVER initializing."))
      (is (log-line-p (seventh lines) "GENERIC-AREA-SERVER"
                      "GENERIC AREA SERVER terminating (count=400).")))))

;;; Naming: several instances, port names

(gs-test generic-server.two-instances ()
  "Two servers of one type under different names keep separate states: NAME
calls the default server (COUNTER), NAME* the one it is given, by name or
muproc; each TERMINATE sees its own state."
  (let ((a (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter
                         :initargs '(:start 1)))
        (b (start-server 'counter-2 '#:muproc-tests.gs-counter
                         :initargs '(:start 1000))))
    (destructuring-bind (default-add b-add a-count b-count a-state b-state a-who b-who)
        (client (list (muproc-tests.gs-counter::add 5)
                      (muproc-tests.gs-counter::add* 'counter-2 7)
                      (muproc-tests.gs-counter::get-count* a)
                      (muproc-tests.gs-counter::get-count* b)
                      (muproc-tests.gs-counter::get-state)
                      (muproc-tests.gs-counter::get-state* 'counter-2)
                      (first (muproc-tests.gs-counter::whoami))
                      (first (muproc-tests.gs-counter::whoami* b))))
      (is (eql 6 default-add))
      (is (eql 1007 b-add))
      (is (eql 6 a-count))
      (is (eql 1007 b-count))
      (is (not (eq a-state b-state)))
      (is (eq 'muproc-tests.gs-counter:counter a-who))
      (is (eq 'counter-2 b-who)))
    (is (eq t (client (muproc-generic-stop b))))
    (is (eq t (client (muproc-generic-stop 'muproc-tests.gs-counter:counter))))
    (let ((log (log-text)))
      (is-true (logged-p "COUNTER terminating (count=6)." log))
      (is-true (logged-p "COUNTER-2 COUNTER terminating (count=1007)." log)))))

(gs-test generic-server.port-name ()
  "A server started with :PORT-NAME is reached through that keyword (once
its first call, by muproc, is served the name is registered), knows it as
*MUPROC-GENERIC-SERVER-PORT-NAME*, stops through it, and frees it."
  (let ((server (start-server nil '#:muproc-tests.gs-counter
                              :port-name :gs-test-counter-port)))
    (destructuring-bind (first-count added who)
        (client (list (muproc-tests.gs-counter::get-count* server)
                      (muproc-tests.gs-counter::add* :gs-test-counter-port 3)
                      (muproc-tests.gs-counter::whoami* :gs-test-counter-port)))
      (is (eql 0 first-count))
      (is (eql 3 added))
      (is (null (first who)))
      (is (eq (find-package '#:muproc-tests.gs-counter) (third who)))
      (is (eq :gs-test-counter-port (fourth who))))
    (is (eq server (muproc-get-registered-port :gs-test-counter-port)))
    (is (eq t (client (muproc-generic-stop :gs-test-counter-port))))
    (is (eq :normal (exit-reason server)))
    (is (null (muproc-get-registered-port :gs-test-counter-port)))))

(gs-test generic-server.port-name-taken ()
  "A server whose port name is taken ends with MUPROC-PORT-NAME-TAKEN, and
its INITIALIZE and TERMINATE pair up: both run or neither (TERMINATE is
called on every way out, an error included; OTP registers the name before
init and runs no init when it is taken).  The holder goes on serving."
  (let ((holder (start-server 'holder '#:muproc-tests.gs-counter
                              :port-name :gs-test-taken-port)))
    ;; Served: the holder has registered the name.
    (is (eql 0 (client (muproc-tests.gs-counter::get-count* holder))))
    (let* ((late (start-server 'late '#:muproc-tests.gs-counter
                               :port-name :gs-test-taken-port))
           (reason (exit-reason late)))
      (is (and (consp reason) (typep (cdr reason) 'muproc-port-name-taken))
          "Exit reason ~s" reason))
    (is (eq holder (muproc-get-registered-port :gs-test-taken-port)))
    (is (eq t (client (muproc-generic-stop :gs-test-taken-port))))
    (let ((log (log-text)))
      (is (eq (logged-p "LATE COUNTER initializing." log)
              (logged-p "LATE COUNTER terminating (count=0)." log))
          "LATE ran ~:[no ~;~]INITIALIZE and ~:[no ~;~]TERMINATE; its log:~%~{~a~%~}"
          (logged-p "LATE COUNTER initializing." log)
          (logged-p "LATE COUNTER terminating (count=0)." log)
          (remove-if-not (lambda (line) (search " LATE " line :end2 (min 20 (length line))))
                         (text-lines log))))))

;;; Calls that fail

(gs-test generic-server.not-running ()
  "A call or cast to a server that is not running (an unknown name or port,
a muproc that has exited, a default server not started) signals
GENERIC-SERVER-NOT-RUNNING at once, whatever the timeout, with reason
:NOPROC; a type without a default server name signals it too."
  (let ((dead (start-server 'gone '#:muproc-tests.gs-counter)))
    (is (eq t (client (muproc-generic-stop dead))))
    (is (eq :normal (exit-reason dead)))
    (let ((results
            (client
              (let ((*muproc-generic-call-timeout* 10))
                (flet ((try (thunk)
                         (multiple-value-bind (result seconds) (outcome (funcall thunk))
                           (list result seconds))))
                  (list (try (lambda () (muproc-tests.gs-counter::get-count* 'nobody-here)))
                        (try (lambda () (muproc-tests.gs-counter::get-count* :gs-no-such-port)))
                        (try (lambda () (muproc-tests.gs-counter::get-count* dead)))
                        (try (lambda () (muproc-tests.gs-counter::get-count* 'gone)))
                        (try (lambda () (muproc-tests.gs-counter::get-count)))
                        (try (lambda () (muproc-tests.gs-counter::push-item* dead 1)))
                        (try (lambda () (muproc-tests.gs-counter::push-item :x)))
                        (try (lambda () (muproc-tests.gs-plain::plain-get)))))))))
      (is (= 8 (length results)))
      (loop for ((kind condition) seconds) in results
            for i from 0
            do (is (eq :error kind) "Attempt ~d did not fail: ~s" i condition)
               (is (typep condition 'generic-server-not-running)
                   "Attempt ~d signalled ~s" i condition)
               (is (< seconds 1) "Attempt ~d took ~,2f s" i seconds))
      (loop for ((nil condition)) in results
            for i from 0
            do (is (eq :noproc (ignore-errors (generic-server-down-reason condition)))
                   "Attempt ~d: no reason :NOPROC in ~s" i condition))
      (is (eq 'nobody-here (generic-server-error-server (second (first (first results)))))))))

(gs-test generic-server.not-in-muproc ()
  "A call outside a muproc signals MUPROC-NOT-IN-MUPROC (it needs an inport
for the reply)."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (signals muproc-not-in-muproc (muproc-tests.gs-counter::get-count* server))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.server-exits-during-call ()
  "A server whose handler calls (MUPROC-EXIT :BOOM) after a while makes the
caller signal GENERIC-SERVER-DOWN (not NOT-RUNNING) with reason :BOOM at
once, not after the 10 s timeout; the server ran TERMINATE."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (multiple-value-bind (result seconds)
        (client (let ((*muproc-generic-call-timeout* 10))
                  (outcome (muproc-tests.gs-counter::die-after* server 0.2 :boom))))
      (destructuring-bind (kind condition) result
        (is (eq :error kind))
        (is (typep condition 'generic-server-down))
        (is (not (typep condition 'generic-server-not-running)))
        (is (eq :boom (and (typep condition 'generic-server-down)
                           (generic-server-down-reason condition))))
        (is (eq server (generic-server-error-server condition))))
      (is (< seconds 3) "The caller learnt of the exit only after ~,2f s" seconds))
    (is (eq :boom (exit-reason server)))
    (is-true (logged-p "COUNTER terminating (count=0)." (log-text)))))

(gs-test generic-server.server-killed-during-call ()
  "A server killed by another muproc while its handler sleeps (30 s) makes
the caller signal GENERIC-SERVER-DOWN carrying the kill's reason at once."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (multiple-value-bind (result seconds)
        (client
          (let ((killer (muproc-spawn nil (lambda ()
                                            (mumsg-receive (from)
                                              ((napping) t (muproc-kill napping :shot))))
                                      nil))
                (*muproc-generic-call-timeout* 10))
            (multiple-value-prog1
                (outcome (muproc-tests.gs-counter::nap* server 30 killer))
              (muproc-wait-for-exit killer))))
      (destructuring-bind (kind condition) result
        (is (eq :error kind))
        (is (typep condition 'generic-server-down))
        (is (eq :shot (and (typep condition 'generic-server-down)
                           (generic-server-down-reason condition)))))
      (is (< seconds 3) "The caller learnt of the kill only after ~,2f s" seconds))
    (is (eq :shot (exit-reason server)))))

(gs-test generic-server.timeout ()
  "A call whose handler sleeps 2 s with *MUPROC-GENERIC-CALL-TIMEOUT* bound
to 0.2 signals GENERIC-CALL-TIMEOUT after about 0.2 s; the server's late
reply never lands in the caller's inport (checked after a second call,
served once the slow handler is done), and the server goes on serving."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (destructuring-bind ((result seconds) second-result pending)
        (client
          (list (multiple-value-list
                 (let ((*muproc-generic-call-timeout* 0.2))
                   (outcome (muproc-tests.gs-counter::nap* server 2))))
                (muproc-tests.gs-counter::add* server 2)
                (muproc-unmatched-input-count)))
      (destructuring-bind (kind condition) result
        (is (eq :error kind))
        (is (typep condition 'generic-call-timeout))
        (is (eq server (generic-server-error-server condition))))
      (is (<= 0.19 seconds 1.8) "The call gave up after ~,2f s (the handler naps 2 s)" seconds)
      (is (eql 2 second-result))
      (is (eql 0 pending) "~d message(s) left in the caller's inport" pending))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.timeout-per-call ()
  "Binding *MUPROC-GENERIC-CALL-TIMEOUT* around one call changes that
call's timeout only: the next call, with the default (5 s), waits for its
slow handler; NIL waits as long as it takes."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (destructuring-bind (short default forever default-value pending)
        (client
          (list (let ((*muproc-generic-call-timeout* 0.1))
                  (outcome (muproc-tests.gs-counter::nap* server 0.5)))
                (outcome (muproc-tests.gs-counter::nap* server 0.3))
                (let ((*muproc-generic-call-timeout* nil))
                  (outcome (muproc-tests.gs-counter::nap* server 0.3)))
                *muproc-generic-call-timeout*
                (muproc-unmatched-input-count)))
      (is (typep (second short) 'generic-call-timeout))
      (is (equal '(:values :rested) default))
      (is (equal '(:values :rested) forever))
      (is (eql 5 default-value))
      (is (eql 0 pending)))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.handler-error ()
  "An error in a call handler reaches the caller as GENERIC-HANDLER-ERROR
whose GENERIC-HANDLER-ERROR-ORIGINAL is the handler's condition; the
server logs it, keeps its state and serves the next call.  An error in a
cast handler is logged and the server goes on."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (destructuring-bind (added failed after cast-result after-cast)
        (client (list (muproc-tests.gs-counter::add* server 5)
                      (outcome (muproc-tests.gs-counter::fail* server :oops))
                      (muproc-tests.gs-counter::get-count* server)
                      (muproc-tests.gs-counter::fail-cast* server :cast-oops)
                      (muproc-tests.gs-counter::add* server 1)))
      (is (eql 5 added))
      (destructuring-bind (kind condition) failed
        (is (eq :error kind))
        (is (typep condition 'generic-handler-error))
        (let ((original (and (typep condition 'generic-handler-error)
                             (generic-handler-error-original condition))))
          (is (typep original 'muproc-tests.gs-counter:gs-failure))
          (is (eq :oops (and (typep original 'muproc-tests.gs-counter:gs-failure)
                             (muproc-tests.gs-counter:gs-failure-datum original))))))
      (is (eql 5 after))
      (is (eq t cast-result))
      (is (eql 6 after-cast)))
    (is (eq t (client (muproc-generic-stop server))))
    (let ((log (log-text)))
      (is-true (logged-p "Failure on :OOPS." log))
      (is-true (logged-p "Failure on :CAST-OOPS." log))
      (is-true (logged-p "COUNTER terminating (count=6)." log)))))

(gs-test generic-server.abandoned-call ()
  "A call abandoned by a non-local exit (MUPROC-WITH-TIMEOUT 0.2 s around a
2 s handler) leaves nothing behind: the late reply does not land in the
caller's inport (checked after a second call, served once the slow handler
is done), nor does a notice of the server's exit once it is stopped."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (destructuring-bind (abandoned after-reply after-exit)
        (client (list (muproc-with-timeout (0.2 :abandoned)
                        (muproc-tests.gs-counter::nap* server 2))
                      (progn (muproc-tests.gs-counter::get-count* server)
                             (muproc-unmatched-input-count))
                      (progn (muproc-generic-stop server)
                             (muproc-unmatched-input-count))))
      (is (eq :abandoned abandoned))
      (is (eql 0 after-reply) "~d message(s) in the caller's inport after the late reply"
          after-reply)
      (is (eql 0 after-exit) "~d message(s) in the caller's inport after the server's exit"
          after-exit))))

;;; Casts

(gs-test generic-server.cast-returns-at-once ()
  "A cast returns T at once, without waiting for its handler (which sleeps
1.5 s); its effect is visible to a call that follows it."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (destructuring-bind ((result seconds) items)
        (client (list (multiple-value-list
                       (outcome (muproc-tests.gs-counter::slow-push* server 1.5 :slow)))
                      (muproc-tests.gs-counter::items* server)))
      (is (equal '(:values t) result))
      (is (< seconds 1) "The cast took ~,2f s (its handler: 1.5 s)" seconds)
      (is (equal '(:slow) items)))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.casts-and-calls-in-order ()
  "100 casts and calls from one client, interleaved, each pushing its index
on the server's list, are handled in the order sent: each call sees every
earlier push, and the list is 0..99."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (destructuring-bind (answers items)
        (client (list (loop for i below 100
                            collect (if (evenp i)
                                        (muproc-tests.gs-counter::push-item* server i)
                                        (muproc-tests.gs-counter::push-item/call* server i)))
                      (muproc-tests.gs-counter::items* server)))
      (is (equal (loop for i below 100 collect (if (evenp i) t (1+ i))) answers))
      (is (equal (loop for i below 100 collect i) items)))
    (is (eq t (client (muproc-generic-stop server))))))

;;; Deferred replies

(defun reply-helper (&key wait-for-go)
  "A muproc that takes a reply token from the server's DEFER-TO handler,
makes a call of its own to that server (served while the first caller
waits), and replies (values X count) to the token; with WAIT-FOR-GO, only
after a (:go t) message.  Returns the muproc and a function returning what
MUPROC-GENERIC-REPLY returned."
  (let* ((replied :not-yet)
         (helper (muproc-spawn nil
                               (lambda ()
                                 (mumsg-receive (from)
                                   ((token x server) t
                                    (let ((count (muproc-tests.gs-counter::get-count* server)))
                                      (when wait-for-go
                                        (mumsg-receive (from) ((go) t)))
                                      (setf replied
                                            (muproc-generic-reply token x count))))))
                               nil)))
    (values helper (lambda () replied))))

(gs-test generic-server.deferred-reply ()
  "A call handler that defers its reply hands the token to another muproc;
the server serves other calls meanwhile (that muproc's own), and the
caller gets the values the other muproc replies; MUPROC-GENERIC-REPLY
returns T."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter
                              :initargs '(:start 7))))
    (multiple-value-bind (helper replied) (reply-helper)
      (is (equal '(21 7) (client (multiple-value-list
                                  (muproc-tests.gs-counter::defer-to* server helper 21)))))
      (muproc-wait-for-exit helper :timeout 10)
      (is (eq t (funcall replied))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.deferred-reply-too-late ()
  "A deferred reply made after the caller timed out is dropped: it never
reaches the caller's inport, and MUPROC-GENERIC-REPLY returns NIL."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (multiple-value-bind (helper replied) (reply-helper :wait-for-go t)
      (destructuring-bind (result pending)
          (client (list (let ((*muproc-generic-call-timeout* 0.2))
                          (outcome (muproc-tests.gs-counter::defer-to* server helper 1)))
                        (progn (mumsg-send helper :go t)
                               (muproc-wait-for-exit helper :timeout 10)
                               (muproc-unmatched-input-count))))
        (is (typep (second result) 'generic-call-timeout))
        (is (eql 0 pending) "~d message(s) left in the caller's inport" pending))
      (is (null (funcall replied))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.second-reply-dropped ()
  "A call takes one reply: a second MUPROC-GENERIC-REPLY to the same token
returns NIL and leaves nothing in the caller's inport (the reply alias
closed itself as it delivered the first)."
  (let* ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter))
         (replies nil)
         (helper (muproc-spawn nil
                               (lambda ()
                                 (mumsg-receive (from)
                                   ((token x) t
                                    (setf replies
                                          (list (muproc-generic-reply token x)
                                                (muproc-generic-reply token :again))))))
                               nil)))
    (destructuring-bind (result pending)
        (client (list (muproc-tests.gs-counter::defer-to* server helper 5)
                      (progn (muproc-wait-for-exit helper :timeout 10)
                             (muproc-unmatched-input-count))))
      (is (eql 5 result))
      (is (eql 0 pending) "~d message(s) left in the caller's inport" pending))
    (is (equal '(t nil) replies))
    (is (eq t (client (muproc-generic-stop server))))))

;;; How a server ends: TERMINATE each time

(gs-test generic-server.exit-after-handler ()
  "A handler calling (MUPROC-EXIT-AFTER-HANDLER :FINISHED) has its reply
delivered, then the server runs TERMINATE (seeing the handler's change to
the state) and exits with :FINISHED."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter)))
    (is (equal '(:values :bye)
               (client (outcome (muproc-tests.gs-counter::last-words* server :finished :bye)))))
    (is (eq :finished (exit-reason server)))
    (is-true (logged-p "COUNTER terminating (count=1)." (log-text)))))

(gs-test generic-server.stop ()
  "MUPROC-GENERIC-STOP returns T once the server has run TERMINATE and
exited, with reason :NORMAL or the one given."
  (let ((a (start-server 'counter-a '#:muproc-tests.gs-counter :initargs '(:start 11)))
        (b (start-server 'counter-b '#:muproc-tests.gs-counter :initargs '(:start 22))))
    (is (eq t (client (muproc-generic-stop a))))
    (is (not (muproc-alive-p a)))
    (is (eq :normal (muproc-exit-reason a)))
    (is (eq t (client (muproc-generic-stop 'counter-b :shutdown))))
    (is (eq :shutdown (muproc-exit-reason b)))
    (let ((log (log-text)))
      (is-true (logged-p "COUNTER-A COUNTER terminating (count=11)." log))
      (is-true (logged-p "COUNTER-B COUNTER terminating (count=22)." log)))))

(gs-test generic-server.exit-signal ()
  "A server that does not trap exits, told to exit by another muproc
(MUPROC-EXIT reason server), or killed, runs TERMINATE and exits with that
reason."
  (let ((a (start-server 'counter-a '#:muproc-tests.gs-counter :initargs '(:start 1)))
        (b (start-server 'counter-b '#:muproc-tests.gs-counter :initargs '(:start 2))))
    ;; A served call: both are running their loop.
    (is (equal '(1 2) (client (list (muproc-tests.gs-counter::get-count* a)
                                    (muproc-tests.gs-counter::get-count* b)))))
    (client (muproc-exit :stop-it a))
    (is (eq :stop-it (exit-reason a)))
    (client (muproc-kill b :die))
    (is (eq :die (exit-reason b)))
    (let ((log (log-text)))
      (is-true (logged-p "COUNTER-A COUNTER terminating (count=1)." log))
      (is-true (logged-p "COUNTER-B COUNTER terminating (count=2)." log)))))

(defun start-linked-server (name package)
  "Start a trapping server of type PACKAGE linked to a muproc GS-LINKER
that then exits with reason :BYE; return the server once the linker has
exited."
  (let* ((server nil)
         (linker (muproc-spawn 'gs-linker
                               (lambda ()
                                 (setf server (start-server name package
                                                            :trap-exits t :link t))
                                 (muproc-exit :bye))
                               nil)))
    (muproc-wait-for-exit linker :timeout 10)
    (push server *servers*)
    server))

(gs-test generic-server.linked-exit ()
  "A server trapping exits, linked to a muproc that exits with :BYE, gets
LINKED-EXIT (state muproc reason) called and goes on serving."
  (let ((server (start-linked-server 'counter '#:muproc-tests.gs-counter)))
    (is (muproc-trap-exits-p server))
    (is (equal '((gs-linker :bye))
               (client (muproc-tests.gs-counter::linked-exits* server))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.linked-exit-without-callback ()
  "A server trapping exits whose type defines no LINKED-EXIT ends when a
linked muproc exits: it runs TERMINATE and exits with
(:LINKED-TO-EXIT GS-LINKER :FOR-REASON :BYE)."
  (let ((server (start-linked-server 'plain '#:muproc-tests.gs-plain)))
    (is (equal '(:linked-to-exit gs-linker :for-reason :bye) (exit-reason server)))
    (is-true (logged-p "PLAIN terminating (count=0)." (log-text)))))

(gs-test generic-server.error-outside-handlers ()
  "An unhandled error outside the handlers (here in UNHANDLED-MESSAGE) ends
the server with (:ERROR-IN-PROCESS . condition); TERMINATE runs."
  (let ((server (start-server 'counter '#:muproc-tests.gs-counter :initargs '(:start 3))))
    (client (mumsg-send server :explode t))
    (let ((reason (exit-reason server)))
      (is (and (consp reason) (eq :error-in-process (car reason)))
          "Exit reason ~s" reason)
      (is (typep (cdr reason) 'error)))
    (is-true (logged-p "COUNTER terminating (count=3)." (log-text)))))

;;; Code written for cl-muproc

(gs-test generic-server.handler-given-by-its-name ()
  "MUPROC-GENERIC-CALL and -CAST take the name given to
MUPROC-DEFINE-CALL-HANDLER (or -CAST-HANDLER), as well as the handler's
CALL-HANDLER/NAME symbol the seed's expansion passes."
  (let ((server (start-server 'counter '#:muproc-tests.gs-counter)))
    (is (equal '(5 7 ((:x) 7))
               (client (list (muproc-generic-call server 'muproc-tests.gs-counter::add 5)
                             (muproc-generic-call server 'muproc-tests.gs-counter::call-handler/add 2)
                             (progn (muproc-generic-cast server 'muproc-tests.gs-counter::push-item :x)
                                    (list (muproc-generic-call server 'muproc-tests.gs-counter::items)
                                          (muproc-generic-call server
                                                               'muproc-tests.gs-counter::get-count)))))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.cast-handler-gets-from ()
  "A cast handler is written (state from &rest args), as in cl-muproc, and
gets the casting muproc as FROM."
  (let ((server (start-server 'counter '#:muproc-tests.gs-counter)))
    (destructuring-bind (caster items)
        (client (muproc-tests.gs-counter::note-caster* server)
                (list (muproc-current-process) (muproc-tests.gs-counter::items* server)))
      (is (equal (list (list :cast-from caster)) items)))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.keyword-named-server ()
  "A server spawned under a keyword name (cl-muproc allowed any symbol) is
called, cast to and stopped by that name; a keyword registered as a port
name still goes to the port's muproc first."
  (let ((by-name (start-server :gs-keyword-counter '#:muproc-tests.gs-counter
                               :initargs '(:start 1)))
        (by-port (start-server 'gs-other '#:muproc-tests.gs-counter
                               :initargs '(:start 100) :port-name :gs-keyword-port)))
    (is (equal '(1 3 100)
               (client (list (muproc-tests.gs-counter::get-count* :gs-keyword-counter)
                             (progn (muproc-tests.gs-counter::push-item* :gs-keyword-counter :i)
                                    (muproc-tests.gs-counter::add* :gs-keyword-counter 2))
                             (muproc-tests.gs-counter::get-count* :gs-keyword-port)))))
    (is (eq t (client (muproc-generic-stop :gs-keyword-counter))))
    (is (eq :normal (exit-reason by-name)))
    (is (eq t (client (muproc-generic-stop :gs-keyword-port))))
    (is (eq :normal (exit-reason by-port)))))

(gs-test generic-server.exit-after-handler-unsetting ()
  "(muproc-exit-after-handler reason :unsettingp t), cl-muproc's, cancels
an exit asked for earlier in the handler: the server goes on serving."
  (let ((server (start-server 'counter '#:muproc-tests.gs-counter)))
    (is (equal '(:staying 0)
               (client (list (muproc-tests.gs-counter::changed-mind* server)
                             (muproc-tests.gs-counter::get-count* server)))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.errors-name-the-operator-called ()
  "Outside a muproc, MUPROC-GENERIC-STOP signals MUPROC-NOT-IN-MUPROC
naming MUPROC-GENERIC-STOP, not the call it makes."
  (let ((server (start-server 'counter '#:muproc-tests.gs-counter)))
    (let ((c (handler-case (progn (muproc-generic-stop server) nil)
               (muproc-not-in-muproc (c) c))))
      (is (and c (search "MUPROC-GENERIC-STOP" (princ-to-string c))) "~a" c))
    (is (eq t (client (muproc-generic-stop server))))))

;;; Edit and reload

(defparameter *reloaded-server-source*
  "(defpackage #:muproc-tests.gs-reloaded
     (:use #:common-lisp #:muproc #:muproc.generic-server))
   (in-package #:muproc-tests.gs-reloaded)
   (muproc-default-server-name gs-reloaded)
   (defun initialize () (list 0))
   (muproc-define-call-handler bump (state from)
     (incf (first state)))
   (muproc-define-cast-handler reset (state from)
     (setf (first state) 0))"
  "A server type's file, as a user writes it: no handler in DEFPACKAGE.")

(defun compile-and-load (file)
  "COMPILE-FILE and LOAD FILE; the full warnings (not style warnings)
signalled, and COMPILE-FILE's FAILURE-P."
  (let ((warnings '()))
    (handler-bind ((warning (lambda (w)
                              (unless (typep w 'style-warning)
                                (push (princ-to-string w) warnings))
                              (muffle-warning w))))
      (let ((*error-output* (make-broadcast-stream))
            (*standard-output* (make-broadcast-stream)))
        (multiple-value-bind (fasl warnings-p failure-p) (compile-file file)
          (declare (ignore warnings-p))
          (load fasl)
          (delete-file fasl)
          (values (nreverse warnings) failure-p))))))

(gs-test generic-server.server-file-compiles-and-loads-twice ()
  "A server's file compiles and loads twice in one image without a
warning (the handlers' client functions are not exported, so DEFPACKAGE
never disagrees with the package), and the server started after the first
load serves on after the second."
  (uiop:with-temporary-file (:pathname file :type "lisp" :keep nil)
    (with-open-file (out file :direction :output :if-exists :supersede)
      (write-string *reloaded-server-source* out))
    (unwind-protect
         (progn
           (is (equal '(() nil) (multiple-value-list (compile-and-load file))))
           (let* ((package (find-package '#:muproc-tests.gs-reloaded))
                  (server (start-server (find-symbol "GS-RELOADED" package) package))
                  (bump (find-symbol "BUMP" package)))
             (is (eql 1 (client (funcall bump))))
             (is (equal '(() nil) (multiple-value-list (compile-and-load file))))
             (is (eql 2 (client (funcall bump))))
             (is (eq t (client (muproc-generic-stop server))))))
      (when (find-package '#:muproc-tests.gs-reloaded)
        (delete-package '#:muproc-tests.gs-reloaded)))))

(gs-test generic-server.muproc-reloads-under-a-running-server (:timeout 300)
  "(asdf:load-system :muproc :force t) in an image where a generic server
runs: no warning (muproc.supervisor exports only its API, so its
DEFPACKAGE agrees with it), and the server still answers afterwards.  In a
child SBCL, which prints what it saw."
  (multiple-value-bind (lines errors status)
      (muproc-tests::run-child-sbcl
       (list "--noinform" "--non-interactive" "--no-sysinit" "--no-userinit"
             "--load" "examples/load-muproc.lisp"
             "--eval" "(defpackage #:reload-server (:use #:cl #:muproc #:muproc.generic-server))"
             "--eval" "(in-package #:reload-server)"
             "--eval" "(defun initialize () (list 0))"
             "--eval" "(muproc-define-call-handler bump (state from) (incf (first state)))"
             "--eval" "(defvar *server* (muproc-spawn 'server (lambda () (muproc-generic-start)) nil))"
             "--eval" "(format t \"before ~a~%\" (muproc () (bump* *server*)))"
             "--eval" "(let ((out *standard-output*)) (handler-bind ((warning (lambda (w) (unless (typep w 'style-warning) (format out \"warning ~a~%\" (remove #\\Newline (princ-to-string w))))))) (let ((*standard-output* (make-broadcast-stream)) (*error-output* (make-broadcast-stream))) (asdf:load-system :muproc :force t))))"
             "--eval" "(format t \"after ~s ~a~%\" (muproc-state *server*) (muproc () (bump* *server*)))"
             "--eval" "(muproc () (muproc-generic-stop *server*))"
             "--eval" "(format t \"done~%\")")
       :timeout 280)
    (is (eql 0 status) "status ~a; error output:~%~a" status errors)
    (is (equal '("before 1" "after :WAITING 2" "done") lines)
        "printed:~%~{~s~%~}error output:~%~a" lines errors)))

;;; Other messages, redefinition

(gs-test generic-server.unhandled-message ()
  "A message that is neither a call nor a cast goes to UNHANDLED-MESSAGE
(state mumsg) when the type defines it; the server keeps serving."
  (let ((server (start-server 'counter '#:muproc-tests.gs-counter)))
    (let ((unhandled (client (mumsg-send server :strange 1 :stuff "two")
                             (mumsg-send server :other nil)
                             (muproc-tests.gs-counter::unhandled* server))))
      (is (equal '((:strange 1 :stuff "two") (:other nil))
                 (mapcar #'mumsg-plist unhandled))))
    (is (eq t (client (muproc-generic-stop server))))))

(gs-test generic-server.unexpected-message-dropped ()
  "Without UNHANDLED-MESSAGE an unexpected message is logged and dropped,
and the server keeps serving."
  (let ((server (start-server 'plain '#:muproc-tests.gs-plain)))
    (is (eql 4 (client (mumsg-send server :strange 1)
                       (muproc-tests.gs-plain::plain-add* server 4))))
    (is (eql 0 (muproc-unmatched-input-count server)))
    (is (eq t (client (muproc-generic-stop server))))
    (let ((log (log-text)))
      (is-true (logged-p "Dropped unexpected message" log) "Log:~%~a" log))))

(gs-test generic-server.redefined-handler ()
  "A call handler redefined at the REPL (MUPROC-DEFINE-CALL-HANDLER again,
with another body) takes effect on the next call; the server keeps running
with its state."
  (let ((server (start-server 'muproc-tests.gs-counter:counter '#:muproc-tests.gs-counter
                              :initargs '(:start 5))))
    (unwind-protect
         (progn
           (is (eq :v1 (client (muproc-tests.gs-counter::version* server))))
           (in-package-eval '#:muproc-tests.gs-counter
                            "(muproc-define-call-handler version (state from)
                               (list :v2 (counter-count state)))")
           (is (equal '(:v2 5) (client (muproc-tests.gs-counter::version* server))))
           (is (equal '(:v2 5) (client (muproc-tests.gs-counter::version)))))
      (in-package-eval '#:muproc-tests.gs-counter
                       "(muproc-define-call-handler version (state from) :v1)"))
    (is (eq :v1 (client (muproc-tests.gs-counter::version* server))))
    (is (eq t (client (muproc-generic-stop server))))
    (is (eq :normal (muproc-exit-reason server)))))
