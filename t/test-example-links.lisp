;;;; test-example-links.lisp - examples/linking-and-trapping.lisp and
;;;; examples/process-supervision.lisp behave as the seed shows.
;;;;
;;;; The examples are loaded without running (MUPROC-EXAMPLES:LOAD-EXAMPLE)
;;;; and their start functions called here, their output going to a
;;;; string; each is also run as the script its first line names.  The
;;;; children's periods are given explicitly where the order of the lines
;;;; depends on them.

(in-package #:muproc-tests)

(def-suite :muproc/example-links :in :muproc
  :description "The linking-and-trapping and process-supervision examples.")
(in-suite :muproc/example-links)

(defun link-example-function (example name)
  "Load examples/EXAMPLE.lisp without running its MAIN; the function it
defines under the name NAME (a string designator)."
  (unless (find-package '#:muproc-examples)
    (load (asdf:system-relative-pathname "muproc" "examples/load-muproc.lisp")))
  (uiop:symbol-call '#:muproc-examples '#:load-example example)
  (fdefinition (find-symbol (string name) (format nil "MUPROC-EXAMPLE.~:@(~a~)" example))))

(defun run-scenario (start &rest arguments)
  "Apply START, an example's start function, to ARGUMENTS, with the output
going to a string; wait for the muproc it returns, then for every other
muproc.  Returns the lines printed, that muproc's exit reason and the
seconds the whole took."
  (let ((reason nil)
        (seconds nil)
        (begin (now)))
    (let ((text (collect-output
                 (lambda ()
                   (let ((muproc (apply start arguments)))
                     (setf reason (muproc-wait-for-exit muproc :timeout 30))
                     (dolist (other (muproc-all-processes))
                       (muproc-wait-for-exit other :timeout 30))
                     (setf seconds (seconds-since begin)))))))
      (values (output-lines text) reason seconds))))

(defun run-example-script (name)
  "Run `sbcl --script examples/NAME.lisp` (see RUN-CHILD-SBCL).  Returns
its standard output as lines, its error output and its exit status."
  (run-child-sbcl (list "--script" (format nil "examples/~a.lisp" name))))

;;; linking-and-trapping

(defun printed-child-id (id)
  "ID if it is a child's number and name as printed, e.g. \"3 G601\"."
  (let ((fields (uiop:split-string id :separator " ")))
    (and (= 2 (length fields))
         (plusp (length (first fields)))
         (every (lambda (c) (or (digit-char-p c) (char= c #\.))) (first fields))
         (uiop:string-prefix-p "G" (second fields))
         id)))

(defun child-line (line)
  "What LINE of the linking-and-trapping example says: (:EXITING id),
(:REPORTED id period), (:TERMINATING) or (:OTHER line).  ID is the child's
number and name as printed, e.g. \"3 G601\"."
  (let* ((exiting-prefix "#<MUPROC ")
         (exiting-suffix " :RUNNING> exiting.")
         (report-prefix "PARENT -- #<MUPROC ")
         ;; A dead muproc prints its exit reason: " :DEAD (:FINISHED-AFTER . 0)>".
         (report-middle "> terminated with reason (FINISHED-AFTER . ")
         (report-suffix ").")
         (middle (search report-middle line))
         (exiting-id (and (uiop:string-prefix-p exiting-prefix line)
                          (uiop:string-suffix-p line exiting-suffix)
                          (printed-child-id
                           (subseq line (length exiting-prefix)
                                   (- (length line) (length exiting-suffix))))))
         (reported-id (and middle
                           (uiop:string-prefix-p report-prefix line)
                           (uiop:string-suffix-p line report-suffix)
                           (let ((dead (search " :DEAD " line :end2 middle)))
                             (and dead
                                  (printed-child-id (subseq line (length report-prefix) dead))))))
         (period (and reported-id
                      (ignore-errors
                       (parse-integer line :start (+ middle (length report-middle))
                                           :end (- (length line) (length report-suffix)))))))
    (cond ((string= line "PARENT -- terminating.") (list :terminating))
          (exiting-id (list :exiting exiting-id))
          (period (list :reported reported-id period))
          (t (list :other line)))))

(defun check-parent-transcript (lines count max)
  "Check the LINES of (start-parent COUNT MAX): COUNT children each print
their exiting line, then are reported with a period below MAX; the last
line is the parent's.  Returns the periods in the order reported."
  (let ((parsed (mapcar #'child-line lines)))
    (is (= (1+ (* 2 count)) (length lines)) "~d lines:~%~{~a~%~}" (length lines) lines)
    (is (null (remove-if-not (lambda (p) (eq :other (first p))) parsed))
        "lines not of the example:~%~{~a~%~}" lines)
    (is (equal '(:terminating) (car (last parsed))) "does not end the parent's way:~%~{~a~%~}"
        lines)
    (let ((exiting (loop for p in parsed when (eq :exiting (first p)) collect (second p)))
          (reported (loop for p in parsed when (eq :reported (first p)) collect (rest p))))
      (is (= count (length (remove-duplicates exiting :test #'string=)) (length exiting))
          "children exiting: ~s" exiting)
      (is (= count (length reported)) "children reported: ~s" reported)
      (loop for (id period) in reported
            do (let ((exiting-at (position (list :exiting id) parsed :test #'equal))
                     (reported-at (position (list :reported id period) parsed :test #'equal)))
                 (is (and exiting-at (< exiting-at reported-at))
                     "~a was reported before it printed its exiting line:~%~{~a~%~}" id lines))
               (is (< -1 period max) "~a reported with period ~a" id period))
      (mapcar #'second reported))))

(deftest example-links.parent-reports-every-child ()
  "(start-parent 3 2): each of three children prints \"#<MUPROC n Gk
:RUNNING> exiting.\", then the parent reports it as \"PARENT -- #<MUPROC n
Gk :DEAD reason> terminated with reason (FINISHED-AFTER . p).\" with p below 2;
the last line is \"PARENT -- terminating.\" and the parent exits :NORMAL."
  (multiple-value-bind (lines reason)
      (run-scenario (link-example-function "linking-and-trapping" :start-parent) 3 2)
    (check-parent-transcript lines 3 2)
    (is (eq :normal reason))))

(deftest example-links.parent-reports-in-order-of-periods ()
  "(start-parent 3 3 '(2 0 1)), children sleeping 2, 0 and 1 s: the parent
reports them in the order they end, periods 0, 1, 2."
  (multiple-value-bind (lines reason)
      (run-scenario (link-example-function "linking-and-trapping" :start-parent) 3 3 '(2 0 1))
    (is (equal '(0 1 2) (check-parent-transcript lines 3 3)))
    (is (eq :normal reason))))

(defun check-parent2-transcript (lines max &key all-started)
  "Check the LINES of (start-parent2 3 MAX): exiting lines of the children
that finished (one, or more if their random periods tied), one report of
one of them (a period below MAX), the parent's last line, then the exiting
lines of the children still running: all three children print one if
ALL-STARTED, else those that had started (a muproc killed before it runs a
form runs no cleanup).  Returns the period reported."
  (let* ((parsed (mapcar #'child-line lines))
         (end (position :terminating parsed :key #'first))
         (before (subseq parsed 0 (or end 0)))
         (after (if end (nthcdr (1+ end) parsed) '()))
         (reports (remove :reported before :key #'first :test-not #'eq))
         (exiting (loop for p in parsed when (eq :exiting (first p)) collect (second p))))
    (is-true end "the parent never terminated:~%~{~a~%~}" lines)
    (is (= 1 (length reports)) "not one report before the parent's end:~%~{~a~%~}" lines)
    (is (every (lambda (p) (member (first p) '(:exiting :reported))) before)
        "not the seed's order:~%~{~a~%~}" lines)
    (is (every (lambda (p) (eq :exiting (first p))) after)
        "not the seed's order:~%~{~a~%~}" lines)
    (is (if all-started (= 3 (length exiting)) (<= 1 (length exiting) 3))
        "~d children printed their exiting lines:~%~{~a~%~}" (length exiting) lines)
    (is (= (length exiting) (length (remove-duplicates exiting :test #'equal)))
        "a child printed two exiting lines:~%~{~a~%~}" lines)
    (when (= 1 (length reports))
      (let* ((report (first reports))
             (exited-at (position (list :exiting (second report)) parsed :test #'equal))
             (period (third report)))
        (is (and exited-at (< exited-at (position report parsed)))
            "the reported child had not printed its exiting line:~%~{~a~%~}" lines)
        (is (and (integerp period) (< -1 period max)) "reported period ~s" period)
        period))))

(deftest example-links.parent2-takes-its-children-along ()
  "(start-parent2 3 10 '(3 9 9)): the first child ends after 3 s and is
reported, the parent terminates, and its exit ends the two children still
sleeping at once, each printing its exiting line after the parent's last:
the whole takes about 3 s, not the 9 s of their sleep.  (The first child
sleeps 3 s rather than 0 so that the others have surely started, however
loaded the machine: one killed before it runs a form prints nothing.)"
  (multiple-value-bind (lines reason seconds)
      (run-scenario (link-example-function "linking-and-trapping" :start-parent2) 3 10 '(3 9 9))
    (report-measurement "example-links.parent2-takes-its-children-along: ~,3f s in all" seconds)
    (is (eql 3 (check-parent2-transcript lines 10 :all-started t)))
    (is (eq :normal reason))
    (is (< seconds 6) "took ~,1f s: the children slept on" seconds)))

(deftest example-links.linking-and-trapping-script (:timeout 60)
  "`sbcl --script examples/linking-and-trapping.lisp` exits with status 0
after printing \";; (start-parent 3 2)\" and that transcript, then \";;
(start-parent2 3 10)\" and that one."
  (multiple-value-bind (lines errors status) (run-example-script "linking-and-trapping")
    (is (eql 0 status) "exited with status ~a; its error output:~%~a" status errors)
    (let ((second (position ";; (start-parent2 3 10)" lines :test #'string=)))
      (is (equal ";; (start-parent 3 2)" (first lines)) "printed:~%~{~a~%~}" lines)
      (is-true second "printed:~%~{~a~%~}" lines)
      (when (and second (equal ";; (start-parent 3 2)" (first lines)))
        (check-parent-transcript (subseq lines 1 second) 3 2)
        (check-parent2-transcript (subseq lines (1+ second)) 10)))))

;;; process-supervision

(defun supervisor-restart-line-p (line)
  "True if LINE is \"SUPERVISOR-PARENT -- #<MUPROC n CHILD-ONE :DEAD
reason> terminated.\"; then the child's number n."
  (let* ((prefix "SUPERVISOR-PARENT -- #<MUPROC ")
         (infix " CHILD-ONE :DEAD ")
         (suffix "> terminated.")
         (dead (search infix line)))
    (and dead
         (uiop:string-prefix-p prefix line)
         (uiop:string-suffix-p line suffix)
         (let ((number (subseq line (length prefix) dead)))
           (and (plusp (length number))
                (every (lambda (c) (or (digit-char-p c) (char= c #\.))) number)
                number)))))

(defun check-supervision-transcript (lines count)
  "Check the LINES of a supervisor restarting its child COUNT times."
  (is (= (1+ count) (length lines)) "printed:~%~{~a~%~}" lines)
  (let ((restarts (butlast lines)))
    (is (every #'supervisor-restart-line-p restarts) "printed:~%~{~a~%~}" lines)
    (is (= (length restarts)
           (length (remove-duplicates (mapcar #'supervisor-restart-line-p restarts)
                                      :test #'equal)))
        "the same child was reported twice:~%~{~a~%~}" lines))
  (is (equal "SUPERVISOR-PARENT -- Too many restarts." (car (last lines)))
      "printed:~%~{~a~%~}" lines))

(deftest example-links.supervisor-restarts-then-gives-up ()
  "(start-supervision 3): the supervisor reports the termination of its
child and restarts it, three times, each a new muproc named CHILD-ONE;
at the fourth termination it prints \"SUPERVISOR-PARENT -- Too many
restarts.\" and exits with :TOO-MANY-RESTARTS.  With a count of 0 it gives
up at the first termination."
  (let ((start (link-example-function "process-supervision" :start-supervision)))
    (multiple-value-bind (lines reason) (run-scenario start 3)
      (check-supervision-transcript lines 3)
      (is (eq :too-many-restarts reason)))
    (multiple-value-bind (lines reason) (run-scenario start 0)
      (is (equal '("SUPERVISOR-PARENT -- Too many restarts.") lines))
      (is (eq :too-many-restarts reason)))))

(deftest example-links.process-supervision-script (:timeout 60)
  "`sbcl --script examples/process-supervision.lisp` exits with status 0
after printing five restarts, \"SUPERVISOR-PARENT -- Too many restarts.\"
and \";; exit reason: :TOO-MANY-RESTARTS\"."
  (multiple-value-bind (lines errors status) (run-example-script "process-supervision")
    (is (eql 0 status) "exited with status ~a; its error output:~%~a" status errors)
    (check-supervision-transcript (butlast lines) 5)
    (is (equal ";; exit reason: :TOO-MANY-RESTARTS" (car (last lines))))))
