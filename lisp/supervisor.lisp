;;;; supervisor.lisp - the seed's supervision DSL with OTP's strategies,
;;;; restart types, intensity and shutdown.
;;;;
;;;; A supervisor is a generic server (package MUPROC.SUPERVISOR is its
;;;; server type) that traps exits: INITIALIZE starts the children in
;;;; order, LINKED-EXIT applies the strategy when one ends, TERMINATE stops
;;;; them in reverse order, and call handlers manage children at run time.
;;;; No child outlives its supervisor: a child is recorded before anything
;;;; can interrupt its start, stays recorded until its exit notice is in,
;;;; and a supervisor that is killed, or leaves a shutdown half-way, kills
;;;; the children it still has.

(defpackage #:muproc.supervisor
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:import-from #:muproc.internal #:unwinding-from-kill-p)
  (:nicknames #:cl-muproc.supervisor)
  (:documentation "Supervision trees in the style of cl-muproc, with the
semantics of Erlang/OTP's supervisor: strategies :ONE-FOR-ONE,
:ALL-FOR-ONE, :REST-FOR-ONE and :SIMPLE-ONE-FOR-ONE; restart types
:PERMANENT, :TRANSIENT and :TEMPORARY; shutdown :KILL, :WAIT-FOREVER or
seconds; restart intensity; nested supervisors; run-time child management.")
  (:export #:supervisor #:supervised-muproc #:supervisor-start
           #:supervisor-start-child #:supervisor-terminate-child
           #:supervisor-restart-child #:supervisor-delete-child
           #:supervisor-which-children #:supervisor-count-children
           #:supervisor-spec-p #:*supervisor-shutdown-reason*
           #:supervisor-spec-error #:supervisor-spec-error-problem
           #:not-a-supervisor #:not-a-supervisor-object
           #:supervisor-tree))

(in-package #:muproc.supervisor)

(defvar *supervisor-shutdown-reason* :supervisor-shutdown
  "The exit reason a supervisor sends a child it shuts down (trappable,
and not abnormal for :TRANSIENT children).  A child that doesn't go in
time is killed with reason :SUPERVISOR-KILL.")

;;; Conditions

(define-condition supervisor-spec-error (muproc-error)
  ((operation :initarg :operation :reader supervisor-spec-error-operation)
   (problem :initarg :problem :reader supervisor-spec-error-problem))
  (:report (lambda (c s)
             (format s "~a: ~a" (supervisor-spec-error-operation c)
                     (supervisor-spec-error-problem c))))
  (:documentation "Signalled for a bad supervisor or child specification
(by SUPERVISOR, or by SUPERVISOR-START-CHILD inside the supervisor, whose
caller then gets it as a GENERIC-HANDLER-ERROR).
SUPERVISOR-SPEC-ERROR-PROBLEM says what is wrong."))

(define-condition not-a-supervisor (muproc-error)
  ((object :initarg :object :reader not-a-supervisor-object)
   (operation :initarg :operation :reader not-a-supervisor-operation))
  (:report (lambda (c s)
             (format s "~a: ~s is not a supervisor.  Give it a supervisor: what ~
                        SUPERVISOR-START returned, or a :SUPERVISOR child listed by ~
                        SUPERVISOR-WHICH-CHILDREN."
                     (not-a-supervisor-operation c) (not-a-supervisor-object c))))
  (:documentation "Signalled at once when a SUPERVISOR-... operation is
given a live muproc that is not a supervisor (a worker would never
answer).  NOT-A-SUPERVISOR-OBJECT is what it was given."))

(setf (documentation 'supervisor-spec-error-problem 'function)
      "What is wrong with the specification, as a sentence."
      (documentation 'not-a-supervisor-object 'function)
      "What the operation was given instead of a supervisor.")

(defun spec-error (operation control &rest arguments)
  (error 'supervisor-spec-error :operation operation
                                :problem (apply #'format nil control arguments)))

;;; Specifications

(defstruct (muproc-spec (:constructor make-muproc-spec (name function arglist)))
  name function arglist)

(defstruct (supervisor-spec (:constructor make-supervisor-spec
                                (strategy max-restarts period children)))
  strategy max-restarts period children)

(setf (documentation 'supervisor-spec-p 'function)
      "True if OBJECT is a supervisor specification made by SUPERVISOR.")

(defstruct (child-spec (:constructor make-child-spec (restart shutdown start)))
  restart shutdown start)

(defun check-child-spec (spec operation)
  "SPEC, a list (RESTART-TYPE SHUTDOWN START), as a child spec."
  (unless (and (listp spec) (= 3 (list-length spec)))
    (spec-error operation "the child spec ~s is not a list (RESTART-TYPE SHUTDOWN ~
                           CHILD)." spec))
  (destructuring-bind (restart shutdown start) spec
    (unless (member restart '(:permanent :transient :temporary))
      (spec-error operation "bad restart type ~s in ~s: expected :PERMANENT, ~
                             :TRANSIENT or :TEMPORARY." restart spec))
    (unless (or (member shutdown '(:kill :wait-forever)) (and (realp shutdown) (>= shutdown 0)))
      (spec-error operation "bad shutdown ~s in ~s: expected :KILL, :WAIT-FOREVER or ~
                             seconds." shutdown spec))
    (unless (or (muproc-spec-p start) (supervisor-spec-p start))
      (spec-error operation "bad child ~s in ~s: expected (SUPERVISED-MUPROC ...) or ~
                             (SUPERVISOR ...)." start spec))
    (make-child-spec restart shutdown start)))

(defmacro supervised-muproc (name function arglist)
  "A child specification's start part: a muproc named NAME (not evaluated)
applying FUNCTION to ARGLIST.  NAME may be NIL for anonymous children."
  `(make-muproc-spec ',name ,function ,arglist))

(defun child-spec-form (child)
  "The form making the child spec list that CHILD, an argument of the
SUPERVISOR macro, stands for.  A list of three elements is the seed's
literal spec (RESTART-TYPE SHUTDOWN START-FORM), each part evaluated; any
other form (muproc 0.2's (list :permanent :kill ...), a variable) is
evaluated to such a list.  A three-element call of a function would be
both: refused."
  (if (and (consp child) (eql 3 (list-length child)))
      (if (and (symbolp (first child)) (not (keywordp (first child)))
               (fboundp (first child)))
          (error 'supervisor-spec-error
                 :operation "SUPERVISOR"
                 :problem (format nil "the child ~s is ambiguous: as a spec its restart ~
                                       type would be the variable ~s, as a form it calls ~
                                       ~s.  Write the restart type as a keyword, or make ~
                                       the spec with (list ...)."
                                  child (first child) (first child)))
          `(list ,@child))
      child))

(defmacro supervisor (strategy max-restarts period-seconds &rest children)
  "A supervisor specification, written as on the seed's slides:
  (supervisor :all-for-one 2 5
    (:permanent :kill (supervised-muproc proc1 #'proc1 ()))
    (:permanent 10 (supervisor :one-for-one 1 5 ...)))
STRATEGY (:ONE-FOR-ONE, :ALL-FOR-ONE, :REST-FOR-ONE or
:SIMPLE-ONE-FOR-ONE), no more than MAX-RESTARTS restarts within
PERIOD-SECONDS (more make the supervisor stop its children and exit with
:TOO-MANY-RESTARTS), and CHILDREN, each (RESTART-TYPE SHUTDOWN CHILD), its
three parts evaluated, with CHILD a SUPERVISED-MUPROC or a nested
SUPERVISOR.  A child that is not a three-element list is a form evaluated
to such a list (muproc 0.2 wrote (list :permanent :kill ...)).  Children
start in order and stop in reverse order.  :SIMPLE-ONE-FOR-ONE takes one
child spec, a template for children started by SUPERVISOR-START-CHILD.
Signals SUPERVISOR-SPEC-ERROR for a bad specification."
  `(make-supervisor ,strategy ,max-restarts ,period-seconds
                    (list ,@(mapcar #'child-spec-form children))))

(defun make-supervisor (strategy max-restarts period-seconds child-specs)
  "The supervisor specification the SUPERVISOR macro describes."
  (flet ((bad (what value expected)
           (spec-error "SUPERVISOR" "bad ~a ~s: expected ~a." what value expected)))
    (unless (member strategy '(:one-for-one :all-for-one :rest-for-one :simple-one-for-one))
      (bad "strategy" strategy ":ONE-FOR-ONE, :ALL-FOR-ONE, :REST-FOR-ONE or :SIMPLE-ONE-FOR-ONE"))
    (unless (typep max-restarts '(integer 0))
      (bad "restart count" max-restarts "an integer, 0 or more"))
    (unless (typep period-seconds '(real (0)))
      (bad "period" period-seconds "seconds, more than 0")))
  (when (and (eq strategy :simple-one-for-one) (/= (length child-specs) 1))
    (spec-error "SUPERVISOR" ":SIMPLE-ONE-FOR-ONE needs exactly one child specification."))
  (make-supervisor-spec strategy max-restarts period-seconds
                        (mapcar (lambda (spec) (check-child-spec spec "SUPERVISOR"))
                                child-specs)))

(defun spec-label (start)
  "The seed's names: a muproc's name, or {A*B*...} for a supervisor."
  (if (muproc-spec-p start)
      (string (or (muproc-spec-name start) "-"))
      (format nil "{~{~a~^*~}}"
              (mapcar (lambda (c) (spec-label (child-spec-start c)))
                      (supervisor-spec-children start)))))

;;; Running

(defstruct (child (:constructor make-child (spec)))
  spec
  (muproc nil)
  (extra-args '())
  (starts 0))                ; for SUPERVISOR-TREE: restarts are the later starts

(defstruct (state (:constructor make-state (spec label)))
  spec label
  (children '())            ; in start order
  (restarts '())            ; times of recent restarts, newest first
  (restarting nil))

(defmethod print-object ((state state) stream)
  (let ((spec (state-spec state)))
    (print-unreadable-object (state stream)
      (format stream "SUPERVISOR ~a ~a:~d:~a ~{~a~^:~} ~:[STABLE~;RESTARTING~]"
              (state-label state) (supervisor-spec-strategy spec)
              (supervisor-spec-max-restarts spec) (supervisor-spec-period spec)
              (mapcar (lambda (c) (if (child-live-p c) "UP" "DOWN")) (state-children state))
              (state-restarting state)))))

(defun child-live-p (child)
  (and (child-muproc child) (muproc-alive-p (child-muproc child))))

(defun start-child-muproc (child)
  "Start CHILD linked to the current supervisor, and return its muproc.  It
is recorded as CHILD's muproc before any interrupt can act: a kill of the
supervisor right after the spawn then finds it to kill.  A supervisor
child has started only once its own children have: we wait for it to say
so (or die), so that siblings start in order, as in OTP."
  (let ((start (child-spec-start (child-spec child))))
    (incf (child-starts child))
    (if (muproc-spec-p start)
        (sb-sys:without-interrupts
          (setf (child-muproc child)
                (muproc-spawn (muproc-spec-name start) (muproc-spec-function start)
                              (append (muproc-spec-arglist start) (child-extra-args child))
                              :link t)))
        (let ((supervisor (sb-sys:without-interrupts
                            (setf (child-muproc child)
                                  (spawn-supervisor start :link t
                                                          :parent (muproc-current-process))))))
          (mumsg-receive (from)
            ((supervisor-started) (eq supervisor-started supervisor)
             supervisor)
            ((terminated reason) (eq terminated supervisor)
             ;; Its notice is consumed: it is no longer ours to stop.
             (setf (child-muproc child) nil)
             (muproc-exit (list :child-start-failed (spec-label start) reason))))))))

(defun await-exit-notice (muproc timeout)
  "Wait up to TIMEOUT seconds (NIL: forever) for the exit notice of our
linked MUPROC; true if it came, and the reason it carried."
  (mumsg-receive (from :timeout timeout)
    ((terminated reason) (eq terminated muproc) (values t reason))
    (:timeout nil)))

(defun shut-down-child (child)
  "Stop CHILD as its shutdown spec says, consume its exit notice, and
return the reason it exited with.  CHILD keeps its muproc until then, so
that a kill of the supervisor meanwhile kills it (see STOP-CHILDREN)."
  (let ((muproc (child-muproc child))
        (shutdown (child-spec-shutdown (child-spec child))))
    (when muproc
      (if (eq shutdown :kill)
          (muproc-kill muproc :supervisor-kill)
          (muproc-exit *supervisor-shutdown-reason* muproc))
      (multiple-value-bind (exited reason)
          (await-exit-notice muproc (if (realp shutdown) shutdown nil))
        (unless exited
          (muproc-kill muproc :supervisor-kill)
          (setf reason (nth-value 1 (await-exit-notice muproc nil))))
        (setf (child-muproc child) nil)
        reason))))

(defun kill-children (children)
  "Kill the running CHILDREN at once, every one of them whatever interrupts
us (kills are never trapped, so none can refuse), then wait until they
have exited, so that their names are free for whoever restarts them."
  (let ((muprocs (sb-sys:without-interrupts
                   (loop for child in children
                         for muproc = (child-muproc child)
                         when muproc
                           do (muproc-kill muproc :supervisor-kill)
                              (setf (child-muproc child) nil)
                           and collect muproc))))
    (mapc #'muproc-wait-for-exit muprocs)))

(defun stop-children (children)
  "Stop CHILDREN in reverse order, each as its shutdown spec says and waited
for before the next.  A supervisor being killed must not wait for a child
that may ignore its shutdown: it kills them all instead.  However this
ends (a kill arriving half-way included), no child is left running."
  (let ((remaining (reverse children)))
    (unwind-protect
         (unless (unwinding-from-kill-p)
           (loop while remaining
                 do (shut-down-child (first remaining))
                    (pop remaining)))
      (kill-children remaining))))

(defun initialize (spec &optional parent)
  (let ((state (make-state spec (spec-label spec)))
        (started nil))
    (unwind-protect
         (progn
           (unless (eq (supervisor-spec-strategy spec) :simple-one-for-one)
             (dolist (child-spec (supervisor-spec-children spec))
               (let ((child (make-child child-spec)))
                 (setf (state-children state) (append (state-children state) (list child)))
                 (start-child-muproc child))))
           (setf started t))
      ;; No state, so no TERMINATE: the children started so far are ours to stop.
      (unless started
        (stop-children (state-children state))))
    (when parent
      (mumsg-send parent :supervisor-started (muproc-current-process)))
    state))

(defun terminate (state)
  (stop-children (state-children state))
  (muproc-log-errorstream "SUPERVISOR ~a terminating." state))

(defun abnormal-p (reason)
  (not (member reason (list :normal :shutdown *supervisor-shutdown-reason*))))

(defun restart-wanted-p (child reason)
  (ecase (child-spec-restart (child-spec child))
    (:permanent t)
    (:transient (abnormal-p reason))
    (:temporary nil)))

(defun note-restart (state)
  "Count a restart; exit the supervisor if that is one too many."
  (let* ((spec (state-spec state))
         (now (get-internal-real-time))
         (horizon (- now (* (supervisor-spec-period spec) internal-time-units-per-second))))
    (setf (state-restarts state)
          (cons now (remove-if (lambda (time) (< time horizon)) (state-restarts state))))
    (when (> (length (state-restarts state)) (supervisor-spec-max-restarts spec))
      (muproc-log-errorstream "SUPERVISOR ~a: more than ~d restarts in ~a s, giving up."
                              state (supervisor-spec-max-restarts spec)
                              (supervisor-spec-period spec))
      (muproc-exit :too-many-restarts))))

(defun log-restart (child reason new-muproc)
  "OTP's supervisor report, as one line of the seed's log: which child, why
it ended (REASON is (reason), or NIL if it was not running), its new muproc."
  (muproc-log-errorstream "SUPERVISOR restarted child ~a~@[ (ended with reason ~{~s~})~] as ~a."
                          (spec-label (child-spec-start (child-spec child)))
                          reason new-muproc))

(defun restart-children (state failed reason)
  "Apply the strategy after FAILED (already dead, with REASON) wants a restart."
  (let* ((children (state-children state))
         (affected (ecase (supervisor-spec-strategy (state-spec state))
                     ((:one-for-one :simple-one-for-one) (list failed))
                     (:all-for-one children)
                     (:rest-for-one (member failed children))))
         (reasons (list (cons failed (list reason)))))
    (setf (state-restarting state) t)
    (unwind-protect
         (progn
           (dolist (child (reverse (remove failed affected)))
             (when (child-muproc child)
               (push (cons child (list (shut-down-child child))) reasons)))
           (dolist (child affected)
             (log-restart child (cdr (assoc child reasons)) (start-child-muproc child))))
      (setf (state-restarting state) nil))))

(defun linked-exit (state terminated reason)
  (let ((child (and terminated
                    (find terminated (state-children state) :key #'child-muproc))))
    (cond
      ((null child)
       ;; Our parent, or whoever told us to exit: stop the tree.
       (muproc-exit reason))
      ((restart-wanted-p child reason)
       (setf (child-muproc child) nil)
       (note-restart state)
       (restart-children state child reason))
      (t
       (setf (child-muproc child) nil)
       (when (or (eq (child-spec-restart (child-spec child)) :temporary)
                 (eq (supervisor-spec-strategy (state-spec state)) :simple-one-for-one))
         (setf (state-children state) (remove child (state-children state))))))))

;;; Starting supervisors

(defvar *supervisors* (make-hash-table :test 'eq :weakness :key :synchronized t)
  "Every supervisor muproc (-> T), so that an operation given a worker
fails at once instead of calling a muproc that never answers.")

(defun spawn-supervisor (spec &key link errorstream parent)
  "Spawn a supervisor for SPEC; with PARENT, it sends PARENT
(:supervisor-started itself) once its children have started."
  (let ((supervisor (muproc-spawn (make-symbol (spec-label spec))
                                  (lambda ()
                                    (muproc-generic-start :initargs (list spec parent)
                                                          :package "MUPROC.SUPERVISOR"))
                                  nil
                                  :trap-exits t :link link :errorstream errorstream)))
    (setf (gethash supervisor *supervisors*) t)
    supervisor))

(defun supervisor-start (spec &key errorstream link)
  "Start the supervision tree SPEC (made by SUPERVISOR) and return its top
supervisor, a muproc named like {PROC1*PROC2*{PROC31*PROC32}}.  ERRORSTREAM
is the tree's errorstream; LINK links it to the calling muproc."
  (unless (supervisor-spec-p spec)
    (spec-error "SUPERVISOR-START" "~s is not a supervisor specification: make one ~
                                    with (SUPERVISOR strategy max-restarts period ~
                                    child...)." spec))
  (spawn-supervisor spec :link link :errorstream errorstream))

;;; Run-time management: calls to the supervisor (from inside a muproc).

(defun find-child (state designator)
  (or (find-if (lambda (child)
                 (or (eq (child-muproc child) designator)
                     (let ((start (child-spec-start (child-spec child))))
                       (and (symbolp designator) designator
                            (muproc-spec-p start)
                            (eq (muproc-spec-name start) designator)))))
               (state-children state))
      (error "No child ~s in ~a." designator state)))

(muproc-define-call-handler %start-child (state from spec-or-args)
  (let ((child (if (eq (supervisor-spec-strategy (state-spec state)) :simple-one-for-one)
                   (let ((child (make-child (first (supervisor-spec-children (state-spec state))))))
                     (setf (child-extra-args child) spec-or-args)
                     child)
                   (make-child (check-child-spec spec-or-args "SUPERVISOR-START-CHILD")))))
    (prog1 (start-child-muproc child) ; a failed start adds nothing
      (setf (state-children state) (append (state-children state) (list child))))))

(muproc-define-call-handler %terminate-child (state from designator)
  (let ((child (find-child state designator)))
    (shut-down-child child)
    ;; As OTP: a dynamic or temporary child's spec goes with it.
    (when (or (eq (supervisor-spec-strategy (state-spec state)) :simple-one-for-one)
              (eq (child-spec-restart (child-spec child)) :temporary))
      (setf (state-children state) (remove child (state-children state))))
    t))

(muproc-define-call-handler %restart-child (state from designator)
  (let ((child (find-child state designator)))
    (when (child-live-p child)
      (error "Child ~s of ~a is running." designator state))
    (start-child-muproc child)))

(muproc-define-call-handler %delete-child (state from designator)
  (let ((child (find-child state designator)))
    (when (child-live-p child)
      (error "Child ~s of ~a is running: terminate it first." designator state))
    (setf (state-children state) (remove child (state-children state)))
    t))

(muproc-define-call-handler %which-children (state from)
  (mapcar (lambda (child)
            (let ((start (child-spec-start (child-spec child))))
              (list (if (muproc-spec-p start) (muproc-spec-name start) (spec-label start))
                    (and (child-live-p child) (child-muproc child))
                    (child-spec-restart (child-spec child))
                    (if (muproc-spec-p start) :worker :supervisor))))
          (state-children state)))

(defun call-supervisor (operation supervisor handler &rest args)
  "Call HANDLER of SUPERVISOR (a supervisor muproc, or its name) with
ARGS, without a timeout (as OTP: shutdowns may be long).  Errors name
OPERATION, the operator the user called; a live muproc that is not a
supervisor is refused at once (NOT-A-SUPERVISOR)."
  (unless (in-muproc-p)
    (error 'muproc-not-in-muproc :operation operation))
  (let ((muproc (typecase supervisor
                  (muproc supervisor)
                  (symbol (muproc-find supervisor)))))
    (when (and muproc (muproc-alive-p muproc) (not (gethash muproc *supervisors*)))
      (error 'not-a-supervisor :object supervisor :operation operation))
    (unless muproc
      (if (symbolp supervisor)
          (error 'generic-server-not-running :server supervisor :handler operation
                                             :reason :noproc)
          (error 'not-a-supervisor :object supervisor :operation operation)))
    (let ((*muproc-generic-call-timeout* nil))
      (apply #'muproc-generic-call muproc handler args))))

(defun supervisor-start-child (supervisor spec-or-args)
  "Add a child to SUPERVISOR and start it; return its muproc.  For
:SIMPLE-ONE-FOR-ONE, SPEC-OR-ARGS is a list of arguments appended to the
template's arglist; otherwise a child spec list (RESTART-TYPE SHUTDOWN
CHILD).  Call from inside a muproc; waits without a timeout."
  (call-supervisor "SUPERVISOR-START-CHILD" supervisor '%start-child spec-or-args))

(defun supervisor-terminate-child (supervisor child)
  "Stop CHILD (its name or muproc) of SUPERVISOR as its shutdown spec says;
it is not restarted, and its spec stays (see SUPERVISOR-RESTART-CHILD).
Call from inside a muproc; waits without a timeout."
  (call-supervisor "SUPERVISOR-TERMINATE-CHILD" supervisor '%terminate-child child))

(defun supervisor-restart-child (supervisor child)
  "Start again the terminated CHILD (its name) of SUPERVISOR; return its
muproc.  Call from inside a muproc; waits without a timeout."
  (call-supervisor "SUPERVISOR-RESTART-CHILD" supervisor '%restart-child child))

(defun supervisor-delete-child (supervisor child)
  "Remove the terminated CHILD's spec from SUPERVISOR.  Call from inside a
muproc; waits without a timeout."
  (call-supervisor "SUPERVISOR-DELETE-CHILD" supervisor '%delete-child child))

(defun supervisor-which-children (supervisor)
  "A list of (NAME MUPROC-OR-NIL RESTART-TYPE :WORKER-OR-:SUPERVISOR) for
SUPERVISOR's children, in start order.  Call from inside a muproc; waits
without a timeout.  Signals NOT-A-SUPERVISOR at once for a muproc that is
not a supervisor."
  (call-supervisor "SUPERVISOR-WHICH-CHILDREN" supervisor '%which-children))

(defun supervisor-count-children (supervisor)
  "A plist (:SPECS n :ACTIVE n :SUPERVISORS n :WORKERS n) about
SUPERVISOR's children.  Call from inside a muproc; waits without a timeout."
  (let ((children (call-supervisor "SUPERVISOR-COUNT-CHILDREN" supervisor
                                   '%which-children)))
    (list :specs (length children)
          :active (count-if #'second children)
          :supervisors (count :supervisor children :key #'fourth)
          :workers (count :worker children :key #'fourth))))
