;;;; supervisor.lisp - the seed's supervision DSL with OTP's strategies,
;;;; restart types, intensity and shutdown.
;;;;
;;;; A supervisor is a generic server (package MUPROC.SUPERVISOR is its
;;;; server type) that traps exits: INITIALIZE starts the children in
;;;; order, LINKED-EXIT applies the strategy when one ends, TERMINATE stops
;;;; them in reverse order, and call handlers manage children at run time.

(defpackage #:muproc.supervisor
  (:use #:common-lisp #:muproc #:muproc.generic-server)
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
           #:supervisor-tree))

(in-package #:muproc.supervisor)

(defvar *supervisor-shutdown-reason* :supervisor-shutdown
  "The exit reason a supervisor sends a child it shuts down (trappable,
and not abnormal for :TRANSIENT children).  A child that doesn't go in
time is killed with reason :SUPERVISOR-KILL.")

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

(defun check-child-spec (spec)
  (destructuring-bind (restart shutdown start) spec
    (unless (member restart '(:permanent :transient :temporary))
      (error "Bad restart type ~s: expected :PERMANENT, :TRANSIENT or :TEMPORARY." restart))
    (unless (or (member shutdown '(:kill :wait-forever)) (and (realp shutdown) (>= shutdown 0)))
      (error "Bad shutdown ~s: expected :KILL, :WAIT-FOREVER or seconds." shutdown))
    (unless (or (muproc-spec-p start) (supervisor-spec-p start))
      (error "Bad child ~s: expected (SUPERVISED-MUPROC ...) or (SUPERVISOR ...)." start))
    (make-child-spec restart shutdown start)))

(defmacro supervised-muproc (name function arglist)
  "A child specification's start part: a muproc named NAME (not evaluated)
applying FUNCTION to ARGLIST.  NAME may be NIL for anonymous children."
  `(make-muproc-spec ',name ,function ,arglist))

(defun supervisor (strategy max-restarts period-seconds &rest child-specs)
  "A supervisor specification: STRATEGY (:ONE-FOR-ONE, :ALL-FOR-ONE,
:REST-FOR-ONE or :SIMPLE-ONE-FOR-ONE), no more than MAX-RESTARTS restarts
within PERIOD-SECONDS (more make the supervisor stop its children and exit
with :TOO-MANY-RESTARTS), and CHILD-SPECS, each (RESTART-TYPE SHUTDOWN
CHILD) with CHILD a SUPERVISED-MUPROC or a nested SUPERVISOR.  Children
start in order and stop in reverse order.  :SIMPLE-ONE-FOR-ONE takes one
child spec, a template for children started by SUPERVISOR-START-CHILD."
  (check-type strategy (member :one-for-one :all-for-one :rest-for-one :simple-one-for-one))
  (check-type max-restarts (integer 0))
  (check-type period-seconds (real (0)))
  (when (and (eq strategy :simple-one-for-one) (/= (length child-specs) 1))
    (error ":SIMPLE-ONE-FOR-ONE needs exactly one child specification."))
  (make-supervisor-spec strategy max-restarts period-seconds
                        (mapcar #'check-child-spec child-specs)))

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
  "Start CHILD linked to the current supervisor.  A supervisor child has
started only once its own children have: we wait for it to say so (or
die), so that siblings start in order, as in OTP."
  (let ((start (child-spec-start (child-spec child))))
    (incf (child-starts child))
    (setf (child-muproc child)
          (if (muproc-spec-p start)
              (muproc-spawn (muproc-spec-name start) (muproc-spec-function start)
                            (append (muproc-spec-arglist start) (child-extra-args child))
                            :link t)
              (let ((supervisor (spawn-supervisor start :link t
                                                        :parent (muproc-current-process))))
                (mumsg-receive (from)
                  ((supervisor-started) (eq supervisor-started supervisor)
                   supervisor)
                  ((terminated reason) (eq terminated supervisor)
                   (muproc-exit (list :child-start-failed (spec-label start) reason)))))))))

(defun await-exit-notice (muproc timeout)
  "Wait up to TIMEOUT seconds (NIL: forever) for the exit notice of our
linked MUPROC; true if it came."
  (mumsg-receive (from :timeout timeout)
    ((terminated reason) (eq terminated muproc) t)
    (:timeout nil)))

(defun shut-down-child (child)
  "Stop CHILD as its shutdown spec says, and consume its exit notice."
  (let ((muproc (child-muproc child))
        (shutdown (child-spec-shutdown (child-spec child))))
    (when muproc
      (setf (child-muproc child) nil)
      (if (eq shutdown :kill)
          (muproc-kill muproc :supervisor-kill)
          (muproc-exit *supervisor-shutdown-reason* muproc))
      (unless (await-exit-notice muproc (if (realp shutdown) shutdown nil))
        (muproc-kill muproc :supervisor-kill)
        (await-exit-notice muproc nil)))))

(defun shut-down-children (children)
  "Stop CHILDREN in reverse order."
  (mapc #'shut-down-child (reverse children)))

(defun initialize (spec &optional parent)
  (let ((state (make-state spec (spec-label spec))))
    (unless (eq (supervisor-spec-strategy spec) :simple-one-for-one)
      (dolist (child-spec (supervisor-spec-children spec))
        (let ((child (make-child child-spec)))
          (setf (state-children state) (append (state-children state) (list child)))
          (start-child-muproc child))))
    (when parent
      (mumsg-send parent :supervisor-started (muproc-current-process)))
    state))

(defun terminate (state)
  (shut-down-children (state-children state))
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

(defun restart-children (state failed)
  "Apply the strategy after FAILED (already dead) wants a restart."
  (let* ((children (state-children state))
         (affected (ecase (supervisor-spec-strategy (state-spec state))
                     ((:one-for-one :simple-one-for-one) (list failed))
                     (:all-for-one children)
                     (:rest-for-one (member failed children)))))
    (setf (state-restarting state) t)
    (unwind-protect
         (progn
           (shut-down-children (remove failed affected))
           (dolist (child affected)
             (start-child-muproc child)))
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
       (restart-children state child))
      (t
       (setf (child-muproc child) nil)
       (when (or (eq (child-spec-restart (child-spec child)) :temporary)
                 (eq (supervisor-spec-strategy (state-spec state)) :simple-one-for-one))
         (setf (state-children state) (remove child (state-children state))))))))

;;; Starting supervisors

(defun spawn-supervisor (spec &key link errorstream parent)
  "Spawn a supervisor for SPEC; with PARENT, it sends PARENT
(:supervisor-started itself) once its children have started."
  (muproc-spawn (make-symbol (spec-label spec))
                (lambda ()
                  (muproc-generic-start :initargs (list spec parent)
                                        :package "MUPROC.SUPERVISOR"))
                nil
                :trap-exits t :link link :errorstream errorstream))

(defun supervisor-start (spec &key errorstream link)
  "Start the supervision tree SPEC (made by SUPERVISOR) and return its top
supervisor, a muproc named like {PROC1*PROC2*{PROC31*PROC32}}.  ERRORSTREAM
is the tree's errorstream; LINK links it to the calling muproc."
  (check-type spec supervisor-spec)
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
                   (make-child (check-child-spec spec-or-args)))))
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

(defun supervisor-start-child (supervisor spec-or-args)
  "Add a child to SUPERVISOR and start it; return its muproc.  For
:SIMPLE-ONE-FOR-ONE, SPEC-OR-ARGS is a list of arguments appended to the
template's arglist; otherwise a child spec list (RESTART-TYPE SHUTDOWN
CHILD).  Call from inside a muproc; waits without a timeout."
  (let ((*muproc-generic-call-timeout* nil)) ; as OTP: shutdowns may be long
    (%start-child* supervisor spec-or-args)))

(defun supervisor-terminate-child (supervisor child)
  "Stop CHILD (its name or muproc) of SUPERVISOR as its shutdown spec says;
it is not restarted, and its spec stays (see SUPERVISOR-RESTART-CHILD).
Call from inside a muproc; waits without a timeout."
  (let ((*muproc-generic-call-timeout* nil)) ; as OTP: shutdowns may be long
    (%terminate-child* supervisor child)))

(defun supervisor-restart-child (supervisor child)
  "Start again the terminated CHILD (its name) of SUPERVISOR; return its
muproc.  Call from inside a muproc; waits without a timeout."
  (let ((*muproc-generic-call-timeout* nil)) ; as OTP: shutdowns may be long
    (%restart-child* supervisor child)))

(defun supervisor-delete-child (supervisor child)
  "Remove the terminated CHILD's spec from SUPERVISOR.  Call from inside a
muproc."
  (let ((*muproc-generic-call-timeout* nil)) ; as OTP: shutdowns may be long
    (%delete-child* supervisor child)))

(defun supervisor-which-children (supervisor)
  "A list of (NAME MUPROC-OR-NIL RESTART-TYPE :WORKER-OR-:SUPERVISOR) for
SUPERVISOR's children, in start order.  Call from inside a muproc; waits without a timeout."
  (let ((*muproc-generic-call-timeout* nil)) ; as OTP: shutdowns may be long
    (%which-children* supervisor)))

(defun supervisor-count-children (supervisor)
  "A plist (:SPECS n :ACTIVE n :SUPERVISORS n :WORKERS n) about
SUPERVISOR's children.  Call from inside a muproc; waits without a timeout."
  (let ((children (supervisor-which-children supervisor)))
    (list :specs (length children)
          :active (count-if #'second children)
          :supervisors (count :supervisor children :key #'fourth)
          :workers (count :worker children :key #'fourth))))
