;;;; trace.lisp - watching one muproc's messages and events, and the ring
;;;; of recently taken messages that a crash dossier shows.
;;;;
;;;; The send and receive paths ask one slot of the current muproc
;;;; (TRACER) whether to say anything: untraced, a muproc pays a load and a
;;;; test per message.  The ring holds references to the plists receives
;;;; decode anyway, so keeping them costs two stores per take.

(in-package #:muproc)

(defstruct (tracer (:constructor make-tracer (stream send receive events)))
  "What MUPROC-TRACE shows of a muproc, and where."
  stream send receive events)

(defun muproc-label (muproc)
  "MUPROC's name, or <pid> for an anonymous one: how trace lines name it."
  (let ((name (and muproc (%muproc-name muproc))))
    (cond ((null muproc) "-")
          (name (princ-to-string name))
          (t (format nil "<~a>" (pid-string (%muproc-pid muproc)))))))

(defun destination-label (destination)
  (if (muproc-p destination) (muproc-label destination) (prin1-to-string destination)))

(defun trace-line (muproc control &rest arguments)
  "Write a log line \"HH:MM:SS.mmm NAME text\" for traced MUPROC to its
tracer's stream.  Values print with the circle and depth limits of a log
line: a message may hold anything."
  (let* ((tracer (%muproc-tracer muproc))
         (stream (and tracer (tracer-stream tracer))))
    (when stream
      (let ((line (with-standard-io-syntax
                    (let ((*print-readably* nil)
                          (*print-circle* t)
                          (*print-length* 10)
                          (*print-level* 4))
                      (format nil "~a ~a ~?" (log-timestamp) (muproc-label muproc)
                              control arguments)))))
        ;; A trace line may come from inside a receive that took its
        ;; message, or from an exit: a broken stream stops the tracing,
        ;; never what is traced.
        (unless (ignore-errors
                 (muproc-with-errorstream-lock
                   (write-line line stream)
                   (force-output stream))
                 t)
          (setf (%muproc-tracer muproc) nil))))
    nil))

(defun trace-sent (self destination plist)
  "SELF, traced, sent PLIST to DESTINATION."
  (when (tracer-send (%muproc-tracer self))
    (trace-line self "-> ~a ~s" (destination-label destination) plist)))

(defun trace-event (muproc control &rest arguments)
  "Traced MUPROC linked, monitored, spawned or exited: log it if asked."
  (let ((tracer (%muproc-tracer muproc)))
    (when (and tracer (tracer-events tracer))
      (apply #'trace-line muproc control arguments))))

(defmacro when-traced ((var &optional (muproc '*current-muproc*)) &body body)
  "Run BODY with VAR bound to MUPROC when that is a traced muproc.  The
one test every hook makes."
  `(let ((,var ,muproc))
     (when (and ,var (%muproc-tracer ,var))
       ,@body)))

(defun trace-pair-event (what a b)
  "A link-like event WHAT between A and B: logged for each traced end."
  (when-traced (m a) (trace-event m "~a ~a" what (muproc-label b)))
  (unless (eq a b)
    (when-traced (m b) (trace-event m "~a ~a" what (muproc-label a)))))

;;; The ring of recently taken messages: a simple-vector holding the
;;; index of the next entry, then N (plist sender) entries.

(defun make-recent-ring (size)
  (let ((ring (make-array (1+ (* 2 size)) :initial-element nil)))
    (setf (svref ring 0) 0)
    ring))

(defun recent-push (ring plist sender)
  (declare (simple-vector ring))
  (let* ((n (ash (1- (length ring)) -1))
         (next (svref ring 0))
         (at (1+ (* 2 next))))
    (declare (fixnum n next at))
    (setf (svref ring at) plist
          (svref ring (1+ at)) sender
          (svref ring 0) (if (= (1+ next) n) 0 (1+ next)))))

(declaim (inline note-taken))
(defun note-taken (self plist sender)
  "SELF's receive took the message PLIST from SENDER: keep it in the
dossier's ring, and trace it if SELF is traced."
  (let ((ring (%muproc-recent self)))
    (if (simple-vector-p ring)
        (recent-push ring plist sender)
        (when (and (typep ring 'fixnum) (plusp ring))
          (recent-push (setf (%muproc-recent self) (make-recent-ring ring)) plist sender))))
  (let ((tracer (%muproc-tracer self)))
    (when (and tracer (tracer-receive tracer))
      (trace-line self "<- ~a ~s" (muproc-label sender) plist))))

(defun recent-messages (muproc)
  "The messages MUPROC took last, oldest first, as (plist sender) lists.
Read from another thread it is a snapshot that may be a message late."
  (let ((ring (%muproc-recent muproc)))
    (when (simple-vector-p ring)
      (let ((n (ash (1- (length ring)) -1))
            (next (svref ring 0)))
        (loop for k below n
              for i = (mod (+ next k) n)
              for at = (1+ (* 2 i))
              when (svref ring at)
                collect (list (svref ring at) (svref ring (1+ at))))))))

;;; Turning it on and off

(defun muproc-trace (muproc &key (send t) (receive t) (events t) stream)
  "Log what MUPROC does from now on, one line per thing in the
errorstream's format (\"HH:MM:SS.mmm NAME text\"): with SEND, each message
it sends (\"-> DESTINATION plist\"); with RECEIVE, each message its
receives take (\"<- SENDER plist\"); with EVENTS, its links, unlinks,
monitors, spawns and its exit.  The lines go to STREAM, by default the
caller's errorstream (*TRACE-OUTPUT* at the REPL).  Callable from any
thread; tracing an already traced muproc replaces its settings.  Costs an
untraced muproc nothing but a slot test per message.  Returns MUPROC."
  (setf muproc (find-muproc-or-lose muproc "MUPROC-TRACE"))
  (setf (%muproc-tracer muproc)
        (make-tracer (or stream *muproc-errorstream* *trace-output*)
                     send receive events))
  muproc)

(defun muproc-untrace (&optional (muproc nil muproc-p))
  "Stop tracing MUPROC, or every traced muproc without an argument.
Returns the muprocs that were traced."
  (if muproc-p
      (progn (setf muproc (find-muproc-or-lose muproc "MUPROC-UNTRACE"))
             (when (shiftf (%muproc-tracer muproc) nil)
               (list muproc)))
      (loop for m in (live-muprocs)
            when (shiftf (%muproc-tracer m) nil)
              collect m)))
