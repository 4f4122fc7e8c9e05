;;;; Run: sbcl --script examples/generic-area-server.lisp
;;;; generic-area-server.lisp - the seed's generic area server (slides
;;;; "generic server" and "using generic-area-server").
;;;;
;;;; The area server of examples/area-server.lisp as a generic server: the
;;;; package is the server type, INITIALIZE makes the state, TERMINATE
;;;; logs it, and each MUPROC-DEFINE-CALL-HANDLER defines a handler and its
;;;; two client functions (NAME calls the default server, NAME* the server
;;;; it is given).  MAIN replays the seed's REPL session, printing each form
;;;; once it has returned, with its value, then stops the server.  Prints
;;;; (the log lines start with the time of day):
;;;;   (start-generic-area-server)
;;;;   12:22:18.072 GENERIC-AREA-SERVER GENERIC AREA SERVER initializing.
;;;;   (muproc () (generic-add-square 10)) => 100
;;;;   (muproc () (generic-get-areas)) => 100
;;;;   (muproc () (generic-get-areas* 'generic-area-server)) => 100
;;;;   (muproc () (generic-add-rectangle 10 30)) => 400
;;;;   12:22:18.075 GENERIC-AREA-SERVER GENERIC AREA SERVER terminating (count=400).
;;;;   (muproc () (muproc-generic-stop 'generic-area-server)) => T

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(defpackage #:muproc-example.generic-area-server
  (:use #:common-lisp #:muproc #:muproc.generic-server)
  (:export #:area-server-state #:area-server-count
           #:start-generic-area-server #:stop-generic-area-server #:main)
  (:documentation "The seed's generic area server: this package is the
server type; its default server is the muproc named GENERIC-AREA-SERVER.
MUPROC-DEFINE-CALL-HANDLER exports the client functions GENERIC-ADD-SQUARE,
GENERIC-ADD-RECTANGLE, GENERIC-GET-AREAS and their NAME* variants."))

(in-package #:muproc-example.generic-area-server)

;;; The seed's code, as on its slide.

(muproc-default-server-name generic-area-server)

(defclass area-server-state ()
  ((count :initform 0
          :accessor area-server-count)))

(defun initialize ()
  (muproc-log-errorstream "GENERIC AREA SERVER initializing.")
  (make-instance 'area-server-state))

(defun terminate (state)
  (muproc-log-errorstream
   "GENERIC AREA SERVER terminating (count=~a)."
   (area-server-count state)))

(muproc-define-call-handler generic-add-square (state from x)
  (incf (area-server-count state) (* x x)))

(muproc-define-call-handler generic-add-rectangle (state from x y)
  (incf (area-server-count state) (* x y)))

(muproc-define-call-handler generic-get-areas (state from)
  (area-server-count state))

(defun start-generic-area-server ()
  (muproc ()
    (muproc-spawn 'generic-area-server
                  (lambda () (muproc-generic-start))
                  nil)))

;;; Stopping it (the seed's session leaves it running).

(defun stop-generic-area-server ()
  "Stop the server GENERIC-AREA-SERVER, if it runs: its TERMINATE logs the
total, and this returns once it has exited (T), or NIL if none ran."
  (when (muproc-find 'generic-area-server)
    (muproc () (muproc-generic-stop 'generic-area-server))))

;;; The seed's REPL session.

(defun form-text (form)
  "FORM as typed in the seed's session: in lower case, on one line, NIL
as () and (QUOTE X) as 'X."
  (cond ((null form) "()")
        ((and (consp form) (eq (first form) 'quote))
         (format nil "'~a" (form-text (second form))))
        ((consp form) (format nil "(~{~a~^ ~})" (mapcar #'form-text form)))
        (t (string-downcase (prin1-to-string form)))))

(defmacro replay (form)
  "Evaluate FORM, then print it and its value as \"FORM => VALUE\"."
  `(let ((value ,form))
     (format t "~a => ~s~%" (form-text ',form) value)
     value))

(defun main ()
  "Start the generic area server, replay the seed's session with it, then
stop it.  The forms and their values go to *STANDARD-OUTPUT*, and so do
the server's log lines (its errorstream is *TRACE-OUTPUT*, bound to
*STANDARD-OUTPUT*).  Returns once the server has exited."
  (let ((*trace-output* *standard-output*)
        (*package* (find-package '#:muproc-example.generic-area-server)))
    ;; The form first: the server logs its start while it initializes, and
    ;; at the latest before it serves the first call.
    (format t "~a~%" (form-text '(start-generic-area-server)))
    (start-generic-area-server)
    (unwind-protect
         (progn
           (replay (muproc () (generic-add-square 10)))
           (replay (muproc () (generic-get-areas)))
           (replay (muproc () (generic-get-areas* 'generic-area-server)))
           (replay (muproc () (generic-add-rectangle 10 30)))
           (replay (muproc () (muproc-generic-stop 'generic-area-server))))
      ;; Only if the session failed half-way.
      (stop-generic-area-server))))

(muproc-examples:main-on-load 'main)
