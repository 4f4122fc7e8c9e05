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

(defun load-muproc-in-child (dir libdir)
  "Load the muproc copied under DIR (see COPY-LISP-TREE) in a fresh SBCL
with MUPROC_LIBDIR set to LIBDIR.  Returns what it printed and its exit
status: 3 and \"CONDITION type\" then the report when loading signalled."
  (multiple-value-bind (out code)
      (run-lisp-in-child ""
                         :asd (merge-pathnames "muproc.asd" dir)
                         :environment (list (format nil "MUPROC_LIBDIR=~a" libdir)
                                            (format nil "XDG_CACHE_HOME=~a"
                                                    (namestring (merge-pathnames "cache/" dir)))))
    (values out code)))

(deftest library.not-found-lists-every-path (:timeout 120)
  "Without a library anywhere, loading signals MUPROC-LIBRARY-NOT-FOUND,
whose report names every directory tried and how to build."
  (let ((dir (fresh-temporary-directory)))
    (unwind-protect
         (progn
           (copy-lisp-tree dir)
           (multiple-value-bind (out code)
               (load-muproc-in-child dir "/nonexistent/muproc-libdir")
             (is (= 3 code) "the child should have failed to load (exit ~a)" code)
             (is (search "CONDITION MUPROC-LIBRARY-NOT-FOUND" out))
             (is (search "/nonexistent/muproc-libdir/libmuproc.so.0" out))
             (is (search (namestring (merge-pathnames "c/.libs/libmuproc.so.0" dir)) out))
             (is (search "ld.so search path" out))
             (is (search "MUPROC_LIBDIR" out))
             (is (search "./configure" out))))
      (uiop:delete-directory-tree dir :validate t :if-does-not-exist :ignore))))

(defun build-fake-library (libdir major minor)
  "Compile into LIBDIR a libmuproc.so.0 that has only the two version
functions, saying MAJOR.MINOR.0."
  (let ((source (merge-pathnames "fake.c" libdir)))
    (ensure-directories-exist source)
    (with-open-file (out source :direction :output :if-exists :supersede)
      (format out "unsigned muproc_version(void) { return (~du << 16) | (~du << 8); }~%~
                   const char *muproc_version_string(void) { return \"~d.~d.0\"; }~%"
              major minor major minor))
    ;; Through the shell: $CC may hold options ("ccache gcc").
    (multiple-value-bind (out err code)
        (uiop:run-program (format nil "${CC:-cc} -shared -fPIC -o ~a ~a"
                                  (uiop:escape-sh-token
                                   (namestring (merge-pathnames "libmuproc.so.0" libdir)))
                                  (uiop:escape-sh-token (namestring source)))
                          :output :string :error-output :output :ignore-error-status t)
      (declare (ignore err))
      (unless (zerop code)
        (error "Could not compile the fake library (exit ~a):~%~a" code out)))))

(deftest library.old-or-foreign-library-refused (:timeout 180)
  "A library of an older minor version (an installed 0.1 that lacks calls
this code makes), or of another major version, is refused at load with
MUPROC-VERSION-MISMATCH naming the version loaded and the one needed,
before anything else of it is called."
  (let ((dir (fresh-temporary-directory))
        (needed (format nil "~d.~d.x" muproc.ffi::+major+ muproc.ffi::+minor+)))
    (unwind-protect
         (progn
           (copy-lisp-tree dir)
           (loop for (major minor) in (append
                                       (when (plusp muproc.ffi::+minor+)
                                         (list (list muproc.ffi::+major+ (1- muproc.ffi::+minor+))))
                                       (list (list (1+ muproc.ffi::+major+) 0)))
                 for libdir = (merge-pathnames (format nil "fake-~d.~d/" major minor) dir)
                 for loaded = (format nil "~d.~d.0" major minor)
                 do (build-fake-library libdir major minor)
                    (multiple-value-bind (out code) (load-muproc-in-child dir (namestring libdir))
                      ;; What the child printed last (not its compiler chatter).
                      (setf out (subseq out (max 0 (- (length out) 600))))
                      (is (= 3 code) "~a: the child should have failed to load (exit ~a)"
                          loaded code)
                      (is (search "CONDITION MUPROC-VERSION-MISMATCH" out) "~a: ~a" loaded out)
                      (is (search (format nil "libmuproc ~a was loaded" loaded) out)
                          "~a: ~a" loaded out)
                      (is (search (format nil "needs ~a" needed) out) "~a: ~a" loaded out))))
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

(deftest library.saved-core-restarts (:timeout 180)
  "A core saved with muproc loaded (and a muproc running, which saving
ends) works once restarted: libmuproc is initialised afresh and the
signal dispatcher runs again, so muprocs spawn, send, receive, link, trap
exits, are killed, fail, and use timers."
  (let* ((dir (fresh-temporary-directory))
         (core (merge-pathnames "muproc.core" dir)))
    (ensure-directories-exist core)
    (unwind-protect
         (multiple-value-bind (lines err code)
             ;; RUN-CHILD-SBCL is t/test-link.lisp's.
             (run-child-sbcl (list "--non-interactive" "--no-sysinit" "--no-userinit"
                                   "--load" "examples/load-muproc.lisp"
                                   "--load" "t/saved-core-child.lisp"
                                   "--eval" (format nil "(muproc-saved-core::save ~s)"
                                                    (namestring core)))
                             :timeout 120)
           (declare (ignore lines))
           (is (eql 0 code) "saving failed (exit ~a):~%~a"
               code (subseq err (max 0 (- (length err) 1500))))
           (when (probe-file core)
             (multiple-value-bind (lines err code)
                 (run-child-sbcl (list "--non-interactive" "--no-sysinit" "--no-userinit"
                                       "--eval" "(muproc-saved-core::after-restart)")
                                 :core core :timeout 60)
               (is (eql 0 code) "the restarted image failed (exit ~a):~%~a"
                   code (subseq err (max 0 (- (length err) 1500))))
               (is (member "(:RESTARTED :ECHOED 42 :NOTICE-REASON :BYE :EXIT :BYE :TICK (:BY-REFERENCE) :KEYED 7 :FLUSHED (NIL 0) :FAILURE :ERROR-IN-PROCESS :LIVE 0 :LISP-HANDLES 0)"
                           lines :test #'string=)
                   "the restarted image said:~%~{~a~%~}" lines))))
      (uiop:delete-directory-tree dir :validate t :if-does-not-exist :ignore))))

(deftest library.bindings-carry-their-error-policy ()
  "A libmuproc binding signals MUPROC-RUNTIME-ERROR naming the C function
for a code it does not allow, and returns the codes it does: no caller
can ignore a failure by mistake."
  (let ((c (handler-case (progn (muproc.ffi:%proc-start #xffffff) nil)
             (muproc-runtime-error (c) c))))
    (is (typep c 'muproc-runtime-error))
    (when c
      (is (search "muproc_proc_start" (princ-to-string c)))
      (is (= muproc.ffi:+esrch+ (muproc-error-code c)))))
  (is (= muproc.ffi:+esrch+ (muproc.ffi:%proc-kind #xffffff)))
  ;; A message's integer is data, never a code.
  (let ((msg (muproc.ffi:%msg-new 1 0)))
    (unwind-protect
         (progn (muproc.ffi:%msg-put-int msg (muproc::keyword-atom :n) -5)
                (is (= -5 (muproc.ffi:%msg-int msg 0))))
      (muproc.ffi:%msg-free msg))))

(deftest library.linking-to-oneself-does-nothing ()
  "As Erlang's link(self()) and unlink(self()): true, and no link."
  (is (equal '(t t nil)
             (muproc ()
               (list (muproc-link (muproc-current-process))
                     (muproc-unlink (muproc-current-process))
                     (muproc-links))))))
