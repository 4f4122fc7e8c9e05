;;;; survival-child.lisp - user mistakes that used to end the whole image,
;;;; run in a child SBCL by test-survival.lisp (loaded after muproc).
;;;;
;;;; Each case prints one line (:CASE name . results) on standard output,
;;;; read back by the parent; "SURVIVED" last says the image lived through
;;;; them all.  A case that kills the image leaves its line, and the later
;;;; ones, missing.

(defpackage #:muproc-survival
  (:use #:common-lisp #:muproc #:muproc.generic-server))

(defpackage #:muproc-survival.server
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:documentation "A generic server type with no UNHANDLED-MESSAGE: it logs
what it drops."))

(in-package #:muproc-survival.server)

(defun initialize () nil)

(muproc-define-call-handler ping (state from) :pong)

(in-package #:muproc-survival)

(defun circular-list ()
  (let ((list (list 1 2 3)))
    (setf (cdddr list) list)
    list))

(defun reason-kind (reason)
  "What the parent checks of an exit reason."
  (cond ((and (consp reason) (eq (car reason) :error-in-process)
              (typep (cdr reason) 'condition))
         :error-in-process)
        (t reason)))

(defun log-text (stream)
  (muproc-with-errorstream-lock (get-output-stream-string stream)))

(defmacro defcase (name (&rest bindings) &body body)
  "Run BODY (a plist of results) with BINDINGS; print (:CASE NAME . plist),
or (:CASE NAME :SIGNALLED type) if it signalled."
  `(let ((line (list* :case ,name
                      (handler-case (let* ,bindings ,@body)
                        (error (c) (list :signalled (type-of c)))))))
     (with-standard-io-syntax
       (let ((*print-readably* nil))
         (format t "~&~s~%" line)))
     (finish-output)))

(defun wait-for-exit-kind (muproc)
  (multiple-value-bind (reason exited) (muproc-wait-for-exit muproc :timeout 20)
    (if exited (reason-kind reason) :still-running)))

(defun search-p (needle haystack)
  (and (search needle haystack) t))

(define-condition failing-report (error) ()
  (:report (lambda (condition stream)
             (declare (ignore condition stream))
             (error "the report itself fails"))))

(defstruct unprintable)

(defmethod print-object ((object unprintable) stream)
  (declare (ignore stream))
  (error "this object can't be printed"))

;;; Cases

(defcase :circular-error ((log (make-string-output-stream))
                          (m (muproc-spawn nil (lambda () (error "bad ~a" (circular-list)))
                                           nil :errorstream log)))
  (let ((kind (wait-for-exit-kind m)))
    (list :exit kind :logged (search-p "Unhandled SIMPLE-ERROR: bad #1=(1 2 3 . #1#)"
                                       (log-text log)))))

(defcase :circular-message-dropped-by-server
    ((log (make-string-output-stream))
     (server (muproc-spawn nil (lambda ()
                                 (muproc-generic-start :package '#:muproc-survival.server))
                           nil :errorstream log)))
  (mumsg-send server :junk (circular-list))
  ;; The server takes its messages in order: once the call is answered,
  ;; the one before it has been dropped and logged.
  (let ((answer (muproc () (muproc-survival.server::ping* server))))
    (muproc-kill server)
    (list :exit (wait-for-exit-kind server)
          :answered answer
          :logged (search-p "Dropped unexpected message #<MUMSG :JUNK #1=(1 2 3 . #1#)>"
                            (log-text log)))))

(defcase :closed-errorstream
    ((file (format nil "/tmp/muproc-survival-~d.log" (sb-unix:unix-getpid)))
     (m (with-open-file (f file :direction :output :if-exists :supersede)
          (muproc-spawn nil (lambda ()
                              (mumsg-receive (from) ((go) t))
                              (muproc-log-errorstream "closed-stream marker one")
                              (error "closed-stream marker two"))
                        nil :errorstream f))))
  ;; The file is closed now: the muproc logs, then fails, after that.
  (mumsg-send m :go t)
  (prog1 (list :exit (wait-for-exit-kind m))
    (delete-file file)))

(defcase :erroring-interrupt-before-first-form
    ((log (make-string-output-stream))
     (m (progn
          ;; With no parked worker, the spawn starts a thread, which takes
          ;; far longer than the interrupt below takes to arrive.
          (muproc-trim-workers)
          (muproc-spawn nil (lambda () (mumsg-receive (from) ((never) t)))
                        nil :errorstream log))))
  (muproc-interrupt m (lambda () (error "interrupt marker")))
  (let ((kind (wait-for-exit-kind m)))
    (list :exit kind :logged (search-p "interrupt marker" (log-text log)))))

(defcase :failing-condition-report
    ((log (make-string-output-stream))
     (m (muproc-spawn nil (lambda () (error 'failing-report)) nil :errorstream log)))
  (let ((kind (wait-for-exit-kind m)))
    (list :exit kind :logged (search-p "Unhandled FAILING-REPORT" (log-text log)))))

(defcase :unprintable-value-logged
    ((log (make-string-output-stream))
     (m (muproc-spawn nil (lambda ()
                            (muproc-log-errorstream "value ~a" (make-unprintable))
                            :returned)
                      nil :errorstream log)))
  (let ((kind (wait-for-exit-kind m)))
    (list :exit kind :logged (search-p "could not be printed" (log-text log)))))

(defcase :constant-in-initial-bindings
    ((log (make-string-output-stream))
     (m (muproc-spawn nil (lambda () pi) nil :initial-bindings '((pi . 3))
                      :errorstream log)))
  (list :exit (wait-for-exit-kind m)))

(defcase :errorstream-not-a-stream
    ((m (muproc-spawn nil (lambda () (error "nowhere to log this")) nil :errorstream 42)))
  (list :exit (wait-for-exit-kind m)))

(format t "~&SURVIVED~%")
(finish-output)
