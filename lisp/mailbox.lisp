;;;; mailbox.lisp - MUMSG-SEND, MUMSG-RECEIVE and the inport.

(in-package #:muproc)

(defvar *muproc-packet* nil
  "Inside the body of a MUMSG-RECEIVE clause: the mumsg that matched.")

(defun timeout-deadline (timeout)
  "The libmuproc deadline for TIMEOUT seconds (NIL: none; 0: don't wait)."
  (cond ((null timeout) muproc.ffi:+forever+)
        ((and (realp timeout) (zerop timeout)) muproc.ffi:+nowait+)
        ((and (realp timeout) (plusp timeout))
         (+ (muproc.ffi:%now-ns) (round (* timeout 1000000000))))
        (t (error 'type-error :datum timeout :expected-type '(or null (real 0))))))

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
      (cond ((zerop rc) (return t))
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

(defun make-receive-filter (key-sets)
  "A foreign receive filter (see muproc_recv) for KEY-SETS, a list of lists
of keywords; a null pointer when some set is empty (anything may match)."
  (if (some #'null key-sets)
      (cffi:null-pointer)
      (let ((words (cons (length key-sets)
                         (loop for set in key-sets
                               append (cons (length set) (mapcar #'keyword-atom set))))))
        (cffi:foreign-alloc :uint32 :initial-contents words))))

(defvar *receive-in-progress* nil
  "True while a receive is scanning the inport: the message it looks at
is only borrowed, so nothing may receive until the scan is over.")

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

(defun %receive (filter timeout matcher)
  "Scan the inport for the first message, oldest first, for which MATCHER
(called with a view of it, see muproc_msg_view) returns a clause index;
take it and return (values index plist sender), or :TIMEOUT.  A rejected
message is never decoded here: MATCHER reads only what its guards need."
  (declare (function matcher))
  (let* ((self (current-muproc-or-lose "MUMSG-RECEIVE"))
         (pid (%muproc-pid self))
         (deadline (timeout-deadline timeout)))
    (when *receive-in-progress*
      (error 'muproc-nested-receive))
    (let ((*receive-in-progress* t))
      (cffi:with-foreign-objects ((out :pointer)
                                  (view :uint8 muproc.ffi:+view-size+))
        (let ((after (cffi:null-pointer)))
          (loop
            (multiple-value-bind (rc signal-kind signal-plist)
                (sb-sys:without-interrupts
                  (let ((rc (muproc.ffi:%recv pid after filter deadline out)))
                    (cond ((= rc muproc.ffi:+signalled+)
                           (multiple-value-call #'values rc
                             (consume-signal (cffi:mem-ref out :pointer))))
                          ((zerop rc)
                           (muproc.ffi:%msg-view (cffi:mem-ref out :pointer) view)
                           rc)
                          (t rc))))
              (cond
                ((zerop rc)
                 (let ((msg (cffi:mem-ref out :pointer))
                       (index (funcall matcher view)))
                   (if index
                       (let ((plist (view-plist view))
                             (sender (view-sender view)))
                         (sb-sys:without-interrupts
                           (muproc.ffi:check (muproc.ffi:%recv-take pid msg)
                                             "muproc_recv_take")
                           (free-message msg view))
                         (return (values index plist sender)))
                       (setf after msg))))
                ((= rc muproc.ffi:+signalled+)
                 (act-on-signal signal-kind signal-plist))
                ((= rc muproc.ffi:+etimedout+)
                 (return :timeout))
                (t (error 'muproc-runtime-error :code rc
                                                :operation "muproc_recv"))))))))))

(defun clause-key (variable)
  (intern (symbol-name variable) :keyword))

(defun clause-test (clause view)
  "A form true when the message VIEW shows matches CLAUSE.  Only the
values the guard names are decoded, and none for a constant guard: a
message the clause rejects costs little."
  (let ((variables (first clause))
        (guard (second clause)))
    (if (and (constantp guard) (eval guard))
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

(defmacro mumsg-receive ((from &key timeout) &body clauses)
  "Receive the oldest message that matches one of CLAUSES, blocking until
one does.  A clause is ((NAME*) GUARD FORM*): it matches a message that
holds a key for every NAME (:NAME for the symbol NAME; present with value
NIL counts) and for which GUARD, evaluated with each NAME bound to its
value, returns true.  For each message, oldest first, the clauses are tried
in order; the first match is removed from the inport and the values of its
FORMs are returned, with the NAMEs bound, FROM bound to the sending muproc
(NIL if the sender was not a muproc) and *MUPROC-PACKET* to the mumsg.
Messages that match no clause stay queued, in order.  (() t FORM*) matches
anything.
TIMEOUT (seconds, evaluated once; NIL: wait forever; 0: don't wait at all)
bounds the wait; when it passes, the forms of a clause (:TIMEOUT FORM*)
are evaluated, or NIL is returned.  The timeout uses no thread interrupt.
Guards must have no side effects and must not receive; a guard sees FROM
and its NAMEs, which are decoded afresh for the body (EQ for anything sent
by a Lisp muproc, EQUAL for strings and binaries from a C one).  Signals
MUPROC-NOT-IN-MUPROC outside a muproc."
  (let* ((timeout-clause (find :timeout clauses :key #'car))
         (clauses (remove timeout-clause clauses))
         (plist (gensym "PLIST"))
         (sender (gensym "SENDER"))
         (index (gensym "INDEX"))
         (view (gensym "VIEW")))
    (dolist (clause clauses)
      (unless (and (consp clause) (listp (first clause))
                   (every (lambda (v) (and (symbolp v) v)) (first clause)))
        (error "Malformed MUMSG-RECEIVE clause ~s: expected ((NAME*) GUARD FORM*)."
               clause)))
    `(multiple-value-bind (,index ,plist ,sender)
         (%receive
          (load-time-value
           (make-receive-filter
            ',(loop for clause in clauses
                    collect (mapcar #'clause-key (first clause))))
           t)
          ,timeout
          (lambda (,view)
            ;; FROM as a symbol macro: the sender's muproc is looked up
            ;; only if a guard asks for it.
            (symbol-macrolet ((,from (view-sender ,view)))
              (cond
                ,@(loop for clause in clauses
                        for i from 0
                        collect `(,(clause-test clause view) ,i))))))
       (declare (ignorable ,plist ,sender))
       (case ,index
         ,@(loop for clause in clauses
                 for i from 0
                 collect `(,i (let ((,from ,sender)
                                    (*muproc-packet* (%make-mumsg ,plist))
                                    ,@(loop for var in (first clause)
                                            collect `(,var (getf ,plist ,(clause-key var)))))
                                (declare (ignorable ,from ,@(first clause)))
                                ,@(cddr clause))))
         (t ,@(rest timeout-clause))))))

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
Signals MUPROC-NOT-IN-MUPROC outside a muproc."
  (let ((pid (%muproc-pid (current-muproc-or-lose "MUPROC-DISCARD-ALL-PENDING-INPUT")))
        (n 0))
    (cffi:with-foreign-object (out :pointer)
      (loop
        (multiple-value-bind (rc signal-kind signal-plist)
            (sb-sys:without-interrupts
              (let ((rc (muproc.ffi:%recv pid (cffi:null-pointer) (cffi:null-pointer)
                                          muproc.ffi:+nowait+ out)))
                (cond ((zerop rc)
                       (let ((msg (cffi:mem-ref out :pointer)))
                         (muproc.ffi:%recv-take pid msg)
                         (free-message msg)
                         (incf n)
                         rc))
                      ((= rc muproc.ffi:+signalled+)
                       (multiple-value-call #'values rc
                         (consume-signal (cffi:mem-ref out :pointer))))
                      (t rc))))
          (cond ((zerop rc))
                ((= rc muproc.ffi:+signalled+) (act-on-signal signal-kind signal-plist))
                (t (return n))))))))
