;;;; test-mumsg.lisp - mumsgs: construction, printing, validation, sending.

(in-package #:muproc-tests)

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
  "An odd plist or a non-keyword key is refused by MUMSG and at the send site."
  (signals mumsg-malformed (mumsg :a))
  (signals mumsg-malformed (mumsg 'a 1))
  (signals mumsg-malformed (mumsg-send (muproc-current-process-or-self) :a)))

(defun muproc-current-process-or-self ()
  ;; Any destination will do: validation happens before the destination is used.
  :no-such-port)
