;;;; mailbox.lisp - MUMSG-SEND, MUMSG-RECEIVE and the inport.

(in-package #:muproc)

(defvar *muproc-packet* nil
  "Inside the body of a MUMSG-RECEIVE clause: the mumsg that matched.")

(defun timeout-deadline (timeout)
  "The libmuproc deadline for TIMEOUT seconds (NIL: none; 0: don't wait)."
  (wait-deadline timeout "MUMSG-RECEIVE"))

;;; Sending

(defun destination-pid (destination &optional (operation "MUMSG-SEND"))
  "The pid DESTINATION designates, or NIL if it is a muproc known to have
terminated.  Signals MUPROC-UNKNOWN-PORT-NAME for an unregistered port;
other designators are as for FIND-MUPROC-OR-LOSE (errors name OPERATION)."
  (typecase destination
    (muproc (unless (%muproc-exited destination) (%muproc-pid destination)))
    (keyword
     (cffi:with-foreign-object (out :uint64)
       (let ((rc (muproc.ffi:%whereis (keyword-atom destination) out)))
         (if (zerop rc)
             (cffi:mem-ref out :uint64)
             (error 'muproc-unknown-port-name :name destination
                                              :operation operation)))))
    (t (destination-pid (find-muproc-or-lose destination operation)))))

(defun send-to-terminated (destination &optional pid)
  "Signal that DESTINATION (whose pid was PID) has terminated; return NIL."
  (signal 'muproc-send-to-terminated-muproc-condition
          :muproc (cond ((muproc-p destination) destination)
                        (pid (pid-muproc pid))
                        (t destination)))
  nil)

(defun receiver-kind (pid destination)
  "The libmuproc kind of muproc PID: known from DESTINATION when that is
its muproc object (no call then), else asked of libmuproc (negative: no
such muproc)."
  (case (and (muproc-p destination) (%muproc-kind destination))
    (:lisp muproc.ffi:+kind-lisp+)
    (:c muproc.ffi:+kind-c+)
    (t (muproc.ffi:%proc-kind pid))))

(defun deliver-plist (pid plist destination &key alias)
  "Encode PLIST (already checked) for muproc PID and send it, directly or
through reply ALIAS.  Returns 0 or the libmuproc code."
  (let ((kind (receiver-kind pid destination)))
    (if (minusp kind)
        kind
        (sb-sys:without-interrupts
          ;; The message is owned here until the send succeeds: no
          ;; interrupt may come between the two.
          (let* ((msg (encode-plist plist (= kind muproc.ffi:+kind-lisp+) destination))
                 (rc (if alias
                         (muproc.ffi:%send-alias pid alias msg)
                         (muproc.ffi:%send pid msg))))
            (unless (zerop rc) (free-message msg))
            rc)))))

(defun mumsg-send (destination &rest plist)
  "Send the mumsg made of PLIST (or PLIST's single element, if that is a
mumsg) to DESTINATION: a muproc, a registered port name (a keyword), the
symbol naming a live muproc, or *MUPROC-INPORT*.  Never blocks.  Returns T
when queued.
An odd-length PLIST or a non-keyword key signals MUMSG-MALFORMED, an
unregistered port name MUPROC-UNKNOWN-PORT-NAME, a symbol no live muproc
has as its name MUPROC-UNKNOWN-NAME, a full bounded inport
MUPROC-INPORT-FULL (restart RETRY), all at the send site.  A terminated
destination signals MUPROC-SEND-TO-TERMINATED-MUPROC-CONDITION (not an
error) and returns NIL.  Values reach a Lisp muproc by reference (EQ); a C
muproc receives them as terms (MUMSG-UNSENDABLE-VALUE if impossible)."
  (when (and plist (null (cdr plist)) (mumsg-p (car plist)))
    (setf plist (mumsg-plist (car plist))))
  (check-plist plist)
  (loop
    (let* ((pid (destination-pid destination))
           (rc (if pid (deliver-plist pid plist destination) muproc.ffi:+esrch+)))
      (cond ((zerop rc)
             (when-traced (self) (trace-sent self destination plist))
             (return t))
            ((= rc muproc.ffi:+esrch+) (return (send-to-terminated destination pid)))
            ((= rc muproc.ffi:+efull+)
             (restart-case
                 (error 'muproc-inport-full
                        :destination destination
                        :capacity (muproc.ffi:%mbox-capacity pid))
               (retry ()
                 :report "Try to send the message again.")))
            (t (error 'muproc-runtime-error :code rc :operation "muproc_send"))))))

;;; Receiving
;;;
;;; The scan position of a receive is libmuproc's receive mark, kept in
;;; the mailbox: whatever user code does to the queue between two calls
;;; (a timer function that receives, a discard), the next call resumes at
;;; the first message not yet examined.  A receive holds no pointer into
;;; the queue across user code but the message its guards look at, and
;;; guards may not receive.  A match is taken only when no signal waits
;;; (muproc_recv_take_mark), and taken, decoded and released without
;;; interrupts: a message is either still queued or its clause runs.

(deftype receive-filter () '(simple-array (unsigned-byte 32) (*)))

(defun make-receive-filter (clauses)
  "The receive filter (see muproc_recv_next) for CLAUSES, a list of (KEYS
FINAL-P): one set per clause, final when the clause has no guard to
evaluate, so that libmuproc takes its matches itself.  A Lisp vector,
pinned for each call, of atom ids valid for the runtime running now (see
RECEIVE-FILTER)."
  (coerce (cons (length clauses)
                (loop for (keys final) in clauses
                      append (cons (logior (length keys)
                                           (if final muproc.ffi:+filter-final+ 0))
                                   (mapcar #'keyword-atom keys))))
          'receive-filter))

(defstruct (receive-filter-cache
            (:constructor make-receive-filter-cache (clauses))
            (:copier nil))
  "A receive form's filter, made again whenever the runtime's atom ids
change (a saved core restarted initialises a new runtime)."
  (clauses '() :read-only t)
  ;; (creation . filter), replaced whole so readers never see a mix.
  (current nil))

(defun receive-filter (cache)
  "The filter of CACHE for the runtime running now."
  (declare (type receive-filter-cache cache))
  (let ((current (receive-filter-cache-current cache)))
    (if (and current (eql (car current) muproc.ffi:*creation*))
        (cdr current)
        (let ((filter (make-receive-filter (receive-filter-cache-clauses cache))))
          (setf (receive-filter-cache-current cache)
                (cons muproc.ffi:*creation* filter))
          filter))))

(defvar *receive-in-progress* nil
  "True while the current muproc is inside a receive's scan (guards
included): signals that run user code wait until the scan allows it.")

(defvar *in-guard* nil
  "True while a receive guard runs: the message it looks at is only
borrowed, so nothing may receive until it returns.")

(defun pid-sender (pid)
  "The muproc of sender PID (NIL for 0), remembered per receiver."
  (unless (zerop pid)
    (let* ((self *current-muproc*)
           (last (and self (%muproc-last-sender self))))
      (if (and last (= (%muproc-pid last) pid))
          last
          (let ((sender (pid-muproc pid)))
            (when self (setf (%muproc-last-sender self) sender))
            sender)))))

(defun view-sender (view)
  "The muproc that sent the message VIEW shows, or NIL."
  (pid-sender (view-sender-pid view)))

(defun check-not-in-guard (operation)
  (when *in-guard*
    (error 'muproc-nested-receive :operation operation)))

(defmacro with-receive-buffers ((out view set) &body body)
  `(cffi:with-foreign-objects ((,out :pointer)
                               (,view :uint8 muproc.ffi:+view-size+)
                               (,set :int32))
     ,@body))

(defun take-match (pid out view)
  "Take the message muproc_recv_next matched and VIEW shows, having
decoded it first: (values 0 plist sender) once taken, or (values
+SIGNALLED+ kind plist) when a signal waits (the message stays queued),
or a libmuproc code.  Without interrupts: a message is either still
queued, or taken, freed and its values in our hands."
  (sb-sys:without-interrupts
    (let* ((plist (view-plist view))
           (sender (view-sender view))
           (sent (view-sent-ns view))
           (rc (muproc.ffi:%recv-take-mark pid out)))
      (cond ((zerop rc)
             (setf (%muproc-committing *current-muproc*) t)
             (free-message (cffi:mem-ref out :pointer) view)
             (values 0 plist sender sent))
            ((= rc muproc.ffi:+signalled+)
             (multiple-value-call #'values rc (consume-signal (cffi:mem-ref out :pointer))))
            (t rc)))))

(defun next-match (pid flags filter deadline out view set)
  "One muproc_recv_next call: (values rc ...) where rc is +TAKEN+ (then
the clause index, plist and sender), +SIGNALLED+ (kind, plist), 0 (a
candidate: VIEW shows it, SET holds its first passing clause) or a
libmuproc code."
  (sb-sys:without-interrupts
    (let ((rc (sb-sys:with-pinned-objects (filter)
                (muproc.ffi:%recv-next pid flags (sb-sys:vector-sap filter)
                                       deadline out view set))))
      (cond ((= rc muproc.ffi:+taken+)
             (let ((msg (cffi:mem-ref out :pointer)))
               (setf (%muproc-committing *current-muproc*) t)
               (unwind-protect
                    (values rc (cffi:mem-ref set :int32) (view-plist view) (view-sender view)
                            (view-sent-ns view))
                 (free-message msg view))))
            ((= rc muproc.ffi:+signalled+)
             (multiple-value-call #'values rc
               (consume-signal (cffi:mem-ref out :pointer) view)))
            (t rc)))))

(defun %receive (filter timeout matcher)
  "Receive the oldest message that matches: MATCHER, called with a view
of a candidate (see muproc_msg_view) and the index of the first clause
whose keys it holds, returns the index of the clause whose guard accepts
it, or NIL.  Clauses without a guard are matched in libmuproc.  Returns
(values index plist sender sent-ns), or :TIMEOUT."
  (declare (function matcher) (type receive-filter filter))
  (let* ((self (current-muproc-or-lose "MUMSG-RECEIVE"))
         (pid (%muproc-pid self))
         (deadline (timeout-deadline timeout))
         (done nil)
         (fresh (logior muproc.ffi:+recv-restart+ muproc.ffi:+recv-take+)))
    (check-not-in-guard "MUMSG-RECEIVE")
    (unwind-protect
         (let ((*receive-in-progress* t)
               (flags fresh))
           (with-receive-buffers (out view set)
             (loop
               (when (%muproc-deferred-signals self)
                 ;; User code may change the queue: scan afresh after it.
                 (run-deferred-signals self)
                 (setf flags fresh))
               (multiple-value-bind (rc a b c d)
                   (next-match pid flags filter deadline out view set)
                 (setf flags muproc.ffi:+recv-take+)
                 (cond
                   ((= rc muproc.ffi:+taken+)
                    (setf done t)
                    (note-taken self b c)
                    (return (values a b c d)))
                   ((zerop rc)
                    (let ((index (let ((*in-guard* t))
                                   (funcall matcher view (cffi:mem-ref set :int32)))))
                      ;; Deferred signals are older than the match: they run first.
                      (when (and index (null (%muproc-deferred-signals self)))
                        (multiple-value-bind (rc a b c) (take-match pid out view)
                          (cond ((zerop rc)
                                 (setf done t)
                                 (note-taken self a b)
                                 (return (values index a b c)))
                                ((= rc muproc.ffi:+signalled+)
                                 (setf flags fresh)
                                 (run-signal a b))
                                ((= rc muproc.ffi:+estate+)
                                 (setf flags fresh))
                                (t (error 'muproc-runtime-error
                                          :code rc :operation "muproc_recv_take_mark")))))))
                   ((= rc muproc.ffi:+signalled+)
                    (setf flags fresh)
                    (run-signal a b))
                   ((= rc muproc.ffi:+etimedout+)
                    (setf done t)
                    (return :timeout))
                   (t (error 'muproc-runtime-error :code rc
                                                   :operation "muproc_recv_next")))))))
      ;; Left by an unwind (a timeout, an error in a guard) with user
      ;; signals still waiting: have them run at the next safe point.
      (unless (or done (null (%muproc-deferred-signals self)))
        (muproc.ffi:%poke-request pid)))))

(declaim (inline clause-begun))
(defun clause-begun ()
  "The clause of a taken message has begun: signals may act again, and
those that came meanwhile are asked for (they act a moment later, inside
the clause)."
  (let ((self *current-muproc*))
    (setf (%muproc-committing self) nil)
    (when (%muproc-signals-after-clause self)
      (setf (%muproc-signals-after-clause self) nil)
      (muproc.ffi:%poke-request (%muproc-pid self)))))

(defun clause-key (variable)
  (intern (symbol-name variable) :keyword))

(defun constant-true-guard-p (guard)
  (and (constantp guard) (eval guard) t))

(defun clause-test (clause view)
  "A form true when the message VIEW shows matches CLAUSE.  Only the
values the guard names are decoded, and none for a constant guard: a
message the clause rejects costs little."
  (let ((variables (first clause))
        (guard (second clause)))
    (if (constant-true-guard-p guard)
        `(view-has-keys-p ,view ',(mapcar #'clause-key variables))
        (let ((indexes (loop for v in variables collect (gensym (symbol-name v)))))
          `(let ,(loop for v in variables
                       for i in indexes
                       collect `(,i (view-find ,view ,(clause-key v))))
             (and ,@indexes
                  (let ,(loop for v in variables
                              for i in indexes
                              collect `(,v (view-value ,view ,i)))
                    (declare (ignorable ,@variables))
                    ,guard)))))))

(defun check-receive-clauses (from clauses timeout-given)
  "Reject at macroexpansion what could never match, naming the problem."
  (flet ((bad (clause problem &rest arguments)
           (error 'muproc-receive-syntax-error
                  :clause clause :problem (apply #'format nil problem arguments))))
    (unless (and from (symbolp from) (not (constantp from)))
      (error 'muproc-receive-syntax-error
             :clause from :problem "FROM must be a variable name"))
    (let ((timeouts (count :timeout clauses :key (lambda (c) (and (consp c) (car c))))))
      (when (> timeouts 1)
        (bad (find :timeout clauses :key #'car) "there is more than one :TIMEOUT clause"))
      (when (and (= timeouts 1) (not timeout-given))
        (bad (find :timeout clauses :key #'car)
             "a :TIMEOUT clause runs only with a :TIMEOUT option: (MUMSG-RECEIVE (~s :TIMEOUT seconds) ...)"
             from)))
    (dolist (clause clauses)
      (cond ((and (consp clause) (eq (car clause) :timeout)))
            ((not (and (consp clause) (listp (first clause))))
             (bad clause "expected ((NAME*) GUARD FORM*)"))
            ((null (cdr clause))
             (bad clause "it has no guard, so it could never match; write (~s T FORM*) to match any such message"
                  (first clause)))
            (t
             (let ((names (first clause)))
               (dolist (name names)
                 (cond ((not (and name (symbolp name)))
                        (bad clause "the key ~s is not a symbol" name))
                       ((keywordp name)
                        (bad clause "the key ~s is a keyword; name a variable: ~s matches the key ~s"
                             name (intern (symbol-name name)) name))
                       ((constantp name)
                        (bad clause "the key ~s names a constant, not a variable" name))))
               (let ((dup (find-if (lambda (n) (> (count n names) 1)) names)))
                 (when dup (bad clause "the key ~s appears twice" dup)))))))))

(defmacro mumsg-receive ((from &key (timeout nil timeout-given)) &body clauses)
  "Receive the oldest message that matches one of CLAUSES, blocking until
one does.  A clause is ((NAME*) GUARD FORM*): it matches a message that
holds a key for every NAME (:NAME for the symbol NAME; present with value
NIL counts) and for which GUARD, evaluated with each NAME bound to its
value, returns true.  For each message, oldest first, the clauses are tried
in order; the first match is removed from the inport and the values of its
FORMs are returned, with the NAMEs bound, FROM bound to the sending muproc
(NIL if the sender was not a muproc; a NAME spelled like FROM wins in its
clause) and *MUPROC-PACKET* to the mumsg.  Messages that match no clause
stay queued, in order.  (() t FORM*) matches anything.
TIMEOUT (seconds, evaluated once; NIL: wait forever; 0: don't wait at all)
bounds the wait; when it passes, the forms of a clause (:TIMEOUT FORM*)
are evaluated, or NIL is returned.  The timeout uses no thread interrupt.
Guards must have no side effects and must not receive; a guard sees FROM
and its NAMEs, which are decoded afresh for the body (EQ for anything sent
by a Lisp muproc, EQUAL for strings and binaries from a C one).
Guarantees: a message is either still queued or its clause's FORMs run;
an exit, kill or MUPROC-WITH-TIMEOUT reaching the muproc during the
receive (a guard included) acts at once and leaves the message queued;
a MUPROC-WITH-TIMEOUT around the receive that fires once a message is
taken takes effect when its clause returns (exits and kills act at once);
timer and interrupt functions run between two scans, never inside a
guard, and may receive themselves.  A clause that could never match is
rejected when the form is compiled (MUPROC-RECEIVE-SYNTAX-ERROR).
Signals MUPROC-NOT-IN-MUPROC outside a muproc."
  (check-receive-clauses from clauses timeout-given)
  (let* ((timeout-clause (find :timeout clauses :key #'car))
         (clauses (remove timeout-clause clauses))
         (plist (gensym "PLIST"))
         (sender (gensym "SENDER"))
         (sent (gensym "SENT"))
         (index (gensym "INDEX"))
         (view (gensym "VIEW"))
         (start (gensym "START"))
         (matcher (gensym "MATCHER")))
    `(multiple-value-bind (,index ,plist ,sender ,sent)
         (%receive
          (receive-filter
           (load-time-value
            (make-receive-filter-cache
             ',(loop for clause in clauses
                     collect (list (mapcar #'clause-key (first clause))
                                   (constant-true-guard-p (second clause)))))
            t))
          ,timeout
          (lambda (,view ,start)
            (declare (type (signed-byte 32) ,start) (ignorable ,start))
            ;; FROM as a symbol macro: the sender's muproc is looked up
            ;; only if a guard asks for it.
            (symbol-macrolet ((,from (view-sender ,view)))
              (block ,matcher
                ,@(loop for clause in clauses
                        for i from 0
                        collect `(when (and (<= ,start ,i) ,(clause-test clause view))
                                   (return-from ,matcher ,i)))
                nil))))
       (declare (ignorable ,plist ,sender ,sent))
       (case ,index
         ,@(loop for clause in clauses
                 for i from 0
                 ;; Without a timeout the last clause is the only other
                 ;; outcome: no NIL branch for the compiler to see.
                 collect `(,(if (and (null timeout-clause) (not timeout-given)
                                     (= i (1- (length clauses))))
                                t
                                i)
                           (multiple-value-prog1
                                  (let ((,from ,sender)
                                        (*muproc-packet* (make-mupacket ,plist ,sent))
                                        (*timeout-shield* *active-timeouts*))
                                    (declare (ignorable ,from))
                                    (clause-begun)
                                    ;; A clause's own names shadow FROM.
                                    (let ,(loop for var in (first clause)
                                                collect `(,var (getf ,plist ,(clause-key var))))
                                      (declare (ignorable ,@(first clause)))
                                      ,@(cddr clause)))
                                (clause-ended))))
         ,@(when (or timeout-clause timeout-given)
             `((t ,@(rest timeout-clause))))))))

(defun muproc-unmatched-input-count (&optional (muproc (muproc-current-process)))
  "How many messages wait in MUPROC's inport (default: the current
muproc's)."
  (if (and muproc (not (%muproc-exited muproc)))
      (max 0 (muproc.ffi:%mbox-count (%muproc-pid muproc)))
      0))

(defun muproc-unmatched-input-p (&optional (muproc (muproc-current-process)))
  "True if messages wait in MUPROC's inport."
  (plusp (muproc-unmatched-input-count muproc)))

(defun muproc-discard-all-pending-input ()
  "Remove every message waiting in the current muproc's inport.  Returns
how many were discarded.  Exit signals found on the way are acted upon.
Signals MUPROC-NOT-IN-MUPROC outside a muproc, MUPROC-NESTED-RECEIVE in a
receive guard."
  (let ((pid (%muproc-pid (current-muproc-or-lose "MUPROC-DISCARD-ALL-PENDING-INPUT")))
        (any (receive-filter (load-time-value (make-receive-filter-cache '((() t))) t)))
        (n 0))
    (check-not-in-guard "MUPROC-DISCARD-ALL-PENDING-INPUT")
    (with-receive-buffers (out view set)
      (loop
        (multiple-value-bind (rc kind plist)
            (sb-sys:without-interrupts
              (let ((rc (sb-sys:with-pinned-objects (any)
                          (muproc.ffi:%recv-next pid (logior muproc.ffi:+recv-restart+
                                                             muproc.ffi:+recv-take+)
                                                 (sb-sys:vector-sap any)
                                                 muproc.ffi:+nowait+ out view set))))
                (cond ((= rc muproc.ffi:+taken+)
                       (free-message (cffi:mem-ref out :pointer) view)
                       (incf n)
                       rc)
                      ((= rc muproc.ffi:+signalled+)
                       (multiple-value-call #'values rc
                         (consume-signal (cffi:mem-ref out :pointer) view)))
                      (t rc))))
          (cond ((= rc muproc.ffi:+taken+))
                ((= rc muproc.ffi:+signalled+) (run-signal kind plist))
                (t (return n))))))))
