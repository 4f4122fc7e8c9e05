;;;; test-registry.lisp - registered port names.

(in-package #:muproc-tests)

(def-suite :muproc/registry :in :muproc :description "Registered port names.")
(in-suite :muproc/registry)

(defun port-holder ()
  "Serve until (:stop): (:register name) registers NAME for this muproc and
answers (:registered name); (:echo x) answers (:echo x)."
  (loop
    (mumsg-receive (from)
      ((register) t
       (muproc-register-port-name register)
       (mumsg-send from :registered register))
      ((echo) t (mumsg-send from :echo echo))
      ((stop) t (return)))))

(defun condition-type-of (thunk)
  "The type of the error FUNCALLing THUNK signals, or :NO-ERROR."
  (handler-case (progn (funcall thunk) :no-error)
    (error (e) (type-of e))))

(deftest registry.register-get-unregister ()
  "MUPROC-REGISTER-PORT-NAME returns the name and makes it reach the
muproc (MUPROC-GET-REGISTERED-PORT gives it, MUMSG-SEND to the name
delivers to it); MUPROC-UNREGISTER-PORT-NAME returns the name and releases
it; unregistering it again signals MUPROC-UNKNOWN-PORT-NAME.  Another
muproc can be registered explicitly, from outside any muproc."
  (destructuring-bind (registered get received names unregistered after
                       again-type)
      (muproc ()
        (list (muproc-register-port-name :registry-test)
              (eq (muproc-get-registered-port :registry-test) (muproc-current-process))
              (progn (mumsg-send :registry-test :hello 1)
                     (mumsg-receive (from :timeout 5) ((hello) t hello) (:timeout :lost)))
              (muproc-registered-port-names)
              (muproc-unregister-port-name :registry-test)
              (muproc-get-registered-port :registry-test)
              (condition-type-of (lambda () (muproc-unregister-port-name :registry-test)))))
    (is (eq :registry-test registered))
    (is-true get)
    (is (eql 1 received))
    (is (equal '(:registry-test) names))
    (is (eq :registry-test unregistered))
    (is (null after))
    (is (eq 'muproc-unknown-port-name again-type)))
  (let ((holder (muproc-spawn nil #'port-holder nil)))
    (is (eq :registry-outside (muproc-register-port-name :registry-outside holder)))
    (is (eq holder (muproc-get-registered-port :registry-outside)))
    (is (equal '(:registry-outside) (muproc-registered-port-names holder)))
    (is (equal '(:echo 7) (muproc ()
                            (mumsg-send :registry-outside :echo 7)
                            (mumsg-receive (from) ((echo) (eq from holder)
                                                   (list :echo echo))))))
    (is (eq :registry-outside (muproc-unregister-port-name :registry-outside)))
    (is (null (muproc-registered-port-names holder)))
    (mumsg-send holder :stop t)
    (is (eq :normal (muproc-wait-for-exit holder :timeout 10))))
  (signals muproc-not-in-muproc (muproc-register-port-name :registry-nobody)))

(deftest registry.port-name-taken ()
  "Registering a name another live muproc holds signals
MUPROC-PORT-NAME-TAKEN and leaves the name with its holder."
  (let ((holder (muproc-spawn nil #'port-holder nil)))
    (muproc-register-port-name :registry-taken holder)
    (is (eq 'muproc-port-name-taken
            (muproc () (condition-type-of
                        (lambda () (muproc-register-port-name :registry-taken))))))
    (let ((other (muproc-spawn nil #'port-holder nil)))
      (signals muproc-port-name-taken (muproc-register-port-name :registry-taken other))
      (is (null (muproc-registered-port-names other)))
      (mumsg-send other :stop t)
      (is (eq :normal (muproc-wait-for-exit other :timeout 10))))
    (is (eq holder (muproc-get-registered-port :registry-taken)))
    (is (equal '(:registry-taken) (muproc-registered-port-names holder)))
    (mumsg-send holder :stop t)
    (is (eq :normal (muproc-wait-for-exit holder :timeout 10)))))

(deftest registry.invalid-port-names ()
  "A port name must be a keyword (of 1 to 255 characters): anything else
signals MUPROC-INVALID-PORT-NAME, when registering, unregistering or
looking up."
  (dolist (bad (list 'registry-symbol "string" 42 nil
                     (intern (make-string 256 :initial-element #\A) :keyword)
                     :||))
    (is (eq 'muproc-invalid-port-name
            (muproc () (condition-type-of (lambda () (muproc-register-port-name bad)))))
        "registering ~s" bad)
    (is (eq 'muproc-invalid-port-name
            (condition-type-of (lambda () (muproc-unregister-port-name bad))))
        "unregistering ~s" bad)
    (is (eq 'muproc-invalid-port-name
            (condition-type-of (lambda () (muproc-get-registered-port bad))))
        "looking up ~s" bad))
  (is (eq :registry-255
          (muproc ()
            (let ((long (intern (make-string 255 :initial-element #\B) :keyword)))
              (muproc-register-port-name long)
              (muproc-unregister-port-name long)
              :registry-255)))))

(deftest registry.send-to-unknown-port ()
  "MUMSG-SEND to a port name nobody holds signals MUPROC-UNKNOWN-PORT-NAME
at the send site, from a muproc or from a plain thread."
  (signals muproc-unknown-port-name (mumsg-send :registry-nobody-holds-this :a 1))
  (is (eq 'muproc-unknown-port-name
          (muproc () (condition-type-of
                      (lambda () (mumsg-send :registry-nobody-holds-this :a 1)))))))

(deftest registry.names-released-on-exit ()
  "A muproc's port names are released when it exits, however it exits
(normal return, MUPROC-EXIT, error, MUPROC-KILL): right after
MUPROC-WAIT-FOR-EXIT the name is unknown and another muproc can register
it."
  (let ((quiet (make-broadcast-stream)))
    (loop for (how ending) in `((:normal ,(lambda () nil))
                                (:exit ,(lambda () (muproc-exit :bye)))
                                (:error ,(lambda () (error "on purpose")))
                                (:kill ,(lambda () (mumsg-receive (from) ((never) t)))))
          do (let* ((registered (sb-thread:make-semaphore))
                    (m (muproc-spawn nil (lambda ()
                                           (muproc-register-port-name :registry-released)
                                           (sb-thread:signal-semaphore registered)
                                           (funcall ending))
                                     nil :errorstream quiet)))
               (sb-thread:wait-on-semaphore registered)
               (when (eq how :kill)
                 (is (eq m (muproc-get-registered-port :registry-released)))
                 (muproc-kill m))
               (is-true (nth-value 1 (muproc-wait-for-exit m :timeout 10)))
               (is (null (muproc-get-registered-port :registry-released))
                   "~s: name still registered" how)
               (is (eq 'muproc-unknown-port-name
                       (condition-type-of (lambda () (mumsg-send :registry-released :x 1))))
                   "~s: send did not signal" how)
               (is (eq :registry-released
                       ;; The MUPROC form's muproc has ended (and released
                       ;; the name) when the form returns.
                       (muproc () (muproc-register-port-name :registry-released)))
                   "~s: name not free again" how)))))

(deftest registry.with-registered-port ()
  "MUPROC-WITH-REGISTERED-PORT holds the name during its body and releases
it after a normal return, a THROW, or an error; the muproc lives on."
  (destructuring-bind (inside value after-normal after-throw after-error error-type)
      (muproc ()
        (let* ((inside nil)
               (value (muproc-with-registered-port (:registry-scoped)
                        (setf inside (eq (muproc-current-process)
                                         (muproc-get-registered-port :registry-scoped)))
                        :body-value))
               (after-normal (muproc-get-registered-port :registry-scoped)))
          (catch 'out
            (muproc-with-registered-port (:registry-scoped)
              (throw 'out nil)))
          (let ((after-throw (muproc-get-registered-port :registry-scoped))
                (error-type (condition-type-of
                             (lambda ()
                               (muproc-with-registered-port (:registry-scoped)
                                 (error 'process-test-error))))))
            (list inside value after-normal after-throw
                  (muproc-get-registered-port :registry-scoped)
                  error-type))))
    (is-true inside)
    (is (eq :body-value value))
    (is (null after-normal))
    (is (null after-throw))
    (is (null after-error))
    (is (eq 'process-test-error error-type))))

(deftest registry.several-names-per-muproc ()
  "One muproc may hold several port names; each reaches it, and
MUPROC-REGISTERED-PORT-NAMES lists exactly those it holds."
  (let ((holder (muproc-spawn nil #'port-holder nil)))
    (destructuring-bind (answers names-3 names-2)
        (muproc ()
          (dolist (name '(:registry-one :registry-two :registry-three))
            (mumsg-send holder :register name)
            (mumsg-receive (from) ((registered) (eq registered name))))
          (list (loop for name in '(:registry-one :registry-two :registry-three)
                      for i from 1
                      collect (progn (mumsg-send name :echo i)
                                     (mumsg-receive (from) ((echo) (eq from holder) echo))))
                (muproc-registered-port-names holder)
                (progn (muproc-unregister-port-name :registry-two)
                       (muproc-registered-port-names holder))))
      (is (equal '(1 2 3) answers))
      (is (null (set-exclusive-or '(:registry-one :registry-two :registry-three) names-3)))
      (is (= 3 (length names-3)))
      (is (null (set-exclusive-or '(:registry-one :registry-three) names-2))))
    (mumsg-send holder :stop t)
    (is (eq :normal (muproc-wait-for-exit holder :timeout 10)))
    (is (null (muproc-get-registered-port :registry-one)))
    (is (null (muproc-get-registered-port :registry-three)))))

(deftest registry.port-names-free-with-the-muproc-name (:timeout 120)
  "A killed muproc's port names are free from the moment its name is: once
MUPROC-FIND no longer finds it, MUPROC-GET-REGISTERED-PORT finds nothing
either, and a muproc respawned under the same name at once registers the
same port name (never MUPROC-PORT-NAME-TAKEN naming the dead owner)."
  (let ((*muproc-errorstream* (make-broadcast-stream))
        (observed '()))
    (flet ((spawn-holder (tell)
             (muproc-spawn 'port-holder
                           (lambda ()
                             (mumsg-send tell :registered
                                         (handler-case (muproc-register-port-name :held-port)
                                           (muproc-port-name-taken (c) c)))
                             (mumsg-receive (from) ((never) t)))
                           nil)))
      (muproc (100)
        (let ((me (muproc-current-process))
              (holder nil))
          (setf holder (spawn-holder me))
          (mumsg-receive (from) ((registered) t))
          (dotimes (i 200)
            (muproc-kill holder)
            (loop while (muproc-find 'port-holder))
            (push (muproc-get-registered-port :held-port) observed)
            (setf holder (loop (handler-case (return (spawn-holder me))
                                 (muproc-name-taken () nil))))
            (push (mumsg-receive (from) ((registered) t registered)) observed))
          (muproc-kill holder)
          (muproc-wait-for-exit holder :timeout 10))))
    (let ((stale (count-if #'muproc-p observed))
          (refused (count-if (lambda (r) (typep r 'condition)) observed)))
      (is (zerop stale) "~d times a port was still held once the name was free" stale)
      (is (zerop refused) "~d respawns could not register their port: ~a" refused
          (find-if (lambda (r) (typep r 'condition)) observed))
      (is (= 200 (count :held-port observed))))))
