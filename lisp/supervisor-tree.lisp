;;;; supervisor-tree.lisp - drawing supervision trees, as text or
;;;; Graphviz, from any thread.
;;;;
;;;; Each supervisor describes its own children, between two messages,
;;;; through a generic-server state request: the picture of one
;;;; supervisor is consistent, and a supervisor busy restarting (or
;;;; waiting for a slow child to stop) is drawn as busy after a bounded
;;;; wait instead of holding the caller.

(in-package #:muproc.supervisor)

(defun describe-children (state)
  "In the supervisor: a snapshot of STATE for drawing."
  (let ((spec (state-spec state)))
    (list :label (state-label state)
          :strategy (supervisor-spec-strategy spec)
          :max-restarts (supervisor-spec-max-restarts spec)
          :period (supervisor-spec-period spec)
          :recent-restarts (length (state-restarts state))
          :children
          (mapcar (lambda (child)
                    (let ((start (child-spec-start (child-spec child))))
                      (list :name (if (muproc-spec-p start)
                                      (string (or (muproc-spec-name start) "-"))
                                      (spec-label start))
                            :kind (if (muproc-spec-p start) :worker :supervisor)
                            :muproc (child-muproc child)
                            :restart (child-spec-restart (child-spec child))
                            :shutdown (child-spec-shutdown (child-spec child))
                            :restarts (max 0 (1- (child-starts child))))))
                  (state-children state)))))

(defun supervisor-snapshot (supervisor timeout)
  "SUPERVISOR's snapshot (see DESCRIBE-CHILDREN), or NIL if it did not
answer within TIMEOUT seconds."
  (handler-case
      (muproc.generic-server::call-with-server-state
       supervisor 'supervisor-tree
       (lambda (state) (values (describe-children state) state))
       timeout)
    (generic-server-error () nil)))

;;; The tree as nodes: (:id :label :details :children), built once and
;;; drawn as text or dot.

(defun pid-label (muproc)
  (if muproc (format nil "<~a>" (muproc.internal:muproc-pid-label muproc)) "-"))

(defun shutdown-text (shutdown)
  (if (realp shutdown) (format nil "~a s" shutdown) (string-downcase shutdown)))

(defun supervision-text (snapshot timeout)
  (if snapshot
      (destructuring-bind (&key strategy max-restarts period recent-restarts &allow-other-keys)
          snapshot
        (format nil "~(~a~), intensity ~d in ~a s, ~d recent restart~:p"
                strategy max-restarts period recent-restarts))
      (format nil "busy: no answer within ~a s" timeout)))

(defun muproc-state-text (muproc)
  (if muproc (string-downcase (muproc-state muproc)) "not running"))

(defun supervisor-node (supervisor timeout &optional child id)
  "The node of SUPERVISOR, whose entry in its parent is CHILD (a child
plist) if it has a parent, and its subtree."
  ;; Its state before it answers: answering, it runs.
  (let* ((state (muproc-state-text supervisor))
         (snapshot (and supervisor (supervisor-snapshot supervisor timeout))))
    (list :id id
          :muproc supervisor
          :label (if child
                     (getf child :name)
                     (or (getf snapshot :label) (string (muproc-name supervisor))))
          :details (cond ((null child)
                          (format nil "supervisor, ~a; ~a" state
                                  (supervision-text snapshot timeout)))
                         (supervisor
                          (format nil "~a; ~a" (child-text child state)
                                  (supervision-text snapshot timeout)))
                         (t (child-text child)))
          :children (loop for c in (getf snapshot :children)
                          for i from 1
                          collect (child-node c timeout
                                              (format nil "~a.~d" (or id "top") i))))))

(defun child-text (child &optional state)
  "CHILD's line; STATE, if given, the state its muproc had earlier."
  (destructuring-bind (&key kind muproc restart shutdown restarts &allow-other-keys) child
    (format nil "~(~a, ~a~), shutdown ~a, ~a, ~d restart~:p"
            kind restart (shutdown-text shutdown) (or state (muproc-state-text muproc))
            restarts)))

(defun child-node (child timeout id)
  (let ((muproc (getf child :muproc)))
    (if (eq (getf child :kind) :supervisor)
        (supervisor-node muproc timeout child id)
        (list :id id :muproc muproc :label (getf child :name)
              :details (child-text child) :children '()))))

(defun node-muprocs (node)
  "Every muproc in NODE's tree."
  (let ((m (getf node :muproc)))
    (append (and m (list m)) (mapcan #'node-muprocs (getf node :children)))))

;;; Drawing

(defun draw-text (node stream &optional (prefix "") (last t) (top t))
  (format stream "~a~:[~:[|-- ~;`-- ~]~;~*~]~a ~a ~a~%"
          prefix top last (getf node :label) (pid-label (getf node :muproc))
          (getf node :details))
  (let ((children (getf node :children))
        (inner (if top prefix (concatenate 'string prefix (if last "    " "|   ")))))
    (loop for (child . more) on children
          do (draw-text child stream inner (null more) nil))))

(defun dot-string (text)
  "TEXT as a Graphviz quoted string."
  (with-output-to-string (s)
    (write-char #\" s)
    (loop for c across text
          do (case c
               ((#\" #\\) (write-char #\\ s) (write-char c s))
               (#\Newline (write-string "\\n" s))
               (t (write-char c s))))
    (write-char #\" s)))

(defun node-dot-id (node)
  (let ((m (getf node :muproc)))
    (dot-string (if m (muproc.internal:muproc-pid-label m) (getf node :id)))))

(defun draw-dot-nodes (node stream)
  (format stream "  ~a [label=~a~:[~;, shape=ellipse~]];~%"
          (node-dot-id node)
          (dot-string (format nil "~a ~a~%~a" (getf node :label)
                              (pid-label (getf node :muproc)) (getf node :details)))
          (search "intensity" (getf node :details)))
  (dolist (child (getf node :children))
    (format stream "  ~a -> ~a;~%" (node-dot-id node) (node-dot-id child))
    (draw-dot-nodes child stream)))

(defun draw (nodes format stream)
  (ecase format
    (:text (dolist (node nodes) (draw-text node stream)))
    (:dot (format stream "digraph \"supervision\" {~%  node [shape=box];~%")
     (dolist (node nodes) (draw-dot-nodes node stream))
     (format stream "}~%"))))

(defmacro with-output-destination ((var destination) &body body)
  "BODY writes to VAR: DESTINATION, or a string returned when it is NIL."
  `(if ,destination
       (let ((,var ,destination)) ,@body nil)
       (with-output-to-string (,var) ,@body)))

(defun supervisor-tree (supervisor &key (format :text) (stream *standard-output*) (timeout 1))
  "Draw the supervision tree under SUPERVISOR (a supervisor muproc or its
name) on STREAM (NIL: return it as a string).  FORMAT :TEXT draws one
line per muproc: its name, pid and, for a child, its kind, restart type,
shutdown, state and how many times it was restarted; for a supervisor,
its strategy, intensity (at most so many restarts in so many seconds) and
its recent restarts.  FORMAT :DOT writes the same as a Graphviz digraph.
Each supervisor describes itself between two messages; one that does not
answer within TIMEOUT seconds (busy restarting, say) is drawn as busy.
Callable from any thread, the REPL's included."
  (check-type format (member :text :dot))
  (let ((sup (muproc.internal:find-muproc-or-lose supervisor "SUPERVISOR-TREE")))
    (with-output-destination (out stream)
      (draw (list (supervisor-node sup timeout)) format out))))

(defun muproc:muproc-tree (&key (format :text) (stream *standard-output*) (timeout 1))
  "Draw every supervision tree in the image (see SUPERVISOR-TREE), then
list the live muprocs outside any tree, on STREAM (NIL: return it as a
string).  Callable from any thread."
  (check-type format (member :text :dot))
  (let* ((supervisors (muproc.internal:generic-servers "MUPROC.SUPERVISOR"))
         (nodes (loop for sup in supervisors
                      collect (supervisor-node sup timeout)))
         (inner (loop for node in nodes
                      append (rest (node-muprocs node))))
         (roots (remove-if (lambda (node) (member (getf node :muproc) inner)) nodes))
         (in-trees (mapcan #'node-muprocs roots))
         (others (sort (set-difference (muproc-all-processes) in-trees)
                       #'< :key #'muproc.internal:muproc-id)))
    (with-output-destination (out stream)
      (draw roots format out)
      (when (eq format :text)
        (format out "~:[No muproc outside a tree.~;Outside any tree:~]~%" others)
        (dolist (m others)
          (format out "  ~a ~a ~(~a~)~%" (muproc.internal:muproc-label m) (pid-label m)
                  (muproc-state m)))))))
