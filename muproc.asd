;;;; muproc.asd - Erlang-style concurrency for Common Lisp on a C runtime core.
;;;; Load: (asdf:load-asd "/path/to/muproc.asd") (asdf:load-system :muproc)
;;;; Test: (asdf:test-system :muproc)

(defsystem "muproc"
  :description "Erlang-style muprocs: message passing with selective receive,
registered ports, links and supervision, on libmuproc (C)."
  :author "The muproc developers"
  :license "BSD-2-Clause"
  :version (:read-file-line "VERSION")
  :depends-on ("cffi")
  :pathname "lisp/"
  :serial t
  :components ((:file "package")
               (:file "ffi")
               (:file "conditions")
               (:file "library")
               (:file "atom")
               (:file "handle")
               (:file "process")
               (:file "tag")
               (:file "mumsg")
               (:file "log")
               (:file "trace")
               (:file "mailbox")
               (:file "exit")
               (:file "link")
               (:file "timer")
               (:file "worker")
               (:file "registry")
               (:file "muprocn")
               (:file "runtime")
               (:file "observer")
               (:file "generic-server")
               (:file "generic-state")
               (:file "supervisor")
               (:file "supervisor-tree"))
  :in-order-to ((test-op (test-op "muproc/tests"))))

(defsystem "muproc/tests"
  :description "FiveAM suites for muproc."
  :depends-on ("muproc" "fiveam")
  :pathname "t/"
  :serial t
  :components ((:file "package")
               (:file "fixtures")
               (:file "test-library")
               (:file "test-mumsg")
               (:file "test-receive")
               (:file "test-receive-safety")
               (:file "test-storms")
               (:file "test-process")
               (:file "test-registry")
               (:file "test-muprocn")
               (:file "test-scale")
               (:file "test-examples")
               (:file "test-link")
               (:file "test-timer")
               (:file "test-example-links")
               (:file "test-generic-server")
               (:file "test-supervisor")
               (:file "test-observer")
               (:file "tap"))
  :perform (test-op (o c)
             (unless (uiop:symbol-call :fiveam :run! :muproc)
               (error "muproc tests failed"))))
