;;;; test-reload.lisp - reloading muproc in a live image.

(in-package #:muproc-tests)

(def-suite :muproc/reload :in :muproc :description "Reloading muproc in a live image.")
(in-suite :muproc/reload)

(defparameter *reload-session*
  "(in-package :muproc)
(defvar cl-user::*cleaned-up* nil)
(defun cl-user::survivor ()
  (muproc-register-port-name :survivor)
  (unwind-protect
       (loop (mumsg-receive (from) ((ping) t (mumsg-send from :pong ping))))
    (setf cl-user::*cleaned-up* t)))
(defun cl-user::pings ()
  \"Ping the survivor as a muproc, by name and by port name.\"
  (muproc (20)
    (list (progn (mumsg-send (muproc-find 'cl-user::survivor) :ping 1)
                 (mumsg-receive (from :timeout 10) ((pong) t pong) (:timeout :none)))
          (progn (mumsg-send 'cl-user::survivor :ping 2)
                 (mumsg-receive (from :timeout 10) ((pong) t pong) (:timeout :none)))
          (progn (mumsg-send :survivor :ping 3)
                 (mumsg-receive (from :timeout 10) ((pong) t pong) (:timeout :none))))))
(defvar cl-user::*survivor* (muproc-spawn 'cl-user::survivor #'cl-user::survivor nil))
(format t \"~&BEFORE ~s~%\" (cl-user::pings))
;; Compiler warnings of other files are not what this checks.
(let ((uiop:*compile-file-failure-behaviour* :warn))
  (asdf:load-system :muproc :force t))
(let ((m cl-user::*survivor*))
  (format t \"~&AFTER ~s~%\"
          (list (muproc-alive-p m)
                (not (null (member m (muproc-all-processes))))
                (eq m (muproc-find 'cl-user::survivor))
                (eq m (muproc-get-registered-port :survivor))
                (cl-user::pings)))
  (format t \"~&EXIT ~s~%\"
          (muproc (20)
            (let ((tag (muproc-monitor m)))
              (muproc-exit :stop m)
              (list (mumsg-receive (from :timeout 10)
                      ((terminated reason monitor) (muproc-msgtag= monitor tag) reason)
                      (:timeout :no-notice))
                    (multiple-value-list (muproc-wait-for-exit m :timeout 10))
                    cl-user::*cleaned-up*
                    (muproc-find 'cl-user::survivor)
                    (muproc-get-registered-port :survivor)
                    (getf (muproc-runtime-stats) :registered)))))
  (format t \"~&RESPAWN ~s~%\"
          (let ((again (muproc-spawn 'cl-user::survivor #'cl-user::survivor nil)))
            (prog1 (cl-user::pings)
              (muproc-kill again)
              (muproc-wait-for-exit again :timeout 10)))))
"
  "A session in a child SBCL: a muproc running before
(asdf:load-system :muproc :force t) is checked after it.")

(defun line-after (prefix output)
  "The object printed after PREFIX at the start of a line of OUTPUT, or
:MISSING."
  (let ((start (search (format nil "~%~a " prefix) (format nil "~%~a" output))))
    (if start
        (let ((*package* (find-package :muproc)))
          (read-from-string output t nil :start (+ start (length prefix) 1)))
        :missing)))

(deftest reload.running-muprocs-survive (:timeout 400)
  "In an image where a muproc is running, (asdf:load-system :muproc :force
t) keeps the runtime it runs on: afterwards that muproc is alive, listed
by MUPROC-ALL-PROCESSES, found by its name and its port name and answers
by all three; told to exit, it exits with its reason, its monitor is told,
its cleanup runs and its names are free again for a respawn."
  (let ((cache (fresh-temporary-directory)))
    (unwind-protect
         (multiple-value-bind (out code err)
             (run-lisp-in-child *reload-session*
                                :environment (list (format nil "XDG_CACHE_HOME=~a"
                                                           (namestring cache))))
           (is (= 0 code) "the child failed (exit ~a):~%~a~%~a" code out
               (subseq err (max 0 (- (length err) 2000))))
           (is (equal '(1 2 3) (line-after "BEFORE" out)) "~a" out)
           (is (equal '(t t t t (1 2 3)) (line-after "AFTER" out)) "~a" out)
           (is (equal '(:stop (:stop t) t nil nil 0) (line-after "EXIT" out)) "~a" out)
           (is (equal '(1 2 3) (line-after "RESPAWN" out)) "~a" out))
      (uiop:delete-directory-tree cache :validate t :if-does-not-exist :ignore))))
