;;;; ffi.lisp - loading libmuproc and the raw bindings to it.
;;;;
;;;; Thin on purpose: %NAME functions mirror c/muproc.h one to one, CHECK
;;;; turns an unexpected negative code into a condition.  Policy lives in
;;;; the files above this one.

(in-package #:muproc.ffi)

;;; The version of the C interface this Lisp code was written against.
(defconstant +major+ 0)
(defconstant +minor+ 3)

;;; The size of libmuproc's process table, given to muproc_init: pid
;;; numbers run from 1 to this, and the Lisp side indexes its muprocs by
;;; them (see **MUPROC-SLOTS**).
(defconstant +max-procs+ 65536)

(cffi:define-foreign-library libmuproc
  (:unix "libmuproc.so.0")
  (t (:default "libmuproc")))

(defun installed-libdir ()
  "The libdir recorded by 'make install' next to the installed muproc.asd."
  (let ((file (asdf:system-relative-pathname "muproc" "libdir.sexp")))
    (when (probe-file file)
      (with-open-file (in file) (read in nil nil)))))

(defun library-directories ()
  "Directories searched for libmuproc.so.0, in order: $MUPROC_LIBDIR, the
build tree next to muproc.asd (c/.libs/), then the installed libdir."
  (remove nil
          (list (let ((dir (uiop:getenv "MUPROC_LIBDIR")))
                  (when (and dir (plusp (length dir)))
                    (uiop:ensure-directory-pathname dir)))
                (asdf:system-relative-pathname "muproc" "c/.libs/")
                (let ((dir (installed-libdir)))
                  (when dir (uiop:ensure-directory-pathname dir))))))

;;; Constants of c/muproc.h.

(defconstant +ok+ 0)
(defconstant +einval+ -1)
(defconstant +enomem+ -2)
(defconstant +esrch+ -3)
(defconstant +eexist+ -4)
(defconstant +enoent+ -5)
(defconstant +etimedout+ -6)
(defconstant +efull+ -7)
(defconstant +ethreads+ -8)
(defconstant +eproclim+ -9)
(defconstant +enotinit+ -10)
(defconstant +ebusy+ -11)
(defconstant +eperm+ -12)
(defconstant +etype+ -13)
(defconstant +erange+ -14)
(defconstant +eshutdown+ -15)
(defconstant +estate+ -16)
(defconstant +signalled+ 1)
(defconstant +taken+ 2)
(defconstant +recv-restart+ 1)
(defconstant +recv-take+ 2)
(defconstant +filter-final+ #x80000000)
(defconstant +worker-needed+ 1)
(defconstant +forever+ -1)
(defconstant +nowait+ 0)

(defconstant +t-nil+ 0)
(defconstant +t-int+ 1)
(defconstant +t-double+ 2)
(defconstant +t-atom+ 3)
(defconstant +t-string+ 4)
(defconstant +t-binary+ 5)
(defconstant +t-pid+ 6)
(defconstant +t-ref+ 7)
(defconstant +t-handle+ 8)

(defconstant +k-message+ 0)
(defconstant +k-exit+ 1)
(defconstant +k-kill+ 2)
(defconstant +k-timer+ 3)
(defconstant +k-interrupt+ 4)

(defconstant +pair-size+ 16
  "Bytes per muproc_pair_t: key (uint32) at 0, type (uint32) at 4, value
(8 bytes) at 8; a string's offset and length are the two uint32 at 8 and 12.")
(defconstant +view-size+ 40
  "Bytes of a muproc_msg_view_t: pairs pointer at 0, byte area at 8,
sender at 16, npairs (uint32) at 24, kind (int32) at 28, sent_ns (int64)
at 32.")

(defconstant +kind-lisp+ 0)
(defconstant +kind-c+ 1)

(defconstant +s-noproc+ 0)
(defconstant +s-created+ 1)
(defconstant +s-running+ 2)
(defconstant +s-waiting+ 3)
(defconstant +s-exited+ 4)

(defconstant +stat-procs+ 0)
(defconstant +stat-threads+ 1)
(defconstant +stat-parked+ 2)
(defconstant +stat-handles+ 3)
(defconstant +stat-messages+ 4)
(defconstant +stat-atoms+ 5)
(defconstant +stat-registered+ 6)
(defconstant +stat-timers+ 7)
(defconstant +stat-links+ 8)
(defconstant +stat-monitors+ 9)
(defconstant +stat-key-indexes+ 10)

(defun call-failed (code c-name)
  (error 'muproc:muproc-runtime-error :code code :operation c-name))

(defmacro defcall (name c-name return-type &rest args)
  "Define a binding of the C function C-NAME, called with Lisp interrupts
deferred: SBCL runs an interrupt even in a thread that is inside foreign
code, and one that unwound (an exit, a timeout) would leave the C call
half done, a C lock held; deferred, it runs as soon as the call returns.
NAME is the Lisp name, or (NAME :ALLOW CODES), or (NAME :VALUE T).  The
error policy is the binding's: a negative result of an :INT or :INT64
function (a MUPROC_E* code) signals MUPROC-RUNTIME-ERROR naming C-NAME,
unless it is one of CODES (names of the constants above), which are
returned for the caller to handle.  :VALUE T marks a function whose
result is data (a message's integer, say), never a code.  Other results
are returned as they are."
  (destructuring-bind (lisp-name &key allow value) (if (consp name) name (list name))
    (let* ((raw (intern (format nil "%~a" (symbol-name lisp-name)) :muproc.ffi))
           (params (mapcar #'first args))
           (checked (and (member return-type '(:int :int64)) (not value)))
           (call `(sb-sys:without-interrupts (,raw ,@params))))
      `(progn
         (declaim (inline ,raw ,lisp-name))
         (cffi:defcfun (,c-name ,raw) ,return-type ,@args)
         (defun ,lisp-name ,params
           ,(if checked
                (let ((rc (gensym "RC")))
                  `(let ((,rc ,call))
                     (if (and (minusp ,rc)
                              (not (or ,@(loop for code in allow
                                               collect `(= ,rc ,code)))))
                         (call-failed ,rc ,c-name)
                         ,rc)))
                call))))))

(defcall %version "muproc_version" :unsigned-int)
(defcall %version-string "muproc_version_string" :string)
(defcall %strerror "muproc_strerror" :string (code :int))
(defcall %err-name "muproc_err_name" :string (code :int))

(defcall %init "muproc_init" :int (max-procs :uint32) (max-threads :uint32))
(defcall %now-ns "muproc_now_ns" :int64)
(defcall %thread-cap "muproc_thread_cap" :uint32)
(defcall %set-thread-cap "muproc_set_thread_cap" :int64 (cap :uint32))
(defcall %stat "muproc_stat" :int64 (what :int))
(defcall %creation "muproc_creation" :uint32)
(defcall %make-ref "muproc_make_ref" :uint64)

(defcall %atom "muproc_atom" :int64 (name :pointer) (len :size))
(defcall %atom-name "muproc_atom_name" :pointer (atom :uint32) (len :pointer))

(defcall %handle-live "muproc_handle_live" :int (handle :uint64))
(defcall %handle-new "muproc_handle_new" :int (out :pointer))
(defcall %handle-release "muproc_handle_release" :int (handle :uint64))

(defcall %msg-new "muproc_msg_new" :pointer (npairs :uint32) (nbytes :size))
(defcall %msg-free "muproc_msg_free" :void (msg :pointer))
(defcall %msg-release "muproc_msg_release" :size (msg :pointer) (dead :pointer) (cap :size))
(defcall %msg-put-nil "muproc_msg_put_nil" :int (msg :pointer) (key :uint32))
(defcall %msg-put-int "muproc_msg_put_int" :int (msg :pointer) (key :uint32) (value :int64))
(defcall %msg-put-double "muproc_msg_put_double" :int (msg :pointer) (key :uint32) (value :double))
(defcall %msg-put-atom "muproc_msg_put_atom" :int (msg :pointer) (key :uint32) (value :uint32))
(defcall %msg-put-string "muproc_msg_put_string" :int (msg :pointer) (key :uint32) (bytes :pointer) (len :size))
(defcall %msg-put-binary "muproc_msg_put_binary" :int (msg :pointer) (key :uint32) (bytes :pointer) (len :size))
(defcall %msg-put-pid "muproc_msg_put_pid" :int (msg :pointer) (key :uint32) (value :uint64))
(defcall %msg-put-ref "muproc_msg_put_ref" :int (msg :pointer) (key :uint32) (value :uint64))
(defcall %msg-put-new-handle "muproc_msg_put_new_handle" :int (msg :pointer) (key :uint32) (out :pointer))

(defcall %msg-size "muproc_msg_size" :uint32 (msg :pointer))
(defcall %msg-key "muproc_msg_key" :uint32 (msg :pointer) (i :uint32))
(defcall %msg-type "muproc_msg_type" :int (msg :pointer) (i :uint32))
(defcall (%msg-int :value t) "muproc_msg_int" :int64 (msg :pointer) (i :uint32))
(defcall %msg-double "muproc_msg_double" :double (msg :pointer) (i :uint32))
(defcall %msg-atom "muproc_msg_atom" :uint32 (msg :pointer) (i :uint32))
(defcall %msg-bytes "muproc_msg_bytes" :pointer (msg :pointer) (i :uint32) (len :pointer))
(defcall %msg-pid "muproc_msg_pid" :uint64 (msg :pointer) (i :uint32))
(defcall %msg-ref "muproc_msg_ref" :uint64 (msg :pointer) (i :uint32))
(defcall %msg-handle "muproc_msg_handle" :uint64 (msg :pointer) (i :uint32))
(defcall (%msg-find :allow (+enoent+)) "muproc_msg_find" :int (msg :pointer) (key :uint32))
(defcall %msg-sender "muproc_msg_sender" :uint64 (msg :pointer))
(defcall %msg-kind "muproc_msg_kind" :int (msg :pointer))
(defcall %msg-view "muproc_msg_view" :int (msg :pointer) (view :pointer))
(defcall %msg-new-pairs "muproc_msg_new_pairs" :int
  (pairs :pointer) (npairs :uint32) (bytes :pointer) (nbytes :size) (out :pointer))

(defcall %proc-create "muproc_proc_create" :int (name :uint32) (kind :int) (capacity :uint32) (out :pointer))
(defcall %proc-start "muproc_proc_start" :int (pid :uint64))
(defcall %proc-exit "muproc_proc_exit" :int (pid :uint64) (type :int) (value :uint64))
(defcall %proc-release "muproc_proc_release" :int (pid :uint64))
(defcall %self "muproc_self" :uint64)
(defcall %proc-state "muproc_proc_state" :int (pid :uint64))
(defcall %proc-name "muproc_proc_name" :uint32 (pid :uint64))
(defcall (%proc-kind :allow (+esrch+)) "muproc_proc_kind" :int (pid :uint64))
(defcall (%proc-exit-reason :allow (+esrch+)) "muproc_proc_exit_reason" :int (pid :uint64) (type :pointer) (value :pointer))
(defcall %proc-list "muproc_proc_list" :int64 (buf :pointer) (cap :size))

(defcall (%register :allow (+eexist+ +esrch+)) "muproc_register" :int (name :uint32) (pid :uint64))
(defcall (%unregister :allow (+enoent+)) "muproc_unregister" :int (name :uint32))
(defcall (%whereis :allow (+enoent+)) "muproc_whereis" :int (name :uint32) (out :pointer))
(defcall (%registered-names :allow (+esrch+)) "muproc_registered_names" :int64 (pid :uint64) (buf :pointer) (cap :size))

(defcall (%send :allow (+esrch+ +efull+)) "muproc_send" :int (to :uint64) (msg :pointer))
(defcall (%signal-send :allow (+esrch+)) "muproc_signal_send" :int (to :uint64) (kind :int) (msg :pointer))
(defcall (%recv :allow (+etimedout+)) "muproc_recv" :int (self :uint64) (after :pointer) (filter :pointer) (deadline :int64) (out :pointer))
(defcall (%recv-signal :allow (+etimedout+)) "muproc_recv_signal" :int (self :uint64) (deadline :int64) (out :pointer))
(defcall %recv-take "muproc_recv_take" :int (self :uint64) (msg :pointer))
(defcall (%recv-next :allow (+etimedout+)) "muproc_recv_next" :int
  (self :uint64) (flags :int) (filter :pointer) (deadline :int64) (out :pointer)
  (view :pointer) (set :pointer))
(defcall (%recv-take-mark :allow (+estate+)) "muproc_recv_take_mark" :int (self :uint64) (out :pointer))
(defcall %poke-request "muproc_poke_request" :void (pid :uint64))
(defcall (%mbox-count :allow (+esrch+)) "muproc_mbox_count" :int64 (pid :uint64))
(defcall (%mbox-signal-count :allow (+esrch+)) "muproc_mbox_signal_count" :int64 (pid :uint64))
(defcall (%mbox-capacity :allow (+esrch+)) "muproc_mbox_capacity" :int64 (pid :uint64))
(defcall (%mbox-totals :allow (+esrch+)) "muproc_mbox_totals" :int
  (pid :uint64) (arrived :pointer) (taken :pointer) (sent :pointer))
(defcall (%mbox-peek :allow (+esrch+ +enoent+ +eperm+)) "muproc_mbox_peek" :int (self :uint64) (index :uint64) (view :pointer))
(defcall (%proc-cpu-ns :allow (+esrch+ +estate+)) "muproc_proc_cpu_ns" :int64 (pid :uint64))

(defcall (%link :allow (+esrch+)) "muproc_link" :int (a :uint64) (b :uint64))
(defcall %unlink "muproc_unlink" :int (a :uint64) (b :uint64))
(defcall (%links :allow (+esrch+)) "muproc_links" :int64 (pid :uint64) (buf :pointer) (cap :size))
(defcall %monitor "muproc_monitor" :int (watcher :uint64) (target :uint64) (out :pointer))
(defcall (%demonitor :allow (+enoent+)) "muproc_demonitor" :int (watcher :uint64) (ref :uint64))
(defcall (%monitors :allow (+esrch+)) "muproc_monitors" :int64 (pid :uint64) (watchers :int) (buf :pointer) (cap :size))
(defcall (%send-exit :allow (+esrch+)) "muproc_send_exit" :int (to :uint64) (type :int) (value :uint64))
(defcall %set-trap-exits "muproc_proc_set_trap_exits" :int (pid :uint64) (on :int))
(defcall (%trap-exits :allow (+esrch+)) "muproc_proc_trap_exits" :int (pid :uint64))
(defcall %poke-stop "muproc_poke_stop" :void)
(defcall %alias-add "muproc_alias_add" :int (self :uint64) (out :pointer))
(defcall %alias-add-reply "muproc_alias_add_reply" :int (self :uint64) (out :pointer))
(defcall (%alias-remove :allow (+enoent+ +esrch+)) "muproc_alias_remove" :int (self :uint64) (alias :uint64))
(defcall (%send-alias :allow (+esrch+ +enoent+)) "muproc_send_alias" :int (to :uint64) (alias :uint64) (msg :pointer))
(defcall (%poke-wait :allow (+eshutdown+ +etimedout+)) "muproc_poke_wait" :int64 (deadline :int64) (buf :pointer) (cap :size))

(defcall (%timer-send-after :allow (+esrch+)) "muproc_timer_send_after" :int (to :uint64) (when :int64) (msg :pointer) (out :pointer))
(defcall (%timer-signal :allow (+esrch+)) "muproc_timer_signal" :int (to :uint64) (when :int64) (repeat :int64) (payload :pointer) (out :pointer))
(defcall (%timer-cancel :allow (+enoent+)) "muproc_timer_cancel" :int (id :uint64))
(defcall %timer-reap "muproc_timer_reap" :pointer)

(defcall (%worker-offer :allow (+ethreads+)) "muproc_worker_offer" :int (pid :uint64))
(defcall %worker-unreserve "muproc_worker_unreserve" :void)
(defcall (%worker-park :allow (+etimedout+ +eshutdown+)) "muproc_worker_park" :int (deadline :int64) (out :pointer))
(defcall %worker-exit "muproc_worker_exit" :void)
(defcall %worker-trim "muproc_worker_trim" :int64 (keep :uint32))

(defvar *creation* nil
  "The creation of the runtime LOAD-LIBRARY initialised: atom ids cached on
the Lisp side are valid for this creation only.")

(defun load-library ()
  "Load libmuproc, preferring an explicit directory over the ld.so search
(an installed copy in the ld cache must not shadow the build tree), then
check its version and initialise the runtime.  Idempotent, so a saved core
can call it again at start-up, and reloading muproc in a live image keeps
the library already in it, with its runtime and running muprocs.  Signals
MUPROC:MUPROC-LIBRARY-NOT-FOUND listing every path tried, or
MUPROC:MUPROC-VERSION-MISMATCH."
  ;; Not FOREIGN-LIBRARY-LOADED-P: reloading this file makes a new, unloaded
  ;; library object, and loading the same file again makes SBCL close and
  ;; reopen it, which would replace the runtime under the running muprocs.
  (unless (cffi:foreign-symbol-pointer "muproc_init")
    (let* ((candidates (mapcar (lambda (dir) (merge-pathnames "libmuproc.so.0" dir))
                               (library-directories)))
           (found (find-if #'probe-file candidates))
           (tried (append (mapcar #'namestring candidates)
                          (list "libmuproc.so.0 through the ld.so search path"))))
      (handler-bind ((cffi:load-foreign-library-error
                       (lambda (e)
                         ;; Signalled from inside the handler so that CFFI's
                         ;; RETRY and USE-VALUE restarts stay available.
                         (error 'muproc:muproc-library-not-found
                                :tried tried :cause (princ-to-string e)))))
        (if found
            (cffi:load-foreign-library (namestring found))
            (cffi:load-foreign-library 'libmuproc)))))
  (check-version)
  ;; A runtime already initialised stays as it is (muproc_init returns 1).
  (let ((rc (%init +max-procs+ 0)))
    (when (minusp rc)
      (error 'muproc:muproc-runtime-error :code rc :operation "muproc_init")))
  (setf *creation* (%creation))
  t)

(defun check-version ()
  (let* ((v (cffi:foreign-funcall "muproc_version" :unsigned-int))
         (major (ldb (byte 8 16) v))
         (minor (ldb (byte 8 8) v)))
    (unless (and (= major +major+) (>= minor +minor+))
      (error 'muproc:muproc-version-mismatch
             :loaded (cffi:foreign-funcall "muproc_version_string" :string)
             :expected (format nil "~d.~d.x" +major+ +minor+)))))
