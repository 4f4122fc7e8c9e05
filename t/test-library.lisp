;;;; test-library.lisp - finding and checking libmuproc.

(in-package #:muproc-tests)

(def-suite :muproc/library :in :muproc :description "Loading libmuproc.")
(in-suite :muproc/library)

(defun copy-lisp-tree (to)
  "Copy muproc.asd, VERSION and lisp/ (no built library) under TO."
  (let ((top (asdf:system-source-directory "muproc")))
    (dolist (file (list* "muproc.asd" "VERSION"
                         (mapcar (lambda (p) (enough-namestring p top))
                                 (directory (merge-pathnames "lisp/*.lisp" top)))))
      (let ((target (merge-pathnames file to)))
        (ensure-directories-exist target)
        (uiop:copy-file (merge-pathnames file top) target)))))

(defun fresh-temporary-directory ()
  (uiop:ensure-directory-pathname
   (format nil "~amuproc-test-~d-~d/" (uiop:temporary-directory)
           (sb-unix:unix-getpid) (random 1000000000 (make-random-state t)))))

(deftest library.not-found-lists-every-path (:timeout 120)
  "Without a library anywhere, loading signals MUPROC-LIBRARY-NOT-FOUND,
whose report names every directory tried and how to build."
  (let ((dir (fresh-temporary-directory)))
    (unwind-protect
         (progn
           (copy-lisp-tree dir)
           (multiple-value-bind (out err code)
               (uiop:run-program
                (list "env" "MUPROC_LIBDIR=/nonexistent/muproc-libdir"
                      (format nil "XDG_CACHE_HOME=~a" (namestring (merge-pathnames "cache/" dir)))
                      "sbcl" "--non-interactive" "--no-sysinit" "--no-userinit"
                      "--eval" "(require :asdf)"
                      "--eval" (format nil "(asdf:load-asd ~s)"
                                       (namestring (merge-pathnames "muproc.asd" dir)))
                      "--eval" "(handler-case (asdf:load-system :muproc)
                                  (error (c) (format t \"~&CONDITION ~a~%~a~%\" (type-of c) c)
                                             (uiop:quit 3)))")
                :output :string :error-output :string :ignore-error-status t)
             (declare (ignore err))
             (is (= 3 code) "the child should have failed to load (exit ~a)" code)
             (is (search "CONDITION MUPROC-LIBRARY-NOT-FOUND" out))
             (is (search "/nonexistent/muproc-libdir/libmuproc.so.0" out))
             (is (search (namestring (merge-pathnames "c/.libs/libmuproc.so.0" dir)) out))
             (is (search "ld.so search path" out))
             (is (search "MUPROC_LIBDIR" out))
             (is (search "./configure" out))))
      (uiop:delete-directory-tree dir :validate t :if-does-not-exist :ignore))))

(deftest library.version-is-checked ()
  "The loaded library's version is the one this Lisp code was written for,
and the same as the VERSION file that ASDF and configure both read."
  (is (= (ldb (byte 8 16) (muproc.ffi:%version)) muproc.ffi::+major+))
  (is (>= (ldb (byte 8 8) (muproc.ffi:%version)) muproc.ffi::+minor+))
  (is (string= (muproc.ffi:%version-string)
               (format nil "~d.~d.~d" (ldb (byte 8 16) (muproc.ffi:%version))
                       (ldb (byte 8 8) (muproc.ffi:%version))
                       (ldb (byte 8 0) (muproc.ffi:%version)))))
  (is (string= (muproc.ffi:%version-string)
               (asdf:component-version (asdf:find-system "muproc")))))
