;;;; Run: sbcl --script examples/observe.lisp
;;;; observe.lisp - looking at the seed's supervision tree while it runs,
;;;; from a thread that is no muproc, as at the REPL.
;;;;
;;;; Starts the tree of examples/supervision-tree.lisp (its log goes to a
;;;; string, not to the terminal), then shows, each after a "> form" line:
;;;; the table of muprocs (MUPROC-I), the port names, one muproc's info
;;;; with its queued messages, the tree as text and as Graphviz, a frame
;;;; of MUPROC-TOP, a trace of PROC32, the tree after PROC1 exits (one
;;;; restart of everything), a supervisor's state, a crash's dossier and a
;;;; dead muproc's printed form; then stops the tree.

(load (merge-pathnames "load-muproc.lisp" *load-truename*))
(muproc-examples:load-example "supervision-tree")

(defpackage #:muproc-example.observe
  (:use #:common-lisp #:muproc #:muproc.supervisor #:muproc.generic-server)
  (:export #:main))

(in-package #:muproc-example.observe)

(defmacro show (form)
  "Print FORM as typed at the REPL, then evaluate it and print its value
unless it is NIL."
  `(progn (format t "~&> ~s~%" ',form)
          (let ((value ,form))
            (when value
              (let ((*print-right-margin* 100))
                (format t "~s~%" value))))
          (terpri)))

(defun main ()
  "Start the seed's tree, look at it every way the observer allows, stop
it.  Returns the top supervisor's exit reason."
  (let* ((log (make-string-output-stream))
         (top (muproc-example.supervision-tree:start-super1 log)))
    ;; Once the tree answers, it has started every child.
    (muproc-example.supervision-tree:tree-muprocs top)
    (muproc-register-port-name :tree top)
    (mumsg-send (muproc-find 'muproc-example.supervision-tree:proc1) :hello "PROC1 takes no messages")
    (show (muproc-i))
    (show (muproc-registered))
    (show (muproc-info 'muproc-example.supervision-tree:proc1 :messages 5))
    (show (supervisor-tree :tree))
    (show (supervisor-tree :tree :format :dot))
    (show (muproc-top :refreshes 1 :interval 0.5 :count 6 :input nil))
    (show (muproc-trace (muproc-find 'muproc-example.supervision-tree:proc32)
                        :stream *standard-output*))
    (sleep 1)
    (show (muproc-untrace))
    (let ((proc1 (muproc-find 'muproc-example.supervision-tree:proc1)))
      (show (muproc-exit :adieu proc1))
      ;; Its exit notice is queued for the supervisor, which answers this
      ;; once the restart is done.
      (muproc-wait-for-exit proc1)
      (muproc-example.supervision-tree:tree-muprocs top))
    (show (muproc-tree))
    (show (muproc-generic-get-state :tree))
    (let ((crasher (muproc-spawn 'crasher
                                 (lambda ()
                                   (loop (mumsg-receive (from)
                                           ((n) t n)
                                           ((boom) t (error "Boom.")))))
                                 nil :errorstream *standard-output* :dossier-size 2)))
      (show (progn (mumsg-send crasher :n 1)
                   (mumsg-send crasher :n 2)
                   (mumsg-send crasher :boom t)
                   (muproc-wait-for-exit crasher)))
      (show crasher))
    (muproc-exit :adieu top)
    (prog1 (muproc-wait-for-exit top)
      (show top)
      (loop while (muproc-all-processes) do (sleep 0.01)))))

(muproc-examples:main-on-load 'main)
