;;;; Run: sbcl --script examples/named-server.lisp
;;;; named-server.lisp - the seed's example 8 (Named Server).
;;;;
;;;; The area server of examples/area-server.lisp, reached by its port name
;;;; (mumsg-send :area-server ...) instead of by its muproc.  Twice: named
;;;; by its starter, as Erlang's register(area_server, Pid) does, then
;;;; naming itself for as long as it runs, with MUPROC-WITH-REGISTERED-PORT.
;;;; Prints a comment line before each, then each request and its answer:
;;;;   ;; registered by its starter: (muproc-register-port-name :area-server server)
;;;;   (:cmd :square :x 10) => 100
;;;;   ...

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(muproc-examples:load-example "area-server")

(defpackage #:muproc-example.named-server
  (:use #:common-lisp #:muproc)
  (:import-from #:muproc-example.area-server
                #:area-server #:start-area-server #:stop-area-server #:area-session)
  (:export #:start-registered-area-server #:named-area-server
           #:start-named-area-server #:main))

(in-package #:muproc-example.named-server)

;;; As in Erlang: Pid = spawn(Module, Fun, Args), register(area_server, Pid).

(defun start-registered-area-server ()
  "Start the area server and register it as port :AREA-SERVER; return it."
  (let ((server (start-area-server)))
    (muproc-register-port-name :area-server server)
    server))

;;; The muproc way: the server holds its name while it runs.

(defun named-area-server (starter)
  "The area server, registered as port :AREA-SERVER while it runs.  Tells
STARTER (:started :area-server) once the name is registered."
  (muproc-with-registered-port (:area-server)
    (mumsg-send starter :started :area-server)
    (area-server)))

(defun start-named-area-server ()
  "Spawn NAMED-AREA-SERVER and return it once its port name is registered,
so that a client can send to :AREA-SERVER at once."
  (let ((errorstream *trace-output*))
    (muproc ()
      (let ((server (muproc-spawn 'area-server #'named-area-server
                                  (list (muproc-current-process))
                                  :errorstream errorstream)))
        (mumsg-receive (from)
          ((started) (eq from server) server))))))

(defun main ()
  "Run an area session through the port :AREA-SERVER with each way of
naming the server; return once both servers have been stopped."
  (let ((*trace-output* *standard-output*))
    (format t ";; registered by its starter: ~
               (muproc-register-port-name :area-server server)~%")
    (let ((server (start-registered-area-server)))
      (unwind-protect (area-session :area-server)
        (muproc-unregister-port-name :area-server)
        (stop-area-server server)))
    (format t ";; registered by itself: ~
               (muproc-with-registered-port (:area-server) (area-server))~%")
    (let ((server (start-named-area-server)))
      (unwind-protect (area-session :area-server)
        (stop-area-server server)))))

(muproc-examples:main-on-load 'main)
