;;;; saved-core-child.lisp - a core saved with muproc loaded, and what its
;;;; restarted image does; run in child SBCLs by test-library.lisp.
;;;;
;;;; SAVE leaves a muproc running and saves the core; AFTER-RESTART, run in
;;;; the restarted image, prints one line (:RESTARTED . results).

(defpackage #:muproc-saved-core
  (:use #:common-lisp #:muproc))

(in-package #:muproc-saved-core)

(defun echo-loop ()
  "Answer every message (:n N) with (:echo N)."
  (loop (mumsg-receive (from)
          (() t (mumsg-send from :echo (mumsg-get *muproc-packet* :n))))))

(defun save (core)
  "Save this image to CORE with a muproc still running: saving ends it."
  (muproc-spawn 'left-running #'echo-loop nil)
  (sb-ext:save-lisp-and-die core))

(defun next-plist ()
  (mumsg-receive (from :timeout 10)
    (() t (mumsg-plist *muproc-packet*))
    (:timeout :timeout)))

(defun after-restart ()
  "Spawn, send, receive, link, trap, kill, fail and time in the restarted
image; print what happened."
  (let* ((echo (muproc-spawn 'left-running #'echo-loop nil))
         (echoed (muproc () (mumsg-send echo :n 42) (getf (next-plist) :echo)))
         (notice (muproc ()
                   (muproc-set-trap-exits t)
                   (muproc-link echo)
                   (muproc-kill echo :bye)
                   (getf (next-plist) :reason)))
         (tick (muproc ()
                 (muproc-send-after 0.01 *muproc-inport* :tick (list :by-reference))
                 (getf (next-plist) :tick)))
         ;; Receive filters compiled into the saved image still work.
         (keyed (muproc ()
                  (mumsg-send *muproc-inport* :a 1)
                  (mumsg-send *muproc-inport* :k 7)
                  (mumsg-receive (from :timeout 10) ((k) t k) (:timeout :timeout))))
         (flushed (muproc ()
                    (let* ((doomed (muproc-spawn nil (lambda ()) nil))
                           (tag (muproc-monitor doomed)))
                      (muproc-wait-for-exit doomed :timeout 10)
                      (list (muproc-demonitor tag :flush t) (muproc-unmatched-input-count)))))
         (failed (muproc-spawn nil (lambda () (error "failing after restart")) nil
                               :errorstream (make-broadcast-stream)))
         (failure (muproc-wait-for-exit failed :timeout 10))
         (stats (muproc-runtime-stats)))
    (with-standard-io-syntax
      (format t "~&~s~%"
              (list :restarted
                    :echoed echoed
                    :notice-reason notice
                    :exit (muproc-wait-for-exit echo :timeout 10)
                    :tick tick
                    :keyed keyed
                    :flushed flushed
                    :failure (and (consp failure) (car failure))
                    :live (getf stats :live-muprocs)
                    :lisp-handles (getf stats :lisp-handles))))
    (finish-output)))
