;;;; sbcl-anchors.lisp - SBCL's own threads and sb-concurrency mailboxes.
;;;;
;;;; The same shapes as the muproc benchmarks, with a plain SBCL thread per
;;;; party and an SB-CONCURRENCY mailbox per receiver.  Messages are fresh
;;;; plists, like the mumsgs they stand for.

(require :sb-concurrency)

(defpackage #:muproc-bench.sbcl
  (:use #:common-lisp #:muproc-bench)
  (:import-from #:sb-concurrency #:make-mailbox #:send-message #:receive-message))

(in-package #:muproc-bench.sbcl)

(defun thread (function &rest arguments)
  (sb-thread:make-thread function :name "bench" :arguments arguments))

;;; ping-pong

(define-bench "sbcl-ping-pong" (n reps)
  (measure "ping-pong" "sbcl-mailbox" "us/rt" n reps
           (lambda (n)
             (let* ((to-pong (make-mailbox))
                    (to-ping (make-mailbox))
                    (pong (thread (lambda ()
                                    (loop for msg = (receive-message to-pong)
                                          until (eq (first msg) :stop)
                                          do (send-message to-ping
                                                           (list :pong (1+ (second msg)))))))))
               (prog1
                   (let ((t0 (now-ns)))
                     (dotimes (i n)
                       (send-message to-pong (list :ping i))
                       (unless (eql (second (receive-message to-ping)) (1+ i))
                         (error "wrong reply")))
                     (seconds-since t0))
                 (send-message to-pong (list :stop t))
                 (sb-thread:join-thread pong))))))

;;; one-way and fan-in

(defun consume-squares (mailbox n)
  (let ((sum 0))
    (dotimes (k n sum)
      (let ((msg (receive-message mailbox)))
        (when (eq (getf msg :cmd) :square)
          (incf sum (expt (getf msg :x) 2)))))))

(defun send-squares (mailbox n)
  (dotimes (i n)
    (send-message mailbox (list :cmd :square :x i))))

(define-bench "sbcl-one-way" (n reps)
  (measure "one-way" "sbcl-mailbox" "Mmsg/s" n reps
           (lambda (n)
             (let* ((mailbox (make-mailbox))
                    (t0 (now-ns))
                    (consumer (thread #'consume-squares mailbox n)))
               (send-squares mailbox n)
               (sb-thread:join-thread consumer)
               (seconds-since t0)))))

(define-bench "sbcl-fan-in" (senders per-sender reps)
  (measure "fan-in" "sbcl-mailbox" "Mmsg/s" (* senders per-sender) reps
           (lambda (n)
             (let* ((per (max 1 (floor n senders)))
                    (mailbox (make-mailbox))
                    (go (make-mailbox))
                    (group (loop repeat senders
                                 collect (thread (lambda ()
                                                   (receive-message go)
                                                   (send-squares mailbox per)))))
                    (consumer (thread #'consume-squares mailbox (* per senders)))
                    (t0 (now-ns)))
               (dolist (s group) (declare (ignore s)) (send-message go :go))
               (sb-thread:join-thread consumer)
               (prog1 (seconds-since t0)
                 (mapc #'sb-thread:join-thread group))))))

;;; spawn: make-thread + join-thread, the thread sends one message.

(define-bench "sbcl-spawn" (n reps)
  (measure "spawn-seq" "sbcl-thread" "us/spawn" n reps
           (lambda (n)
             (let ((mailbox (make-mailbox))
                   (t0 (now-ns)))
               (dotimes (i n)
                 (let ((child (thread (lambda () (send-message mailbox (list :done t))))))
                   (receive-message mailbox)
                   (sb-thread:join-thread child)))
               (seconds-since t0)))))

;;; capacity: threads alive at once, each blocked on its own mailbox.

(define-bench "sbcl-capacity" (&rest levels)
  (let ((gc-reps 5))
    (sb-ext:gc :full t)
    (report-values "gc-0" "sbcl-thread" "ms/gc" 0
                   (loop repeat gc-reps collect (time-gc-ms)))
    (let ((rss0 (rss-kib))
          (alive '()))
      (handler-case
          (dolist (level levels)
            (let* ((new (- level (length alive)))
                   (t0 (now-ns)))
              (dotimes (i new)
                (let ((mailbox (make-mailbox)))
                  (push (cons mailbox (thread #'receive-message mailbox)) alive)))
              (let ((spawn-us (/ (- (now-ns) t0) 1d3 new)))
                ;; Let every thread reach its receive.
                (sleep 0.5)
                (sb-ext:gc :full t)
                (report (format nil "spawn-alive-~d" level) "sbcl-thread" "us/spawn" new spawn-us)
                (report (format nil "memory-~d" level) "sbcl-thread" "KiB/proc" level
                        (/ (- (rss-kib) rss0) level))
                (report-values (format nil "gc-~d" level) "sbcl-thread" "ms/gc" level
                               (loop repeat gc-reps collect (time-gc-ms))))))
        (serious-condition (c)
          (fail "capacity" "sbcl-thread" c)))
      (loop for (mailbox . thread) in alive
            do (send-message mailbox :stop)
               (sb-thread:join-thread thread)))))
