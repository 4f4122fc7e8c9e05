;;;; muproc-benches.lisp - muproc's Lisp API under load.
;;;;
;;;; Each benchmark runs inside a muproc (the MUPROC form), which spawns
;;;; the muprocs it talks to.  Messages are built and matched the way an
;;;; application would: MUMSG-SEND of a plist, MUMSG-RECEIVE with clauses.

(defpackage #:muproc-bench.muproc
  (:use #:common-lisp #:muproc #:muproc-bench))

(in-package #:muproc-bench.muproc)

(defmacro in-muproc (&body body)
  "Run BODY in a fresh muproc, with no time limit; return its values."
  `(muproc (nil) ,@body))

(defun self () (muproc-current-process))

(define-bench "load" ()
  ;; Loading muproc (compiling it if needed) is all this does.
  nil)

(defun stop-and-wait (muprocs)
  (dolist (m muprocs) (mumsg-send m :stop t))
  (dolist (m muprocs) (muproc-wait-for-exit m)))

;;; ping-pong: round trip of a 1-key mumsg between two muprocs.

(defun pong-loop ()
  (loop
    (mumsg-receive (from)
      ((ping) t (mumsg-send from :pong (1+ ping)))
      ((stop) t (return)))))

(define-bench "ping-pong" (n reps)
  (in-muproc
    (measure "ping-pong" "muproc" "us/rt" n reps
             (lambda (n)
               (let ((server (muproc-spawn nil #'pong-loop '())))
                 (prog1
                     (let ((t0 (now-ns)))
                       (dotimes (i n)
                         (mumsg-send server :ping i)
                         (mumsg-receive (from)
                           ((pong) (eql pong (1+ i)) pong)))
                       (seconds-since t0))
                   (stop-and-wait (list server))))))))

;;; one-way and fan-in: (:cmd :square :x i) into one receiver.

(defun square-consumer (parent n)
  (let ((sum 0))
    (dotimes (k n)
      (mumsg-receive (from)
        ((cmd x) (eq cmd :square) (incf sum (* x x)))))
    (mumsg-send parent :done sum)))

(defun send-squares (to n)
  (dotimes (i n)
    (mumsg-send to :cmd :square :x i)))

(define-bench "one-way" (n reps)
  (in-muproc
    (measure "one-way" "muproc" "Mmsg/s" n reps
             (lambda (n)
               (let* ((receiver (muproc-spawn nil #'square-consumer (list (self) n)))
                      (t0 (now-ns)))
                 (send-squares receiver n)
                 (mumsg-receive (from) ((done) t))
                 (prog1 (seconds-since t0)
                   (muproc-wait-for-exit receiver)))))))

(defun fan-in-sender (to n)
  (mumsg-receive (from) ((go) t))
  (send-squares to n))

(define-bench "fan-in" (senders per-sender reps)
  (in-muproc
    (measure "fan-in" "muproc" "Mmsg/s" (* senders per-sender) reps
             (lambda (n)
               (let* ((per (max 1 (floor n senders)))
                      (receiver (muproc-spawn nil #'square-consumer
                                              (list (self) (* per senders))))
                      (group (loop repeat senders
                                   collect (muproc-spawn nil #'fan-in-sender
                                                         (list receiver per))))
                      (t0 (now-ns)))
                 (dolist (s group) (mumsg-send s :go t))
                 (mumsg-receive (from) ((done) t))
                 (prog1 (seconds-since t0)
                   (mapc #'muproc-wait-for-exit (cons receiver group))))))))

;;; spawn: a muproc that sends one message and exits.

(defun notify (parent)
  (mumsg-send parent :done t))

(define-bench "spawn" (n reps)
  (in-muproc
    ;; All N spawned first, then their N messages received (Erlang's
    ;; spawn anchor); then one at a time, each waited for.
    (measure "spawn" "muproc" "us/spawn" n reps
             (lambda (n)
               (let ((self (self))
                     (t0 (now-ns)))
                 (dotimes (i n) (muproc-spawn nil #'notify (list self)))
                 (dotimes (i n) (mumsg-receive (from) ((done) t)))
                 (seconds-since t0))))
    (measure "spawn-seq" "muproc" "us/spawn" n reps
             (lambda (n)
               (let ((self (self))
                     (t0 (now-ns)))
                 (dotimes (i n)
                   (let ((child (muproc-spawn nil #'notify (list self))))
                     (mumsg-receive (from) ((done) (eq from child)))))
                 (seconds-since t0))))))

;;; call: a generic-server call round trip.

(defpackage #:muproc-bench.echo-server
  (:use #:common-lisp #:muproc #:muproc.generic-server))

(in-package #:muproc-bench.echo-server)

(defun initialize () nil)

(muproc-define-call-handler echo (state from x)
  x)

(in-package #:muproc-bench.muproc)

(define-bench "call" (n reps)
  (in-muproc
    (measure "call" "muproc" "us/call" n reps
             (lambda (n)
               (let ((server (muproc-spawn nil (lambda ()
                                                 (muproc.generic-server:muproc-generic-start
                                                  :package :muproc-bench.echo-server))
                                           '())))
                 (prog1
                     (let ((t0 (now-ns)))
                       (dotimes (i n)
                         (unless (eql (muproc-bench.echo-server:echo* server i) i)
                           (error "wrong reply")))
                       (seconds-since t0))
                   (muproc.generic-server:muproc-generic-stop server)))))))

;;; ring: N muprocs, a token passed around M times.

(defun ring-node (parent)
  (let ((next (mumsg-receive (from) ((next) t next))))
    (loop
      (mumsg-receive (from)
        ((token) t
         (if (zerop token)
             (mumsg-send parent :ring-done t)
             (mumsg-send next :token (1- token))))
        ((stop) t (return))))))

(define-bench "ring" (nodes laps reps)
  (in-muproc
    (measure "ring" "muproc" "us/hop" (* nodes laps) reps
             (lambda (hops)
               (let* ((laps (max 1 (floor hops nodes)))
                      (ring (loop repeat nodes
                                  collect (muproc-spawn nil #'ring-node (list (self))))))
                 (loop for (node next) on ring
                       do (mumsg-send node :next (or next (first ring))))
                 (prog1
                     (let ((t0 (now-ns)))
                       (mumsg-send (first ring) :token (1- (* nodes laps)))
                       (mumsg-receive (from) ((ring-done) t))
                       ;; Seconds per hop times HOPS, for MEASURE.
                       (* (seconds-since t0) (/ hops (* nodes laps))))
                   (stop-and-wait ring)))))))

;;; selective receive: the match is queued behind JUNK older messages.

(defun fill-inport (junk key)
  (dotimes (i junk)
    (mumsg-send *muproc-inport* key -1)))

(defun match-next (i)
  (mumsg-send *muproc-inport* :match i)
  (mumsg-receive (from) ((match) t match)))

(defun key-indexed-p ()
  (plusp (getf (muproc-runtime-stats) :key-indexes)))

(defun time-matches-behind (junk key k)
  "Seconds for K receives of a fresh (:match i), each queued behind JUNK
older (KEY -1) messages, once the backlog is indexed: untimed receives
first, until libmuproc has built its key index (it does once scans have
skipped the backlog a few times over; TIME-FIRST-MATCH-BEHIND times the
first, unindexed receive)."
  (fill-inport junk key)
  (loop repeat 64
        do (match-next -1)
        until (key-indexed-p))
  (prog1
      (let ((t0 (now-ns)))
        (dotimes (i k) (match-next i))
        (seconds-since t0))
    (muproc-discard-all-pending-input)))

(defun time-first-match-behind (junk key n)
  "Seconds for N first receives behind JUNK older (KEY -1) messages,
each behind a fresh backlog: a scan (and the move of the backlog from the
senders' stack into the queue)."
  (let ((seconds 0))
    (dotimes (i n seconds)
      (fill-inport junk key)
      (let ((t0 (now-ns)))
        (match-next i)
        (incf seconds (seconds-since t0)))
      (muproc-discard-all-pending-input))))

(define-bench "selective" (junk k k-guard reps)
  (in-muproc
    ;; The older messages lack the key the clause names: the C filter
    ;; skips them without waking Lisp.
    (measure "selective" "muproc" "us/recv" k reps
             (lambda (k) (time-matches-behind junk :junk k)))
    ;; The older messages hold the key, and the guard rejects each: every
    ;; one is decoded and tried in Lisp.
    (measure "selective-guard" "muproc" "us/recv" k-guard reps
             (lambda (k)
               (fill-inport junk :match)
               (prog1
                   (let ((t0 (now-ns)))
                     (dotimes (i k)
                       (mumsg-send *muproc-inport* :match i)
                       (mumsg-receive (from) ((match) (>= match 0) match)))
                     (seconds-since t0))
                 (muproc-discard-all-pending-input))))
    ;; For scale: the same receive with an empty inport.
    (measure "selective-empty" "muproc" "us/recv" k reps
             (lambda (k) (time-matches-behind 0 :junk k)))
    ;; Ten times the backlog: the same time if the receive is O(1) in
    ;; the messages it skips (libmuproc's key index); and the first
    ;; receive behind each backlog, a scan.  Last: the churn of their
    ;; 100,000-message fills slows the guard scans above about fourfold
    ;; (with malloc as with libmuproc's message pool).
    (measure "selective-10x" "muproc" "us/recv" k reps
             (lambda (k) (time-matches-behind (* 10 junk) :junk k)))
    (measure "selective-first" "muproc" "us/recv" 5 reps
             (lambda (n) (time-first-match-behind junk :junk n)))
    (measure "selective-first-10x" "muproc" "us/recv" 5 reps
             (lambda (n) (time-first-match-behind (* 10 junk) :junk n)))))

;;; capacity: muprocs alive at once, blocked in a receive.

(defun idle ()
  (mumsg-receive (from) ((stop) t)))

(defun wait-until-waiting (muprocs)
  (loop until (every (lambda (m) (eq (muproc-state m) :waiting)) muprocs)
        do (sleep 0.01)))

(define-bench "capacity" (&rest levels)
  ;; Not inside a muproc: the spawner is the main thread, like a REPL.
  (let ((gc-reps 5))
    (sb-ext:gc :full t)
    (report-values "gc-0" "muproc" "ms/gc" 0
                   (loop repeat gc-reps collect (time-gc-ms)))
    (let ((rss0 (rss-kib))
          (alive '()))
      (handler-case
          (dolist (level levels)
            (let* ((new (- level (length alive)))
                   (t0 (now-ns)))
              (dotimes (i new)
                (push (muproc-spawn nil #'idle '()) alive))
              (let ((spawn-us (/ (- (now-ns) t0) 1d3 new)))
                (wait-until-waiting alive)
                (sb-ext:gc :full t)
                (report (format nil "spawn-alive-~d" level) "muproc" "us/spawn" new spawn-us)
                (report (format nil "memory-~d" level) "muproc" "KiB/proc" level
                        (/ (- (rss-kib) rss0) level))
                (report-values (format nil "gc-~d" level) "muproc" "ms/gc" level
                               (loop repeat gc-reps collect (time-gc-ms))))))
        (serious-condition (c)
          (fail "capacity" "muproc" c)))
      (format t "INFO muproc-thread-cap ~d~%" (muproc-thread-cap))
      (stop-and-wait alive))))
