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
(at most TIMEOUT seconds in all) until they have ended.  Returns how many
were told to end."
  (let* ((workers (loop for thread being the hash-keys of *worker-threads*
                        collect thread))
         (before (muproc.ffi:%stat muproc.ffi:+stat-threads+))
         (n (muproc.ffi:%worker-trim keep))
         (deadline (+ (get-internal-real-time)
                      (* timeout internal-time-units-per-second))))
    (flet ((seconds-left ()
             (max 0 (/ (- deadline (get-internal-real-time))
                       internal-time-units-per-second))))
      ;; Told to end, each leaves the worker table, then libmuproc's count.
      (sb-thread:with-mutex (*exit-lock*)
        (loop while (and (> (muproc.ffi:%stat muproc.ffi:+stat-threads+) (- before n))
                         (plusp (seconds-left)))
              do (wait-for-exit-event 0.1)))
      ;; Then wait for the threads themselves, so none is left behind:
      ;; those told to end (or idle long enough) have left the table.
      (dolist (thread workers)
        (unless (gethash thread *worker-threads*)
          (sb-thread:join-thread thread :default nil :timeout (seconds-left)))))
    n))

(defun muproc-runtime-stats ()
  "A plist describing the runtime: :PROCESSES (muprocs not yet released),
:THREADS (worker threads), :PARKED (idle workers), :HANDLES (objects
referenced from C), :MESSAGES (messages allocated), :ATOMS, :REGISTERED
(port names), :TIMERS (pending), :LINKS (link ends), :MONITORS,
:KEY-INDEXES (mailboxes whose backlog is indexed by key for selective
receive), :LISP-HANDLES (slots of the Lisp handle table in use),
:LIVE-MUPROCS (Lisp muprocs not yet finished)."
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
