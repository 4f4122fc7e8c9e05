;;;; Run: sbcl --script examples/ping-pong.lisp
;;;; ping-pong.lisp - the seed's 'ping-pong', muproc (Erlang's tut15).
;;;;
;;;; PONG answers each ping N with a pong 100*N until told it is done;
;;;; PING sends COUNT pings, waiting for each pong.  Prints:
;;;;   PONG -- Got ping: 1.
;;;;   PING -- Got pong: 100.
;;;;   ...
;;;;   PONG -- Got done.

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(defpackage #:muproc-example.ping-pong
  (:use #:common-lisp #:muproc)
  (:export #:out #:pong #:ping #:ping-pong #:main))

(in-package #:muproc-example.ping-pong)

(defun out (control &rest arguments)
  "Write CONTROL applied to ARGUMENTS, and a newline, to the current
muproc's errorstream."
  (format *muproc-errorstream* "~?~%" control arguments)
  (force-output *muproc-errorstream*))

(defun pong ()
  (loop
    (mumsg-receive (from)
      ((ping) t
        (out "PONG -- Got ping: ~a." ping)
        (mumsg-send from :pong (* 100 ping)))
      ((done) t
        (out "PONG -- Got done.")
        (muproc-exit :done)))))

(defun ping (pong count)
  (loop for iter from 1 to count
    do (mumsg-send pong :ping iter)
    do (mumsg-receive (from)
         ((pong) t
           (out "PING -- Got pong: ~a." pong))))
  (mumsg-send pong :done :dummy))

(defun ping-pong (count)
  "Start PONG, then PING with COUNT pings; return the ping muproc and, as
a second value, the pong muproc."
  (let ((pong (muproc-spawn 'pong #'pong ()
                            :errorstream *trace-output*)))
    (values (muproc-spawn 'ping #'ping (list pong count)
                          :errorstream *trace-output*)
            pong)))

(defun main ()
  "Play (ping-pong 3), printing the transcript on *STANDARD-OUTPUT*, and
return once both muprocs have ended."
  (let ((*trace-output* *standard-output*))
    (multiple-value-bind (ping pong) (ping-pong 3)
      (muproc-wait-for-exit ping)
      (muproc-wait-for-exit pong))))

(muproc-examples:main-on-load 'main)
