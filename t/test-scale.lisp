;;;; test-scale.lisp - many muprocs: at once, up to the thread cap, and
;;;; one after another on reused workers.

(in-package #:muproc-tests)

(def-suite :muproc/scale :in :muproc :description "Many muprocs.")
(in-suite :muproc/scale)

(defun scale-echo (i)
  "Wait for (:go x), answer (:echo (i x)) to its sender, exit."
  (mumsg-receive (from) ((go) t (mumsg-send from :echo (list i go)))))

(defun scale-wait ()
  "Block until (:release)."
  (mumsg-receive (from) ((release) t)))

(defun worker-threads ()
  (getf (muproc-runtime-stats) :threads))

(deftest scale.thousand-concurrent-muprocs (:timeout 120)
  "1,000 muprocs alive at the same time (each waits for its :go) each echo
one message to the right sender, then all exit normally; afterwards
MUPROC-TRIM-WORKERS ends the idle worker threads."
  (let ((n 1000))
    (destructuring-bind (alive listed threads answers wrong reasons)
        (muproc (100)
          (let ((echoers (coerce (loop for i below n
                                       collect (muproc-spawn nil #'scale-echo (list i)))
                                 'vector)))
            ;; None of them can exit before its :go: all are alive now.
            (let ((alive (count-if #'muproc-alive-p echoers))
                  (listed (count-if (lambda (m) (find m echoers)) (muproc-all-processes)))
                  (threads (worker-threads))
                  (answers (make-array n :initial-element nil))
                  (wrong '()))
              (loop for m across echoers
                    for i from 0
                    do (mumsg-send m :go (* i i)))
              (loop repeat n
                    do (mumsg-receive (from)
                         ((echo) t
                          (destructuring-bind (i square) echo
                            (if (and (eq from (aref echoers i)) (null (aref answers i)))
                                (setf (aref answers i) square)
                                (push echo wrong))))))
              (list alive listed threads answers wrong
                    (remove-duplicates
                     (map 'list (lambda (m) (muproc-wait-for-exit m :timeout 30))
                          echoers))))))
      (is (= n alive) "only ~d of ~d alive at once" alive n)
      (is (= n listed) "MUPROC-ALL-PROCESSES listed ~d of ~d" listed n)
      (is (<= n threads) "~d muprocs on ~d threads" n threads)
      (is (every #'eql answers (loop for i below n collect (* i i))))
      (is (null wrong) "wrong echoes: ~s" wrong)
      (is (equal '(:normal) reasons)))
    (is-true (await (lambda () (and (null (muproc-all-processes)) (workers-settled-p)))
                    :timeout 10))
    (is (<= n (muproc-trim-workers)))
    (let ((stats (muproc-runtime-stats)))
      (is (zerop (getf stats :threads)) "~d worker threads left" (getf stats :threads))
      (is (zerop (getf stats :parked))))
    (is (< (length (sb-thread:list-all-threads)) 100)
        "~d SBCL threads left" (length (sb-thread:list-all-threads)))
    (is (eql 42 (muproc () 42)) "muprocs run after the trim")))

(deftest scale.thread-cap (:timeout 60)
  "With the thread cap at the current worker threads + 5, spawning muprocs
that block takes every worker up to the cap, then signals
MUPROC-THREAD-LIMIT (a MUPROC-ERROR) and starts nothing (the name is free,
nothing is counted); the muprocs already running keep working, the MUPROC
form signals the limit too (with interrupts enabled), and once the blocked
muprocs are released spawning works again."
  (let ((old-cap (muproc-thread-cap))
        (blocked '()))
    (unwind-protect
         (progn
           (is-true (await #'workers-settled-p :timeout 10))
           (let* ((cap (+ (worker-threads) 5))
                  (condition nil)
                  (failed-name nil))
             (setf (muproc-thread-cap) cap)
             (is (= cap (muproc-thread-cap)))
             (loop for i below (+ cap 10)
                   for name = (intern (format nil "CAP-TEST-~d" i) :muproc-tests)
                   do (handler-case (push (muproc-spawn name #'scale-wait nil) blocked)
                        (muproc-thread-limit (c)
                          (setf condition c failed-name name)
                          (return))))
             (is (typep condition 'muproc-thread-limit))
             (is (typep condition 'muproc-error))
             (is (= cap (length blocked)) "~d spawned under a cap of ~d" (length blocked) cap)
             (is (null (muproc-find failed-name)) "the refused spawn holds its name")
             (let ((stats (muproc-runtime-stats)))
               (is (= cap (getf stats :processes)))
               (is (= cap (getf stats :live-muprocs)))
               (is (= cap (getf stats :threads))))
             (is (= cap (length (muproc-all-processes))))
             (is (every #'muproc-alive-p blocked))
             (signals muproc-thread-limit (muproc-spawn nil #'scale-wait nil))
             (signals muproc-thread-limit (muproc () 42))
             ;; ... where the caller can still be interrupted (a REPL user
             ;; in the debugger must be able to press C-c).
             (let ((interrupts-enabled :not-signalled))
               (ignore-errors
                (handler-bind ((muproc-thread-limit
                                 (lambda (c)
                                   (declare (ignore c))
                                   (setf interrupts-enabled sb-sys:*interrupts-enabled*))))
                  (muproc () 42)))
               (is (eq t interrupts-enabled)
                   "the MUPROC form signalled the limit with interrupts ~a"
                   interrupts-enabled))
             ;; The running ones still serve.
             (let ((one (first blocked)))
               (mumsg-send one :release t)
               (is (eq :normal (muproc-wait-for-exit one :timeout 10)))
               (pop blocked))
             (dolist (m blocked) (mumsg-send m :release t))
             (is (every (lambda (m) (eq :normal (muproc-wait-for-exit m :timeout 10)))
                        blocked))
             (setf blocked '())
             ;; The workers are free once they are parked again.
             (is-true (await #'workers-settled-p :timeout 10))
             (is (eq :normal (spawn-and-wait (lambda () nil))))
             (is (eql 42 (muproc () 42)))
             (is (eq :normal (muproc-wait-for-exit (muproc-spawn failed-name (lambda () nil) nil)
                                                   :timeout 10)))))
      (dolist (m blocked) (ignore-errors (mumsg-send m :release t)))
      (setf (muproc-thread-cap) old-cap))
    (is (= old-cap (muproc-thread-cap)))))

;;; Issue 10, item 5: the refused spawn's link used to stay, and its
;;; abandoned muproc's exit killed the spawner with (:LINKED-TO-EXIT NIL
;;; :FOR-REASON NIL), or queued a notice of it for a trapping spawner.
(deftest scale.linked-spawn-refused-at-the-cap-leaves-no-trace (:timeout 60)
  "A spawn with :LINK T refused at the thread cap signals
MUPROC-THREAD-LIMIT in its caller and leaves no trace, whether the caller
traps exits or not: the caller keeps running and exits normally, it has no
link, no notice or exit signal of the muproc that never ran comes, and the
name is free."
  (let ((old-cap (muproc-thread-cap)))
    (unwind-protect
         (dolist (trap '(nil t))
           (is-true (await #'workers-settled-p :timeout 10))
           (let* ((observed nil)
                  (caller
                    (muproc-spawn
                     nil
                     (lambda ()
                       ;; With no parked worker and the cap at our own
                       ;; thread, the next spawn can't get a worker.
                       (muproc-trim-workers)
                       (setf (muproc-thread-cap) 1)
                       (let ((refused (handler-case
                                          (muproc-spawn 'cap-link-test #'scale-wait nil :link t)
                                        (muproc-thread-limit (c) c))))
                         (setf (muproc-thread-cap) old-cap)
                         (setf observed
                               (list refused (muproc-links)
                                     ;; A receive: a safe point where a
                                     ;; pending exit signal is acted on.
                                     (next-message-after-marker)
                                     (muproc-find 'cap-link-test)))))
                     nil :trap-exits trap)))
             (is (eq :normal (muproc-wait-for-exit caller :timeout 20))
                 "trap-exits ~s: the caller exited with ~s" trap
                 (muproc-wait-for-exit caller :timeout 0))
             (destructuring-bind (&optional refused links after found) observed
               (is (typep refused 'muproc-thread-limit)
                   "trap-exits ~s: the spawn returned ~s" trap refused)
               (is (null links) "trap-exits ~s: links left: ~s" trap links)
               (is (eq :only-marker after) "trap-exits ~s: a notice came: ~s" trap after)
               (is (null found) "trap-exits ~s: the name is taken" trap))))
      (setf (muproc-thread-cap) old-cap))
    (is (= old-cap (muproc-thread-cap)))))

(deftest scale.sequential-spawns-reuse-workers (:timeout 120)
  "20,000 short muprocs spawned one after another all exit normally and run
on a handful of reused worker threads (never a thread per muproc)."
  (let ((n 20000)
        (threads (make-hash-table :test 'eq :synchronized t))
        (not-normal 0)
        (most-threads 0)
        (before (worker-threads))
        (start (now)))
    (dotimes (i n)
      (let ((m (muproc-spawn nil (lambda ()
                                   (setf (gethash sb-thread:*current-thread* threads) t))
                             nil)))
        (unless (eq :normal (muproc-wait-for-exit m :timeout 10))
          (incf not-normal))
        (when (zerop (mod i 100))
          (setf most-threads (max most-threads (worker-threads))))))
    (let ((seconds (seconds-since start)))
      (is (zerop not-normal))
      (is (<= (hash-table-count threads) (+ before 5))
          "~d muprocs ran on ~d threads" n (hash-table-count threads))
      (is (<= most-threads (+ before 5))
          "up to ~d worker threads (~d before)" most-threads before)
      (is (< seconds 60) "~d spawns took ~,1f s" n seconds))))

(defun all-waiting-p (muprocs)
  (every (lambda (m) (eq :waiting (muproc-state m))) muprocs))

(deftest scale.ten-thousand-alive-then-the-cap (:timeout 120)
  "10,000 muprocs alive at once (the issue's capacity figure; fewer only if
the machine's default thread cap is lower), each blocked in a receive on
its own worker thread, with the thread cap set to exactly that many: one
more spawn signals MUPROC-THREAD-LIMIT and starts nothing, the 10,000 keep
running and all exit normally, and their threads are then trimmed (10,000
parked threads would slow every later GC by a second)."
  (let* ((old-cap (muproc-thread-cap))
         (n (min 10000 old-cap))
         (alive '()))
    (unwind-protect
         (progn
           ;; The cap counts every worker thread: start from none.
           (is-true (await #'workers-settled-p :timeout 10))
           (muproc-trim-workers)
           (setf (muproc-thread-cap) n)
           (dotimes (i n)
             (push (muproc-spawn nil #'scale-wait nil) alive))
           (is-true (await (lambda () (all-waiting-p alive)) :timeout 60)
                    "not all ~d muprocs reached their receive" n)
           (let ((stats (muproc-runtime-stats)))
             (is (= n (getf stats :threads)))
             (is (= n (getf stats :live-muprocs))))
           (signals muproc-thread-limit (muproc-spawn nil #'scale-wait nil))
           (let ((stats (muproc-runtime-stats)))
             (is (= n (getf stats :processes)) "the refused spawn left a process")
             (is (= n (getf stats :threads)) "the refused spawn left a thread"))
           (is (all-waiting-p alive))
           (dolist (m alive) (mumsg-send m :release t))
           (is (every (lambda (m) (eq :normal (muproc-wait-for-exit m :timeout 30))) alive))
           (setf alive '()))
      (dolist (m alive)
        (ignore-errors (mumsg-send m :release t))
        (muproc-wait-for-exit m :timeout 10))
      (setf (muproc-thread-cap) old-cap)
      (await #'workers-settled-p :timeout 30)
      (muproc-trim-workers :timeout 60))
    (is (zerop (getf (muproc-runtime-stats) :threads)))))
