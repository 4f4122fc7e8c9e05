;;;; Not run on its own: each example starts by loading this file.
;;;; load-muproc.lisp - load muproc for the examples, and run them as scripts.
;;;;
;;;; Loads muproc.asd from the directory above this one and the muproc
;;;; system, keeping the compiler's chatter off the terminal (it is shown
;;;; only if loading fails).  libmuproc is found through $MUPROC_LIBDIR or,
;;;; when that is unset, in the build tree (c/.libs/).

(require :asdf)

(defpackage #:muproc-examples
  (:use #:common-lisp)
  (:documentation "What the example files share: loading one example from
another (or from the demo and the tests) without running it, and running
an example when its file is run as a script.")
  (:export #:load-example #:main-on-load))

(in-package #:muproc-examples)

(defvar *examples-directory* (uiop:pathname-directory-pathname *load-truename*)
  "The examples/ directory of the source tree.")

(defun load-muproc ()
  "Load the muproc system, unless it is loaded already, from the source
tree holding this directory: quietly, the compiler's output is printed
(to *ERROR-OUTPUT*) only if loading fails."
  (let ((stderr *error-output*)
        (log (make-string-output-stream))
        (loaded nil))
    (unwind-protect
         (let ((*standard-output* log)
               (*error-output* log))
           (unless (asdf:registered-system "muproc")
             (asdf:load-asd (merge-pathnames
                             "muproc.asd"
                             (uiop:pathname-parent-directory-pathname
                              *examples-directory*))))
           (unless (asdf:component-loaded-p "muproc")
             (asdf:load-system "muproc"))
           (setf loaded t))
      (unless loaded
        (write-string (get-output-stream-string log) stderr)))))

(load-muproc)

;;; SBCL's EXIT waits for every other thread to end, and a parked muproc
;;; worker only notices after *MUPROC-WORKER-IDLE-SECONDS*.  Retire them
;;; on exit, so that a script ends as soon as its work is done.
(defun retire-muproc-workers ()
  (setf muproc:*muproc-worker-idle-seconds* 0)
  (muproc:muproc-trim-workers))

(pushnew 'retire-muproc-workers sb-ext:*exit-hooks*)

(defvar *run-main-on-load* t
  "True while loading an example file should run its MAIN: when the file
is run as a script, or loaded by hand.  LOAD-EXAMPLE binds it to NIL.")

(defun main-on-load (main)
  "The last form of every example file: call MAIN (a function designator)
when *RUN-MAIN-ON-LOAD* is true, so that `sbcl --script examples/X.lisp`
runs the example and LOAD-EXAMPLE does not."
  (when *run-main-on-load*
    (funcall main)))

(defun load-example (name)
  "Load examples/NAME.lisp, unless it is loaded already, without running
its MAIN; return the symbol naming that MAIN.  Example NAME defines its
functions in the package MUPROC-EXAMPLE.NAME."
  (let ((package-name (format nil "MUPROC-EXAMPLE.~:@(~a~)" name)))
    (unless (find-package package-name)
      (let ((*run-main-on-load* nil))
        (load (make-pathname :name name :type "lisp" :defaults *examples-directory*))))
    (or (find-symbol "MAIN" package-name)
        (error "examples/~a.lisp defines no function ~a::MAIN." name package-name))))
