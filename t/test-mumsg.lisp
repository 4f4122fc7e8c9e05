;;;; test-mumsg.lisp - mumsgs: construction, printing, validation, sending.
;;;;
;;;; FiveAM's checks record into dynamic variables of the test's thread,
;;;; so they are made only there: a muproc hands its observations back
;;;; (as the values of a MUPROC form, or in a closure variable read after
;;;; MUPROC-WAIT-FOR-EXIT), and the test thread checks them.

(in-package #:muproc-tests)

;;; The suite

(def-suite :muproc/mumsg :in :muproc :description "mumsg objects and sends.")
(in-suite :muproc/mumsg)

(deftest mumsg.constructs-and-reads ()
  "MUMSG keeps its pairs in order; MUMSG-GET tells a NIL value from absence."
  (let ((m (mumsg :quantity 3 :price 42 :note nil)))
    (is (mumsg-p m))
    (is (equal '(:quantity 3 :price 42 :note nil) (mumsg-plist m)))
    (is (equal '(:quantity :price :note) (mumsg-keys m)))
    (is (equal '(42 t) (multiple-value-list (mumsg-get m :price))))
    (is (equal '(nil t) (multiple-value-list (mumsg-get m :note))))
    (is (equal '(:none nil) (multiple-value-list (mumsg-get m :absent :none))))))

(deftest mumsg.prints-readably ()
  "A mumsg printed readably reads back as an EQUALP mumsg."
  (let* ((m (mumsg :a 1 :b "two" :c '(3 4)))
         (text (let ((*print-readably* t) (*package* (find-package :cl-user)))
                 (prin1-to-string m))))
    (is (equalp m (let ((*package* (find-package :cl-user))) (read-from-string text))))
    (is (search "MUMSG :A 1" (princ-to-string m)))))

(deftest mumsg.rejects-malformed-plists ()
  "An odd plist or a non-keyword key is refused by MUMSG and at the send
site, before the destination is even looked at (an unknown port name gives
MUMSG-MALFORMED, not MUPROC-UNKNOWN-PORT-NAME)."
  (signals mumsg-malformed (mumsg :a))
  (signals mumsg-malformed (mumsg 'a 1))
  (signals mumsg-malformed (mumsg "a" 1))
  (signals mumsg-malformed (mumsg-send :no-such-port :a))
  (signals mumsg-malformed (mumsg-send :no-such-port :a 1 'b 2))
  (signals mumsg-malformed (mumsg-send :no-such-port 42 1)))

(deftest mumsg.accessors-and-empty ()
  "The empty mumsg has no keys; MUPROC-GET-FIELD is MUMSG-GET with the
arguments swapped; MUMSG-P is false for plists and other objects; the
unreadable print shows the pairs in order."
  (let ((empty (mumsg))
        (m (mumsg :b 2 :a 1)))
    (is (mumsg-p empty))
    (is (null (mumsg-plist empty)))
    (is (null (mumsg-keys empty)))
    (is (equal '(nil nil) (multiple-value-list (mumsg-get empty :a))))
    (is (equal '(1 t) (multiple-value-list (muproc-get-field :a m))))
    (is (equal '(nil nil) (multiple-value-list (muproc-get-field :c m))))
    (is (not (mumsg-p '(:a 1))))
    (is (not (mumsg-p nil)))
    (is (string= "#<MUMSG :B 2 :A 1>" (princ-to-string m)))))

(deftest mumsg.send-forms ()
  "MUMSG-SEND returns T when the message is queued; it accepts a plist or a
single mumsg (whose pairs are sent, in order); it sends from a plain thread
too; a destination that is neither a muproc nor a keyword is a TYPE-ERROR."
  (let* ((got '())
         (r (muproc-spawn nil (lambda ()
                                (dotimes (i 2)
                                  (mumsg-receive (from)
                                    (() t (push (mumsg-plist *muproc-packet*) got)))))
                          nil)))
    (is (eq t (mumsg-send r :x 1 :y "two")))
    (is (eq t (mumsg-send r (mumsg :z 3 :a nil))))
    (muproc-wait-for-exit r :timeout 10)
    (is (equal '((:x 1 :y "two") (:z 3 :a nil)) (reverse got))))
  (signals type-error (mumsg-send "not-a-destination" :a 1))
  (signals type-error (mumsg-send 42 :a 1)))

(deftest mumsg.pairs-arrive-in-order ()
  "The pairs of a mumsg arrive in the order they were sent, every one of
them, whatever the keys: a received *MUPROC-PACKET* has the same plist."
  (let ((plist '(:z 1 :y 2 :x 3 :w nil :v "five" :u :six))
        (got nil))
    (muproc-wait-for-exit
     (let ((r (muproc-spawn nil (lambda ()
                                  (mumsg-receive (from)
                                    ((z u) t (setf got (mumsg-plist *muproc-packet*)))))
                            nil)))
       (apply #'mumsg-send r plist)
       r)
     :timeout 10)
    (is (equal plist got))))
