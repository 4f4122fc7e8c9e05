;;;; test-process.lisp - muprocs: spawning, identity, names, exits, the
;;;; errorstream, fresh bindings on reused workers, bounded inports.

(in-package #:muproc-tests)

(def-suite :muproc/process :in :muproc :description "Muprocs and their lives.")
(in-suite :muproc/process)

(defvar *process-test-special* :global
  "A special that muprocs bind, set and expect to find at its global value.")

(define-condition process-test-error (error) ()
  (:report "process-test-error, raised on purpose"))

(defun wait-for-go ()
  "Block in a receive until a (:go ...) message; return its value."
  (mumsg-receive (from) ((go) t go)))

(defun spawn-waiting (name &rest spawn-args)
  "Spawn a muproc NAME that waits for (:go ...), then exits normally."
  (apply #'muproc-spawn name #'wait-for-go nil spawn-args))

(defun release (muproc)
  "Send MUPROC its :go and wait for its exit; its reason."
  (mumsg-send muproc :go t)
  (muproc-wait-for-exit muproc :timeout 10))

(defun waiting-p (muproc)
  (eq :waiting (muproc-state muproc)))

(defun printed-fields (muproc)
  "The space-separated fields inside #<...> of MUPROC's printed form, or
NIL if it does not look like #<...>."
  (let ((text (let ((*package* (find-package :muproc-tests))) (prin1-to-string muproc))))
    (when (and (> (length text) 3)
               (string= "#<" text :end2 2)
               (char= #\> (char text (1- (length text)))))
      (uiop:split-string (subseq text 2 (1- (length text))) :separator " "))))

(deftest process.spawn-returns-a-printable-muproc ()
  "MUPROC-SPAWN returns a muproc at once; it prints as
#<MUPROC <number> <NAME> <:STATE> ...>, :WAITING while blocked in a
receive and :DEAD after its exit."
  (let ((m (spawn-waiting 'print-test-muproc)))
    (is (muproc-p m))
    (is-true (await (lambda () (waiting-p m))))
    (let ((fields (printed-fields m)))
      (is (string= "MUPROC" (first fields)) "printed as ~s" fields)
      (is (every (lambda (c) (or (digit-char-p c) (char= c #\.))) (second fields))
          "no process number in ~s" fields)
      (is (digit-char-p (char (second fields) 0)))
      (is (string= "PRINT-TEST-MUPROC" (third fields)) "printed as ~s" fields)
      (is (string= ":WAITING" (fourth fields)) "printed as ~s" fields))
    (is (eq :normal (release m)))
    (is (eq :dead (muproc-state m)))
    (is (not (muproc-alive-p m)))
    (let ((fields (printed-fields m)))
      (is (string= "MUPROC" (first fields)))
      (is (string= "PRINT-TEST-MUPROC" (third fields)))
      (is (string= ":DEAD" (fourth fields)) "printed as ~s" fields)))
  (let ((anonymous (spawn-waiting nil)))
    (is-true (await (lambda () (waiting-p anonymous))))
    (let ((fields (printed-fields anonymous)))
      (is (string= "MUPROC" (first fields)))
      (is (member (third fields) '("-" "NIL") :test #'string=) "printed as ~s" fields)
      (is (string= ":WAITING" (fourth fields))))
    (release anonymous)))

(deftest process.identity-inside-and-outside ()
  "Outside a muproc MUPROC-CURRENT-PROCESS is NIL and IN-MUPROC-P false;
inside, MUPROC-CURRENT-PROCESS is the muproc MUPROC-SPAWN returned,
MUPROC-NAME (with and without argument) its name, IN-MUPROC-P true, and
*MUPROC-INPORT* a destination reaching itself.  MUPROC-P is true only of
muprocs."
  (is (null (muproc-current-process)))
  (is (not (in-muproc-p)))
  (is (null *muproc-inport*))
  (is (not (muproc-p :identity-test)))
  (is (not (muproc-p nil)))
  (let* ((seen nil)
         (m (muproc-spawn 'identity-test
                          (lambda ()
                            (mumsg-send *muproc-inport* :to-self 1)
                            (setf seen (list (muproc-current-process)
                                             (muproc-name)
                                             (muproc-name (muproc-current-process))
                                             (in-muproc-p)
                                             (muproc-p (muproc-current-process))
                                             (mumsg-receive (from :timeout 5)
                                               ((to-self) (eq from (muproc-current-process))
                                                to-self)))))
                          nil)))
    (is (muproc-p m))
    (is (eq 'identity-test (muproc-name m)))
    (is (eq :normal (muproc-wait-for-exit m :timeout 10)))
    (destructuring-bind (current name name-of-current in-p muproc-p to-self) seen
      (is (eq m current))
      (is (eq 'identity-test name))
      (is (eq 'identity-test name-of-current))
      (is-true in-p)
      (is-true muproc-p)
      (is (eql 1 to-self)))
    (is (muproc-p m) "still a muproc after its exit")
    (is (eq 'identity-test (muproc-name m)) "keeps its name after its exit")))

(deftest process.names-unique-among-live-muprocs ()
  "A name is unique among live muprocs: spawning a second live UNIQUE-NAME
signals MUPROC-NAME-TAKEN and leaves the first alone; once the first has
exited the name is free again at once.  Anonymous muprocs (NIL) may be
many."
  (let ((first (spawn-waiting 'unique-name)))
    (signals muproc-name-taken (muproc-spawn 'unique-name (lambda () nil) nil))
    (is (muproc-alive-p first))
    (is (eq first (muproc-find 'unique-name)))
    (is (eq :normal (release first)))
    (let ((second (spawn-waiting 'unique-name)))
      (is (not (eq first second)))
      (is (eq second (muproc-find 'unique-name)))
      (is (eq :normal (release second)))))
  (let ((a (spawn-waiting nil))
        (b (spawn-waiting nil)))
    (is (null (muproc-name a)))
    (is (null (muproc-name b)))
    (is (not (eq a b)))
    (is (eq :normal (release a)))
    (is (eq :normal (release b)))))

(deftest process.find-and-list ()
  "MUPROC-FIND with a symbol gives the live muproc of that name (NIL once
it has exited); with a string, every live muproc whose name contains it,
ignoring case.  MUPROC-ALL-PROCESSES lists the live muprocs, not the
dead."
  (let ((alpha (spawn-waiting 'find-test-alpha))
        (beta (spawn-waiting 'find-test-beta))
        (other (spawn-waiting 'unrelated-name)))
    (is (eq alpha (muproc-find 'find-test-alpha)))
    (is (eq beta (muproc-find 'find-test-beta)))
    (is (null (muproc-find 'find-test-gamma)))
    (is (null (set-exclusive-or (list alpha beta) (muproc-find "find-TEST"))))
    (is (equal (list alpha) (muproc-find "test-alp")))
    (is (null (muproc-find "no muproc has this name")))
    (let ((all (muproc-all-processes)))
      (is (subsetp (list alpha beta other) all))
      (is (every #'muproc-p all)))
    (release alpha)
    (is (null (muproc-find 'find-test-alpha)))
    (is (equal (list beta) (muproc-find "find-test")))
    (is (not (member alpha (muproc-all-processes))))
    (release beta)
    (release other)
    (is (null (intersection (list alpha beta other) (muproc-all-processes))))))

(defun parse-log-line (line)
  "Split LINE, \"HH:MM:SS.mmm NAME text\", into (values hours minutes seconds
milliseconds name text); NIL if it is not such a line."
  (flet ((num (start end limit)
           (let ((n (and (<= end (length line))
                         (every #'digit-char-p (subseq line start end))
                         (parse-integer line :start start :end end))))
             (and n (< n limit) n))))
    (when (and (> (length line) 13)
               (char= #\: (char line 2)) (char= #\: (char line 5))
               (char= #\. (char line 8)) (char= #\Space (char line 12)))
      (let ((h (num 0 2 24)) (m (num 3 5 60)) (s (num 6 8 61)) (ms (num 9 12 1000))
            (space (position #\Space line :start 13)))
        (when (and h m s ms space (> space 13))
          (values h m s ms (subseq line 13 space) (subseq line (1+ space))))))))

(defun lines (string)
  (uiop:split-string (string-right-trim '(#\Newline) string) :separator '(#\Newline)))

(deftest process.exit-reasons ()
  "A muproc whose function returns exits :NORMAL; (muproc-exit REASON)
exits with REASON (any object), running UNWIND-PROTECT cleanups and
nothing after it; an unhandled error exits with (:ERROR-IN-PROCESS .
condition) and logs it, with a backtrace, to the muproc's errorstream; a
muproc running alongside is unaffected.  MUPROC-EXIT-REASON agrees."
  (multiple-value-bind (reason m) (spawn-and-wait (lambda () 42))
    (is (eq :normal reason))
    (is (eq :normal (muproc-exit-reason m))))
  (let* ((cleanup nil) (after nil)
         (reason (spawn-and-wait (lambda ()
                                   (unwind-protect
                                        (progn (muproc-exit :foo) (setf after t))
                                     (setf cleanup t))))))
    (is (eq :foo reason))
    (is-true cleanup "UNWIND-PROTECT cleanup did not run")
    (is (null after) "MUPROC-EXIT returned"))
  (let ((reason (spawn-and-wait (lambda () (muproc-exit (cons :finished-after 3))))))
    (is (equal '(:finished-after . 3) reason)))
  (let* ((log (make-string-output-stream))
         (bystander (spawn-waiting 'crash-bystander))
         (crasher (muproc-spawn 'crash-test (lambda () (error 'process-test-error)) nil
                                :errorstream log))
         (reason (muproc-wait-for-exit crasher :timeout 10))
         (text (get-output-stream-string log)))
    (is (consp reason))
    (is (eq :error-in-process (car reason)))
    (is (typep (cdr reason) 'process-test-error) "reason ~s" reason)
    (is (equal reason (muproc-exit-reason crasher)))
    (let ((lines (lines text)))
      (is (> (length lines) 2) "no backtrace logged: ~s" text)
      (multiple-value-bind (h m s ms name rest) (parse-log-line (first lines))
        (declare (ignore m s ms))
        (is-true h "first line is not a log line: ~s" (first lines))
        (is (equal "CRASH-TEST" name))
        (is (search "process-test-error, raised on purpose" (or rest "")))))
    (is (search "PROCESS-TEST-ERROR" (string-upcase text)))
    (is (some (lambda (line)
                (let ((colon (search ": (" line)))
                  (and colon (plusp colon)
                       (every #'digit-char-p (string-left-trim " " (subseq line 0 colon))))))
              (lines text))
        "no backtrace frame (\"N: (...)\") in ~s" text)
    (is (muproc-alive-p bystander))
    (is (eq :normal (release bystander)))))

(deftest process.initial-bindings ()
  ":INITIAL-BINDINGS binds each special in the new muproc only."
  (let* ((seen nil)
         (reason (spawn-and-wait
                  (lambda () (setf seen (list *process-test-special* *print-base*)))
                  :initial-bindings '((*process-test-special* . :bound)
                                      (*print-base* . 16)))))
    (is (eq :normal reason))
    (is (equal '(:bound 16) seen))
    (is (eq :global *process-test-special*))
    (is (eql 10 *print-base*))))

(deftest process.errorstream-inheritance ()
  "*MUPROC-ERRORSTREAM* in a muproc is the :ERRORSTREAM given to MUPROC-SPAWN,
else the spawner's *MUPROC-ERRORSTREAM* (also from muproc to muproc), else
the spawner's *TRACE-OUTPUT*; MUPROC-LOG-ERRORSTREAM writes there."
  (let ((inherited (make-string-output-stream))
        (explicit (make-string-output-stream))
        (trace (make-string-output-stream))
        (seen '()))
    (let ((*muproc-errorstream* inherited))
      (spawn-and-wait (lambda ()
                        (push (cons :inherited *muproc-errorstream*) seen)
                        (muproc-log-errorstream "to the inherited stream")))
      (spawn-and-wait (lambda ()
                        (push (cons :explicit *muproc-errorstream*) seen)
                        (muproc-log-errorstream "to the explicit stream"))
                      :errorstream explicit))
    (spawn-and-wait (lambda ()
                      (push (cons :parent *muproc-errorstream*) seen)
                      (muproc-wait-for-exit
                       (muproc-spawn nil (lambda ()
                                           (push (cons :child *muproc-errorstream*) seen))
                                     nil)
                       :timeout 10))
                    :errorstream explicit)
    (let ((*muproc-errorstream* nil)
          (*trace-output* trace))
      (spawn-and-wait (lambda ()
                        (push (cons :trace *muproc-errorstream*) seen)
                        (muproc-log-errorstream "to the trace output"))))
    (is (eq inherited (cdr (assoc :inherited seen))))
    (is (eq explicit (cdr (assoc :explicit seen))))
    (is (eq explicit (cdr (assoc :parent seen))))
    (is (eq explicit (cdr (assoc :child seen))))
    (is (eq trace (cdr (assoc :trace seen))))
    (is (search "to the inherited stream" (get-output-stream-string inherited)))
    (is (search "to the explicit stream" (get-output-stream-string explicit)))
    (is (search "to the trace output" (get-output-stream-string trace)))))

(defun binding-probe ()
  "What a fresh muproc must see: the special at its global value, no
packet, its own errorstream and thread."
  (list *process-test-special* *muproc-packet* *muproc-errorstream*
        sb-thread:*current-thread*))

(deftest process.fresh-bindings-on-reused-workers ()
  "Muprocs run one after another on reused worker threads, and each starts
from the global dynamic environment: whatever the previous occupant bound
or set (in a LET, in its :INITIAL-BINDINGS, by PROGV, left by MUPROC-EXIT,
by an error, or from inside a receive clause) is gone."
  (let ((quiet (make-broadcast-stream))
        (results '())
        (rounds 12))
    (flet ((probe-run (expected thunk &rest spawn-args)
             ;; Every worker parked first: the spawn reuses one of them.
             (await #'workers-settled-p :timeout 5)
             (let ((probe nil))
               (apply #'spawn-and-wait
                      (lambda () (setf probe (binding-probe)) (funcall thunk))
                      :errorstream quiet spawn-args)
               (push (cons expected probe) results))))
      (dotimes (i rounds)
        (probe-run :global
                   (lambda ()
                     (let ((*process-test-special* :let-bound))
                       (setq *process-test-special* :set-in-let))))
        (probe-run :initial
                   (lambda () (setq *process-test-special* :set-initial))
                   :initial-bindings '((*process-test-special* . :initial)))
        (probe-run :global
                   (lambda ()
                     (progv '(*process-test-special*) '(:progv)
                       (muproc-exit :left-inside-binding))))
        (probe-run :global
                   (lambda ()
                     (let ((*process-test-special* :erring))
                       (error 'process-test-error))))
        (probe-run :global
                   (lambda ()
                     (mumsg-send *muproc-inport* :x 1)
                     (let ((*process-test-special* :receiving))
                       (mumsg-receive (from) ((x) t (muproc-exit :in-clause))))))))
    (is (= (* 5 rounds) (length results)))
    (let ((wrong (remove-if (lambda (r) (eq (first r) (second r))) results)))
      (is (null wrong) "muprocs saw the wrong value (expected . probe): ~s" wrong))
    (is (every (lambda (r) (null (third r))) results))
    (is (every (lambda (r) (eq quiet (fourth r))) results))
    (let ((threads (remove-duplicates (mapcar #'fifth results))))
      (is (< (length threads) (length results)) "no worker was reused"))
    (is (eq :global *process-test-special*))))

(deftest process.exit-reaches-busy-muprocs ()
  "MUPROC-EXIT of another muproc ends it promptly (< 3 s, against its 10 s sleep) with the reason
given, its cleanups run, whether it sleeps (sleep 10), waits in a receive
that nothing matches, or spins in a loop without receiving; MUPROC-EXIT
returns true for a live muproc and NIL for a dead one."
  (destructuring-bind (sleeping receiving spinning dead)
      (muproc (30)
        (list (exit-promptly (lambda () (sleep 10)))
              (exit-promptly (lambda () (mumsg-receive (from) ((never) t))))
              (exit-promptly #'spin-forever)
              (multiple-value-bind (reason m) (spawn-and-wait (lambda () nil))
                (declare (ignore reason))
                (muproc-exit :stop m))))
    (loop for (returned reason seconds cleanup) in (list sleeping receiving spinning)
          for what in '(:sleeping :receiving :spinning)
          do (is-true returned "~s: MUPROC-EXIT returned NIL" what)
             (is (eq :stop reason) "~s: exit reason ~s" what reason)
             (is (< seconds 3) "~s: took ~,3f s to exit" what seconds)
             (is-true cleanup "~s: cleanup did not run" what))
    (is (null dead))))

(deftest process.kill ()
  "MUPROC-KILL ends a muproc with :KILLED (or the reason given) even when it
traps exits (a trapping muproc receives an exit as a :TERMINATED message and
lives on); it returns true for a live muproc, NIL for a dead one."
  (destructuring-bind (exit-returned trapped alive-after-exit kill-returned reason
                       custom-reason dead-kill)
      ;; Killed muprocs log a line: keep it off the test output.
      (let ((*muproc-errorstream* (make-broadcast-stream)))
       (muproc (20)
        (let* ((me (muproc-current-process))
               (trapper (muproc-spawn nil (lambda ()
                                            (loop (mumsg-receive (from)
                                                    ((terminated reason) t
                                                     (mumsg-send me :trapped reason)))))
                                      nil :trap-exits t))
               (exit-returned (muproc-exit :please trapper))
               (trapped (mumsg-receive (from :timeout 10)
                          ((trapped) (eq from trapper) trapped)
                          (:timeout :not-trapped)))
               (alive (muproc-alive-p trapper))
               (kill-returned (muproc-kill trapper))
               (reason (muproc-wait-for-exit trapper :timeout 5))
               (other (muproc-spawn nil (lambda () (sleep 10)) nil)))
          (muproc-kill other :custom-reason)
          (list exit-returned trapped alive kill-returned reason
                (muproc-wait-for-exit other :timeout 5)
                (muproc-kill trapper)))))
    (is-true exit-returned)
    (is (eq :please trapped))
    (is-true alive-after-exit)
    (is-true kill-returned)
    (is (eq :killed reason))
    (is (eq :custom-reason custom-reason))
    (is (null dead-kill))))

(deftest process.log-line-format ()
  "MUPROC-LOG-ERRORSTREAM writes one line \"HH:MM:SS.mmm NAME text\" (text
made by FORMAT), \"-\" for an anonymous muproc, to *TRACE-OUTPUT* outside a
muproc, and returns NIL; also inside MUPROC-WITH-ERRORSTREAM-LOCK, whose
values are its body's."
  (let ((log (make-string-output-stream))
        (returned :unset))
    (spawn-and-wait (lambda ()
                      (setf returned (muproc-log-errorstream "hello ~a and ~s" 42 "str")))
                    :errorstream log)
    (muproc-wait-for-exit
     (muproc-spawn 'log-format-test (lambda () (muproc-log-errorstream "named")) nil
                   :errorstream log)
     :timeout 10)
    (let ((outside (let ((*trace-output* (make-string-output-stream)))
                     (is (equal '(nil :body)
                                (multiple-value-list
                                 (muproc-with-errorstream-lock
                                   (values (muproc-log-errorstream "outside ~d" 7) :body)))))
                     (get-output-stream-string *trace-output*)))
          (lines (lines (get-output-stream-string log))))
      (is (null returned))
      (is (= 2 (length lines)) "lines: ~s" lines)
      (multiple-value-bind (h m s ms name text) (parse-log-line (first lines))
        (is (and h m s ms) "not a log line: ~s" (first lines))
        (is (equal "-" name))
        (is (equal "hello 42 and \"str\"" text)))
      (multiple-value-bind (h m s ms name text) (parse-log-line (second lines))
        (is (and h m s ms) "not a log line: ~s" (second lines))
        (is (equal "LOG-FORMAT-TEST" name))
        (is (equal "named" text)))
      (is (= 1 (length (lines outside))))
      (multiple-value-bind (h m s ms name text) (parse-log-line (first (lines outside)))
        (is (and h m s ms) "not a log line: ~s" outside)
        (is (equal "-" name))
        (is (equal "outside 7" text))))))

(defun read-while-logging (log loggers)
  "All the text of the string output stream LOG, read over and over (under
the errorstream lock) while the muprocs LOGGERS write to it, then once
they have exited."
  (let ((text (make-string-output-stream))
        (reads 0))
    (flet ((read-log ()
             (write-string (muproc-with-errorstream-lock (get-output-stream-string log))
                           text)))
      (loop with deadline = (+ (now) 10)
            while (and (some #'muproc-alive-p loggers) (< (now) deadline))
            do (read-log) (incf reads) (sb-thread:thread-yield))
      (dolist (m loggers) (muproc-wait-for-exit m :timeout 10))
      (read-log))
    (report-measurement "process.log-lines-never-interleave: ~d reads while logging" reads)
    (get-output-stream-string text)))

(deftest process.log-lines-never-interleave ()
  "20 muprocs logging 500 long lines each at the same time to one stream
produce 10,000 whole lines, each muproc's in its order, even with the
stream read all along (inside MUPROC-WITH-ERRORSTREAM-LOCK) as they log."
  (let* ((log (make-string-output-stream))
         (padding (make-string 200 :initial-element #\x))
         (loggers (loop for i below 20
                        collect (muproc-spawn
                                 (make-symbol (format nil "LOGGER-~d" i))
                                 (lambda (i)
                                   (wait-for-go)
                                   (dotimes (j 500)
                                     (muproc-log-errorstream "~d ~d ~a" i j padding)))
                                 (list i)
                                 :errorstream log))))
    (is-true (await (lambda () (every #'waiting-p loggers))))
    (dolist (m loggers) (mumsg-send m :go t))
    (let ((lines (lines (read-while-logging log loggers)))
          (next (make-array 20 :initial-element 0))
          (bad '()))
      (is (= 10000 (length lines)))
      (dolist (line lines)
        (multiple-value-bind (h m s ms name text) (parse-log-line line)
          (declare (ignore m s ms))
          (let* ((fields (and h (uiop:split-string text :separator " ")))
                 (i (and fields (parse-integer (first fields) :junk-allowed t)))
                 (j (and fields (parse-integer (second fields) :junk-allowed t))))
            (if (and i j (< -1 i 20)
                     (= 3 (length fields))
                     (equal name (format nil "LOGGER-~d" i))
                     (= j (aref next i))
                     (string= padding (third fields)))
                (incf (aref next i))
                (push line bad)))))
      (is (null bad) "~d mangled or out-of-order lines, e.g. ~s" (length bad) (first bad))
      (is (every (lambda (n) (= n 500)) next)))))

(deftest process.bad-spawn-arguments ()
  "MUPROC-SPAWN signals TYPE-ERROR for a name that is not a symbol, an
arglist that is not a list, a bad :INPORT-CAPACITY or a malformed
:INITIAL-BINDINGS, and starts nothing (the name stays free)."
  (flet ((f () nil))
    (signals type-error (muproc-spawn "name" #'f nil))
    (signals type-error (muproc-spawn 42 #'f nil))
    (signals type-error (muproc-spawn 'bad-args-test #'f 'not-a-list))
    (signals type-error (muproc-spawn 'bad-args-test #'f 7))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil :inport-capacity 0))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil :inport-capacity -1))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil :inport-capacity 2.5))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil :inport-capacity "3"))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil :inport-capacity (expt 2 32)))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil
                                      :initial-bindings '((*print-base* . 10) 3)))
    (signals type-error (muproc-spawn 'bad-args-test #'f nil
                                      :initial-bindings '(("x" . 1))))
    (is (null (muproc-find 'bad-args-test)))
    (is (null (muproc-all-processes)))
    (is (eq :normal (muproc-wait-for-exit (muproc-spawn 'bad-args-test #'f nil)
                                          :timeout 10)))))

(deftest process.send-to-exited-muproc ()
  "Sending to a muproc that has exited returns NIL and signals
MUPROC-SEND-TO-TERMINATED-MUPROC-CONDITION, naming that muproc, which is
not an error: unhandled, it does nothing."
  (multiple-value-bind (reason m) (spawn-and-wait (lambda () nil))
    (is (eq :normal reason))
    (let ((conditions '()))
      (is (null (handler-bind ((muproc-send-to-terminated-muproc-condition
                                 (lambda (c) (push c conditions))))
                  (mumsg-send m :hello 1))))
      (is (= 1 (length conditions)))
      (is (not (typep (first conditions) 'error)))
      (is (eq m (muproc-condition-muproc (first conditions)))))
    (is (null (handler-case (mumsg-send m :hello 2)
                (error (e) e))))
    (is (null (muproc () (mumsg-send m :hello 3))))))

(deftest process.bounded-inport ()
  "With :INPORT-CAPACITY 3 the 4th message signals MUPROC-INPORT-FULL (an
error) at the send site; the 3 queued messages are all received, in order,
the refused one is not; once the inport has room sends succeed again."
  (let* ((filled (sb-thread:make-semaphore))
         (drained (sb-thread:make-semaphore))
         (got nil)
         (m (muproc-spawn nil (lambda ()
                                (sb-thread:wait-on-semaphore filled)
                                (let ((first3 (loop repeat 3
                                                    collect (mumsg-receive (from :timeout 0)
                                                              ((n) t n)
                                                              (:timeout :missing)))))
                                  (sb-thread:signal-semaphore drained)
                                  (setf got (list first3
                                                  (mumsg-receive (from) ((n) t n))
                                                  (mumsg-receive (from :timeout 0)
                                                    (() t (mumsg-plist *muproc-packet*))
                                                    (:timeout :empty))))))
                          nil :inport-capacity 3)))
    (is (eq t (mumsg-send m :n 1)))
    (is (eq t (mumsg-send m :n 2)))
    (is (eq t (mumsg-send m :n 3)))
    (let ((condition (handler-case (mumsg-send m :n 4)
                       (error (e) e))))
      (is (typep condition 'muproc-inport-full))
      (is (typep condition 'muproc-error)))
    (signals muproc-inport-full (mumsg-send m :n 5))
    (is (eql 3 (muproc-unmatched-input-count m)))
    (sb-thread:signal-semaphore filled)
    (sb-thread:wait-on-semaphore drained)
    (is (eq t (mumsg-send m :n 6)))
    (is (eq :normal (muproc-wait-for-exit m :timeout 10)))
    (is (equal '((1 2 3) 6 :empty) got))))

(defun echo-server ()
  "Answer (:ping x) with (:pong (1+ x)) until (:stop)."
  (loop
    (mumsg-receive (from)
      ((ping) t (mumsg-send from :pong (1+ ping)))
      ((stop) t (return)))))

(deftest process.bad-messages-stay-local ()
  "A malformed message is refused at the send site (MUMSG-MALFORMED) and
the target keeps serving; a message that crashes one server ends only that
one, another server of the same code keeps serving."
  (let* ((log (make-string-output-stream))
         (s1 (muproc-spawn 'echo-server-1 #'echo-server nil :errorstream log))
         (s2 (muproc-spawn 'echo-server-2 #'echo-server nil :errorstream log)))
    (flet ((ping (server x)
             (mumsg-send server :ping x)
             (mumsg-receive (from :timeout 5) ((pong) (eq from server) pong) (:timeout :no-answer))))
      (destructuring-bind (malformed odd after-malformed after-crash-s2)
          (muproc ()
            (list (handler-case (mumsg-send s1 :ping) (error (e) (type-of e)))
                  (handler-case (mumsg-send s1 'ping 1) (error (e) (type-of e)))
                  (ping s1 1)
                  (progn (mumsg-send s1 :ping "not a number")
                         (muproc-wait-for-exit s1 :timeout 5)
                         (ping s2 41))))
        (is (eq 'mumsg-malformed malformed))
        (is (eq 'mumsg-malformed odd))
        (is (eql 2 after-malformed))
        (is (eql 42 after-crash-s2))))
    (is (eq :error-in-process (car (muproc-exit-reason s1))))
    (is (muproc-alive-p s2))
    (mumsg-send s2 :stop t)
    (is (eq :normal (muproc-wait-for-exit s2 :timeout 10)))))

(deftest process.exit-while-logging-leaves-logging-usable (:timeout 120)
  "An exit that reaches muprocs while they write log lines (some of them
inside the C library's time-zone code, which holds a lock) leaves nothing
locked: logging still works afterwards, from any thread."
  (let ((quiet (make-broadcast-stream)))
    (dotimes (round 10)
      (let* ((logging (sb-thread:make-semaphore))
             (loggers (loop repeat 10
                            collect (muproc-spawn
                                     nil (lambda ()
                                           (muproc-log-errorstream "first")
                                           (sb-thread:signal-semaphore logging)
                                           (loop (muproc-log-errorstream "more")))
                                     nil :errorstream quiet))))
        (sb-thread:wait-on-semaphore logging :n 10)
        (dolist (m loggers) (muproc-exit :stop m))
        (dolist (m loggers) (muproc-wait-for-exit m :timeout 10))))
    (let ((thread (sb-thread:make-thread
                   (lambda ()
                     (let ((*trace-output* quiet))
                       (muproc-log-errorstream "after the exits")
                       :logged))
                   :name "logging after exits")))
      ;; A thread of its own: a lock left taken would hang it, not the suite.
      (is (eq :logged (sb-thread:join-thread thread :default :hung :timeout 10))))))

(deftest process.killing-oneself-acts-at-once ()
  "A muproc that kills itself (MUPROC-KILL of the current muproc, given as
itself or by name), or exits itself naming itself (MUPROC-EXIT with the
current muproc), unwinds at once: nothing after the call runs, cleanups
do, and the reason is the one given.  A kill of oneself can't be trapped.
The MUPROC form's muproc killing itself is reported as such."
  (let ((*muproc-errorstream* (make-broadcast-stream)))
    (dolist (case (list (list :killed (lambda () (muproc-kill (muproc-current-process))))
                        (list :mine (lambda () (muproc-kill (muproc-current-process) :mine)))
                        (list :by-name (lambda () (muproc-kill 'self-killer :by-name)))
                        (list :trapping (lambda ()
                                          (muproc-set-trap-exits t)
                                          (muproc-kill (muproc-current-process) :trapping)))
                        (list :exit-self (lambda ()
                                           (muproc-exit :exit-self (muproc-current-process))))
                        (list :exit-by-name (lambda () (muproc-exit :exit-by-name 'self-killer)))))
      (destructuring-bind (expected how) case
        (let* ((reached nil)
               (cleaned-up nil)
               (m (muproc-spawn 'self-killer
                                (lambda ()
                                  (unwind-protect (progn (funcall how) (setf reached t))
                                    (setf cleaned-up t)))
                                nil)))
          (is (eq expected (muproc-wait-for-exit m :timeout 10)) "~s" expected)
          (is (not reached) "~s: the muproc went on after killing itself" expected)
          (is-true cleaned-up "~s: its cleanups did not run" expected))))
    (is (eq :killed (handler-case (muproc () (muproc-kill (muproc-current-process)) :not-reached)
                      (muproc-form-exited (c) (muproc-form-exit-reason c)))))))

(defun echo-loop ()
  "Answer (:ping x) with (:pong x) until killed or told to exit."
  (loop (mumsg-receive (from) ((ping) t (mumsg-send from :pong ping)))))

(defun signalled-report (thunk)
  "The type and the report of the error THUNK signals, or NIL."
  (handler-case (progn (funcall thunk) nil)
    (error (c) (list (type-of c) (princ-to-string c)))))

(deftest process.names-where-a-muproc-is-wanted ()
  "Where a muproc is wanted, the symbol naming a live muproc works too (as
generic calls accept it) and a keyword designates the muproc registered as
that port: MUMSG-SEND, MUPROC-LINK, MUPROC-MONITOR, MUPROC-INTERRUPT,
MUPROC-NAME, MUPROC-EXIT, MUPROC-KILL."
  (let* ((echo (muproc-spawn 'named-echo #'echo-loop nil :trap-exits t))
         (ran-in (sb-thread:make-semaphore)))
    (destructuring-bind (pong port-pong linked-notice interrupted-name monitor-notice)
        (muproc (20)
          (muproc-register-port-name :named-echo-port 'named-echo)
          (mumsg-send 'named-echo :ping 1)
          (mumsg-send :named-echo-port :ping 2)
          (list (mumsg-receive (from) ((pong) (eql pong 1) pong))
                (mumsg-receive (from) ((pong) (eql pong 2) pong))
                (progn (muproc-link 'named-echo)
                       (muproc-unlink 'named-echo)
                       (muproc-links))
                (progn (muproc-interrupt 'named-echo
                                         (lambda () (sb-thread:signal-semaphore ran-in)))
                       (sb-thread:wait-on-semaphore ran-in :timeout 10))
                (let ((tag (muproc-monitor 'named-echo)))
                  (muproc-exit :first :named-echo-port)      ; trapped: a message
                  (muproc-kill 'named-echo :by-name)
                  (mumsg-receive (from :timeout 10)
                    ((terminated reason monitor) (muproc-msgtag= monitor tag)
                     (list terminated reason))
                    (:timeout :no-notice)))))
      (is (eql 1 pong))
      (is (eql 2 port-pong))
      (is (null linked-notice) "still linked: ~s" linked-notice)
      (is-true interrupted-name)
      (is (equal (list echo :by-name) monitor-notice)))
    (is (eq :by-name (muproc-wait-for-exit echo :timeout 10)))
    (is (eq 'named-echo (muproc-name echo)))))

(deftest process.bad-muproc-designators-say-what-to-do ()
  "A name no live muproc holds, an unregistered port name and a value that
can't designate a muproc each signal a muproc error that names the
operator called and says what to give instead (MUPROC-FIND, port names);
MUPROC-NAME outside a muproc signals MUPROC-NOT-IN-MUPROC."
  (flet ((check (type operation thunk &rest hints)
           (let ((got (signalled-report thunk)))
             (is (eq type (first got)) "~a: signalled ~s" operation got)
             (is (search (format nil "~a:" operation) (or (second got) ""))
                 "the report does not name ~a: ~s" operation (second got))
             (dolist (hint hints)
               (is (search hint (or (second got) "") :test #'char-equal) "~a: no ~s in ~s" operation hint
                   (second got))))))
    (check 'muproc-unknown-name "MUMSG-SEND" (lambda () (mumsg-send 'no-such-muproc :a 1))
           "MUPROC-FIND" ":NO-SUCH-MUPROC")
    (check 'muproc-unknown-name "MUPROC-KILL" (lambda () (muproc-kill 'no-such-muproc))
           "MUPROC-FIND")
    (check 'muproc-unknown-name "MUPROC-EXIT" (lambda () (muproc-exit :x 'no-such-muproc))
           "MUPROC-FIND")
    (check 'muproc-unknown-port-name "MUPROC-KILL" (lambda () (muproc-kill :no-such-port)))
    (check 'muproc-not-a-muproc "MUMSG-SEND" (lambda () (mumsg-send 42 :a 1))
           "MUPROC-FIND" "port name")
    (check 'muproc-not-a-muproc "MUPROC-KILL" (lambda () (muproc-kill "echo")))
    (check 'muproc-not-a-muproc "MUPROC-INTERRUPT" (lambda () (muproc-interrupt nil #'identity)))
    (check 'muproc-not-a-muproc "MUPROC-LINK" (lambda () (muproc-link 3 4))))
  (let ((c (handler-case (muproc-name) (error (e) e))))
    (is (typep c 'muproc-not-in-muproc))
    (is (search "MUPROC-NAME" (princ-to-string c)))))
