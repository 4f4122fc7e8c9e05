;;;; test-supervisor.lisp - supervisors: the seed's tree and OTP's
;;;; supervisor semantics, in the groups of OTP's supervisor_SUITE.
;;;;
;;;; A test runs in a MUPROC form, which is also the collector: the
;;;; children (KID below) send it (:event :started ...) when they start and
;;;; (:event :stopped ...) from their UNWIND-PROTECT cleanup however they
;;;; end.  One muproc's messages arrive in the order sent, and a
;;;; supervisor stops one child after the other, waiting for each, and
;;;; only then starts any: so the collector sees stops in the order they
;;;; happened.  Children that start together may run their first form in
;;;; any order (a spawn doesn't wait for the child to run), so start order
;;;; is checked by KID's :AFTER: each child finds its elder siblings
;;;; started (registered) when it runs.
;;;; "Not restarted" is deterministic too: MUPROC-WAIT-FOR-EXIT returns
;;;; only after the exit notice is in the supervisor's inport, and a
;;;; supervisor answers a call only after what came before it, so
;;;; SUPERVISOR-WHICH-CHILDREN afterwards shows what it did about the exit.
;;;; The MUPROC form hands its observations back; the test thread checks.

(in-package #:muproc-tests)

;;; The supervisor's API, unqualified in this file.
(eval-when (:compile-toplevel :load-toplevel :execute)
  (use-package '#:muproc.supervisor '#:muproc-tests))

(def-suite :muproc/supervisor :in :muproc
  :description "Supervisors: start and stop order, strategies, restart types,
shutdown, intensity, nested trees, simple-one-for-one, run-time management,
the seed's tree and examples/supervision-tree.lisp.")
(in-suite :muproc/supervisor)

(defmacro deftest/tree (name (&rest options) &body body)
  "DEFTEST/SETTLED (same syntax) that also checks, once every muproc has
ended, that the runtime holds no link, no monitor and no pending timer."
  (let ((doc (when (stringp (first body)) (list (pop body)))))
    `(deftest/settled ,name ,options
       ,@doc
       (unwind-protect (progn ,@body)
         (await (lambda () (null (muproc-all-processes))) :timeout 5)
         (let ((stats (muproc-runtime-stats)))
           (is (equal '(0 0 0) (list (getf stats :links) (getf stats :monitors)
                                     (getf stats :timers)))
               "left in the runtime: ~a link ends, ~a monitors, ~a timers"
               (getf stats :links) (getf stats :monitors) (getf stats :timers)))))))

;;; Children

(defun kid (collector id &key after trap linger stubborn)
  "A supervised child for the tests, known to COLLECTOR as ID.  When it
starts it sends COLLECTOR (:event :started :id ID), or :STARTED-TOO-EARLY
if some muproc named in AFTER (its elder siblings) is not running yet;
however it ends its cleanup sends (:event :stopped :id ID).  On (:exit-with
R) it exits with reason R; on (:finish t) it returns (reason :NORMAL).  With
TRAP it traps exits, and on an exit notice (a supervisor shutting it down)
it exits with :LINGERED after LINGER seconds, or, if STUBBORN, goes on
(and with STUBBORN :TELL first sends COLLECTOR (:event :ignored-shutdown
:id ID))."
  (when trap (muproc-set-trap-exits t))
  (unwind-protect
       (progn
         ;; Inside the UNWIND-PROTECT: if it started, it will say it stopped.
         (mumsg-send collector :event (if (every #'muproc-find after) :started :started-too-early)
                               :id id)
         (loop
           (mumsg-receive (from)
             ((exit-with) t (muproc-exit exit-with))
             ((finish) t (return))
             ((terminated reason) t
              (cond ((eq stubborn :tell)
                     (mumsg-send collector :event :ignored-shutdown :id id))
                    ((not stubborn)
                     (when linger (sleep linger))
                     (muproc-exit :lingered)))))))
    (mumsg-send collector :event :stopped :id id)))

(defun next-event (&optional (timeout 5))
  "The next event a KID sent to the current muproc as (KIND ID), and the
kid's muproc; :TIMEOUT if none comes within TIMEOUT seconds."
  (mumsg-receive (from :timeout timeout)
    ((event id) t (values (list event id) from))
    (:timeout :timeout)))

(defun next-events (n &optional (timeout 5))
  "The next N events (see NEXT-EVENT)."
  (loop repeat n collect (next-event timeout)))

(defun same-set-p (list1 list2)
  (and (= (length list1) (length list2))
       (null (set-difference list1 list2 :test #'equal))))

;;; Trees

(defun stop-tree (supervisor)
  "Make SUPERVISOR exit with :SHUTDOWN (from the current muproc) and wait
for it; its exit reason."
  (muproc-exit :shutdown supervisor)
  (muproc-wait-for-exit supervisor :timeout 20))

(defun quiet ()
  "An errorstream for trees whose log the test doesn't read (the default,
*TRACE-OUTPUT*, is the TAP output)."
  (make-broadcast-stream))

(defmacro with-tree ((var spec &key (errorstream '(quiet))) &body body)
  "In a muproc: start the tree SPEC as VAR, evaluate BODY, then stop the
tree (if it still runs) and wait for it, however BODY ends."
  `(let ((,var (supervisor-start ,spec :errorstream ,errorstream)))
     (unwind-protect (progn ,@body)
       (stop-tree ,var))))

(defmacro in-muproc (&body body)
  "BODY in a fresh muproc (at most 30 s); its values."
  `(muproc (30) ,@body))

(defun child-muproc (supervisor name)
  "The live muproc of SUPERVISOR's child NAME (per SUPERVISOR-WHICH-CHILDREN), or NIL."
  (second (find name (supervisor-which-children supervisor) :key #'first :test #'equal)))

(defun crash (muproc &optional (reason :crash))
  "Make KID MUPROC exit with REASON, and wait until it has."
  (mumsg-send muproc :exit-with reason)
  (muproc-wait-for-exit muproc :timeout 10))

(defun abc-spec (strategy collector &key (max-restarts 5))
  "A supervisor of three KIDs A, B and C, started in that order."
  (supervisor strategy max-restarts 5
              (list :permanent 1 (supervised-muproc a #'kid (list collector 'a)))
              (list :permanent 1 (supervised-muproc b #'kid (list collector 'b :after '(a))))
              (list :permanent 1 (supervised-muproc c #'kid (list collector 'c :after '(a b))))))

(defun log-text-lines (text)
  "The log lines of TEXT, without their timestamps."
  (mapcar (lambda (line) (subseq line (1+ (position #\Space line))))
          (remove "" (uiop:split-string text :separator '(#\Newline))
                  :test #'string=)))

(defun log-text-so-far (stream)
  "The text written so far to the string output STREAM, which live muprocs
may still be writing to (hence the lock: a read racing a muproc's line
corrupts the stream).  The text is put back for the lines after."
  (muproc-with-errorstream-lock
    (let ((text (get-output-stream-string stream)))
      (write-string text stream)
      text)))

(defun log-lines (stream)
  "The lines written to the string output STREAM, without their timestamps."
  (log-text-lines (get-output-stream-string stream)))

(defun line-present-p (line lines)
  (member line lines :test #'string=))

;;; Start and stop

(deftest/tree supervisor.start-in-order-stop-in-reverse ()
  "Children start in order (each finds its elder siblings running) and stop
in reverse order, each waited for before the next; the supervisor logs
\"SUPERVISOR #<SUPERVISOR {A*B*C} ONE-FOR-ONE:5:5 DOWN:DOWN:DOWN STABLE>
terminating.\" last and exits with the reason it was given."
  (let ((log (make-string-output-stream)))
    (destructuring-bind (starts names stops reason)
        (in-muproc
          (let* ((sup (supervisor-start (abc-spec :one-for-one (muproc-current-process))
                                        :errorstream log))
                 (starts (next-events 3))
                 (names (mapcar #'first (supervisor-which-children sup)))
                 (reason (stop-tree sup)))
            (list starts names (next-events 3) reason)))
      (is (same-set-p '((:started a) (:started b) (:started c)) starts)
          "Children started out of order: ~s" starts)
      (is (equal '(a b c) names))
      (is (equal '((:stopped c) (:stopped b) (:stopped a)) stops))
      (is (eq :shutdown reason))
      (is (equal '("{A*B*C} SUPERVISOR #<SUPERVISOR {A*B*C} ONE-FOR-ONE:5:5 DOWN:DOWN:DOWN STABLE> terminating.")
                 (last (log-lines log)))))))

(deftest/tree supervisor.nested-supervisor-starts-before-its-next-sibling ()
  "Start order holds through nested supervisors, as in OTP (a supervisor
child has started once its own children have): in {{X}*B}, B finds X
running when it starts.  Checked on 10 trees, since a violation shows
only when the threads happen to run B first."
  (let ((events
          (loop repeat 10
                collect (in-muproc
                          (let ((c (muproc-current-process)))
                            (with-tree (sup (supervisor
                                             :one-for-one 1 5
                                             (list :permanent :wait-forever
                                                   (supervisor :one-for-one 1 5
                                                               (list :permanent 1 (supervised-muproc
                                                                                   x #'kid (list c 'x)))))
                                             (list :permanent 1 (supervised-muproc
                                                                 b #'kid (list c 'b :after '(x))))))
                              (next-events 2)))))))
    (is (every (lambda (e) (same-set-p '((:started x) (:started b)) e)) events)
        "B started before X in ~d of 10 trees: ~s"
        (count-if (lambda (e) (member '(:started-too-early b) e :test #'equal)) events)
        events)))

;;; Strategies

(deftest/tree supervisor.one-for-one-restarts-only-the-failed-child ()
  ":ONE-FOR-ONE: when B fails only B is restarted, as a new muproc; A and C
keep running, the same muprocs."
  (destructuring-bind (events before after)
      (in-muproc
        (with-tree (sup (abc-spec :one-for-one (muproc-current-process)))
          (next-events 3)
          (let ((before (mapcar (lambda (n) (child-muproc sup n)) '(a b c))))
            (crash (second before))
            (list (next-events 2)
                  before
                  (mapcar (lambda (n) (child-muproc sup n)) '(a b c))))))
    (is (equal '((:stopped b) (:started b)) events))
    (is (eq (first before) (first after)))
    (is (eq (third before) (third after)))
    (is (and (second after) (not (eq (second before) (second after)))))
    (is (every #'muproc-p before))))

(deftest/tree supervisor.all-for-one-restarts-all ()
  ":ALL-FOR-ONE: when B fails the others are stopped in reverse order (C,
then A), then all are started again in order."
  (destructuring-bind (stops starts before after)
      (in-muproc
        (with-tree (sup (abc-spec :all-for-one (muproc-current-process)))
          (next-events 3)
          (let ((before (mapcar (lambda (n) (child-muproc sup n)) '(a b c))))
            (crash (second before))
            (list (next-events 3)
                  (next-events 3)
                  before
                  (mapcar (lambda (n) (child-muproc sup n)) '(a b c))))))
    (is (equal '((:stopped b) (:stopped c) (:stopped a)) stops))
    (is (same-set-p '((:started a) (:started b) (:started c)) starts)
        "Children restarted out of order: ~s" starts)
    (is (every #'muproc-p after))
    (is (null (intersection before after)))))

(deftest/tree supervisor.rest-for-one-restarts-the-rest ()
  ":REST-FOR-ONE: when B fails, B and the children after it (C) are
restarted, C stopped first; A keeps running."
  (destructuring-bind (stops starts before after)
      (in-muproc
        (with-tree (sup (abc-spec :rest-for-one (muproc-current-process)))
          (next-events 3)
          (let ((before (mapcar (lambda (n) (child-muproc sup n)) '(a b c))))
            (crash (second before))
            (list (next-events 2)
                  (next-events 2)
                  before
                  (mapcar (lambda (n) (child-muproc sup n)) '(a b c))))))
    (is (equal '((:stopped b) (:stopped c)) stops))
    (is (same-set-p '((:started b) (:started c)) starts)
        "Children restarted out of order: ~s" starts)
    (is (eq (first before) (first after)))
    (is (and (second after) (third after)))
    (is (null (intersection (rest before) (rest after))))))

;;; Restart types

(deftest/tree supervisor.restart-types ()
  ":PERMANENT children are restarted after any exit, :normal included;
:TRANSIENT ones only after an abnormal exit, not after :NORMAL, :SHUTDOWN
or *SUPERVISOR-SHUTDOWN-REASON* (their spec stays, for
SUPERVISOR-RESTART-CHILD); :TEMPORARY ones never, and their spec is
removed."
  (let ((results
          (in-muproc
            (let ((c (muproc-current-process)))
              (with-tree (sup (supervisor :one-for-one 10 5
                                          (list :permanent 1 (supervised-muproc p #'kid (list c 'p)))
                                          (list :transient 1 (supervised-muproc tr #'kid (list c 'tr)))
                                          (list :temporary 1 (supervised-muproc tm #'kid (list c 'tm)))))
                (next-events 3)
                (flet ((restarted-p (name exit)
                         ;; Whether NAME's child comes back after EXIT.
                         (let ((old (child-muproc sup name)))
                           (if (eq exit :finish)
                               (progn (mumsg-send old :finish t)
                                      (muproc-wait-for-exit old :timeout 10))
                               (crash old exit))
                           (let ((new (child-muproc sup name)))
                             (and new (not (eq new old)))))))
                  (list
                   :permanent-normal (restarted-p 'p :finish)
                   :permanent-abnormal (restarted-p 'p :crash)
                   :transient-normal (restarted-p 'tr :finish)
                   :transient-spec-kept (and (find 'tr (supervisor-which-children sup) :key #'first) t)
                   :transient-normal-again (progn (supervisor-restart-child sup 'tr)
                                                  (restarted-p 'tr :normal))
                   :transient-shutdown (progn (supervisor-restart-child sup 'tr)
                                              (restarted-p 'tr :shutdown))
                   :transient-supervisor-shutdown
                   (progn (supervisor-restart-child sup 'tr)
                          (restarted-p 'tr *supervisor-shutdown-reason*))
                   :transient-abnormal (progn (supervisor-restart-child sup 'tr)
                                              (restarted-p 'tr :crash))
                   :temporary-abnormal (restarted-p 'tm :crash)
                   :children (mapcar #'first (supervisor-which-children sup)))))))))
    (is (equal '(:permanent-normal t :permanent-abnormal t
                 :transient-normal nil :transient-spec-kept t :transient-normal-again nil
                 :transient-shutdown nil :transient-supervisor-shutdown nil
                 :transient-abnormal t
                 :temporary-abnormal nil :children (p tr))
               results))))

;;; Shutdown

(deftest/tree supervisor.shutdown-kill ()
  "Shutdown :KILL kills the child at once, even one that traps exits: an
unwind, so its UNWIND-PROTECT cleanup runs, with the log line \"K was
terminated due to #<EXIT K :SUPERVISOR-KILL>.\"; the child is not
restarted."
  (let ((log (make-string-output-stream)))
    (destructuring-bind (result reason event after)
        (in-muproc
          (let ((c (muproc-current-process)))
            (with-tree (sup (supervisor :one-for-one 5 5
                                        (list :permanent :kill
                                              (supervised-muproc k #'kid (list c 'k :trap t :stubborn t))))
                            :errorstream log)
              (next-event)
              (let ((k (child-muproc sup 'k)))
                (list (supervisor-terminate-child sup 'k)
                      (muproc-wait-for-exit k :timeout 10)
                      (next-event)
                      (child-muproc sup 'k))))))
      (is (eq t result))
      (is (eq :supervisor-kill reason))
      (is (equal '(:stopped k) event))
      (is (null after))
      (is (line-present-p "K K was terminated due to #<EXIT K :SUPERVISOR-KILL>."
                          (log-lines log))))))

(deftest/tree supervisor.shutdown-seconds ()
  "Shutdown in seconds: a child that doesn't trap exits goes at once with
*SUPERVISOR-SHUTDOWN-REASON*; one that traps and takes 0.3 s to go is
waited for and exits with its own reason; one that never goes is killed
after the time (0.3 s), with reason :SUPERVISOR-KILL and the log line."
  (let ((log (make-string-output-stream)))
    (destructuring-bind (plain lingering stubborn)
        (in-muproc
          (let ((c (muproc-current-process)))
            (with-tree (sup (supervisor :one-for-one 5 5
                                        (list :permanent 5 (supervised-muproc n #'kid (list c 'n)))
                                        (list :permanent 5 (supervised-muproc l #'kid
                                                                              (list c 'l :trap t :linger 0.3)))
                                        (list :permanent 0.3 (supervised-muproc s #'kid
                                                                                (list c 's :trap t :stubborn t))))
                            :errorstream log)
              (next-events 3)
              (flet ((terminate (name)
                       (let ((m (child-muproc sup name))
                             (start (now)))
                         (supervisor-terminate-child sup name)
                         (list (seconds-since start)
                               (muproc-wait-for-exit m :timeout 10)
                               (next-event)))))
                (list (terminate 'n) (terminate 'l) (terminate 's))))))
      (destructuring-bind (seconds reason event) plain
        (is (< seconds 2) "A plain child took ~,3f s to go (its limit: 5 s)" seconds)
        (is (eq *supervisor-shutdown-reason* reason))
        (is (equal '(:stopped n) event)))
      (destructuring-bind (seconds reason event) lingering
        (is (<= 0.3 seconds 3) "Waited ~,3f s for a child that takes 0.3 s" seconds)
        (is (eq :lingered reason))
        (is (equal '(:stopped l) event)))
      (destructuring-bind (seconds reason event) stubborn
        (is (<= 0.3 seconds 3) "Killed a stubborn child after ~,3f s, not 0.3 s" seconds)
        (is (eq :supervisor-kill reason))
        (is (equal '(:stopped s) event)))
      (let ((lines (log-lines log)))
        (is (line-present-p "S S was terminated due to #<EXIT S :SUPERVISOR-KILL>." lines))
        (is (not (line-present-p "L L was terminated due to #<EXIT L :SUPERVISOR-KILL>." lines)))))))

(deftest/tree supervisor.shutdown-wait-forever ()
  "Shutdown :WAIT-FOREVER: the supervisor waits as long as the child takes
(0.6 s here), and the child exits with its own reason."
  (destructuring-bind (seconds reason event)
      (in-muproc
        (let ((c (muproc-current-process)))
          (with-tree (sup (supervisor :one-for-one 5 5
                                      (list :permanent :wait-forever
                                            (supervised-muproc w #'kid (list c 'w :trap t :linger 0.6)))))
            (next-event)
            (let ((w (child-muproc sup 'w))
                  (start (now)))
              (supervisor-terminate-child sup 'w)
              (list (seconds-since start) (muproc-wait-for-exit w :timeout 10) (next-event))))))
    (is (<= 0.6 seconds 5) "Waited ~,3f s for a child that takes 0.6 s" seconds)
    (is (eq :lingered reason))
    (is (equal '(:stopped w) event))))

;;; Restart intensity

(deftest/tree supervisor.too-many-restarts ()
  "No more than MAX-RESTARTS (2) restarts in PERIOD (5 s): the third
failure makes the supervisor stop its other children and exit with
:TOO-MANY-RESTARTS, logging why."
  (let ((log (make-string-output-stream)))
    (destructuring-bind (restarts reason events)
        (in-muproc
          (let* ((c (muproc-current-process))
                 (sup (supervisor-start
                       (supervisor :one-for-one 2 5
                                   (list :permanent 1 (supervised-muproc a #'kid (list c 'a)))
                                   (list :permanent 1 (supervised-muproc b #'kid (list c 'b))))
                       :errorstream log)))
            (next-events 2)
            (list (loop repeat 2
                        collect (progn (crash (child-muproc sup 'a))
                                       (next-events 2)))
                  (progn (crash (child-muproc sup 'a))
                         (muproc-wait-for-exit sup :timeout 10))
                  (next-events 2))))
      (is (equal '(((:stopped a) (:started a)) ((:stopped a) (:started a))) restarts))
      (is (eq :too-many-restarts reason))
      (is (equal '((:stopped a) (:stopped b)) events))
      (is (find-if (lambda (line) (search "more than 2 restarts in 5 s, giving up." line))
                   (log-lines log))))))

(deftest/tree supervisor.restarts-older-than-the-period-are-forgotten ()
  "Intensity counts the restarts within the last PERIOD: with 1 restart
allowed in 2 s, failures 2.1 s apart are restarted every time, two in
quick succession end the supervisor.  (A period this long: the second
failure must come within it whatever pauses the machine.)"
  (destructuring-bind (first-restarted second-restarted reason)
      (in-muproc
        (let* ((c (muproc-current-process))
               (sup (supervisor-start
                     (supervisor :one-for-one 1 2
                                 (list :permanent 1 (supervised-muproc a #'kid (list c 'a))))
                     :errorstream (quiet))))
          (unwind-protect
               (flet ((fail-and-restarted-p ()
                        (let ((old (child-muproc sup 'a)))
                          (crash old)
                          (next-events 2)
                          (let ((new (child-muproc sup 'a)))
                            (and new (not (eq new old)))))))
                 (next-event)
                 (list (fail-and-restarted-p)
                       ;; The period is what this test is about: let it pass.
                       (progn (sleep 2.1) (fail-and-restarted-p))
                       (progn (crash (child-muproc sup 'a))
                              (muproc-wait-for-exit sup :timeout 10))))
            (when (muproc-alive-p sup) (stop-tree sup)))))
    (is-true first-restarted)
    (is-true second-restarted)
    (is (eq :too-many-restarts reason))))

;;; Nested supervisors

(deftest/tree supervisor.nested-escalation ()
  "An inner supervisor that exceeds its intensity exits with
:TOO-MANY-RESTARTS, and the outer one applies its strategy (one-for-one:
a new inner supervisor and child, the outer's other child untouched); when
that is too many restarts for the outer one too, it stops its children and
exits: the tree ends."
  (destructuring-bind (first-events inner-reason a-kept inner-replaced
                       second-events outer-reason)
      (in-muproc
        (let* ((c (muproc-current-process))
               (outer (supervisor-start
                       (supervisor :one-for-one 1 5
                                   (list :permanent 1 (supervised-muproc a #'kid (list c 'a)))
                                   (list :permanent :wait-forever
                                         (supervisor :one-for-one 0 5
                                                     (list :permanent 1 (supervised-muproc
                                                                         x #'kid (list c 'x))))))
                       :errorstream (quiet))))
          (next-events 2)
          (let ((a (child-muproc outer 'a))
                (inner (child-muproc outer "{X}")))
            (crash (muproc-find 'x))
            (let* ((inner-reason (muproc-wait-for-exit inner :timeout 10))
                   (first-events (next-events 2))
                   (new-inner (child-muproc outer "{X}"))
                   (a-kept (eq a (child-muproc outer 'a))))
              (crash (muproc-find 'x))
              (list first-events
                    inner-reason
                    a-kept
                    (and new-inner (not (eq new-inner inner)))
                    (next-events 2)
                    (muproc-wait-for-exit outer :timeout 10))))))
    (is (equal '((:stopped x) (:started x)) first-events))
    (is (eq :too-many-restarts inner-reason))
    (is-true a-kept)
    (is-true inner-replaced)
    (is (equal '((:stopped x) (:stopped a)) second-events))
    (is (eq :too-many-restarts outer-reason))))

;;; simple-one-for-one

(deftest/tree supervisor.simple-one-for-one ()
  ":SIMPLE-ONE-FOR-ONE starts no child of its own; SUPERVISOR-START-CHILD
starts anonymous children of the template with extra arguments; each is
restarted (with the same arguments) as its restart type says: a
:TRANSIENT child that fails comes back, one that ends normally is
removed."
  (destructuring-bind (initially m1 m2 names started failed restarted-as
                       after-normal count)
      (in-muproc
        (let ((c (muproc-current-process)))
          (with-tree (sup (supervisor :simple-one-for-one 5 5
                                      (list :transient 1 (supervised-muproc nil #'kid (list c)))))
            (let* ((initially (supervisor-which-children sup))
                   (m1 (supervisor-start-child sup (list 'w1)))
                   (m2 (supervisor-start-child sup (list 'w2)))
                   (started (next-events 2)))
              (list initially m1 m2
                    (mapcar #'muproc-name (list m1 m2))
                    started
                    (progn (crash m1) (next-event))
                    (multiple-value-bind (event from) (next-event)
                      (list event (and (not (eq from m1))
                                       (equal (list from m2)
                                              (mapcar #'second
                                                      (supervisor-which-children sup))))))
                    (progn (mumsg-send m2 :finish t)
                           (muproc-wait-for-exit m2 :timeout 10)
                           (list (next-event)
                                 (length (supervisor-which-children sup))))
                    (supervisor-count-children sup))))))
    (is (null initially))
    (is (and (muproc-p m1) (muproc-p m2)))
    (is (equal '(nil nil) names) "Children of a simple-one-for-one are anonymous")
    (is (same-set-p '((:started w1) (:started w2)) started))
    (is (equal '(:stopped w1) failed))
    (is (equal '((:started w1) t) restarted-as)
        "The failed child came back with its arguments, as a new muproc: ~s" restarted-as)
    (is (equal '((:stopped w2) 1) after-normal))
    (is (equal '(:specs 1 :active 1 :supervisors 0 :workers 1) count))))

;;; Run-time management

(deftest/tree supervisor.run-time-management ()
  "SUPERVISOR-START-CHILD adds a worker or a supervisor child and returns
its muproc; SUPERVISOR-WHICH-CHILDREN and -COUNT-CHILDREN describe the
children; -TERMINATE-CHILD stops one (its spec stays, it isn't
restarted); -RESTART-CHILD starts it again; -DELETE-CHILD removes a
stopped child's spec and refuses a running one; a bad spec is refused.
The supervisor serves on after each refusal."
  (let ((r (in-muproc
             (let ((c (muproc-current-process)))
               (with-tree (sup (supervisor :one-for-one 5 5
                                           (list :permanent 1 (supervised-muproc a #'kid (list c 'a)))))
                 (next-event)
                 (flet ((refused-p (thunk)
                          (handler-case (progn (funcall thunk) nil)
                            (muproc.generic-server:generic-handler-error () t))))
                   (let* ((b (supervisor-start-child
                              sup (list :permanent 1 (supervised-muproc b #'kid (list c 'b)))))
                          (b-event (next-event))
                          (inner (supervisor-start-child
                                  sup (list :permanent :wait-forever
                                            (supervisor :one-for-one 1 5
                                                        (list :permanent 1 (supervised-muproc
                                                                            x #'kid (list c 'x)))))))
                          (x-event (next-event)))
                     (list
                      :b (and (eq b (muproc-find 'b)) b-event)
                      :inner (list (princ-to-string (muproc-name inner)) x-event)
                      :which (mapcar (lambda (ch) (list (first ch) (and (second ch) t)
                                                        (third ch) (fourth ch)))
                                     (supervisor-which-children sup))
                      :count (supervisor-count-children sup)
                      :terminate (list (supervisor-terminate-child sup 'b) (next-event)
                                       (child-muproc sup 'b)
                                       (getf (supervisor-count-children sup) :active))
                      :delete-running-refused (refused-p (lambda () (supervisor-delete-child sup 'a)))
                      :bad-spec-refused (refused-p (lambda ()
                                                     (supervisor-start-child
                                                      sup (list :sometimes 1 (supervised-muproc
                                                                              z #'kid (list c 'z))))))
                      :restart (let ((new-b (supervisor-restart-child sup 'b)))
                                 (list (and (muproc-p new-b) (not (eq new-b b))
                                            (eq new-b (child-muproc sup 'b)))
                                       (next-event)))
                      :delete (list (supervisor-terminate-child sup 'b) (next-event)
                                    (supervisor-delete-child sup 'b)
                                    (mapcar #'first (supervisor-which-children sup)))
                      :terminate-supervisor (list (supervisor-terminate-child sup inner)
                                                  (next-event)
                                                  (muproc-alive-p inner))))))))))
    (is (equal '(:started b) (getf r :b)))
    (is (equal '("{X}" (:started x)) (getf r :inner)))
    (is (equal '((a t :permanent :worker) (b t :permanent :worker)
                 ("{X}" t :permanent :supervisor))
               (getf r :which)))
    (is (equal '(:specs 3 :active 3 :supervisors 1 :workers 2) (getf r :count)))
    (is (equal '(t (:stopped b) nil 2) (getf r :terminate)))
    (is-true (getf r :delete-running-refused))
    (is-true (getf r :bad-spec-refused))
    (is (equal '(t (:started b)) (getf r :restart)))
    (is (equal '(t (:stopped b) t (a "{X}")) (getf r :delete)))
    (is (equal '(t (:stopped x) nil) (getf r :terminate-supervisor)))))

(deftest/tree supervisor.failed-start-child-leaves-no-spec ()
  "SUPERVISOR-START-CHILD of a child whose name is taken signals in the
caller and adds nothing: the children are as before."
  (destructuring-bind (refused before after)
      (in-muproc
        (let ((c (muproc-current-process)))
          (with-tree (sup (supervisor :one-for-one 5 5
                                      (list :permanent 1 (supervised-muproc a #'kid (list c 'a)))))
            (next-event)
            (flet ((children ()
                     (mapcar (lambda (ch) (list (first ch) (and (second ch) t)))
                             (supervisor-which-children sup))))
              (let ((before (children)))
                (list (handler-case
                          (progn (supervisor-start-child
                                  sup (list :permanent 1 (supervised-muproc a #'kid (list c 'a2))))
                                 nil)
                        (muproc.generic-server:generic-handler-error () t))
                      before
                      (children)))))))
    (is-true refused)
    (is (equal before after) "Children (name, running) before ~s, after ~s" before after)))

(deftest/tree supervisor.simple-one-for-one-terminate-child-removes-it ()
  "SUPERVISOR-TERMINATE-CHILD of a :SIMPLE-ONE-FOR-ONE child (its muproc)
stops it and removes it, as OTP does: which-children no longer lists it."
  (destructuring-bind (result event children)
      (in-muproc
        (let ((c (muproc-current-process)))
          (with-tree (sup (supervisor :simple-one-for-one 5 5
                                      (list :permanent 1 (supervised-muproc nil #'kid (list c)))))
            (let ((m1 (supervisor-start-child sup (list 'w1))))
              (supervisor-start-child sup (list 'w2))
              (next-events 2)
              (list (supervisor-terminate-child sup m1)
                    (next-event)
                    (mapcar (lambda (ch) (and (second ch) t))
                            (supervisor-which-children sup)))))))
    (is (eq t result))
    (is (equal '(:stopped w1) event))
    (is (equal '(t) children)
        "After terminating one of two children, which-children shows (running-p ...) ~s"
        children)))

(deftest/tree supervisor.exit-signal-from-outside-a-muproc ()
  "A supervisor told to exit from outside any muproc (the REPL, as in the
seed's transcript IV) exits with that reason and stops its children, even
when one of its children was terminated (and so has no muproc)."
  (let ((reason nil))
    (let ((sup (in-muproc
                 (let* ((c (muproc-current-process))
                        (sup (supervisor-start
                              (supervisor :one-for-one 5 5
                                          (list :permanent 1 (supervised-muproc a #'kid (list c 'a)))
                                          (list :permanent 1 (supervised-muproc b #'kid (list c 'b))))
                              :errorstream (quiet))))
                   (next-events 2)
                   (supervisor-terminate-child sup 'a)
                   sup))))
      (unwind-protect
           (progn (muproc-exit :adieu sup)
                  (setf reason (muproc-wait-for-exit sup :timeout 3)))
        (when (muproc-alive-p sup)
          (in-muproc (stop-tree sup)))))
    (is (eq :adieu reason) "The supervisor did not exit on (muproc-exit :adieu sup): ~s"
        reason)))

;;; Kills: no child outlives its supervisor

(defun stubborn-spec (strategy collector)
  "A supervisor of A, then S: S traps exits and ignores every shutdown,
and the supervisor waits for it forever (:WAIT-FOREVER)."
  (supervisor strategy 5 5
    (:permanent 1 (supervised-muproc a #'kid (list collector 'a)))
    (:permanent :wait-forever
      (supervised-muproc s #'kid (list collector 's :trap t :stubborn :tell)))))

(defun start-stubborn-tree (strategy)
  "In a muproc: start STUBBORN-SPEC's tree; the supervisor and the muprocs
of A and S, once both have started (S traps exits by then)."
  (let ((sup (supervisor-start (stubborn-spec strategy (muproc-current-process))
                               :errorstream (quiet)))
        (kids '()))
    (loop repeat 2
          do (multiple-value-bind (event kid) (next-event)
               (push (cons (second event) kid) kids)))
    (values sup (cdr (assoc 'a kids)) (cdr (assoc 's kids)))))

(defun exits-of (&rest muprocs)
  "The exit reason of each of MUPROCS, or :STILL-RUNNING if it has not
exited within 10 s."
  (mapcar (lambda (m)
            (multiple-value-bind (reason exited) (muproc-wait-for-exit m :timeout 10)
              (if exited reason :still-running)))
          muprocs))

(deftest/tree supervisor.kill-does-not-wait-for-shutdowns ()
  "A supervisor that is killed does not wait for the :WAIT-FOREVER child
that ignores shutdowns: it kills its children (A and S) and exits with
the kill's reason."
  (is (equal '(:die :supervisor-kill :supervisor-kill)
             (in-muproc
               (multiple-value-bind (sup a s) (start-stubborn-tree :one-for-one)
                 (muproc-kill sup :die)
                 (exits-of sup a s))))))

(deftest/tree supervisor.killed-during-its-shutdown-leaves-no-child ()
  "A supervisor told to exit waits for S, which ignores the shutdown; killed
then, and killed again, it kills S and A: no child is left running."
  (destructuring-bind (ignored sup-reason &rest child-reasons)
      (in-muproc
        (multiple-value-bind (sup a s) (start-stubborn-tree :one-for-one)
          (muproc-exit :shutdown sup)
          (let ((ignored (next-event)))
            (muproc-kill sup :die)
            (muproc-kill sup :die-again)
            (cons ignored (exits-of sup a s)))))
    (is (equal '(:ignored-shutdown s) ignored))
    ;; The second kill may land while the first one's cleanup runs.
    (is (member sup-reason '(:die :die-again)) "The supervisor's exit: ~s" sup-reason)
    (is (equal '(:supervisor-kill :supervisor-kill) child-reasons))))

(deftest/tree supervisor.killed-during-a-restart-leaves-no-child ()
  "An :ALL-FOR-ONE supervisor restarting after A crashed waits to shut S
down, which S ignores; killed then, it kills S (its slot was not cleared
before S had exited): no child is left running."
  (is (equal '((:ignored-shutdown s) :die :crash :supervisor-kill)
             (in-muproc
               (multiple-value-bind (sup a s) (start-stubborn-tree :all-for-one)
                 (crash a)
                 (next-event)           ; A's :STOPPED
                 (let ((ignored (next-event)))
                   (muproc-kill sup :die)
                   (cons ignored (exits-of sup a s))))))))

;;; Misuse and errors

(deftest/tree supervisor.operations-on-a-worker-fail-at-once ()
  "SUPERVISOR-WHICH-CHILDREN (and the other operations) given a plain
worker, by name or muproc, signal NOT-A-SUPERVISOR at once rather than
wait for an answer that never comes."
  (destructuring-bind (by-name by-muproc seconds)
      (muproc (10)
        (let ((w1 (muproc-spawn 'w1 (lambda () (mumsg-receive (from) ((go) t))) nil))
              (start (now)))
          (flet ((refusal (thunk)
                   (handler-case (progn (funcall thunk) :answered)
                     (not-a-supervisor (c)
                       (list (not-a-supervisor-object c)
                             (search "SUPERVISOR-WHICH-CHILDREN" (princ-to-string c)))))))
            (prog1 (list (refusal (lambda () (supervisor-which-children 'w1)))
                         (refusal (lambda () (supervisor-which-children w1)))
                         (seconds-since start))
              (mumsg-send w1 :go t)
              (muproc-wait-for-exit w1 :timeout 10)))))
    (is (eq 'w1 (first by-name)) "~s" by-name)
    (is-true (second by-name))
    (is (muproc-p (first by-muproc)) "~s" by-muproc)
    (is (< seconds 2) "took ~,1f s" seconds)))

(deftest/tree supervisor.errors-name-the-operator-called ()
  "Outside a muproc, the supervisor operations signal MUPROC-NOT-IN-MUPROC
naming themselves (not the generic call beneath); a bad child spec is a
SUPERVISOR-SPEC-ERROR naming SUPERVISOR, a three-element call that could
be a spec is refused at macroexpansion; muproc.supervisor exports its API
only."
  (let ((sup (supervisor-start (supervisor :one-for-one 1 5) :errorstream (quiet))))
    (unwind-protect
         (dolist (operation (list (lambda () (supervisor-which-children sup))
                                  (lambda () (supervisor-count-children sup))
                                  (lambda () (supervisor-terminate-child sup 'x))))
           (let ((c (handler-case (progn (funcall operation) nil)
                      (muproc-not-in-muproc (c) c))))
             (is (and c (search "SUPERVISOR-" (princ-to-string c))
                      (not (search "GENERIC" (princ-to-string c))))
                 "~a" c)))
      (in-muproc (stop-tree sup))))
  (let ((c (handler-case (supervisor :one-for-one 1 5
                           (:sometimes 1 (supervised-muproc x #'kid nil)))
             (supervisor-spec-error (c) c))))
    (is (and c (search "SUPERVISOR: bad restart type :SOMETIMES" (princ-to-string c)))
        "~a" c))
  (signals supervisor-spec-error
    (macroexpand-1 '(supervisor :one-for-one 1 5 (cons :permanent more))))
  (let ((exported '()))
    (do-external-symbols (symbol '#:muproc.supervisor)
      (push symbol exported))
    (is (notany (lambda (symbol) (char= #\% (char (symbol-name symbol) 0))) exported)
        "muproc.supervisor exports ~s" exported)))

;;; Restart reports

(deftest/tree supervisor.restart-is-reported ()
  "Each restart is logged in the seed's line format, as OTP's supervisor
report: which child, why it ended, and its new muproc."
  (let ((log (make-string-output-stream)))
    (destructuring-bind (new-b lines)
        (in-muproc
          (let ((c (muproc-current-process)))
            (with-tree (sup (abc-spec :one-for-one c) :errorstream log)
              (next-events 3)
              (crash (child-muproc sup 'b))
              (let ((new-b (child-muproc sup 'b))) ; answered after the restart
                (list (prin1-to-string new-b) (log-text-lines (log-text-so-far log)))))))
      (let ((line (find-if (lambda (line) (search "restarted child" line)) lines)))
        (is (uiop:string-prefix-p
             (format nil "{A*B*C} SUPERVISOR restarted child B (ended with reason :CRASH) as ~a"
                     (subseq new-b 0 (search " :" new-b)))
             line)
            "Restart line ~s (new muproc ~a)" line new-b)))))

;;; Names

(deftest/tree supervisor.names-print-like-the-seed ()
  "A supervisor's muproc is named after its children, {A*{X}} and {X} as
in the seed's {PROC1*PROC2*{PROC31*PROC32}}, and prints with that name
(the seed's \"muproc-129[{PROC31*PROC32}]\"), not as #:{X}."
  (destructuring-bind (names printed)
      (in-muproc
        (let ((c (muproc-current-process)))
          (with-tree (sup (supervisor :one-for-one 1 5
                                      (list :permanent 1 (supervised-muproc a #'kid (list c 'a)))
                                      (list :permanent 1
                                            (supervisor :one-for-one 1 5
                                                        (list :permanent 1 (supervised-muproc
                                                                            x #'kid (list c 'x)))))))
            (next-events 2)
            (let ((inner (child-muproc sup "{X}")))
              (list (mapcar (lambda (m) (princ-to-string (muproc-name m)))
                            (list sup inner))
                    (prin1-to-string inner))))))
    (is (equal '("{A*{X}}" "{X}") names))
    (is (search " {X} " printed)
        "The inner supervisor prints as ~a, not with its name {X}" printed)))

;;; The seed's tree (examples/supervision-tree.lisp)

(defun supervision-tree-symbol (name)
  "The symbol NAME of examples/supervision-tree.lisp, loaded (not run) if
need be."
  (unless (find-package '#:muproc-examples)
    (load (asdf:system-relative-pathname "muproc" "examples/load-muproc.lisp")))
  (uiop:symbol-call '#:muproc-examples '#:load-example "supervision-tree")
  (or (find-symbol (string name) '#:muproc-example.supervision-tree)
      (error "examples/supervision-tree.lisp has no ~a." name)))

(defun tree-call (name &rest arguments)
  (apply (supervision-tree-symbol name) arguments))

(defmacro with-seed-time-scale ((scale) &body body)
  "BODY with the example's *TIME-SCALE* (a global the muprocs read) set
to SCALE."
  (let ((var (gensym)) (old (gensym)))
    `(let* ((,var (supervision-tree-symbol "*TIME-SCALE*"))
            (,old (symbol-value ,var)))
       (setf (symbol-value ,var) ,scale)
       (unwind-protect (progn ,@body)
         (setf (symbol-value ,var) ,old)))))

(defun tree-names (muprocs)
  (mapcar (lambda (m) (princ-to-string (muproc-name m))) muprocs))

(deftest/tree supervisor.seed-transcripts ()
  "The seed's transcripts with its tree (START-SUPER1, PROC32's shutdown
time scaled to 0.15 s): supervisor muprocs are named {PROC31*PROC32} and
{PROC1*PROC2*{PROC31*PROC32}}; exiting PROC1 restarts the whole tree
(all-for-one) once the others are down: PROC2 and {PROC31*PROC32} shut
down, PROC31 killed, PROC32 shut itself down; exiting PROC32 restarts only
PROC31 (killed) and PROC32, PROC1 and PROC2 staying the same muprocs;
exiting every muproc top-down ends the tree with no restart."
  (let ((log (make-string-output-stream))
        (lines-before-teardown '()))
    (destructuring-bind (tree1 tree2 tree3 reason)
        (with-seed-time-scale (1/20)
          (let* ((top (tree-call "START-SUPER1" log))
                 (tree1 (tree-call "TREE-MUPROCS" top)))
            (unwind-protect
                 (flet ((exit-and-wait (name)
                          ;; Once PROC32 traps exits (its first form): from
                          ;; then on it shuts itself down when told to.
                          (tree-call "AWAIT-PROC32-TRAPPING")
                          (let ((m (muproc-find (supervision-tree-symbol name))))
                            (muproc-exit :adieu m)
                            (muproc-wait-for-exit m :timeout 10)
                            (tree-call "TREE-MUPROCS" top))))
                   (let* ((tree2 (exit-and-wait "PROC1"))
                          (tree3 (exit-and-wait "PROC32")))
                     (setf lines-before-teardown (log-text-lines (log-text-so-far log)))
                     (mapc (lambda (m) (muproc-exit :adieu m)) tree3)
                     (list tree1 tree2 tree3 (muproc-wait-for-exit top :timeout 10))))
              (when (muproc-alive-p top)
                (in-muproc (stop-tree top))))))
      (is (equal '("{PROC1*PROC2*{PROC31*PROC32}}" "PROC1" "PROC2" "{PROC31*PROC32}"
                   "PROC31" "PROC32")
                 (tree-names tree1)))
      (is (equal (tree-names tree1) (tree-names tree2)))
      (is (equal (tree-names tree1) (tree-names tree3)))
      (is (eq (first tree1) (first tree2)))
      (is (null (intersection (rest tree1) (rest tree2)))
          "Exiting PROC1 did not restart the whole tree")
      (is (equal '(:adieu :supervisor-shutdown :supervisor-shutdown :supervisor-kill
                   :shutting-down-myself)
                 (mapcar #'muproc-exit-reason (rest tree1))))
      (is (equal (subseq tree2 0 4) (subseq tree3 0 4))
          "Exiting PROC32 restarted more than PROC31 and PROC32")
      (is (null (intersection (subseq tree2 4) (subseq tree3 4))))
      (is (equal '(:supervisor-kill :shutting-down-myself)
                 (mapcar #'muproc-exit-reason (subseq tree2 4))))
      (is (eq :adieu reason))
      (let* ((lines (log-lines log))
             (inner-down "{PROC31*PROC32} SUPERVISOR #<SUPERVISOR {PROC31*PROC32} ALL-FOR-ONE:2:5 DOWN:DOWN STABLE> terminating.")
             (top-down "{PROC1*PROC2*{PROC31*PROC32}} SUPERVISOR #<SUPERVISOR {PROC1*PROC2*{PROC31*PROC32}} ALL-FOR-ONE:2:5 DOWN:DOWN:DOWN STABLE> terminating."))
        (is (= 2 (count inner-down lines :test #'string=)) "Log:~%~{~a~%~}" lines)
        (is (= 1 (count top-down lines :test #'string=)) "Log:~%~{~a~%~}" lines)
        ;; Killed by each of the two restarts.  At the teardown PROC31
        ;; gets :ADIEU from us and may be killed by its supervisor first,
        ;; so its lines from then on are not counted.
        (is (= 2 (count "PROC31 PROC31 was terminated due to #<EXIT PROC31 :SUPERVISOR-KILL>."
                        lines-before-teardown :test #'string=))
            "Log:~%~{~a~%~}" lines-before-teardown)
        (is (equal top-down (car (last lines))))))))

;;; examples/supervision-tree.lisp's MAIN

(defun without-new-muproc (line)
  "LINE, a supervisor's restart line, with the new muproc it names (whose
number and state vary) written #<MUPROC>; any other line as it is."
  (let ((start (search " as #<MUPROC " line)))
    (if (and start (search " SUPERVISOR restarted child " line))
        (concatenate 'string (subseq line 0 start) " as #<MUPROC>.")
        line)))

(defun transcript-lines (text)
  "The lines of TEXT without timestamps and without the periodic ones
(\"... HERE\", \"Got WAKEUP\"); restart lines as WITHOUT-NEW-MUPROC has them."
  (mapcar #'without-new-muproc
          (remove-if (lambda (line)
                       (or (uiop:string-suffix-p line " HERE")
                           (uiop:string-suffix-p line "Got WAKEUP")))
                     (mapcar (lambda (line) (subseq line (1+ (position #\Space line))))
                             (remove "" (uiop:split-string text :separator '(#\Newline))
                                     :test #'string=)))))

(defun restart-line (supervisor child reason)
  "The restart line SUPERVISOR logs for CHILD, which ended with REASON (as
TRANSCRIPT-LINES has it)."
  (format nil "~a SUPERVISOR restarted child ~a (ended with reason ~s) as #<MUPROC>."
          supervisor child reason))

(defun without-teardown-kills (lines)
  "LINES without PROC1's and PROC31's kill lines after the last session
line.  The session exits every muproc at once, and a supervisor busy
shutting down may kill PROC1 or PROC31 (shutdown :KILL) before that exit
reaches them, or may not."
  (let ((last-session (position "- " lines :test #'uiop:string-prefix-p :from-end t))
        (kills (loop for name in '("PROC1" "PROC31")
                     collect (format nil "~a ~a was terminated due to #<EXIT ~a :SUPERVISOR-KILL>."
                                     name name name))))
    (assert last-session () "No session line in the transcript:~%~{~a~%~}" lines)
    (append (subseq lines 0 last-session)
            (remove-if (lambda (line) (member line kills :test #'string=))
                       (subseq lines last-session)))))

(defparameter *supervision-tree-lines*
  (let ((inner "{PROC31*PROC32} SUPERVISOR #<SUPERVISOR {PROC31*PROC32} ALL-FOR-ONE:2:5 DOWN:DOWN STABLE> terminating.")
        (kill "PROC31 PROC31 was terminated due to #<EXIT PROC31 :SUPERVISOR-KILL>."))
    `(("-" "- > (start-super1 *standard-output*)"
           "- > (muproc-exit :adieu (muproc-find 'proc1))"
           "- > (muproc-exit :adieu (muproc-find 'proc32))"
           "- > (mapcar (lambda (p) (muproc-exit :adieu p)) (tree-muprocs top))")
      ("PROC1" "PROC1 PROC1 starting" "PROC1 PROC1 terminating"
               "PROC1 PROC1 starting" "PROC1 PROC1 terminating")
      ("PROC2" "PROC2 PROC2 starting" "PROC2 PROC2 terminating"
               "PROC2 PROC2 starting" "PROC2 PROC2 terminating")
      ;; Killed, PROC31 cleans up (logs "terminating"), then the kill is
      ;; logged: the seed's transcripts II and III.
      ("PROC31" "PROC31 PROC31 starting" "PROC31 PROC31 terminating" ,kill
                "PROC31 PROC31 starting" "PROC31 PROC31 terminating" ,kill
                "PROC31 PROC31 starting" "PROC31 PROC31 terminating")
      ("PROC32" ,@(loop repeat 3 append '("PROC32 PROC32 starting" "PROC32 Got SHUTDOWN"
                                           "PROC32 PROC32 terminating")))
      ;; OTP's supervisor report for each child restarted: II restarts
      ;; the top supervisor's three, III the inner one's two.
      ("{PROC31*PROC32}" ,inner
                         ,(restart-line "{PROC31*PROC32}" "PROC31" :supervisor-kill)
                         ,(restart-line "{PROC31*PROC32}" "PROC32" :shutting-down-myself)
                         ,inner)
      ("{PROC1*PROC2*{PROC31*PROC32}}"
       ,(restart-line "{PROC1*PROC2*{PROC31*PROC32}}" "PROC1" :adieu)
       ,(restart-line "{PROC1*PROC2*{PROC31*PROC32}}" "PROC2" :supervisor-shutdown)
       ,(restart-line "{PROC1*PROC2*{PROC31*PROC32}}" "{PROC31*PROC32}" :supervisor-shutdown)
       "{PROC1*PROC2*{PROC31*PROC32}} SUPERVISOR #<SUPERVISOR {PROC1*PROC2*{PROC31*PROC32}} ALL-FOR-ONE:2:5 DOWN:DOWN:DOWN STABLE> terminating.")))
  "What each muproc (and the session, \"-\") of examples/supervision-tree.lisp
prints, in order, but for the periodic lines.")

(deftest/tree supervisor.example-transcript (:timeout 60)
  "examples/supervision-tree.lisp's MAIN prints the seed's transcripts:
each muproc's lines in order, and across muprocs: exiting PROC1 stops
PROC32 (after its SHUTDOWN), PROC31 (killed), {PROC31*PROC32}, PROC2, then
starts all four; exiting PROC32 restarts PROC31 and PROC32 only; exiting
all ends PROC32, then {PROC31*PROC32}, then the top supervisor, last."
  (let* ((main (supervision-tree-symbol "MAIN"))
         (reason nil)
         (lines (without-teardown-kills
                 (transcript-lines (with-output-to-string (*standard-output*)
                                     (setf reason (funcall main)))))))
    (is (eq :adieu reason))
    (loop for (name . expected) in *supervision-tree-lines*
          do (is (equal expected
                        (remove-if-not (lambda (line)
                                         (uiop:string-prefix-p (concatenate 'string name " ")
                                                               line))
                                       lines))
                 "~a's lines are not the seed's; the transcript:~%~{~a~%~}" name lines))
    (labels ((pos (line &optional (n 1))
               ;; The position of the Nth occurrence of LINE.
               (let ((start 0))
                 (loop repeat n
                       do (setf start (1+ (or (position line lines :test #'string= :start start)
                                              (return-from pos nil)))))
                 (1- start)))
             (before (&rest positions)
               (and (every #'identity positions) (apply #'< positions))))
      (let ((inner (second (assoc "{PROC31*PROC32}" *supervision-tree-lines* :test #'string=)))
            (top (car (last (assoc "{PROC1*PROC2*{PROC31*PROC32}}" *supervision-tree-lines*
                                   :test #'string=))))
            (session (rest (assoc "-" *supervision-tree-lines* :test #'string=))))
        ;; II: the whole tree, in reverse order, then all started again.
        (is (before (pos (second session)) (pos "PROC1 PROC1 terminating")
                    (pos "PROC32 Got SHUTDOWN") (pos "PROC32 PROC32 terminating")
                    (pos "PROC31 PROC31 terminating") (pos inner)
                    (pos "PROC2 PROC2 terminating")))
        (dolist (started '("PROC1 PROC1 starting" "PROC2 PROC2 starting"
                           "PROC31 PROC31 starting" "PROC32 PROC32 starting"))
          (is (before (pos "PROC2 PROC2 terminating") (pos started 2))
              "~a: not restarted after the others stopped" started))
        ;; Each restart is reported once its child has started again.
        (is (before (pos "PROC2 PROC2 terminating")
                    (pos (restart-line "{PROC1*PROC2*{PROC31*PROC32}}" "PROC1" :adieu))))
        ;; III: PROC31 and PROC32 only.
        (is (before (pos (third session)) (pos "PROC32 Got SHUTDOWN" 2)
                    (pos "PROC32 PROC32 terminating" 2) (pos "PROC31 PROC31 terminating" 2)
                    (pos "PROC31 PROC31 starting" 3)))
        (is (before (pos "PROC31 PROC31 terminating" 2) (pos "PROC32 PROC32 starting" 3)))
        ;; IV: everything ends, the top supervisor last.
        (is (before (pos (fourth session)) (pos "PROC32 PROC32 terminating" 3)
                    (pos inner 2) (pos top)))
        (dolist (ended '(("PROC1 PROC1 terminating" 2) ("PROC2 PROC2 terminating" 2)
                         ("PROC31 PROC31 terminating" 3)))
          (is (before (pos (fourth session)) (apply #'pos ended) (pos top))))
        (is (= (pos top) (1- (length lines))))))))
