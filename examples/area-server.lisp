;;;; Run: sbcl --script examples/area-server.lisp
;;;; area-server.lisp - the seed's examples 6 (Area Server) and 7 (Area Client).
;;;;
;;;; The server keeps a running total of the areas it was asked about and
;;;; answers each request with it.  The client sends one request and waits
;;;; for the answer.  Prints each request and its answer:
;;;;   (:cmd :square :x 10) => 100
;;;;   (:cmd :rectangle :x 10 :y 30) => 400
;;;;   (:cmd :areas) => 400

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(defpackage #:muproc-example.area-server
  (:use #:common-lisp #:muproc)
  (:export #:area-server #:*area-server* #:start-area-server #:stop-area-server
           #:area-client #:area-session #:main))

(in-package #:muproc-example.area-server)

;;; Example 6: the Area Server.

(defun area-server ()
  (let ((total 0))
    (loop
      (mumsg-receive (from)
        ((cmd x) (eq cmd :square)
          (mumsg-send from :answer (incf total (* x x))))
        ((cmd x y) (eq cmd :rectangle)
          (mumsg-send from :answer (incf total (* x y))))
        ((cmd) (eq cmd :areas)
          (mumsg-send from :answer total))))))

(defvar *area-server*)

(defun start-area-server ()
  (setf *area-server*
    (muproc-spawn 'area-server #'area-server ()
      :errorstream *trace-output*)))

(defun stop-area-server (server)
  "Make the area server SERVER exit with reason :SHUTDOWN (it serves
forever otherwise), and wait until it has."
  (muproc-exit :shutdown server)
  (muproc-wait-for-exit server))

;;; Example 7: the Area Client.  It needs a muproc to receive the answer
;;; in: the MUPROC form runs its body in a fresh one.

(defun area-client (server &rest request)
  "Send the mumsg REQUEST (e.g. :cmd :square :x 10) to SERVER, a muproc or
a registered port name, and return the answer."
  (muproc ()
    (apply #'mumsg-send server request)
    (mumsg-receive (from)
      ((answer) t answer))))

(defun area-session (server)
  "Ask SERVER for a square, a rectangle and the total, printing each
request and its answer on *STANDARD-OUTPUT*."
  (dolist (request '((:cmd :square :x 10)
                     (:cmd :rectangle :x 10 :y 30)
                     (:cmd :areas)))
    (format t "~(~s~) => ~s~%" request (apply #'area-client server request))))

(defun main ()
  "Start the area server, run an AREA-SESSION with it, and return once the
server has been stopped."
  (let ((*trace-output* *standard-output*))
    (start-area-server)
    (unwind-protect (area-session *area-server*)
      (stop-area-server *area-server*))))

(muproc-examples:main-on-load 'main)
