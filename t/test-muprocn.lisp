;;;; test-muprocn.lisp - the MUPROC form (muproc's PROGN), MUPROCN, and
;;;; message tags.

(in-package #:muproc-tests)

(def-suite :muproc/muprocn :in :muproc :description "The MUPROC form and message tags.")
(in-suite :muproc/muprocn)

(defvar *muprocn-zero* 0
  "A zero the compiler can't fold into a compile-time division.")

(define-condition muprocn-test-error (error)
  ((payload :initarg :payload :reader muprocn-test-payload)))

(deftest muprocn.returns-all-values ()
  "(muproc () ...) evaluates its body in a fresh anonymous muproc (another
thread) and returns all the body's values, once that muproc has ended
normally; an empty body returns NIL."
  (is (equal '(1 2 3) (multiple-value-list (muproc () (values 1 2 3)))))
  (is (equal '() (multiple-value-list (muproc () (values)))))
  (is (equal '(nil) (multiple-value-list (muproc ()))))
  (is (equal '(:last) (multiple-value-list (muproc () :first :last))))
  (let ((m (muproc () (muproc-current-process))))
    (is (muproc-p m))
    (is (not (muproc-alive-p m)) "the form returned before its muproc ended")
    (is (eq :normal (muproc-exit-reason m))))
  (let ((test-thread sb-thread:*current-thread*))
    (destructuring-bind (in-p current name other-thread)
        (muproc ()
          (list (in-muproc-p) (muproc-current-process) (muproc-name)
                (not (eq test-thread sb-thread:*current-thread*))))
      (is-true in-p)
      (is (muproc-p current))
      (is (null name))
      (is-true other-thread))))

(deftest muprocn.errors-resignalled-in-caller ()
  "An error in the body is signalled again in the caller as the original
condition (its type and its slots), once the muproc has ended."
  (let* ((inner nil)
         (c (handler-case (muproc ()
                            (setf inner (muproc-current-process))
                            (error 'muprocn-test-error :payload '(1 2)))
              (error (e) e))))
    (is (typep c 'muprocn-test-error))
    (is (not (muproc-alive-p inner)) "the form returned before its muproc ended")
    (is (equal '(1 2) (and (typep c 'muprocn-test-error) (muprocn-test-payload c)))))
  (signals division-by-zero (muproc () (/ 1 *muprocn-zero*)))
  (let ((c (handler-case (muproc () (error "plain ~a" "error")) (error (e) e))))
    (is (typep c 'simple-error))
    (is (string= "plain error" (princ-to-string c))))
  (is (eql 3 (muproc () 3)) "the form works again after errors"))

(defmacro with-form-timeouts ((list) &body body)
  "Evaluate BODY, muffling the MUPROC-FORM-TIMEOUT warnings it signals and
collecting them (newest first) in the variable LIST."
  `(let ((,list '()))
     (handler-bind ((muproc-form-timeout (lambda (w)
                                           (push w ,list)
                                           (muffle-warning w))))
       ,@body)))

(deftest muprocn.timeout ()
  "A body running longer than the MUPROC form's timeout is killed (its
muproc exits with :TIMEOUT) and the timeout-action's value is returned,
:TIMEOUT by default; a body within its timeout is unaffected."
  (with-form-timeouts (warnings)
    (let ((inner nil)
          ;; Killed muprocs log a line: keep it off the test output.
          (*muproc-errorstream* (make-broadcast-stream)))
      (let* ((start (now))
             (result (muproc (0.2 (list :too-slow (+ 1 2)))
                       (setf inner (muproc-current-process))
                       (mumsg-receive (from) ((never) t))))
             (elapsed (seconds-since start)))
        (is (equal '(:too-slow 3) result))
        (is (< 0.19 elapsed 5) "returned after ~,3f s" elapsed))
      (is (muproc-p inner))
      (is (not (muproc-alive-p inner)) "the form returned before its muproc ended")
      (is (eq :timeout (muproc-wait-for-exit inner :timeout 5)))
      (is (eq :timeout (muproc (0.1) (sleep 10)))))
    (is (eq :in-time (muproc (5 :late) :in-time)))
    (is (= 2 (length warnings)))))

(deftest muprocn.timeout-told-from-a-returned-timeout ()
  "Past its time limit the MUPROC form signals the warning
MUPROC-FORM-TIMEOUT (its muproc and the limit) before it returns the
timeout action, which it evaluates only then; a body that returns :TIMEOUT
signals nothing, so the two can be told apart."
  (let ((*muproc-errorstream* (make-broadcast-stream))
        (evaluated 0))
    (with-form-timeouts (warnings)
      (is (eq :timeout (muproc () :timeout)))
      (is (eq :in-time (muproc (5 (progn (incf evaluated) :late)) :in-time)))
      (is (null warnings) "a body that returned in time signalled ~a" warnings)
      (is (zerop evaluated) "the timeout action was evaluated though no timeout happened"))
    (with-form-timeouts (warnings)
      (let ((inner nil))
        (is (equal '(:late 1)
                   (multiple-value-list
                    (muproc (0.1 (values :late (incf evaluated)))
                      (setf inner (muproc-current-process))
                      (mumsg-receive (from) ((never) t))))))
        (is (= 1 (length warnings)))
        (let ((w (first warnings)))
          (is (typep w 'warning))
          (is (eq inner (muproc-condition-muproc w)))
          (is (eql 0.1 (muproc-form-timeout-seconds w)))
          (is (search "did not finish within 0.1 s" (princ-to-string w))))))
    ;; Unhandled, the warning reaches the user (as a REPL prints it).
    (let ((printed (with-output-to-string (*error-output*)
                     (is (eq :timeout (muproc (0.1) (sleep 10)))))))
      (is (search "MUPROC form did not finish" printed) "printed: ~s" printed))))

(deftest muprocn.exit-without-returning-is-signalled ()
  "A MUPROC form whose muproc ends without its body returning signals
MUPROC-FORM-EXITED in the caller, carrying the exit reason and the
muproc: the body calling MUPROC-EXIT, its muproc killed from outside, or
exiting over a link.  The CONTINUE restart returns no values; a body that
returns signals nothing."
  (let ((*muproc-errorstream* (make-broadcast-stream)))
    (flet ((ending (thunk)
             (handler-case (progn (funcall thunk) :returned)
               (muproc-form-exited (c)
                 (is (not (muproc-alive-p (muproc-condition-muproc c))))
                 (is (search "before its body returned" (princ-to-string c)))
                 (muproc-form-exit-reason c)))))
      (is (eq :bye (ending (lambda () (muproc () (muproc-exit :bye) :not-reached)))))
      (is (eq :normal (ending (lambda () (muproc () (muproc-exit :normal))))))
      (is (eq :returned (ending (lambda () (muproc () (values))))))
      ;; Killed from outside.
      (let ((me nil))
        (is (eq :go-away
                (ending (lambda ()
                          (muproc ()
                            (setf me (muproc-current-process))
                            (muproc-spawn nil (lambda () (muproc-kill me :go-away)) nil)
                            (mumsg-receive (from) ((never) t))))))))
      ;; Over a link.
      (is (equal '(:linked-to-exit link-partner :for-reason :boom)
                 (ending (lambda ()
                           (muproc ()
                             (muproc-spawn 'link-partner (lambda () (muproc-exit :boom)) nil
                                           :link t)
                             (mumsg-receive (from) ((never) t)))))))
      (is (equal '() (multiple-value-list
                      (handler-bind ((muproc-form-exited #'continue))
                        (muproc () (muproc-exit :bye)))))))))

(deftest muprocn.abandoned-form-kills-its-muproc ()
  "A caller that leaves a MUPROC form before its muproc ended (the caller
killed while it waits, or unwound by a non-local exit as an abort at the
REPL does) kills that muproc with reason :ABANDONED and waits for it."
  (let ((*muproc-errorstream* (make-broadcast-stream)))
    ;; The caller is a muproc, killed while it waits in the form.
    (let ((inner nil) (caller nil))
      (muproc ()
        (let ((me (muproc-current-process)))
          (setf caller (muproc-spawn nil (lambda ()
                                           (muproc (nil)
                                             (setf inner (muproc-current-process))
                                             (mumsg-send me :started t)
                                             (mumsg-receive (from) ((never) t))))
                                     nil))
          (mumsg-receive (from) ((started) t))
          (muproc-kill caller :go-away)))
      (is (eq :go-away (muproc-wait-for-exit caller :timeout 10)))
      (is (muproc-p inner))
      (is (not (muproc-alive-p inner)) "the caller ended while its muproc ran on")
      (is (eq :abandoned (muproc-wait-for-exit inner :timeout 10))))
    ;; The caller is a plain thread, interrupted with a throw out of the
    ;; form.
    (let ((inner nil)
          (started (sb-thread:make-semaphore))
          (this-thread sb-thread:*current-thread*))
      (let ((interrupter (sb-thread:make-thread
                          (lambda ()
                            (sb-thread:wait-on-semaphore started)
                            (sb-thread:interrupt-thread this-thread
                                                        (lambda () (throw 'leave :left))))
                          :name "muprocn test interrupter")))
        (is (eq :left (catch 'leave
                        (muproc (nil)
                          (setf inner (muproc-current-process))
                          (sb-thread:signal-semaphore started)
                          (mumsg-receive (from) ((never) t)))
                        :not-left)))
        (sb-thread:join-thread interrupter))
      (is (muproc-p inner))
      (is (not (muproc-alive-p inner)) "the form was left before its muproc ended")
      (is (eq :abandoned (muproc-wait-for-exit inner :timeout 10))))
    ;; While the form waits for its killed muproc to finish its cleanups,
    ;; the caller can still be interrupted: a muproc that won't die must
    ;; not hang the REPL.
    (let* ((inner nil)
           (started (sb-thread:make-semaphore))
           (cleaning-up (sb-thread:make-semaphore))
           (release (sb-thread:make-semaphore))
           (left (sb-thread:make-semaphore))
           (stuck nil)
           (this-thread sb-thread:*current-thread*)
           (interrupter (sb-thread:make-thread
                         (lambda ()
                           (sb-thread:wait-on-semaphore started)
                           (sb-thread:interrupt-thread this-thread
                                                       (lambda () (throw 'leave :left)))
                           (sb-thread:wait-on-semaphore cleaning-up)
                           (sb-thread:interrupt-thread this-thread
                                                       (lambda () (throw 'leave-again :left-again)))
                           ;; Not interruptible: free it, so the test fails
                           ;; instead of hanging.
                           (unless (sb-thread:wait-on-semaphore left :timeout 10)
                             (setf stuck t)
                             (sb-thread:signal-semaphore release)))
                         :name "muprocn test interrupter")))
      (is (eq :left-again
              (catch 'leave-again
                (catch 'leave
                  (muproc (nil)
                    (setf inner (muproc-current-process))
                    (unwind-protect
                         (progn (sb-thread:signal-semaphore started)
                                (mumsg-receive (from) ((never) t)))
                      (sb-thread:signal-semaphore cleaning-up)
                      (sb-thread:wait-on-semaphore release)))
                  :not-left)
                :not-left-again)))
      (sb-thread:signal-semaphore left)
      (sb-thread:join-thread interrupter)
      (is (not stuck) "the caller could not be interrupted while it waited")
      (is (or stuck (muproc-alive-p inner)) "its cleanup still runs")
      (sb-thread:signal-semaphore release)
      (is (eq :abandoned (muproc-wait-for-exit inner :timeout 10))))))

(deftest muprocn.muprocn-alias ()
  "MUPROCN is another name for the MUPROC form: same values, errors and
timeout."
  (is (equal '(1 2) (multiple-value-list (muprocn () (values 1 2)))))
  (signals muprocn-test-error (muprocn () (error 'muprocn-test-error)))
  (is (eq :gave-up (let ((*muproc-errorstream* (make-broadcast-stream)))
                     (with-form-timeouts (warnings)
                       (muprocn (0.1 :gave-up) (sleep 10)))))))

(deftest muprocn.message-tags ()
  "MUPROC-WITH-MESSAGE-TAG binds a fresh tag each time; MUPROC-MSGTAG= is
true only for the same tag (false for other tags and non-tags); 1000 tags,
made in several muprocs, are all distinct."
  (muproc-with-message-tag (a)
    (muproc-with-message-tag (b)
      (is (muproc-tag-p a))
      (is (muproc-tag-p b))
      (is (muproc-msgtag= a a))
      (is (not (muproc-msgtag= a b)))
      (is (not (muproc-msgtag= b a)))
      (is (not (muproc-msgtag= a nil)))
      (is (not (muproc-msgtag= a 1)))
      (is (not (muproc-msgtag= :x :x)))))
  (is (not (muproc-tag-p :tag)))
  (is (muproc-tag-p (muproc-make-tag)))
  (let ((tags (append (loop repeat 250 collect (muproc-make-tag))
                      (muproc () (loop repeat 250 collect (muproc-make-tag)))
                      (muproc () (loop repeat 250 collect (muproc-with-message-tag (x) x))))))
    (setf tags (append tags (loop repeat 250 collect (muproc-make-tag))))
    (is (= 1000 (length tags)))
    (is (= 1000 (length (remove-duplicates tags :test #'muproc-msgtag=))))))

(defun tag-echo-server ()
  "Answer (:request r :tag tag) with (:reply r :tag tag) until (:stop)."
  (loop
    (mumsg-receive (from)
      ((request tag) t (mumsg-send from :reply request :tag tag))
      ((stop) t (return)))))

(deftest muprocn.tags-round-trip ()
  "A tag sent in a message comes back MUPROC-MSGTAG= to itself (and not to
another tag), and a guard on it picks the reply to this request out of
replies to others, whatever their order."
  (let ((server (muproc-spawn nil #'tag-echo-server nil)))
    (destructuring-bind (first second same other)
        (muproc ()
          (muproc-with-message-tag (decoy)
            (muproc-with-message-tag (wanted)
              (mumsg-send server :request :decoy :tag decoy)
              (mumsg-send server :request :wanted :tag wanted)
              (destructuring-bind (reply returned)
                  (mumsg-receive (from)
                    ((reply tag) (and (eq from server) (muproc-msgtag= tag wanted))
                     (list reply tag)))
                (list reply
                      (mumsg-receive (from)
                        ((reply tag) (muproc-msgtag= tag decoy) reply))
                      (muproc-msgtag= returned wanted)
                      (muproc-msgtag= returned decoy))))))
      (is (eq :wanted first) "the guard took ~s" first)
      (is (eq :decoy second))
      (is-true same)
      (is (not other)))
    (mumsg-send server :stop t)
    (is (eq :normal (muproc-wait-for-exit server :timeout 10)))))
