;;;; test-receive.lisp - MUMSG-RECEIVE: selective receive on the inport.
;;;;
;;;; Most tests run in a MUPROC form (a receive needs a muproc) and return
;;;; what they saw; the checks are made in the test thread.

(in-package #:muproc-tests)

(def-suite :muproc/receive :in :muproc :description "Selective receive.")
(in-suite :muproc/receive)

(defun send-self (&rest plist)
  (apply #'mumsg-send *muproc-inport* plist))

(defun receive-any-plist ()
  "Receive the oldest message, without waiting; its plist, or :NONE."
  (mumsg-receive (from :timeout 0)
    (() t (mumsg-plist *muproc-packet*))
    (:timeout :none)))

(defun drain-plists ()
  "Receive every pending message, oldest first; their plists."
  (loop for p = (receive-any-plist)
        until (eq p :none)
        collect p))

(deftest receive.oldest-first ()
  "Of several messages that match, the oldest is received first."
  (is (equal '(1 2 3 4 5)
             (muproc ()
               (dotimes (i 5) (send-self :n (1+ i)))
               (loop repeat 5 collect (mumsg-receive (from) ((n) t n)))))))

(deftest receive.clauses-tried-in-order ()
  "For one message the clauses are tried in order and the first that
matches wins; message age beats clause order (the oldest message is taken
even if only a later clause matches it)."
  (destructuring-bind (a b c d)
      (muproc ()
        (list
         (progn (send-self :a 1 :b 2)
                (mumsg-receive (from) ((b) t :first) ((a) t :second) (() t :third)))
         (progn (send-self :a 1 :b 2)
                (mumsg-receive (from) ((b) (> b 5) :first) ((a) t :second) (() t :third)))
         (progn (send-self :c 1)
                (mumsg-receive (from) ((b) t :first) ((a) t :second) (() t :third)))
         (progn (send-self :x 1)
                (send-self :y 2)
                (list (mumsg-receive (from) ((y) t :y-clause) ((x) t :x-clause))
                      (mumsg-receive (from) ((y) t :y-clause) ((x) t :x-clause))))))
    (is (eq :first a))
    (is (eq :second b))
    (is (eq :third c))
    (is (equal '(:x-clause :y-clause) d))))

(deftest receive.unmatched-stay-queued-in-order ()
  "Messages that match no clause stay in the inport, in their order, and
are received later in that order."
  (destructuring-bind (matched count-after rest)
      (muproc ()
        (send-self :a 1)
        (send-self :b 1)
        (send-self :a 2)
        (send-self :c 1)
        (send-self :b 2)
        (send-self :a 3)
        (list (mumsg-receive (from) ((c) t c))
              (muproc-unmatched-input-count)
              (drain-plists)))
    (is (eql 1 matched))
    (is (eql 5 count-after))
    (is (equal '((:a 1) (:b 1) (:a 2) (:b 2) (:a 3)) rest))))

(deftest receive.guards-see-bindings-and-from ()
  "A guard is evaluated with the clause's names bound to the message's
values and FROM bound to the sender, and can reject on either."
  (destructuring-bind (by-values by-sender-other by-sender-self rest)
      (muproc ()
        (let* ((me (muproc-current-process))
               (helper (muproc-spawn nil (lambda () (mumsg-send me :x 2 :y 20)) nil)))
          (send-self :x 1 :y 10)
          (send-self :x 5 :y 7)
          (list
           ;; Only the second self-sent message has x + y = 12.
           (mumsg-receive (from) ((x y) (= (+ x y) 12) (list x y)))
           ;; Blocks until the helper's message arrives, passing over ours.
           (mumsg-receive (from) ((x) (eq from helper) x))
           (mumsg-receive (from) ((x) (eq from me) x))
           (muproc-unmatched-input-count))))
    (is (equal '(5 7) by-values))
    (is (eql 2 by-sender-other))
    (is (eql 1 by-sender-self))
    (is (eql 0 rest))))

(deftest receive.from-follows-each-sender ()
  "With messages from several senders interleaved, FROM is each message's
own sender, in a guard (also through a closure) and in the body: a
receiver remembering its last sender never hands out a stale one."
  (let ((mismatches
          (muproc ()
            (let* ((me (muproc-current-process))
                   (helpers (loop repeat 3
                                  collect (muproc-spawn
                                           nil (lambda ()
                                                 (dotimes (i 20)
                                                   (mumsg-send me :who (muproc-current-process))))
                                           nil))))
              (send-self :who me)
              (loop repeat 61
                    count (mumsg-receive (from :timeout 10)
                            ((who) (funcall (lambda () (eq from who)))
                             (not (and (eq from who)
                                       (or (eq who me) (member who helpers)))))
                            (:timeout t)))))))
    (is (eql 0 mismatches))))

(deftest receive.key-present-with-nil-value-matches ()
  "A key present with value NIL matches a clause naming it (and binds NIL);
a message without the key does not."
  (destructuring-bind (first second rest)
      (muproc ()
        (send-self :other 1)
        (send-self :flag nil)
        (list (mumsg-receive (from :timeout 0) ((flag) t (list :got flag)) (:timeout :none))
              (mumsg-receive (from :timeout 0) ((flag) t (list :got flag)) (:timeout :none))
              (drain-plists)))
    (is (equal '(:got nil) first))
    (is (eq :none second))
    (is (equal '((:other 1)) rest))))

(deftest receive.catch-all-clause ()
  "The clause (() t ...) matches any message, even an empty one, when no
earlier clause does."
  (is (equal '((:weird 1) nil :specific)
             (muproc ()
               (send-self :weird 1)
               (send-self)
               (send-self :a 1)
               (loop repeat 3
                     collect (mumsg-receive (from)
                               ((a) t :specific)
                               (() t (mumsg-plist *muproc-packet*))))))))

(deftest receive.from-is-sender-or-nil ()
  "FROM is the sending muproc; it is NIL for a message sent from a thread
that is not a muproc (here the test thread)."
  (let* ((froms '())
         (r (muproc-spawn nil (lambda ()
                                (loop repeat 2
                                      do (mumsg-receive (from)
                                           ((ping) t (push (cons ping from) froms)))))
                          nil)))
    (mumsg-send r :ping :from-test-thread)
    (let ((sender (muproc () (mumsg-send r :ping :from-muproc) (muproc-current-process))))
      (is (eq t (nth-value 1 (muproc-wait-for-exit r :timeout 10))))
      (is (equal (list (cons :from-test-thread nil) (cons :from-muproc sender))
                 (reverse froms)))
      (is (muproc-p sender)))))

(deftest receive.packet-is-the-matched-mumsg ()
  "In a clause's body *MUPROC-PACKET* is the mumsg that matched (all its
pairs, in order, values EQ to those sent); it is NIL outside a receive."
  (let ((s (copy-seq "payload")))
    (destructuring-bind (before packet after)
        (muproc ()
          (send-self :skip 0)
          (send-self :a 1 :b s :c nil)
          (list *muproc-packet*
                (mumsg-receive (from) ((a) t *muproc-packet*))
                *muproc-packet*))
      (is (null before))
      (is (mumsg-p packet))
      (is (equal '(:a 1 :b "payload" :c nil) (mumsg-plist packet)))
      (is (eq s (mumsg-get packet :b)))
      (is (null after)))))

(deftest receive.timeout-clause ()
  "With :TIMEOUT and nothing matching, the (:timeout ...) clause's forms are
evaluated and their values returned, after about the timeout; without such
a clause the receive returns NIL.  Unmatched messages stay queued."
  (destructuring-bind (with-clause with-clause-time without-clause rest)
      (muproc ()
        (send-self :noise 1)
        (let* ((start (now))
               (a (multiple-value-list
                   (mumsg-receive (from :timeout 0.2)
                     ((never) t :matched)
                     (:timeout (values :timed-out 42)))))
               (a-time (seconds-since start))
               (b (multiple-value-list
                   (mumsg-receive (from :timeout 0.05) ((never) t :matched)))))
          (list a a-time b (drain-plists))))
    (is (equal '(:timed-out 42) with-clause))
    (is (<= 0.19 with-clause-time 5) "waited ~,3f s for a 0.2 s timeout" with-clause-time)
    (is (equal '(nil) without-clause))
    (is (equal '((:noise 1)) rest))))

(deftest receive.timeout-zero-never-blocks ()
  "A receive with :TIMEOUT 0 never waits: it returns a matching queued
message, or the timeout clause's value at once when none matches."
  (destructuring-bind (empty with-match with-noise elapsed)
      (muproc ()
        (let ((start (now)))
          (list (mumsg-receive (from :timeout 0) ((a) t a) (:timeout :nothing))
                (progn (send-self :a 7)
                       (mumsg-receive (from :timeout 0) ((a) t a) (:timeout :nothing)))
                (progn (dotimes (i 1000) (send-self :b i))
                       (loop repeat 100
                             collect (mumsg-receive (from :timeout 0) ((a) t a))
                               into results
                             finally (muproc-discard-all-pending-input)
                                     (return (remove-duplicates results))))
                (seconds-since start))))
    (is (eq :nothing empty))
    (is (eql 7 with-match))
    (is (equal '(nil) with-noise))
    (is (< elapsed 2) "100 non-blocking receives took ~,3f s" elapsed)))

(deftest receive.blocked-receive-wakes-only-for-a-match ()
  "A receive that blocked wakes up for a matching message that arrives
later; non-matching messages arriving meanwhile leave it waiting (they are
still queued, in order, when the match comes)."
  (let* ((result nil)
         (r (muproc-spawn nil (lambda ()
                                (let ((got (mumsg-receive (from) ((n) (eql n 3) n))))
                                  (setf result (list got (drain-plists)))))
                          nil)))
    (is (eq :waiting (await (lambda () (and (eq (muproc-state r) :waiting) :waiting)))))
    (mumsg-send r :n 1)
    (mumsg-send r :other t)
    (mumsg-send r :n 2)
    ;; After looking at the newcomers, it is blocked again, and has them all.
    (is (await (lambda () (and (eq (muproc-state r) :waiting)
                               (= 3 (muproc-unmatched-input-count r))))))
    (is (muproc-alive-p r))
    (mumsg-send r :n 3)
    (is (eq :normal (muproc-wait-for-exit r :timeout 10)))
    (is (equal '(3 ((:n 1) (:other t) (:n 2))) result))))

(defstruct receive-test-thing a b)

(defun numbered-plist (values)
  "(:K0 v0 :K1 v1 ...) for VALUES."
  (loop for v in values
        for i from 0
        collect (intern (format nil "K~d" i) :keyword)
        collect v))

(deftest receive.values-pass-by-reference ()
  "Values reach a Lisp muproc by reference: a list, string, vector, struct,
bignum, float, character or closure received is EQ to the one sent (from a
muproc or from a plain thread); fixnums, keywords, NIL and T arrive EQL."
  (let* ((by-reference (list (list 1 2 3) (copy-seq "hello")
                             (make-array 3 :initial-element 0)
                             (make-receive-test-thing :a 1 :b "x")
                             (expt 2 100) 1.5d0 #\x (let ((n 0)) (lambda () (incf n)))))
         (by-value (list most-positive-fixnum most-negative-fixnum -1 0 :kw nil t))
         (plist (numbered-plist (append by-reference by-value)))
         (received '())
         (r (muproc-spawn nil (lambda ()
                                (loop repeat 2
                                      do (mumsg-receive (from)
                                           (() t (push (mumsg-plist *muproc-packet*)
                                                       received)))))
                          nil)))
    (apply #'mumsg-send r plist)
    (muproc () (apply #'mumsg-send r plist))
    (muproc-wait-for-exit r :timeout 10)
    (is (= 2 (length received)))
    (dolist (got received)
      (is (equal (mumsg-keys (apply #'mumsg plist)) (mumsg-keys (apply #'mumsg got))))
      (loop for (nil sent) on plist by #'cddr
            for (nil arrived) on got by #'cddr
            for i from 0
            do (if (< i (length by-reference))
                   (is (eq sent arrived) "~s arrived as a copy: ~s" sent arrived)
                   (is (eql sent arrived) "~s arrived as ~s" sent arrived))))))

(deftest receive.unmatched-count-and-discard ()
  "MUPROC-UNMATCHED-INPUT-COUNT counts the queued messages (of the current
muproc, or of another one), MUPROC-UNMATCHED-INPUT-P says whether there are
any, and MUPROC-DISCARD-ALL-PENDING-INPUT empties the inport and returns how
many it removed."
  (let ((other (muproc-spawn nil (lambda () (mumsg-receive (from) ((stop) t))) nil)))
    (destructuring-bind (c0 p0 c5 c4 p4 discarded c-after p-after next other-count)
        (muproc ()
          (let ((c0 (muproc-unmatched-input-count))
                (p0 (muproc-unmatched-input-p)))
            (dotimes (i 5) (send-self :n i))
            (dotimes (i 3) (mumsg-send other :x i))
            (let ((c5 (muproc-unmatched-input-count)))
              (mumsg-receive (from) ((n) (= n 2)))
              (list c0 p0 c5
                    (muproc-unmatched-input-count (muproc-current-process))
                    (muproc-unmatched-input-p)
                    (muproc-discard-all-pending-input)
                    (muproc-unmatched-input-count)
                    (muproc-unmatched-input-p)
                    (mumsg-receive (from :timeout 0) ((n) t n) (:timeout :empty))
                    (muproc-unmatched-input-count other)))))
      (is (eql 0 c0))
      (is (null p0))
      (is (eql 5 c5))
      (is (eql 4 c4))
      (is-true p4)
      (is (eql 4 discarded))
      (is (eql 0 c-after))
      (is (null p-after))
      (is (eq :empty next))
      (is (eql 3 other-count)))
    (mumsg-send other :stop t)
    (is (eq :normal (muproc-wait-for-exit other :timeout 10)))
    (is (eql 0 (muproc-unmatched-input-count other)) "a dead muproc has no input")))

(deftest receive.outside-a-muproc-signals ()
  "MUMSG-RECEIVE and MUPROC-DISCARD-ALL-PENDING-INPUT outside a muproc
signal MUPROC-NOT-IN-MUPROC (even with :TIMEOUT 0)."
  (is (not (in-muproc-p)))
  (signals muproc-not-in-muproc (mumsg-receive (from) ((a) t a)))
  (signals muproc-not-in-muproc (mumsg-receive (from :timeout 0) ((a) t a)))
  (signals muproc-not-in-muproc (muproc-discard-all-pending-input)))

(deftest receive.nested-receive-in-guard-signals ()
  "A receive inside a guard signals MUPROC-NESTED-RECEIVE; the message being
looked at stays queued and can be received normally afterwards."
  (destructuring-bind (condition-type count later)
      (muproc ()
        (send-self :a 1)
        (send-self :b 2)
        (list (handler-case
                  (mumsg-receive (from)
                    ((a) (mumsg-receive (f2 :timeout 0) ((b) t b)) :matched))
                (error (c) (type-of c)))
              (muproc-unmatched-input-count)
              (drain-plists)))
    (is (eq 'muproc-nested-receive condition-type))
    (is (eql 2 count))
    (is (equal '((:a 1) (:b 2)) later))))

(defun odd-even-counter-server ()
  "The seed's odd/even counter, answering FROM instead of printing."
  (loop
    (mumsg-receive (from)
      ((counter) (and (integerp counter) (oddp counter))
       (mumsg-send from :answer "Counter is an odd integer."))
      ((counter) t
       (mumsg-send from :answer "Counter is not an odd integer."))
      ((stop) t
       (return))
      (() t
       (mumsg-send from :answer "Unexpected message.")))))

(deftest receive.seed-odd-even-counter ()
  "The seed's example: an odd integer counter takes the first clause, any
other counter the second, anything else the catch-all."
  (let ((server (muproc-spawn 'odd-even-counter #'odd-even-counter-server nil)))
    (is (equal '("Counter is an odd integer."
                 "Counter is not an odd integer."
                 "Counter is not an odd integer."
                 "Counter is not an odd integer."
                 "Unexpected message.")
               (muproc ()
                 (loop for msg in '((:counter 3) (:counter 4) (:counter "seven")
                                    (:counter nil) (:price 42))
                       collect (progn (apply #'mumsg-send server msg)
                                      (mumsg-receive (from)
                                        ((answer) (eq from server) answer)))))))
    (mumsg-send server :stop t)
    (is (eq :normal (muproc-wait-for-exit server :timeout 10)))))

;;; Large mailboxes must not make receive quadratic.  The guards below
;;; count their calls (a side effect guards should not have, used here
;;; only to measure): a receive examines each message once.

(defun backlog-round (n)
  "In the current muproc: queue N messages, (:seq i) for even i and
(:noise i) for odd i (so both the key filter and the guards reject on the
way), receive the newest (behind N-1 rejected ones), then all the others
oldest first with guards that accept only the expected one.  Returns the
seconds taken, whether everything came in the right order, and how many
times a guard ran."
  (sb-ext:gc)
  (let ((start (now))
        (ok t)
        (calls 0)
        (last (1- n)))
    (dotimes (i n)
      (if (evenp i) (send-self :seq i) (send-self :noise i)))
    (unless (eql last (mumsg-receive (from)
                        ((seq) (progn (incf calls) (= seq last)) seq)
                        ((noise) (progn (incf calls) (= noise last)) noise)))
      (setf ok nil))
    (dotimes (i last)
      (unless (eql i (mumsg-receive (from)
                       ((seq) (progn (incf calls) (= seq i)) seq)
                       ((noise) (progn (incf calls) (= noise i)) noise)))
        (setf ok nil)))
    (values (seconds-since start)
            (and ok (zerop (muproc-unmatched-input-count)))
            calls)))

(defun linear-p (round big small &key (slack 5) (attempts 3))
  "Time ROUND with BIG messages (best of two) against BIG/SMALL rounds with
SMALL messages (their total).  True when the big round took less than
SLACK times the small rounds in one of up to ATTEMPTS measurements (timing
is noisy on a loaded machine; a quadratic receive fails them all by far).
Returns (values linear-p big-time small-total all-rounds-ok
guard-calls-of-a-big-round)."
  (funcall round small)                 ; warm up
  (let ((ok t) big-time small-total big-calls)
    (dotimes (attempt attempts)
      (setf big-time nil small-total 0)
      (dotimes (i 2)
        (multiple-value-bind (time round-ok calls) (funcall round big)
          (setf big-time (if big-time (min big-time time) time)
                big-calls calls)
          (unless round-ok (setf ok nil))))
      (dotimes (i (floor big small))
        (multiple-value-bind (time round-ok) (funcall round small)
          (incf small-total time)
          (unless round-ok (setf ok nil))))
      (when (< big-time (* slack small-total))
        (return-from linear-p (values t big-time small-total ok big-calls))))
    (values nil big-time small-total ok big-calls)))

(deftest receive.large-mailbox-is-linear (:timeout 120)
  "Receiving from behind 100,000 queued non-matching messages and then
draining them FIFO examines each message once per receive (2N-1 guard
calls in all) and takes time linear in N: N=100,000 takes less than 5x the
time of ten rounds of N=10,000 (linear: about 1x, cache effects included;
quadratic: 10x and far more)."
  (destructuring-bind (linear big small ok calls)
      (muproc (110) (multiple-value-list (linear-p #'backlog-round 100000 10000)))
    (is-true ok "messages lost or out of order")
    (is (eql (1- (* 2 100000)) calls) "~d guard calls for N=100,000" calls)
    (is-true linear "N=100,000 took ~,3f s, 10 x N=10,000 took ~,3f s" big small)))

(defun busy-wait (seconds)
  "Compute (not sleep) for SECONDS."
  (let ((end (+ (now) seconds)))
    (loop while (< (now) end))))

(deftest receive.wakeups-examine-only-new-messages (:timeout 60)
  "A receive blocked while 20,000 non-matching messages trickle in (the
sender computes a few microseconds after each, so the receive wakes up
again and again) examines every message exactly once: a wake-up looks only
at the messages that arrived since, never again at those it rejected.  The
match comes last; the others stay queued."
  (destructuring-bind (calls left)
      (muproc (50)
        (let* ((me (muproc-current-process))
               (n 20000)
               (calls 0)
               (sender (muproc-spawn nil (lambda ()
                                           (dotimes (i n)
                                             (mumsg-send me :seq i)
                                             (busy-wait 5d-6))
                                           (mumsg-send me :seq :stop))
                                     nil)))
          (mumsg-receive (from) ((seq) (progn (incf calls) (eq seq :stop))))
          (muproc-wait-for-exit sender :timeout 10)
          (list calls (muproc-discard-all-pending-input))))
    (is (eql 20001 calls) "~d guard calls for 20,001 messages" calls)
    (is (eql 20000 left))))
