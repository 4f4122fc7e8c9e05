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
  (signals mumsg-malformed (mumsg-send :no-such-port 42 1))
  ;; Only reachable through a list built by hand (not a &rest list).
  (signals mumsg-malformed (muproc::check-plist '(:a 1 . :b)))
  (signals mumsg-malformed (muproc::check-plist '(:a 1 :b . 2)))
  (signals mumsg-malformed (muproc::check-plist :a)))

(deftest mumsg.keys-are-limited-in-bytes ()
  "Keys are limited to 255 bytes of UTF-8, not 255 characters: a key of 200
two-byte characters (400 bytes) is refused with MUMSG-MALFORMED by MUMSG
and at the send site, a key of exactly 255 bytes is sent and received."
  (let ((too-long (intern (make-string 200 :initial-element (code-char #xe9)) :keyword))
        (longest (intern (concatenate 'string (make-string 127 :initial-element
                                                           (code-char #xe9))
                                      "A")
                         :keyword)))
    (signals mumsg-malformed (mumsg too-long 1))
    (signals mumsg-malformed (mumsg-send :no-such-port too-long 1))
    (is (equal '(:malformed 1)
               (muproc ()
                 (list (handler-case (mumsg-send *muproc-inport* too-long 1)
                         (mumsg-malformed () :malformed))
                       (progn (mumsg-send *muproc-inport* longest 1)
                              (mumsg-receive (from :timeout 5)
                                (() t (mumsg-get *muproc-packet* longest))))))))))

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
too; a destination that is not a muproc, a keyword or a symbol signals
MUPROC-NOT-A-MUPROC."
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
  (signals muproc-not-a-muproc (mumsg-send "not-a-destination" :a 1))
  (signals muproc-not-a-muproc (mumsg-send 42 :a 1)))

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

(deftest mumsg.true-and-t-between-lisp-muprocs ()
  "Between Lisp muprocs both T and :TRUE arrive as sent (the atom 'true'
is T when received, so :TRUE travels by reference), as values and as exit
reasons in a trapped notice."
  (let ((got nil))
    (muproc-wait-for-exit
     (let ((r (muproc-spawn nil (lambda ()
                                  (mumsg-receive (from)
                                    ((a b) t (setf got (list a b)))))
                            nil)))
       (mumsg-send r :a t :b :true)
       r)
     :timeout 10)
    (is (equal '(t :true) got)))
  (is (equal '(:true :true)
             (muproc ()
               (muproc-set-trap-exits t)
               (let ((child (muproc-spawn nil (lambda () (muproc-exit :true)) nil :link t)))
                 (mumsg-receive (from :timeout 5)
                   ((terminated reason) (eq terminated child)
                    (list reason (muproc-wait-for-exit child :timeout 5)))
                   (:timeout :no-notice)))))))

(deftest mumsg.many-pairs-by-reference ()
  "A mumsg with more pairs than fit the encoder's stack buffer arrives
whole and in order, its values by reference (EQ), and leaves no handle
behind once received."
  (let* ((plist (loop for i below 40
                      collect (intern (format nil "K~d" i) :keyword)
                      collect (if (evenp i) (list i) i)))
         (got (muproc ()
                (apply #'mumsg-send *muproc-inport* plist)
                (mumsg-receive (from) ((k39) t (mumsg-plist *muproc-packet*))))))
    (is (= 80 (length got)))
    (is (every #'eq plist got))))

;;; Terms for a C receiver: a process of kind C, bound to a plain thread
;;; that reads what arrives with libmuproc's own getters, one per pair --
;;; independent of the Lisp decoder, which is checked against them.

(defun pair-term (msg i)
  "Pair I of MSG as (key type value), read with the per-pair getters."
  (let ((type (muproc.ffi:%msg-type msg i)))
    (list (muproc::atom-keyword (muproc.ffi:%msg-key msg i))
          type
          (cond ((= type muproc.ffi:+t-nil+) nil)
                ((= type muproc.ffi:+t-int+) (muproc.ffi:%msg-int msg i))
                ((= type muproc.ffi:+t-double+) (muproc.ffi:%msg-double msg i))
                ((= type muproc.ffi:+t-atom+)
                 (muproc::atom-keyword (muproc.ffi:%msg-atom msg i)))
                ((member type (list muproc.ffi:+t-string+ muproc.ffi:+t-binary+))
                 (cffi:with-foreign-object (len :size)
                   (let ((ptr (muproc.ffi:%msg-bytes msg i len)))
                     (loop for k below (cffi:mem-ref len :size)
                           collect (cffi:mem-aref ptr :uint8 k)))))
                ((= type muproc.ffi:+t-pid+) (muproc.ffi:%msg-pid msg i))
                ((= type muproc.ffi:+t-ref+) (muproc.ffi:%msg-ref msg i))
                (t :unexpected)))))

(defun call-with-c-receiver (send)
  "Call SEND with the muproc object of a fresh process of kind C whose
receiver is a plain thread; that thread takes one message (waiting at
most 10 s) and then exits the process.  Returns the message's pairs as
PAIR-TERM lists and its plist as the Lisp decoder reads it."
  (let* ((ready (sb-thread:make-semaphore))
         (pid nil)
         (terms :nothing)
         (plist nil)
         (thread
           (sb-thread:make-thread
            (lambda ()
              (cffi:with-foreign-objects ((out :uint64) (m :pointer))
                (muproc.ffi:%proc-create 0 muproc.ffi:+kind-c+ 0 out)
                (setf pid (cffi:mem-ref out :uint64))
                (muproc.ffi:%proc-start pid)
                (sb-thread:signal-semaphore ready)
                (when (zerop (muproc.ffi:%recv pid (cffi:null-pointer) (cffi:null-pointer)
                                               (+ (muproc.ffi:%now-ns) 10000000000) m))
                  (let ((msg (cffi:mem-ref m :pointer)))
                    (muproc.ffi:%recv-take pid msg)
                    (setf terms (loop for i below (muproc.ffi:%msg-size msg)
                                      collect (pair-term msg i))
                          plist (muproc::decode-plist msg))
                    (muproc::free-message msg)))
                (muproc.ffi:%proc-exit pid muproc.ffi:+t-atom+
                                       (muproc::keyword-atom :normal))
                (muproc::drain-inport pid)
                (muproc.ffi:%proc-release pid)))
            :name "C receiver")))
    (sb-thread:wait-on-semaphore ready)
    (unwind-protect (funcall send (muproc::pid-muproc pid))
      (sb-thread:join-thread thread :default nil))
    (values terms plist)))

(deftest mumsg.terms-for-a-c-receiver ()
  "Towards a C muproc every value becomes a term: integers, doubles (a
single float widened), atoms (T as 'true'), UTF-8 strings, binaries,
pids, refs and NIL, in order; the Lisp decoder reads them back ('true' as
T, the pid as
the very muproc, the tag as an equal tag).  A value with no term is
MUMSG-UNSENDABLE-VALUE at the send site, and nothing is sent or leaked."
  (let ((tag (muproc-make-tag))
        (hello (format nil "h~cllo" (code-char 233))) ; UTF-8: c3 a9
        (octets (coerce #(0 1 255) '(vector (unsigned-byte 8))))
        (unsendable nil)
        (sender nil))
    (multiple-value-bind (terms plist)
        (call-with-c-receiver
         (lambda (c-muproc)
           (is (eq :c (muproc::%muproc-kind c-muproc)))
           (setf sender
                 (muproc ()
                   (setf unsendable
                         (handler-case (mumsg-send c-muproc :bad (list 1 2))
                           (mumsg-unsendable-value () :refused)))
                   (mumsg-send c-muproc :s hello :e "" :b octets
                                        :d 2.5d0 :f 1.5f0 :i (expt 2 40) :m -5
                                        :n nil :a :square :t t
                                        :p (muproc-current-process) :r tag)
                   (muproc-current-process)))))
      (is (eq :refused unsendable))
      (is (equal `((:s ,muproc.ffi:+t-string+ (104 195 169 108 108 111))
                   (:e ,muproc.ffi:+t-string+ ())
                   (:b ,muproc.ffi:+t-binary+ (0 1 255))
                   (:d ,muproc.ffi:+t-double+ 2.5d0)
                   (:f ,muproc.ffi:+t-double+ 1.5d0)
                   (:i ,muproc.ffi:+t-int+ ,(expt 2 40))
                   (:m ,muproc.ffi:+t-int+ -5)
                   (:n ,muproc.ffi:+t-nil+ nil)
                   (:a ,muproc.ffi:+t-atom+ :square)
                   (:t ,muproc.ffi:+t-atom+ :true)
                   (:p ,muproc.ffi:+t-pid+ ,(muproc::%muproc-pid sender))
                   (:r ,muproc.ffi:+t-ref+ ,(muproc::muproc-tag-id tag)))
                 terms))
      (is (equalp (list :s hello :e "" :b octets :d 2.5d0 :f 1.5d0
                        :i (expt 2 40) :m -5 :n nil :a :square :t t)
                  (subseq plist 0 20)))
      (is (eq sender (getf plist :p)))
      (is (muproc-msgtag= tag (getf plist :r))))))
