;;;; test-observer.lisp - looking at a running system: MUPROC-I,
;;;; MUPROC-INFO, MUPROC-REGISTERED, MUPROC-TOP, tracing, the crash
;;;; dossier, generic-server state, and supervision trees.  Every call is
;;;; made from the test thread, which is not a muproc, as at the REPL.

(defpackage #:muproc-tests.observer
  (:use #:common-lisp #:muproc #:muproc.generic-server #:muproc.supervisor
        #:fiveam #:muproc-tests)
  (:import-from #:muproc-tests #:deftest #:await))

(in-package #:muproc-tests.observer)

(def-suite :muproc/observer :in :muproc
  :description "The observer: tables, info, tracing, dossiers, server
state and supervision trees, all from a thread that is not a muproc.")
(in-suite :muproc/observer)

;;; Helpers

(defun spawn (name function arglist &rest options)
  "MUPROC-SPAWN with OPTIONS, logging nowhere unless told otherwise: a
test's kills would clutter the test output."
  (apply #'muproc-spawn name function arglist
         (append options (list :errorstream (make-broadcast-stream)))))

(defun strip-timestamps (text)
  "TEXT's lines without their leading HH:MM:SS.mmm."
  (with-input-from-string (in text)
    (loop for line = (read-line in nil)
          while line
          collect (if (and (> (length line) 13) (char= (char line 2) #\:) (char= (char line 8) #\.))
                      (subseq line 13)
                      line))))

(defun normalize-pids (text)
  "TEXT with every <pid> written <N>."
  (with-output-to-string (out)
    (loop with i = 0
          while (< i (length text))
          do (let ((end (and (char= (char text i) #\<)
                             (position #\> text :start i))))
               (if (and end (> end (1+ i))
                        (every (lambda (c) (or (digit-char-p c) (char= c #\.)))
                               (subseq text (1+ i) end)))
                   (progn (write-string "<N>" out) (setf i (1+ end)))
                   (progn (write-char (char text i) out) (incf i)))))))

(defun table-line (table name)
  "The line of TABLE (MUPROC-I's output) for the muproc NAME, as words."
  (with-input-from-string (in table)
    (loop for line = (read-line in nil)
          while line
          for words = (split-words line)
          when (equal (second words) name) return words)))

(defun split-words (line)
  (let ((words '()) (start nil))
    (loop for i from 0 to (length line)
          for c = (if (< i (length line)) (char line i) #\Space)
          do (cond ((and (char= c #\Space) start)
                    (push (subseq line start i) words) (setf start nil))
                   ((and (char/= c #\Space) (null start)) (setf start i))))
    (nreverse words)))

(defun stop-and-wait (&rest muprocs)
  "Kill MUPROCS (reason :DONE) and wait for them."
  (dolist (m muprocs)
    (muproc-kill m :done))
  (dolist (m muprocs)
    (muproc-wait-for-exit m :timeout 10)))

;;; A sink that takes only (:stop), and a forwarder that takes two
;;; (:item n) and passes each on to the sink's port.

(defun sink ()
  (muproc-register-port-name :obs-sink)
  (mumsg-receive (from) ((stop) t)))

(defun forwarder (sink)
  (muproc-link sink)
  (muproc-monitor sink)
  (dotimes (i 2)
    (mumsg-receive (from)
      ((item) t (mumsg-send :obs-sink :item item))))
  (mumsg-receive (from) ((stop) t)))

(deftest table-and-info-show-a-known-system ()
  "MUPROC-I and MUPROC-INFO show two muprocs' states, counts, links,
monitors, ports and queued messages, read from a thread that is no muproc."
  (let* ((sink (spawn 'obs-sink #'sink nil :trap-exits t))
         (fwd (progn (await (lambda () (muproc-get-registered-port :obs-sink)))
                     (spawn 'obs-fwd #'forwarder (list sink)))))
    (unwind-protect
         (progn
           (mumsg-send fwd :item 1)
           (mumsg-send fwd :item 2)
           (is-true (await (lambda () (and (eql 2 (getf (muproc-info sink) :queue))
                                           (eq :waiting (muproc-state fwd))
                                           (eq :waiting (muproc-state sink))))))
           (let ((table (with-output-to-string (s) (muproc-i :stream s))))
             (is (equal (list (muproc::pid-string (muproc::%muproc-pid sink))
                              "OBS-SINK" "waiting" "2" "2" "0" "1" "0/1" "yes" ":OBS-SINK")
                        (table-line table "OBS-SINK")))
             (is (equal (list (muproc::pid-string (muproc::%muproc-pid fwd))
                              "OBS-FWD" "waiting" "0" "2" "2" "1" "1/0" "-")
                        (table-line table "OBS-FWD"))))
           (let ((info (muproc-info sink :messages 5)))
             (is (eq 'obs-sink (getf info :name)))
             (is (eq :lisp (getf info :kind)))
             (is (eq :waiting (getf info :state)))
             (is (= 2 (getf info :queue)))
             (is (= 2 (getf info :messages-in)))
             (is (= 0 (getf info :messages-taken)))
             (is (= 0 (getf info :messages-out)))
             (is (equal (list fwd) (getf info :links)))
             (is (equal (list fwd) (getf info :monitored-by)))
             (is (null (getf info :monitors)))
             (is-true (getf info :trap-exits))
             (is (equal '(:obs-sink) (getf info :ports)))
             (is (eq #'sink (getf info :function)))
             (is (null (getf info :exit-reason)))
             (is (equal `((,fwd (:item 1)) (,fwd (:item 2))) (getf info :messages)))
             (is (typep (getf info :thread-cpu-seconds) '(real 0))))
           ;; Peeking took nothing.
           (is (= 2 (muproc-unmatched-input-count sink)))
           (let ((info (muproc-info 'obs-fwd)))
             (is (equal (list sink) (getf info :monitors)))
             (is (= 2 (getf info :messages-taken)))
             (is (= 2 (getf info :messages-out)))
             (is (equal `((nil (:item 1)) (nil (:item 2))) (getf info :recent))))
           (is (equal `((:obs-sink ,sink)) (remove-if-not (lambda (entry) (eq (first entry) :obs-sink))
                                                            (muproc-registered)))))
      (stop-and-wait fwd sink))
    (let ((info (muproc-info sink)))
      (is (eq :dead (getf info :state)))
      (is (eq :done (getf info :exit-reason)))
      (is (null (getf info :queue))))))

(deftest info-rejects-non-muprocs ()
  "Observing operators name themselves when given something else."
  (signals muproc-not-a-muproc (muproc-info 42))
  (signals muproc-unknown-name (muproc-info 'no-such-muproc-here))
  (signals muproc-not-a-muproc (muproc-trace "x"))
  (signals muproc-unknown-port-name (supervisor-tree :no-such-port)))

(deftest dead-muproc-prints-its-reason ()
  "A dead muproc's printed form ends with its exit reason."
  (let ((m (spawn 'quick (lambda () (muproc-exit :custom-reason)) nil)))
    (muproc-wait-for-exit m :timeout 10)
    (is (search "QUICK :DEAD :CUSTOM-REASON>" (prin1-to-string m)))))

;;; Tracing

(defun traced-worker (target)
  (mumsg-receive (from) ((go) t))
  (mumsg-send target :n 1)
  (mumsg-send target :n 2 :text "two")
  (muproc-link target)
  (mumsg-receive (from) ((again) t))
  (mumsg-send target :n 3))

(deftest trace-shows-exactly-the-messages ()
  "A traced muproc logs each message it takes and sends, its links and its
exit, and nothing once untraced; the muproc it talks to, untraced, logs
nothing."
  (let* ((log (make-string-output-stream))
         (target (spawn 'obs-target (lambda () (mumsg-receive (from) ((stop) t))) nil
                               :trap-exits t))
         (worker (spawn 'obs-traced #'traced-worker (list target))))
    (unwind-protect
         (progn
           (is (eq worker (muproc-trace worker :stream log)))
           (mumsg-send worker :go 1)
           ;; Waiting again: past its sends and its link, and their lines.
           (is-true (await (lambda () (and (= 2 (muproc-unmatched-input-count target))
                                           (muproc-links worker)
                                           (eq :waiting (muproc-state worker))))))
           (is (equal (list worker) (muproc-untrace worker)))
           (mumsg-send worker :again t)
           (muproc-wait-for-exit worker :timeout 10))
      (stop-and-wait worker target))
    (is (equal '("OBS-TRACED <- - (:GO 1)"
                 "OBS-TRACED -> OBS-TARGET (:N 1)"
                 "OBS-TRACED -> OBS-TARGET (:N 2 :TEXT \"two\")"
                 "OBS-TRACED link OBS-TARGET")
               (strip-timestamps (muproc-with-errorstream-lock
                                   (get-output-stream-string log)))))))

(deftest trace-events ()
  "Events: spawns, monitors and the exit of a traced muproc."
  (let* ((log (make-string-output-stream))
         (parent (spawn 'obs-parent
                               (lambda ()
                                 (mumsg-receive (from) ((go) t))
                                 (let ((child (spawn 'obs-child (lambda () nil) nil)))
                                   (muproc-monitor child)
                                   (mumsg-receive (from) ((terminated) t))
                                   (muproc-exit :finished)))
                               nil)))
    (muproc-trace parent :stream log :send nil :receive nil)
    (mumsg-send parent :go t)
    (is (eq :finished (muproc-wait-for-exit parent :timeout 10)))
    (is (equal '("OBS-PARENT spawn OBS-CHILD"
                 "OBS-PARENT monitor OBS-CHILD"
                 "OBS-PARENT exit :FINISHED")
               (strip-timestamps (get-output-stream-string log))))))

;;; The crash dossier

(defun crash-log (dossier-size)
  "The log of a muproc (spawned with DOSSIER-SIZE) that takes (:n 1) ...
(:n 5), then fails on (:boom t)."
  (let* ((log (make-string-output-stream))
         (m (spawn 'obs-crasher
                          (lambda ()
                            (loop (mumsg-receive (from)
                                    ((n) t n)
                                    ((boom) t (error "Boom after ~a." boom)))))
                          nil :errorstream log :dossier-size dossier-size)))
    (loop for i from 1 to 5 do (mumsg-send m :n i))
    (mumsg-send m :boom t)
    (muproc-wait-for-exit m :timeout 10)
    (muproc-with-errorstream-lock (get-output-stream-string log))))

(deftest dossier-holds-the-last-messages ()
  "An unhandled error's log entry shows the last DOSSIER-SIZE messages
taken, oldest first, and the state line; size 0 shows none."
  (let ((log (crash-log 3)))
    (is (search "Boom after T." log))
    (is (search (format nil "Last 3 messages taken, oldest first:~%  from -: (:N 4)~%  ~
                             from -: (:N 5)~%  from -: (:BOOM T)~%State: OBS-CRASHER: running")
                log))
    (is (null (search "(:N 3)" log))))
  (let ((log (crash-log 0)))
    (is (search "Boom after T." log))
    (is (null (search "messages taken" log)))
    (is (search "State: OBS-CRASHER: running" log))))

;;; Generic servers

(defpackage #:muproc-tests.observer.counter
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:export #:bump #:bump*))

(in-package #:muproc-tests.observer.counter)

(defvar *terminated-with* nil)

(defun initialize () (list 0))

(defun terminate (state) (setf *terminated-with* state))

(muproc-define-cast-handler bump (state from)
  (declare (ignore from))
  (incf (first state)))

(in-package #:muproc-tests.observer)

(deftest generic-server-state-from-the-repl ()
  "GET-STATE and REPLACE-STATE from a thread that is no muproc, in order
with the server's other messages; a failing replacement keeps the state;
TERMINATE gets the state in force."
  (let ((server (spawn 'obs-counter
                              (lambda ()
                                (muproc-generic-start :package "MUPROC-TESTS.OBSERVER.COUNTER"))
                              nil)))
    (unwind-protect
         (progn
           (is (equal '(0) (muproc-generic-get-state server)))
           (muproc-tests.observer.counter:bump* server)
           (muproc-tests.observer.counter:bump* server)
           (is (equal '(2) (muproc-generic-get-state 'obs-counter)))
           (is (equal '(10) (muproc-generic-replace-state server (lambda (s) (list (* 5 (first s)))))))
           (signals generic-handler-error
             (muproc-generic-replace-state server (lambda (s) (error "no ~a" s))))
           (is (equal '(10) (muproc-generic-get-state server)))
           (is (equal "MUPROC-TESTS.OBSERVER.COUNTER"
                      (getf (muproc-info server) :generic-server))))
      (stop-and-wait server))
    (is (equal '(10) muproc-tests.observer.counter::*terminated-with*))
    (signals generic-server-not-running (muproc-generic-get-state server))))

;;; Supervision trees

(defun tree-symbol (name)
  (uiop:symbol-call '#:muproc-examples '#:load-example "supervision-tree")
  (find-symbol (string name) '#:muproc-example.supervision-tree))

(defparameter *seed-tree*
  "{PROC1*PROC2*{PROC31*PROC32}} <N> supervisor, STATE; all-for-one, intensity 2 in 5 s, 0 recent restarts
|-- PROC1 <N> worker, permanent, shutdown kill, STATE, 0 restarts
|-- PROC2 <N> worker, permanent, shutdown 10 s, STATE, 0 restarts
`-- {PROC31*PROC32} <N> supervisor, permanent, shutdown 5 s, STATE, 0 restarts; all-for-one, intensity 2 in 5 s, 0 recent restarts
    |-- PROC31 <N> worker, permanent, shutdown kill, STATE, 0 restarts
    `-- PROC32 <N> worker, permanent, shutdown 5 s, STATE, 0 restarts
"
  "SUPERVISOR-TREE of the seed's tree, pids as <N> and states (running
or waiting, as timers and requests have them) as STATE.")

(defun normalize-tree (text)
  "TEXT, a tree drawing, with pids as <N> and states as STATE."
  (let ((text (normalize-pids text)))
    (dolist (state '(", running" ", waiting") text)
      (loop for at = (search state text)
            while at
            do (setf text (concatenate 'string (subseq text 0 at) ", STATE"
                                       (subseq text (+ at (length state)))))))))

(defun parse-dot (text)
  "Check TEXT is a digraph of node and edge statements; return (values
node-ids edges) or signal an error."
  (with-input-from-string (in text)
    (let ((first (read-line in)) (nodes '()) (edges '()) (closed nil))
      (assert (string= first "digraph \"supervision\" {"))
      (loop for line = (read-line in nil)
            while line
            do (let ((line (string-trim " " line)))
                 (cond ((string= line "}") (setf closed t))
                       ((string= line "node [shape=box];"))
                       (closed (error "Text after the closing brace: ~s" line))
                       (t (multiple-value-bind (a end) (dot-quoted line 0)
                            (cond ((eql (search " -> " line :start2 end) end)
                                   (multiple-value-bind (b end2) (dot-quoted line (+ end 4))
                                     (assert (string= ";" (subseq line end2)))
                                     (push (list a b) edges)))
                                  ((eql (search " [label=" line :start2 end) end)
                                   (multiple-value-bind (label end2) (dot-quoted line (+ end 8))
                                     (declare (ignore label))
                                     (assert (member (subseq line end2) '("];" ", shape=ellipse];")
                                                     :test #'string=))
                                     (push a nodes)))
                                  (t (error "Bad statement ~s" line))))))))
      (assert closed)
      (values (nreverse nodes) (nreverse edges)))))

(defun dot-quoted (line start)
  "The quoted string at START of LINE (backslash escapes) and the index
after it."
  (assert (char= #\" (char line start)))
  (let ((out (make-string-output-stream)))
    (loop for i from (1+ start)
          do (let ((c (char line i)))
               (cond ((char= c #\\) (write-char (char line (incf i)) out))
                     ((char= c #\") (return (values (get-output-stream-string out) (1+ i))))
                     (t (write-char c out)))))))

(defun dot-accepts-p (text)
  "True if Graphviz's dot is installed and accepts TEXT; :ABSENT without dot."
  (let ((dot (ignore-errors (uiop:run-program '("which" "dot") :output :string))))
    (if (or (null dot) (zerop (length dot)))
        :absent
        (with-input-from-string (in text)
          (zerop (nth-value 2 (uiop:run-program '("dot" "-Tplain") :input in
                                                :output nil :ignore-error-status t)))))))

(deftest supervisor-tree-of-the-seed ()
  "The seed's tree (examples/supervision-tree.lisp) drawn as text matches
the expected drawing; as dot it parses, with one node per muproc and one
edge per child; MUPROC-TREE draws it and lists a muproc outside it."
  (let* ((log (make-string-output-stream))
         (top (funcall (tree-symbol "START-SUPER1") log))
         (tree (funcall (tree-symbol "TREE-MUPROCS") top))
         (loner (spawn 'obs-loner (lambda () (mumsg-receive (from) ((stop) t))) nil)))
    (unwind-protect
         (progn
           (is (= 6 (length tree)))
           (is (string= *seed-tree* (normalize-tree (supervisor-tree top :stream nil))))
           (let ((dot (supervisor-tree top :format :dot :stream nil)))
             (multiple-value-bind (nodes edges) (parse-dot dot)
               (is (equal (mapcar (lambda (m) (muproc::pid-string (muproc::%muproc-pid m))) tree)
                          nodes))
               (is (= 5 (length edges)))
               (is (every (lambda (edge) (and (member (first edge) nodes :test #'string=)
                                              (member (second edge) nodes :test #'string=)))
                          edges)))
             (is (member (dot-accepts-p dot) '(t :absent))))
           (let ((all (normalize-tree (muproc-tree :stream nil))))
             (is (eql 0 (search *seed-tree* all)))
             (is (string= (format nil "Outside any tree:~%  OBS-LONER <N> waiting~%")
                          (subseq all (length *seed-tree*))))))
      (stop-and-wait loner)
      (muproc-exit :adieu top)
      (muproc-wait-for-exit top :timeout 20)
      (dolist (m tree) (muproc-wait-for-exit m :timeout 20)))))

;;; MUPROC-TOP

(deftest top-draws-frames ()
  "MUPROC-TOP with REFRESHES draws that many frames, the muproc with the
longest queue first."
  (let ((sink (spawn 'obs-backlog (lambda () (mumsg-receive (from) ((stop) t))) nil)))
    (unwind-protect
         (progn
           (dotimes (i 7) (mumsg-send sink :junk i))
           (let* ((out (with-output-to-string (s)
                         (is (= 2 (muproc-top :refreshes 2 :interval 0.1 :count 3
                                              :stream s :input nil)))))
                  (lines (with-input-from-string (in out)
                           (loop for l = (read-line in nil) while l collect l))))
             (is (= 2 (count-if (lambda (l) (eql 0 (search "muproc-top " l))) lines)))
             (let ((row (split-words (nth 3 lines))))
               (is (equal '("OBS-BACKLOG" "waiting" "7") (subseq row 1 4))))))
      (stop-and-wait sink))))

;;; Churn

(deftest observing-while-muprocs-churn ()
  "The REPL-thread operators never hang or fail while muprocs come and go."
  (let* ((stop nil)
         (churner (spawn 'obs-churner
                                (lambda ()
                                  (loop until stop
                                        do (let ((m (spawn nil (lambda ()
                                                                        (mumsg-receive (from :timeout 0.01)
                                                                          (() t nil)))
                                                                  nil)))
                                             (mumsg-send m :x 1)
                                             (muproc-wait-for-exit m))))
                                nil)))
    (unwind-protect
         (dotimes (i 20)
           (is (plusp (let ((*standard-output* (make-broadcast-stream))) (muproc-i))))
           (dolist (m (muproc-all-processes))
             (is (listp (muproc-info m :messages 2 :timeout 0.2))))
           (is (stringp (muproc-tree :stream nil)))
           (is (listp (muproc-registered))))
      (setf stop t)
      (muproc-wait-for-exit churner :timeout 10))))

;;; The example

(deftest example-observe ()
  "examples/observe.lisp shows each operator on the seed's tree and ends
with the tree stopped."
  (let* ((main (progn (load (asdf:system-relative-pathname "muproc" "examples/load-muproc.lisp"))
                      (uiop:symbol-call '#:muproc-examples '#:load-example "observe")))
         (reason nil)
         (out (with-output-to-string (*standard-output*)
                (setf reason (funcall main)))))
    (is (eq :adieu reason))
    (dolist (expected (list "> (MUPROC-I)" "> (SUPERVISOR-TREE :TREE)"
                            (format nil "~%    `-- PROC32 <")
                            "((NIL (:HELLO \"PROC1 takes no messages\")))"
                            "PROC32 -> PROC32 (:WAKEUP NIL)"
                            "all-for-one, intensity 2 in 5 s, 1 recent restart"
                            (format nil "Last 2 messages taken, oldest first:~%  from -: (:N 2)~%  from -: (:BOOM T)")
                            "#<SUPERVISOR {PROC1*PROC2*{PROC31*PROC32}} ALL-FOR-ONE:2:5 UP:UP:UP STABLE>"
                            ":DEAD :ADIEU>"))
      (is (search expected out) "~s missing from the example's output" expected))))
