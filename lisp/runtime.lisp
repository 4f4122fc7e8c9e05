;;;; runtime.lisp - loading the C runtime, and controlling it.

(in-package #:muproc)

;;; Signals for a Lisp muproc that is not waiting in a receive are
;;; "poked" by libmuproc; this thread turns pokes into thread interrupts
;;; (C never calls Lisp), which act at the muproc's next safe point.

(defun interrupt-muproc-thread (pid)
  (let* ((muproc (live-muproc pid))
         (thread (and muproc (%muproc-thread muproc))))
    (when thread
      ;; SBCL runs an interruption without interrupts: POLL-SIGNALS
      ;; enables them only around the user functions it runs.
      (handler-case (sb-thread:interrupt-thread thread (lambda () (poll-signals pid)))
        (sb-thread:interrupt-thread-error () nil)))))

(defun poke-dispatcher ()
  (cffi:with-foreign-object (buf :uint64 64)
    (loop
      (let ((n (sb-sys:without-interrupts
                 (muproc.ffi:%poke-wait muproc.ffi:+forever+ buf 64))))
        (when (minusp n)
          (return))
        (dotimes (i n)
          (interrupt-muproc-thread (cffi:mem-aref buf :uint64 i)))))))

(defvar *poke-dispatcher* nil)

(defun ensure-poke-dispatcher ()
  (unless (and *poke-dispatcher* (sb-thread:thread-alive-p *poke-dispatcher*))
    (setf *poke-dispatcher*
          (sb-thread:make-thread #'poke-dispatcher :name "muproc signal dispatcher"))))

(ensure-poke-dispatcher)

;;; SBCL ends its other threads when the image exits, but it can't end a
;;; thread blocked in C with interrupts deferred, and waits *EXIT-TIMEOUT*
;;; (60 s) for it.  So before that, end what blocks in C: muprocs, parked
;;; workers, the poke dispatcher.

(defun release-threads-blocked-in-c ()
  (setf *muproc-worker-idle-seconds* 0)
  (let ((live (live-muprocs)))
    (dolist (muproc live)
      (unless (%muproc-exited muproc)
        (send-signal muproc muproc.ffi:+k-kill+ (list :reason :shutdown :quiet t))))
    (dolist (muproc live)
      (muproc-wait-for-exit muproc :timeout 2)))
  (muproc.ffi:%worker-trim 0)
  (muproc.ffi:%poke-stop)
  (when *poke-dispatcher*
    (sb-thread:join-thread *poke-dispatcher* :default nil :timeout 2)))

(pushnew 'release-threads-blocked-in-c sb-ext:*exit-hooks*)

;;; A saved core: SAVE-LISP-AND-DIE needs this thread alone, and
;;; libmuproc's state (its heap, its threads) is not saved with the Lisp
;;; heap.  So saving ends every muproc and thread as exiting does, and the
;;; restarted image initialises a fresh libmuproc and forgets everything
;;; the Lisp side knew of the old one.

(defun release-threads-for-save ()
  (let ((idle *muproc-worker-idle-seconds*))
    (release-threads-blocked-in-c)
    (setf *muproc-worker-idle-seconds* idle)))

(defun forget-previous-runtime ()
  "Clear what the Lisp side holds of a libmuproc that is gone: muprocs,
names, handles, atom ids, worker threads."
  (fill **muproc-slots** nil)
  (clrhash *known-muprocs*)
  (clrhash *muproc-names*)
  (clrhash *worker-threads*)
  (fill *handle-chunks* nil)
  (setf *atom-keywords* (make-array 1024 :initial-element nil))
  (setf (car **exit-waiters**) 0)
  (setf *poke-dispatcher* nil))

(defun start-runtime-in-restarted-image ()
  (forget-previous-runtime)
  (muproc.ffi:load-library)
  (ensure-poke-dispatcher))

(pushnew 'release-threads-for-save sb-ext:*save-hooks*)
(pushnew 'start-runtime-in-restarted-image sb-ext:*init-hooks*)

(defun muproc-thread-cap ()
  "How many threads may run muprocs at once (parked workers included).
The default keeps SBCL below vm.max_map_count (it dies outright past it).
SETF-able."
  (muproc.ffi:%thread-cap))

(defun (setf muproc-thread-cap) (cap)
  (check-type cap (integer 1 #xffffffff))
  (muproc.ffi:%set-thread-cap cap)
  cap)

(defun muproc-trim-workers (&key (keep 0) (timeout 10))
  "End parked worker threads beyond the KEEP most recently parked, and wait
(at most TIMEOUT seconds in all; NIL: no limit) until they have ended.
Returns how many were told to end.  Signals MUPROC-INVALID-ARGUMENT for a
KEEP that is not a count or a TIMEOUT that is not a duration."
  (unless (typep keep '(integer 0 #xffffffff))
    (invalid-argument "MUPROC-TRIM-WORKERS" :keep keep "a count of threads"
                      '(integer 0 #xffffffff)))
  (let* ((timeout (wait-seconds timeout "MUPROC-TRIM-WORKERS"))
         (workers (loop for thread being the hash-keys of *worker-threads*
                        collect thread))
         (before (muproc.ffi:%stat muproc.ffi:+stat-threads+))
         (n (muproc.ffi:%worker-trim keep))
         (deadline (when timeout
                     (+ (get-internal-real-time)
                        (round (* timeout internal-time-units-per-second))))))
    (flet ((seconds-left ()
             (if deadline
                 (max 0 (/ (- deadline (get-internal-real-time))
                           internal-time-units-per-second))
                 +longest-duration+)))
      ;; Told to end, each leaves the worker table, then libmuproc's count.
      (sb-thread:with-mutex (*exit-lock*)
        (loop while (and (> (muproc.ffi:%stat muproc.ffi:+stat-threads+) (- before n))
                         (plusp (seconds-left)))
              do (wait-for-exit-event 0.1)))
      ;; Then wait for the threads themselves, so none is left behind:
      ;; those told to end (or idle long enough) have left the table.
      (dolist (thread workers)
        (unless (gethash thread *worker-threads*)
          (sb-thread:join-thread thread :default nil
                                        :timeout (and deadline (seconds-left))))))
    n))

(defun muproc-runtime-stats ()
  "A plist describing the runtime: :PROCESSES (muprocs not yet released),
:THREADS (worker threads), :PARKED (idle workers), :HANDLES (objects
referenced from C), :MESSAGES (messages allocated), :ATOMS, :REGISTERED
(port names), :TIMERS (pending), :LINKS (link ends), :MONITORS,
:KEY-INDEXES (mailboxes whose backlog is indexed by key for selective
receive), :LISP-HANDLES (slots of the Lisp handle table in use),
:LIVE-MUPROCS (Lisp muprocs not yet finished)."
  ;; Timer messages libmuproc dropped are garbage, not in use.
  (reap-dropped-timer-messages)
  (flet ((stat (what) (muproc.ffi:%stat what)))
    (list :processes (stat muproc.ffi:+stat-procs+)
          :threads (stat muproc.ffi:+stat-threads+)
          :parked (stat muproc.ffi:+stat-parked+)
          :handles (stat muproc.ffi:+stat-handles+)
          :messages (stat muproc.ffi:+stat-messages+)
          :atoms (stat muproc.ffi:+stat-atoms+)
          :registered (stat muproc.ffi:+stat-registered+)
          :timers (stat muproc.ffi:+stat-timers+)
          :links (stat muproc.ffi:+stat-links+)
          :monitors (stat muproc.ffi:+stat-monitors+)
          :key-indexes (stat muproc.ffi:+stat-key-indexes+)
          :lisp-handles (lisp-handle-count)
          :live-muprocs (length (live-muprocs)))))
