;;;; compat.lisp - the names of the original cl-muproc's API that muproc
;;;; had no other home for, so that code written for it runs unchanged.
;;;; In muproc a message has no envelope: the mumsg is the packet, and
;;;; *MUPROC-INPORT* holds the muproc itself.  README's "Coming from
;;;; cl-muproc" lists what differs on purpose.

(in-package #:muproc)

;;; Sending and receiving

(defgeneric muproc-send (to type data)
  (:documentation "cl-muproc's low-level send under MUMSG-SEND.  TO is
what MUMSG-SEND takes (a muproc, a port name, *MUPROC-INPORT*).  With TYPE
:MUMSG and DATA a mumsg, sends DATA, as (mumsg-send to data) does;
otherwise sends the mumsg (TYPE DATA), which a clause ((type-name) ...)
receives.  TYPE must be a keyword (MUMSG-MALFORMED otherwise).  Returns
what MUMSG-SEND returns: T, or NIL for a terminated muproc.")
  (:method (to type data)
    (if (and (eq type :mumsg) (mumsg-p data))
        (mumsg-send to data)
        (mumsg-send to type data))))

(defmacro muproc-receive (&optional (receive-spec nil receive-spec-p) &body clauses)
  "cl-muproc's receive.  (muproc-receive (from) clause...), as the seed's
\"early muproc idiom\" slide writes it, is MUMSG-RECEIVE.  (muproc-receive)
with no arguments, as the original's function, takes the oldest message,
blocking until there is one, and returns (values mumsg :MUMSG sender)."
  (if receive-spec-p
      `(mumsg-receive ,receive-spec ,@clauses)
      (let ((from (gensym "FROM")))
        `(mumsg-receive (,from)
           (() t (values *muproc-packet* :mumsg ,from))))))

(deftype muproc-port ()
  "What *MUPROC-INPORT* holds (cl-muproc's inport class): in muproc, the
muproc itself, a type rather than a class of its own."
  'muproc)

(define-symbol-macro *muproc-mumsg* *muproc-packet*)
(setf (documentation '*muproc-mumsg* 'variable)
      "Inside a receive clause: the mumsg that matched, the same object as
*MUPROC-PACKET* (muproc puts no packet around a mumsg).")

;;; Packets

(defun mupacket-p (object)
  "True for what *MUPROC-PACKET* holds inside a receive clause: a mumsg
(in muproc, the packet is the mumsg)."
  (mumsg-p object))

(define-condition muproc-packet-without-send-time (muproc-error)
  ((packet :initarg :packet :reader packet-without-send-time))
  (:report (lambda (c s)
             (format s "MUPROC-PACKET-AGE: ~s does not carry the time it was sent."
                     (packet-without-send-time c))))
  (:documentation "Signalled by MUPROC-PACKET-AGE for a packet without a
send time."))

(defun muproc-packet-age (&optional (packet *muproc-packet*))
  "Seconds (a float) since PACKET (default: the one being handled) was
sent.  Signals MUPROC-PACKET-WITHOUT-SEND-TIME for a mumsg that does not
carry its send time (one made by MUMSG, for one)."
  (unless (%mupacket-p packet)
    (error 'muproc-packet-without-send-time :packet packet))
  (/ (float (- (muproc.ffi:%now-ns) (mupacket-sent-ns packet)) 1d0) 1d9))

;;; Predicates

(defun muproc-port-name-p (object)
  "True if OBJECT is a valid port name: a keyword of 1 to 255 characters."
  (and (keywordp object) (<= 1 (length (symbol-name object)) 255)))

(defun muproc-name-p (object)
  "True if OBJECT is a valid name for MUPROC-SPAWN to give a muproc: a
symbol other than NIL (NIL makes an anonymous muproc)."
  (and object (symbolp object)))

(defun muproc-address-p (object)
  "True if OBJECT is what MUMSG-SEND takes as a destination: a muproc
(*MUPROC-INPORT* included) or a port name."
  (or (muproc-p object) (muproc-port-name-p object)))

;;; Exits

(define-condition muproc-exit-condition (condition)
  ((muproc :initarg :muproc :reader muproc-condition-muproc)
   (reason :initarg :reason :reader muproc-exit-condition-reason))
  (:report (lambda (c s)
             (format s "~a exits with reason ~s." (muproc-condition-muproc c)
                     (muproc-exit-condition-reason c))))
  (:documentation "Signalled (with SIGNAL) by MUPROC-EXIT inside the
muproc that exits, just before it unwinds: a handler sees the muproc
(MUPROC-CONDITION-MUPROC) and the reason (MUPROC-EXIT-CONDITION-REASON).
As in cl-muproc, a handler that transfers control (HANDLER-CASE) cancels
the exit; one that declines lets it go on.  Prints as the seed's
#<EXIT name reason>."))

(setf (documentation 'muproc-exit-condition-reason 'function)
      "The reason the muproc of a MUPROC-EXIT-CONDITION exits with.")

(defmethod print-object ((c muproc-exit-condition) stream)
  (if *print-escape*
      (print-unreadable-object (c stream)
        (let ((muproc (muproc-condition-muproc c)))
          (format stream "EXIT ~a ~s" (or (and muproc (muproc-name muproc)) "-")
                  (muproc-exit-condition-reason c))))
      (call-next-method)))
