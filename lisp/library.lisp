;;;; library.lisp - load libmuproc now: the files after this one intern
;;;; atoms at load time (receive filters are built by LOAD-TIME-VALUE).

(in-package #:muproc)

(muproc.ffi:load-library)
