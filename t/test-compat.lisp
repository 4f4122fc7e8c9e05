;;;; test-compat.lisp - code written for the original cl-muproc, and the
;;;; seed's slides pasted as they are, run on muproc (lisp/compat.lisp and
;;;; the "Coming from cl-muproc" section of README.md).
;;;;
;;;; The slides' code lives in its own package, as a user would type it.
;;;; Supervisor example III (START-SUPER1) is pasted verbatim; its
;;;; children PROC1...PROC32 are examples/supervision-tree.lisp's (the
;;;; seed's examples I and II, whose slides lose a parenthesis), on that
;;;; example's time scale.  The "early muproc idiom" slide has "..." for
;;;; its guards and handler bodies: they are filled in, its shape kept.

(eval-when (:compile-toplevel :load-toplevel :execute)
  (unless (find-package '#:muproc-examples)
    (load (asdf:system-relative-pathname "muproc" "examples/load-muproc.lisp")))
  (uiop:symbol-call '#:muproc-examples '#:load-example "supervision-tree"))

(defpackage #:muproc-tests.seed-slides
  (:use #:common-lisp #:muproc #:muproc.supervisor)
  (:import-from #:muproc-example.supervision-tree
                #:proc1 #:proc2 #:proc31 #:proc32)
  (:documentation "The seed's slides, pasted."))

(in-package #:muproc-tests.seed-slides)

;;; Supervisor example III, verbatim.

(defun start-super1 (&optional (errorstream *muproc-errorstream*))
  (supervisor-start
    (supervisor
      :all-for-one 2 5
      (:permanent :kill (supervised-muproc proc1 #'proc1 ()))
      (:permanent 10 (supervised-muproc proc2 #'proc2 ()))
      (:permanent 5
        (supervisor
          :all-for-one 2 5
          (:permanent :kill (supervised-muproc proc31 #'proc31 ()))
          (:permanent 5 (supervised-muproc proc32 #'proc32 ())))
        ))
      :errorstream errorstream))

;;; The early muproc idiom.

(defun %handle-msg-type1 (from arg1 arg2 arg3 tag)
  (mumsg-send from :sum (+ arg1 arg2 arg3) :tag tag))

(defun %handle-msg-type2 (from arg1 arg2 tag)
  (mumsg-send from :product (* arg1 arg2) :tag tag))

(defun some-server ()
  (loop
   (muproc-receive (from)
    ((msgtype arg1 arg2 arg3 tag) (and (eq msgtype :type1) (numberp arg3))
     (%handle-msg-type1 from arg1 arg2 arg3 tag))
    ((msgtype arg1 arg2 tag) (and (eq msgtype :type2) (numberp arg2))
     (%handle-msg-type2 from arg1 arg2 tag))
    ((msgtype) (eq msgtype :stop)
     (return :stopped)))))

(in-package #:muproc-tests)

(def-suite :muproc/compat :in :muproc
  :description "cl-muproc's names and behaviours, and the seed's slides.")
(in-suite :muproc/compat)

;;; The seed's slides

(deftest compat.seed-start-super1 ()
  "START-SUPER1 pasted from the seed's supervisor example III (children as
literal (type shutdown start-form) lists) starts the tree of transcript
I: {PROC1*PROC2*{PROC31*PROC32}} over PROC1, PROC2 and {PROC31*PROC32},
which is over PROC31 and PROC32; each logs \"starting\", PROC32 \"PROC32
HERE\" and \"Got WAKEUP\"."
  (let ((log (make-string-output-stream))
        (tree '()))
    (let ((top (muproc-tests.seed-slides::start-super1 log)))
      (unwind-protect
           (flet ((children (supervisor)
                    (muproc (20)
                      (mapcar (lambda (child) (list (princ-to-string (first child))
                                                    (second child) (fourth child)))
                              (supervisor-which-children supervisor)))))
             (let* ((outer (children top))
                    (inner (children (second (third outer)))))
               (setf tree (list (princ-to-string (muproc-name top))
                                (mapcar (lambda (c) (list (first c) (third c))) outer)
                                (mapcar (lambda (c) (list (first c) (third c))) inner))))
             ;; Transcript I's last lines are PROC32's.
             (await (lambda ()
                      (search "Got WAKEUP" (log-text-so-far log)))))
        (muproc-exit :adieu top)
        (muproc-wait-for-exit top :timeout 20)))
    (is (equal '("{PROC1*PROC2*{PROC31*PROC32}}"
                 (("PROC1" :worker) ("PROC2" :worker) ("{PROC31*PROC32}" :supervisor))
                 (("PROC31" :worker) ("PROC32" :worker)))
               tree))
    (let ((lines (log-lines log)))
      (dolist (line '("PROC1 PROC1 starting" "PROC2 PROC2 starting" "PROC31 PROC31 starting"
                      "PROC32 PROC32 starting" "PROC32 PROC32 HERE" "PROC32 Got WAKEUP"))
        (is (member line lines :test #'string=) "No line ~s in:~%~{~a~%~}" line lines)))))

(deftest compat.seed-early-idiom ()
  "The \"early muproc idiom\" slide: a server loops on (muproc-receive
(from) clause...), dispatching on :msgtype to its %HANDLE-MSG-TYPE
functions, which answer FROM with the request's tag."
  (let ((server (muproc-spawn nil #'muproc-tests.seed-slides::some-server nil)))
    (is (equal '((:sum 6 1) (:product 20 2))
               (muproc ()
                 (mumsg-send server :msgtype :type2 :arg1 4 :arg2 5 :tag 2)
                 (mumsg-send server :msgtype :type1 :arg1 1 :arg2 2 :arg3 3 :tag 1)
                 (list (mumsg-receive (from) ((sum tag) (eql tag 1) (list :sum sum tag)))
                       (mumsg-receive (from) ((product tag) (eql tag 2)
                                              (list :product product tag)))))))
    (muproc () (mumsg-send server :msgtype :stop))
    (is (eq :normal (muproc-wait-for-exit server :timeout 10)))))

;;; The names cl-muproc exported that muproc lacked

(deftest compat.muproc-send ()
  "MUPROC-SEND (to type data): a mumsg sent as type :MUMSG arrives as that
mumsg; other data arrives as the mumsg (TYPE DATA)."
  (is (equal '((:a 1 :b 2) 42)
             (muproc ()
               (muproc-send *muproc-inport* :mumsg (mumsg :a 1 :b 2))
               (muproc-send (muproc-current-process) :ping 42)
               (list (mumsg-receive (from) ((a) t (mumsg-plist *muproc-packet*)))
                     (mumsg-receive (from) ((ping) t ping)))))))

(deftest compat.muproc-receive-without-clauses ()
  "(muproc-receive), as the original's function: the oldest message, of
any keys, as (values mumsg :MUMSG sender)."
  (destructuring-bind (plist type from-self-p)
      (muproc ()
        (mumsg-send *muproc-inport* :x 1)
        (mumsg-send *muproc-inport* :y 2)
        (multiple-value-bind (mumsg type from) (muproc-receive)
          (list (mumsg-plist mumsg) type (eq from (muproc-current-process)))))
    (is (equal '(:x 1) plist))
    (is (eq :mumsg type))
    (is-true from-self-p)))

(deftest compat.packet-names ()
  "In a receive clause *MUPROC-MUMSG* is the mumsg that matched (EQ to
*MUPROC-PACKET*), MUPACKET-P is true of it, *MUPROC-INPORT* is of type
MUPROC-PORT.  MUPROC-PACKET-AGE of a mumsg that carries no send time
signals MUPROC-PACKET-WITHOUT-SEND-TIME."
  (destructuring-bind (same packet-p port-p)
      (muproc ()
        (mumsg-send *muproc-inport* :x 1)
        (mumsg-receive (from)
          ((x) t (list (eq *muproc-mumsg* *muproc-packet*)
                       (mupacket-p *muproc-packet*)
                       (typep *muproc-inport* 'muproc-port)))))
    (is-true same)
    (is-true packet-p)
    (is-true port-p))
  (is (not (mupacket-p '(:mupacket))))
  (signals muproc-packet-without-send-time (muproc-packet-age (mumsg :a 1))))

(deftest compat.packet-age ()
  "MUPROC-PACKET-AGE of a received packet: the seconds since it was sent,
however long it waited in the inport."
  (destructuring-bind (age-in-clause age-of-default)
      (muproc ()
        (mumsg-send *muproc-inport* :x 1)
        (let ((start (now)))
          (loop until (> (seconds-since start) 0.2)))
        (mumsg-receive (from)
          ((x) t (list (muproc-packet-age *muproc-packet*) (muproc-packet-age)))))
    (is (<= 0.2 age-in-clause 30) "age ~a" age-in-clause)
    (is (<= age-in-clause age-of-default 30))))

(deftest compat.predicates ()
  "MUPROC-ADDRESS-P is true for what MUMSG-SEND takes (a muproc, a port
name); MUPROC-NAME-P for a symbol other than NIL; MUPROC-PORT-NAME-P for
a keyword of 1 to 255 characters."
  (let ((m (muproc () (muproc-current-process))))
    (is (equal '(t t nil nil nil)
               (mapcar (lambda (x) (and (muproc-address-p x) t))
                       (list m :port 'symbol "string" 42)))))
  (is (equal '(t t nil nil)
             (mapcar (lambda (x) (and (muproc-name-p x) t)) (list 'server :server nil "x"))))
  (is (equal '(t nil nil nil)
             (mapcar (lambda (x) (and (muproc-port-name-p x) t))
                     (list :port 'port (intern (make-string 256 :initial-element #\A) :keyword)
                           "port")))))

(deftest compat.exit-condition ()
  "MUPROC-EXIT signals MUPROC-EXIT-CONDITION in the exiting muproc, with
its muproc and reason, printed as the seed's #<EXIT name reason>; a
handler that declines lets the exit go on, one that transfers control
cancels it, as in cl-muproc."
  (let* ((seen nil)
         (m (muproc-spawn 'compat-exiter
                          (lambda ()
                            (handler-bind ((muproc-exit-condition
                                             (lambda (c)
                                               (setf seen (list (muproc-condition-muproc c)
                                                                (muproc-exit-condition-reason c)
                                                                (prin1-to-string c))))))
                              (muproc-exit :bye)))
                          nil)))
    (is (eq :bye (muproc-wait-for-exit m :timeout 10)))
    (is (equal (list m :bye "#<EXIT COMPAT-EXITER :BYE>") seen)))
  (is (eq :cancelled
          (muproc ()
            (handler-case (muproc-exit :never)
              (muproc-exit-condition () :cancelled))))))

(deftest compat.nicknames ()
  "The original's package names and nicknames name muproc's packages."
  (is (eq (find-package '#:muproc) (find-package '#:cl-muproc)))
  (dolist (name '(#:cl-muproc.generic-server #:cl-muproc.gensrv #:muproc.gensrv))
    (is (eq (find-package '#:muproc.generic-server) (find-package name)) "~a" name))
  (is (eq (find-package '#:muproc.supervisor) (find-package '#:cl-muproc.supervisor))))

(deftest compat.find-as-list-p ()
  "MUPROC-FIND with :AS-LIST-P gives a list: of the muproc, or NIL."
  (let ((m (muproc-spawn 'compat-findable (lambda () (mumsg-receive (from) ((go) t))) nil)))
    (is (equal (list m) (muproc-find 'compat-findable :as-list-p t)))
    (is (null (muproc-find 'compat-not-there :as-list-p t)))
    (muproc () (mumsg-send m :go t))
    (muproc-wait-for-exit m :timeout 10)))

(deftest compat.interrupt-timer-dont-register ()
  "MUPROC-MAKE-INTERRUPT-TIMER accepts cl-muproc's :DONT-REGISTER; the
timer works as any other."
  (is (eq :fired
          (muproc ()
            (let ((me *muproc-inport*))
              (muproc-schedule-timer-relative
               (muproc-make-interrupt-timer (lambda () (mumsg-send me :fired t))
                                            :dont-register t)
               0.01)
              (mumsg-receive (from) ((fired) t :fired)))))))

;;; MUPROC-WITH-TIMEOUT outside a muproc

(deftest compat.with-timeout-in-the-repl ()
  "MUPROC-WITH-TIMEOUT in a thread that is no muproc (the REPL's): a body
that overruns is abandoned, its cleanups run, and the timeout forms' values
are returned at about the timeout; a body that finishes in time returns
its own values, and no late timeout strikes after it (checked over many
bodies that end close to their timeout)."
  (let* ((cleanup nil)
         (start (now))
         (result (multiple-value-list
                  (muproc-with-timeout (0.2 (values :timed-out :second))
                    (unwind-protect (sleep 20)
                      (setf cleanup t)))))
         (seconds (seconds-since start)))
    (is (equal '(:timed-out :second) result))
    (is-true cleanup)
    (is (< seconds 5) "took ~,1f s" seconds))
  (is (equal '(1 2) (multiple-value-list (muproc-with-timeout (5 :timed-out) (values 1 2)))))
  (is (eq :inner (muproc-with-timeout (5 :outer)
                   (muproc-with-timeout (0.05 :inner) (sleep 20)))))
  (let ((outcomes (loop repeat 200
                        collect (muproc-with-timeout (0.001 :timed-out)
                                  (loop repeat 2000 count t)))))
    ;; A firing that came late would strike a later body (a throw to a
    ;; tag no longer there): each outcome is its own body's.
    (is (every (lambda (o) (member o '(2000 :timed-out))) outcomes))))

(deftest compat.with-timeout-around-a-muproc-form ()
  "MUPROC-WITH-TIMEOUT at the REPL around a MUPROC form that waits: the
form is abandoned (its muproc killed and waited for) and the timeout
forms' value returned."
  (is (eq :gave-up
          (muproc-with-timeout (0.2 :gave-up)
            (muproc (30) (mumsg-receive (from) ((never) t)))))))
