;;;; test-storms.lisp - many muprocs at once: nothing lost, duplicated or
;;;; reordered; exactly one notice per link and monitor; bounded mailboxes
;;;; that refuse and never drop.  Each is bounded to seconds.

(in-package #:muproc-tests)

(def-suite :muproc/storms :in :muproc
  :description "Message and exit storms.")
(in-suite :muproc/storms)

(defun payload (sender i)
  "The value sender SENDER sends as its I-th message: a mix of the shapes
that stress the encoder, recognisable by PAYLOAD-OK-P."
  (case (mod i 7)
    (0 nil)
    ;; Few of the big ones: the image's heap is the test's too.
    (1 (if (zerop (mod i 49))
           (make-string 20000 :initial-element (code-char (+ 65 (mod sender 26)))
                              :element-type 'base-char)
           (make-string 20 :initial-element #\x)))
    (2 (let ((l (list sender i))) (dotimes (k 300 l) (setf l (list l)))))
    (3 (expt 7 (+ 40 (mod i 30))))
    (4 (list :vector (vector sender i) :float (float i 1d0)))
    (5 (format nil "~d/~d" sender i))
    (t i)))

(defun payload-ok-p (sender i value)
  (let ((want (payload sender i)))
    (if (typep want '(or string number list))
        (equalp want value)
        (eql want value))))

(defun wide-plist (i)
  "A message of 1,000 keys, every one carrying I."
  (loop for k below 1000
        collect (intern (format nil "K~d" k) :keyword)
        collect i))

(defun storm (receive-all senders send-all &key inport-capacity (timeout 150))
  "In a fresh muproc: spawn a receiver that runs RECEIVE-ALL and SENDERS
muprocs that each run SEND-ALL with the receiver and their number; return
the receiver's value and the list of the senders' values."
  (muproc (timeout)
    (let* ((me (muproc-current-process))
           (receiver (muproc-spawn nil (lambda () (mumsg-send me :received (funcall receive-all)))
                                   nil :inport-capacity inport-capacity)))
      (dotimes (s senders)
        (let ((s s))
          (muproc-spawn nil (lambda () (mumsg-send me :sent (funcall send-all receiver s))) nil)))
      (let ((sent (loop repeat senders collect (mumsg-receive (from) ((sent) t sent)))))
        (list (mumsg-receive (from) ((received) t received)) sent)))))

(deftest storms.senders-by-messages-mixed-payloads (:timeout 180)
  "8 senders x 3,000 mixed payloads (NIL, 20 KB strings, 300-deep lists,
bignums, 1,000-key messages) to one receiver that takes them selectively:
per sender, every sequence number once, in order, each payload intact."
  (let ((senders 8) (per-sender 3000))
    (destructuring-bind ((next bad wide left) _)
        (storm (lambda ()
                 (let ((next (make-array senders :initial-element 0))
                       (bad '()) (numbered 0) (wide-seen 0))
                   (loop until (= numbered (* senders per-sender))
                         do (mumsg-receive (from)
                              ((sender seq value) t
                               (unless (and (= seq (aref next sender))
                                            (payload-ok-p sender seq value))
                                 (push (list sender seq (aref next sender)) bad))
                               (setf (aref next sender) (1+ seq))
                               (incf numbered))
                              ((wide) t
                               ;; A 1,000-key message: every key there.
                               (unless (= 1001 (length (mumsg-keys *muproc-packet*)))
                                 (push (list :wide wide) bad))
                               (incf wide-seen))))
                   (list next bad wide-seen (muproc-unmatched-input-count))))
               senders
               (lambda (receiver s)
                 (dotimes (i per-sender)
                   (mumsg-send receiver :sender s :seq i :value (payload s i))
                   (when (zerop (mod i 1000))
                     (apply #'mumsg-send receiver :wide i (wide-plist i))))))
      (declare (ignore _))
      (is (every (lambda (n) (= n per-sender)) next) "per-sender counts ~a" next)
      (is (null bad) "out of order or corrupted: ~a" (subseq bad 0 (min 5 (length bad))))
      ;; Each sender's wide messages went before its last numbered one.
      (is (= (* 3 senders) wide))
      (is (zerop left)))))

(deftest storms.exits-one-notice-per-link-and-monitor (:timeout 180)
  "200 muprocs, each linked to one trapping muproc and monitored by 10
others, all killed at once: exactly one :terminated per link and exactly
one monitor notice per monitor, with the right reason."
  (let* ((targets 200) (watchers-per-target 10)
         (result
           (muproc (150)
             (let* ((me (muproc-current-process))
                    (victims (loop repeat targets
                                   ;; Their kill lines go nowhere.
                                   collect (muproc-spawn nil (lambda () (mumsg-receive (from) ((never) t))) nil
                                                         :errorstream (make-broadcast-stream))))
                    (trapper
                      (muproc-spawn
                       nil (lambda ()
                             (muproc-set-trap-exits t)
                             (dolist (v victims) (muproc-link v))
                             (mumsg-send me :linked t)
                             (let ((seen (make-hash-table)) (dups 0) (bad 0))
                               (loop repeat targets
                                     do (mumsg-receive (from)
                                          ((terminated reason) t
                                           (unless (eq reason :storm) (incf bad))
                                           (when (gethash terminated seen) (incf dups))
                                           (setf (gethash terminated seen) t))))
                               (mumsg-send me :links (hash-table-count seen) :dups dups :bad bad
                                              :extra (muproc-unmatched-input-count))))
                       nil))
                    (watchers
                      (loop repeat watchers-per-target
                            collect (muproc-spawn
                                     nil (lambda ()
                                           (let ((tags (mapcar #'muproc-monitor victims))
                                                 (got 0) (bad 0))
                                             (mumsg-send me :monitoring t)
                                             (loop repeat targets
                                                   do (mumsg-receive (from)
                                                        ((terminated monitor reason) t
                                                         (unless (and (eq reason :storm)
                                                                      (find monitor tags :test #'muproc-msgtag=))
                                                           (incf bad))
                                                         (incf got))))
                                             (mumsg-send me :monitors got :bad bad
                                                            :extra (muproc-unmatched-input-count))))
                                     nil))))
               (mumsg-receive (from) ((linked) t))
               (loop repeat watchers-per-target do (mumsg-receive (from) ((monitoring) t)))
               (dolist (v victims) (muproc-kill v :storm))
               (list (mumsg-receive (from) ((links dups bad extra) t (list links dups bad extra)))
                     (loop repeat watchers-per-target
                           collect (mumsg-receive (from) ((monitors bad extra) t (list monitors bad extra))))
                     (progn (mapc (lambda (m) (muproc-wait-for-exit m :timeout 30))
                                  (list* trapper watchers))
                            nil))))))
    (destructuring-bind (links per-watcher _) result
      (declare (ignore _))
      (is (equal (list targets 0 0 0) links))
      (dolist (w per-watcher)
        (is (equal (list targets 0 0) w))))))

(deftest storms.bounded-mailbox-refuses-and-never-drops (:timeout 180)
  "4 senders push 3,000 messages each at a receiver bounded to 8, retrying
when refused: the receiver gets every message once, per sender in order,
and senders were refused many times (the bound was really hit)."
  (let ((senders 4) (per-sender 3000))
    (destructuring-bind ((next bad) refused)
        (storm (lambda ()
                 (let ((next (make-array senders :initial-element 0)) (bad 0))
                   (flet ((take (s i)
                            (unless (= i (aref next s)) (incf bad))
                            (setf (aref next s) (1+ i))))
                     (loop repeat (* senders per-sender)
                           do (mumsg-receive (from)
                                ;; Selective: odd senders' messages first.
                                ((s i) (oddp s) (take s i))
                                ((s i) t (take s i)))))
                   (list next bad)))
               senders
               (lambda (receiver s)
                 (let ((refused 0))
                   (dotimes (i per-sender refused)
                     (loop until (handler-case (mumsg-send receiver :s s :i i)
                                   (muproc-inport-full ()
                                     (incf refused)
                                     (sb-thread:thread-yield)
                                     nil))))))
               :inport-capacity 8)
      (is (plusp (reduce #'+ refused)) "the bound was never hit")
      (is (zerop bad))
      (is (every (lambda (n) (= n per-sender)) next)))))

(deftest storms.fan-of-1000-monitors (:timeout 120)
  "1,000 muprocs monitor one target: each gets exactly one notice."
  (let ((result
          (muproc (100)
            (let* ((me (muproc-current-process))
                   (target (muproc-spawn nil (lambda () (mumsg-receive (from) ((die) t (muproc-exit :fan)))) nil))
                   (watchers (loop repeat 1000
                                   collect (muproc-spawn
                                            nil (lambda ()
                                                  (let ((tag (muproc-monitor target)))
                                                    (mumsg-send me :ready t)
                                                    (mumsg-receive (from)
                                                      ((terminated monitor reason) t
                                                       (mumsg-send me :got (and (muproc-msgtag= monitor tag)
                                                                                (eq reason :fan)
                                                                                (zerop (muproc-unmatched-input-count))))))))
                                            nil))))
              (loop repeat 1000 do (mumsg-receive (from) ((ready) t)))
              (mumsg-send target :die t)
              (prog1 (loop repeat 1000 count (mumsg-receive (from) ((got) t got)))
                (mapc (lambda (w) (muproc-wait-for-exit w :timeout 30)) watchers))))))
    (is (= 1000 result))))
