;;;; test-examples.lisp - the examples print the seed's transcripts.
;;;;
;;;; Each example is loaded without running (MUPROC-EXAMPLES:LOAD-EXAMPLE)
;;;; and its MAIN run here.  DEFTEST/SETTLED (t/test-mumsg.lisp): the
;;;; examples' muprocs end a moment before their workers park again.

(in-package #:muproc-tests)

(def-suite :muproc/examples :in :muproc
  :description "examples/: each example's output, and the demo as a program.")
(in-suite :muproc/examples)

(defparameter *area-session-transcript*
  '("(:cmd :square :x 10) => 100"
    "(:cmd :rectangle :x 10 :y 30) => 400"
    "(:cmd :areas) => 400")
  "What AREA-SESSION prints: examples 6 and 7 of the seed.")

(defparameter *example-transcripts*
  `(("area-server" ,@*area-session-transcript*)
    ("named-server"
     ";; registered by its starter: (muproc-register-port-name :area-server server)"
     ,@*area-session-transcript*
     ";; registered by itself: (muproc-with-registered-port (:area-server) (area-server))"
     ,@*area-session-transcript*)
    ("ping-pong"
     "PONG -- Got ping: 1."
     "PING -- Got pong: 100."
     "PONG -- Got ping: 2."
     "PING -- Got pong: 200."
     "PONG -- Got ping: 3."
     "PING -- Got pong: 300."
     "PONG -- Got done."))
  "For each example, in the demo's order: its name and the lines its MAIN
prints.  The ping-pong lines are the seed's transcript of (ping-pong 3).")

(defun example-transcript (name)
  (or (rest (assoc name *example-transcripts* :test #'string=))
      (error "No transcript for the example ~s." name)))

(defun example-file (name)
  (asdf:system-relative-pathname "muproc" (format nil "examples/~a.lisp" name)))

(defun example-main (name)
  "Load examples/NAME.lisp without running it; return its MAIN."
  (load (example-file "load-muproc"))
  (uiop:symbol-call '#:muproc-examples '#:load-example name))

(defun example-text-lines (text)
  "TEXT split into lines, without the empty string after a final newline."
  (let ((lines (uiop:split-string text :separator '(#\Newline))))
    (if (equal (car (last lines)) "") (butlast lines) lines)))

(defun example-output-lines (name)
  "Run example NAME's MAIN; return the lines it printed on *STANDARD-OUTPUT*."
  (let ((main (example-main name)))
    (example-text-lines (with-output-to-string (*standard-output*)
                    (funcall main)))))

(deftest examples.ping-pong ()
  "examples/ping-pong.lisp prints the seed's seven lines for (ping-pong 3)."
  (is (equal (example-transcript "ping-pong") (example-output-lines "ping-pong"))))

(deftest examples.area-server ()
  "examples/area-server.lisp: the client's answers are 100, 400 and 400."
  (is (equal (example-transcript "area-server") (example-output-lines "area-server"))))

(deftest examples.named-server ()
  "examples/named-server.lisp: the same answers through the port name
:AREA-SERVER, registered either way, and the name is free afterwards."
  (is (equal (example-transcript "named-server") (example-output-lines "named-server")))
  (is (null (muproc-get-registered-port :area-server))))

(defun run-demo-program ()
  "Run examples/run-demo.lisp in a child SBCL as ./quickstart demo does
(plus --noinform), from the top of the source tree and in this process's
environment ($MUPROC_LIBDIR, $XDG_CACHE_HOME).  Returns its standard
output, its error output and its exit status.  The child is killed if
this returns early (the watchdog)."
  (uiop:with-temporary-file (:pathname errors)
    (let ((child (uiop:launch-program
                  (list (namestring sb-ext:*runtime-pathname*)
                        "--core" (namestring sb-ext:*core-pathname*)
                        "--noinform" "--non-interactive" "--no-sysinit" "--no-userinit"
                        "--load" "examples/run-demo.lisp")
                  :directory (asdf:system-source-directory "muproc")
                  :input nil
                  :output :stream
                  :error-output errors
                  :if-error-output-exists :supersede)))
      (unwind-protect
           (let* ((output (uiop:slurp-stream-string (uiop:process-info-output child)))
                  (status (uiop:wait-process child)))
             (values output (uiop:read-file-string errors) status))
        (when (uiop:process-alive-p child)
          (uiop:terminate-process child :urgent t)
          (uiop:wait-process child))
        (uiop:close-streams child)))))

(deftest examples.run-demo (:timeout 120)
  "The demo program exits with status 0 and prints nothing but, for each
example, a heading line and the example's transcript."
  (multiple-value-bind (output errors status) (run-demo-program)
    (is (eql 0 status) "run-demo exited with status ~a; its error output:~%~a"
        status errors)
    (let ((lines (example-text-lines output)))
      (is (search (example-transcript "ping-pong") lines :test #'string=)
          "No ping-pong transcript in the demo's output:~%~a" output)
      (is (equal (mapcar #'first *example-transcripts*)
                 (loop for line in lines
                       when (uiop:string-prefix-p "== " line)
                         collect (subseq line 3 (position #\Space line :start 3))))
          "The demo's headings are not one per example, in order:~%~a" output)
      (is (equal (loop for (nil . transcript) in *example-transcripts* append transcript)
                 (remove-if (lambda (line) (uiop:string-prefix-p "== " line)) lines))
          "The demo printed more or less than the transcripts:~%~a" output))))
