;;;; test-link.lisp - links, monitors, trapped exits, exit signals, kills
;;;; and interrupts between muprocs.
;;;;
;;;; Helpers from t/fixtures.lisp (NOW, AWAIT, SPAWN-AND-WAIT, DEFTEST,
;;;; whose leak check also wants no link, monitor or timer left).  As in
;;;; the other suites, muprocs only observe and hand their observations
;;;; back (as the values of a MUPROC form, or in a closure variable read
;;;; after MUPROC-WAIT-FOR-EXIT); the test thread checks.  "Nothing else
;;;; came" is made deterministic by waiting for the exit in question first
;;;; (its notices are queued by then) and then sending oneself a marker:
;;;; the next message must be that marker.  Measured times go to
;;;; *ERROR-OUTPUT* as "# ..." lines.

(in-package #:muproc-tests)

(def-suite :muproc/link :in :muproc
  :description "Links, monitors, trapped exits, exit signals, kills, interrupts.")
(in-suite :muproc/link)

;;; Helpers, shared with t/test-timer.lisp

(defun linkage-counts ()
  "The runtime's link ends, monitors and pending timers, as a list (the
leak check after each test wants all three back at 0)."
  (let ((stats (muproc-runtime-stats)))
    (list (getf stats :links) (getf stats :monitors) (getf stats :timers))))

(defun report-measurement (control &rest arguments)
  "Write a measurement as a \"# \" line on *ERROR-OUTPUT* (FiveAM's own
output is not shown)."
  (format *error-output* "~&# ~?~%" control arguments)
  (force-output *error-output*))

(defun block-forever ()
  "Wait in a receive that no message matches."
  (mumsg-receive (from) ((never-sent) t)))

(defun run-on-go ()
  "Wait for (:go FUNCTION) and call FUNCTION: whoever holds this muproc
decides later how it ends."
  (mumsg-receive (from) ((go) t (funcall go))))

(defun spawn-idle (&optional name &rest spawn-args)
  "Spawn a muproc NAME running RUN-ON-GO."
  (apply #'muproc-spawn name #'run-on-go nil spawn-args))

(defun go-and-wait (muproc function)
  "Make MUPROC (running RUN-ON-GO) call FUNCTION; its exit reason."
  (mumsg-send muproc :go function)
  (muproc-wait-for-exit muproc :timeout 10))

(defun next-message-after-marker ()
  "In a muproc: send oneself a fresh marker, then receive the oldest
message.  :ONLY-MARKER if that is the marker, else the plist of what was
queued before it."
  (let ((marker (list :marker)))
    (mumsg-send *muproc-inport* :marker marker)
    (mumsg-receive (from)
      (() t (if (eq marker (mumsg-get *muproc-packet* :marker))
                :only-marker
                (mumsg-plist *muproc-packet*))))))

(defun notice-now (muproc)
  "In a muproc: receive, without waiting, the (:terminated MUPROC ...)
notice; its plist, or :NONE."
  (mumsg-receive (from :timeout 0)
    ((terminated) (eq terminated muproc) (mumsg-plist *muproc-packet*))
    (:timeout :none)))

(defun linked-to-exit-p (reason name for-reason)
  "True if REASON is (:LINKED-TO-EXIT NAME :FOR-REASON FOR-REASON), the
last part EQ."
  (and (consp reason)
       (= 4 (length reason))
       (eq :linked-to-exit (first reason))
       (eq name (second reason))
       (eq :for-reason (third reason))
       (eq for-reason (fourth reason))))

(define-condition link-test-error (error) ()
  (:report "link-test-error, raised on purpose"))

(defvar *link-test-special* :global
  "Bound per muproc, to show whose dynamic environment code runs in.")

;;; Links

(deftest link.link-unlink-and-list ()
  "MUPROC-LINK links two muprocs both ways and returns T (MUPROC-LINKS
lists each from the other, the runtime counts 2 link ends); linking again
adds nothing; MUPROC-UNLINK removes both ends and returns T (also when
there is no link), after which an exit no longer travels.  The one-argument
forms link the current muproc and need one."
  (let ((a (spawn-idle 'link-test-a))
        (b (spawn-idle 'link-test-b)))
    (is (eq t (muproc-link a b)))
    (is (equal (list b) (muproc-links a)))
    (is (equal (list a) (muproc-links b)))
    (is (eq t (muproc-link b a)))
    (is (equal (list b) (muproc-links a)))
    (is (= 2 (first (linkage-counts))))
    (is (eq t (muproc-unlink b a)))
    (is (null (muproc-links a)))
    (is (null (muproc-links b)))
    (is (= 0 (first (linkage-counts))))
    (is (eq t (muproc-unlink a b)))
    (is (eq :bye (go-and-wait a (lambda () (muproc-exit :bye)))))
    ;; An exit signal would have been acted on before this message.
    (is (eq :normal (go-and-wait b (lambda () nil))) "the exit travelled after the unlink")
    (is (null (muproc-links a)) "a dead muproc has links"))
  (let ((m (spawn-idle)))
    (signals muproc-not-in-muproc (muproc-link m))
    (is (eq :normal (go-and-wait m (lambda () nil)))))
  (destructuring-bind (other linked mine theirs unlinked mine-after theirs-after reason)
      (muproc ()
        (let ((other (spawn-idle)))
          (list other (muproc-link other) (muproc-links) (equal (list (muproc-current-process))
                                                                (muproc-links other))
                (muproc-unlink other) (muproc-links) (muproc-links other)
                (go-and-wait other (lambda () :done)))))
    (is (eq t linked))
    (is (equal (list other) mine))
    (is-true theirs)
    (is (eq t unlinked))
    (is (null mine-after))
    (is (null theirs-after))
    (is (eq :normal reason))))

(deftest link.spawn-links-before-the-first-form ()
  "With :LINK T the child is linked to its spawner before it runs a single
form: a child that exits at once still notifies its trapping spawner, with
its own reason, 100 times out of 100, and exactly once each; the child's
first form already finds its spawner in MUPROC-LINKS."
  (destructuring-bind (reasons first-form-links me last-notice after)
      (muproc (30)
        (muproc-set-trap-exits t)
        (let ((me (muproc-current-process)))
          (list (loop repeat 100
                      collect (let ((child (muproc-spawn nil (lambda () (muproc-exit :at-once))
                                                         nil :link t)))
                                (mumsg-receive (from :timeout 5)
                                  ((terminated reason) (eq terminated child) reason)
                                  (:timeout :no-notice))))
                (let ((child (muproc-spawn nil (lambda () (mumsg-send me :links (muproc-links)))
                                           nil :link t)))
                  (prog1 (mumsg-receive (from :timeout 5)
                           ((links) (eq from child) links)
                           (:timeout :no-report))
                    (muproc-wait-for-exit child :timeout 5)))
                me
                (mumsg-receive (from :timeout 5)
                  ((terminated reason) t reason)
                  (:timeout :no-notice))
                (next-message-after-marker))))
    (is (every (lambda (r) (eq :at-once r)) reasons) "reasons: ~s" (remove :at-once reasons))
    (is (equal (list me) first-form-links))
    (is (eq :normal last-notice))
    (is (eq :only-marker after) "an extra message: ~s" after)))

(deftest link.any-exit-propagates ()
  "Every way of ending travels over a link, a normal return included: a
non-trapping linked muproc exits with (:LINKED-TO-EXIT name :FOR-REASON
reason), and a trapping one receives (:TERMINATED muproc :REASON reason)
where muproc is EQ to the dead muproc and reason EQ to its exit reason
(:NORMAL, a MUPROC-EXIT reason, (:ERROR-IN-PROCESS . condition), a kill's
reason)."
  (dolist (ending '(:return :exit :error :kill))
    (let* ((ender (spawn-idle 'link-test-ender :errorstream (make-broadcast-stream)))
           (plain (spawn-idle))
           (notice nil)
           (trapper (muproc-spawn nil (lambda ()
                                        (mumsg-receive (from)
                                          ((terminated reason) t
                                           (setf notice (list terminated reason)))))
                                  nil :trap-exits t)))
      (muproc-link ender plain)
      (muproc-link trapper ender)
      (ecase ending
        (:return (mumsg-send ender :go (lambda () nil)))
        (:exit (mumsg-send ender :go (lambda () (muproc-exit (list :custom ending)))))
        (:error (mumsg-send ender :go (lambda () (error 'link-test-error))))
        (:kill (muproc-kill ender :shot)))
      (let ((reason (muproc-wait-for-exit ender :timeout 10))
            (plain-reason (muproc-wait-for-exit plain :timeout 10))
            (trapper-reason (muproc-wait-for-exit trapper :timeout 10)))
        (case ending
          (:return (is (eq :normal reason)))
          (:exit (is (equal '(:custom :exit) reason)))
          (:error (is (typep reason '(cons (eql :error-in-process) link-test-error))
                      "error exit reason ~s" reason))
          (:kill (is (eq :shot reason))))
        (is (linked-to-exit-p plain-reason 'link-test-ender reason)
            "~s: the linked muproc exited with ~s" ending plain-reason)
        (is (eq :normal trapper-reason) "~s: the trapping muproc exited with ~s"
            ending trapper-reason)
        (is (eq ender (first notice)) "~s: notice names ~s" ending (first notice))
        (is (eq reason (second notice)) "~s: notice reason ~s" ending (second notice))))))

;;; Issue 10, item 7: trapping used to be decided by the sender, when the
;;; signal was sent; a muproc that turned trapping on before acting on a
;;; signal already queued still died of it.
(deftest link.trapping-is-decided-when-the-signal-is-acted-on ()
  "A muproc that does not trap exits is sent an exit signal while it can't
act on it (busy with interrupts deferred), then turns trapping on: at its
next safe point it receives (:terminated sender :reason reason) instead of
exiting, and goes on to exit normally."
  (destructuring-bind (target-reason notice)
      (muproc (20)
        (let* ((me (muproc-current-process))
               (signal-sent (list nil))
               (target (muproc-spawn
                        nil
                        (lambda ()
                          (sb-sys:without-interrupts
                            (mumsg-send me :ready t)
                            ;; Spin, not wait: nothing here acts on signals.
                            (let ((deadline (+ (now) 10)))
                              (loop until (or (car signal-sent) (> (now) deadline))
                                    do (sb-thread:barrier (:read))))
                            (muproc-set-trap-exits t))
                          (mumsg-receive (from :timeout 5)
                            ((terminated reason) t
                             (mumsg-send me :notice (list terminated reason
                                                          (mumsg-get *muproc-packet* :link))))
                            (:timeout (mumsg-send me :notice :none))))
                        nil)))
          (mumsg-receive (from) ((ready) (eq from target)))
          (muproc-exit :stop target)
          (setf (car signal-sent) t)
          (list (muproc-wait-for-exit target :timeout 10)
                (mumsg-receive (from :timeout 5)
                  ((notice) (eq from target) notice)
                  (:timeout :no-report)))))
    (is (eq :normal target-reason) "the target exited with ~s" target-reason)
    (is (and (consp notice) (eq :stop (second notice)) (null (third notice)))
        "the target received ~s" notice)))

;;; Issue 10: a trapped link notice carried :LINK :TRUE.
(deftest link.trapped-link-notice-says-link-t ()
  "The notice a trapping muproc gets for an exit over a link says :LINK T;
one for an exit signal sent by MUPROC-EXIT has no :LINK."
  (destructuring-bind (over-link sent)
      (muproc ()
        (muproc-set-trap-exits t)
        (let* ((me (muproc-current-process))
               (child (muproc-spawn nil (lambda () nil) nil :link t)))
          (list (mumsg-receive (from :timeout 5)
                  ((terminated) (eq terminated child) (mumsg-plist *muproc-packet*))
                  (:timeout :no-notice))
                (let ((sender (muproc-spawn nil (lambda () (muproc-exit :by-hand me)) nil)))
                  (mumsg-receive (from :timeout 5)
                    ((terminated) (eq terminated sender) (mumsg-plist *muproc-packet*))
                    (:timeout :no-notice))))))
    (is (and (listp over-link) (eq t (getf over-link :link))) "notice: ~s" over-link)
    (is (and (listp sent) (eq :by-hand (getf sent :reason))
             (eq :none (getf sent :link :none)))
        "notice: ~s" sent)))

(defun output-lines (text)
  "TEXT split into lines, without the empty string after a final newline."
  (let ((lines (uiop:split-string text :separator '(#\Newline))))
    (if (equal (car (last lines)) "") (butlast lines) lines)))

(defun run-child-sbcl (arguments &key (timeout 50) (core sb-ext:*core-pathname*))
  "Run this SBCL (from CORE, default this image's) with ARGUMENTS, from the
top of the source tree and in this process's environment.  Returns its standard output as lines, its
error output and its exit status, or :HUNG for the status if it did not
end within TIMEOUT seconds.  The child is killed if it is still running
when this returns (then, or because the watchdog struck)."
  (uiop:with-temporary-file (:pathname output)
    (uiop:with-temporary-file (:pathname errors)
      (let* ((child (uiop:launch-program
                     (list* (namestring sb-ext:*runtime-pathname*)
                            "--core" (namestring core)
                            arguments)
                     :directory (asdf:system-source-directory "muproc")
                     :input nil
                     :output output :if-output-exists :supersede
                     :error-output errors :if-error-output-exists :supersede))
             (waiter (sb-thread:make-thread (lambda () (uiop:wait-process child))
                                            :name "child sbcl waiter"))
             (status :hung))
        (unwind-protect
             (setf status (sb-thread:join-thread waiter :timeout timeout :default :hung))
          (when (uiop:process-alive-p child)
            (uiop:terminate-process child :urgent t))
          (sb-thread:join-thread waiter :default nil)
          (uiop:close-streams child))
        (values (output-lines (uiop:read-file-string output))
                (uiop:read-file-string errors)
                status)))))

(defun run-in-fresh-image (code)
  "Run CODE (a string of forms, read in CL-USER) in a fresh SBCL that has
loaded muproc as the examples do.  Returns the last line it printed, or
:HUNG if it did not end within 50 s.  For behaviour that, broken, wedges
the runtime: the tests that follow must not inherit a muproc that can't
be ended."
  (multiple-value-bind (lines errors status)
      (run-child-sbcl (list "--noinform" "--non-interactive" "--no-sysinit" "--no-userinit"
                            "--load" "examples/load-muproc.lisp"
                            "--eval" (format nil "(progn ~a (finish-output) (sb-ext:exit :abort t))"
                                             code)))
    (declare (ignore errors))
    (if (eq status :hung) :hung (car (last lines)))))

(deftest link.link-to-a-dead-muproc (:timeout 90)
  "Linking to a muproc that has already exited returns T and queues the
notice at once (it is there without waiting), with reason :NOPROC: a
trapping muproc receives (:TERMINATED dead :REASON :NOPROC), a
non-trapping one exits with (:LINKED-TO-EXIT name :FOR-REASON :NOPROC).
The non-trapping case runs 100 times in a fresh SBCL: when it went wrong
it left a muproc that could never be ended."
  (let ((dead (nth-value 1 (spawn-and-wait (lambda () (muproc-exit :gone))))))
    (destructuring-bind (returned notice after)
        (muproc ()
          (muproc-set-trap-exits t)
          (list (muproc-link dead) (notice-now dead) (next-message-after-marker)))
      (is (eq t returned))
      (is (and (listp notice) (eq dead (getf notice :terminated))
               (eq :noproc (getf notice :reason)))
          "notice ~s" notice)
      (is (eq :only-marker after) "an extra message: ~s" after)))
  (let ((outcome (run-in-fresh-image
                  "(let ((dead (muproc:muproc-spawn 'link-test-dead (lambda () nil) nil))
                         (*print-pretty* nil))
                     (muproc:muproc-wait-for-exit dead)
                     (loop for i below 100
                           for linker = (muproc:muproc-spawn
                                         nil (lambda () (muproc:muproc-link dead) (sleep 30)) nil)
                           for reason = (muproc:muproc-wait-for-exit linker :timeout 2)
                           unless (equal reason '(:linked-to-exit link-test-dead
                                                  :for-reason :noproc))
                             do (format t \"~&~d ~s ~s~%\" i reason (muproc:muproc-state linker))
                                (return)
                           finally (format t \"~&all ended so~%\")))")))
    (is (equal "all ended so" outcome)
        "of 100 muprocs that linked to a dead one, one ended up as ~
         (its number, exit reason, state): ~a" outcome)))

(deftest link.link-racing-an-exit-notifies-once (:timeout 60)
  "A muproc linked to while it exits gives exactly one notice: its own
reason if the link came first, :NOPROC if the exit did; never none, never
two (200 races)."
  (let ((outcomes
          (muproc (50)
            (muproc-set-trap-exits t)
            (loop repeat 200
                  collect (let ((child (muproc-spawn nil (lambda () (muproc-exit :raced)) nil)))
                            (muproc-link child)
                            (muproc-wait-for-exit child :timeout 10)
                            ;; Its notice is queued by now, and any second one.
                            (loop for notice = (notice-now child)
                                  until (eq notice :none)
                                  collect (getf notice :reason)))))))
    (report-measurement "link.link-racing-an-exit-notifies-once: ~d link first, ~d exit first"
                        (count '(:raced) outcomes :test #'equal)
                        (count '(:noproc) outcomes :test #'equal))
    (is (= 200 (length outcomes)))
    (is (every (lambda (o) (member o '((:raced) (:noproc)) :test #'equal)) outcomes)
        "outcomes other than one notice: ~s"
        (remove-if (lambda (o) (member o '((:raced) (:noproc)) :test #'equal)) outcomes))))

(deftest link.two-muprocs-kill-each-other (:timeout 60)
  "Two linked muprocs that kill (or exit) each other at the same moment
both end, each with the other's reason or the link's; nothing hangs (50
rounds)."
  (let ((bad '()))
    (dotimes (round 50)
      (let* ((a (spawn-idle nil :errorstream (make-broadcast-stream)))
             (b (spawn-idle nil :errorstream (make-broadcast-stream)))
             (end (if (evenp round) #'muproc-kill (lambda (m r) (muproc-exit r m)))))
        (muproc-link a b)
        (mumsg-send a :go (lambda () (funcall end b :by-a) (block-forever)))
        (mumsg-send b :go (lambda () (funcall end a :by-b) (block-forever)))
        (let ((ra (muproc-wait-for-exit a :timeout 10))
              (rb (muproc-wait-for-exit b :timeout 10)))
          (unless (and (or (eq ra :by-b) (linked-to-exit-p ra nil rb))
                       (or (eq rb :by-a) (linked-to-exit-p rb nil ra))
                       (or (eq ra :by-b) (eq rb :by-a)))
            (push (list round ra rb) bad)))))
    (is (null bad) "rounds with unexpected reasons: ~s" bad)))

(defun chain-member (remaining coordinator)
  "Spawn the rest of a chain (REMAINING more members) linked to this
muproc, tell COORDINATOR (:chain-member me :position REMAINING), wait."
  (when (plusp remaining)
    (muproc-spawn nil #'chain-member (list (1- remaining) coordinator) :link t))
  (mumsg-send coordinator :chain-member (muproc-current-process) :position remaining)
  (block-forever))

(defun retire-idle-workers ()
  "Once every muproc has ended and its worker is parked, end the parked
workers (after the tests that start a thousand of them)."
  (await (lambda () (and (null (muproc-all-processes)) (workers-settled-p))) :timeout 20)
  (muproc-trim-workers))

(deftest link.chain-of-1000-dies-together (:timeout 120)
  "In a chain of 1,000 muprocs, each spawned with :LINK T by the one
before, an exit of the tail reaches every member: each exits with
(:LINKED-TO-EXIT nil :FOR-REASON <its successor's reason>)."
  (let* ((n 1000)
         (members (muproc (60)
                    (let ((me (muproc-current-process))
                          (members (make-array n :initial-element nil)))
                      (muproc-spawn nil #'chain-member (list (1- n) me))
                      (loop repeat n
                            do (mumsg-receive (from)
                                 ((chain-member position)
                                  t (setf (aref members position) chain-member))))
                      members))))
    (is (every #'muproc-alive-p members))
    (let ((start (now)))
      (muproc-exit :tail-exit (aref members 0))
      (let* ((reasons (map 'vector (lambda (m) (muproc-wait-for-exit m :timeout 60)) members))
             (seconds (seconds-since start)))
        (report-measurement "link.chain-of-1000-dies-together: ~d members in ~,3f s" n seconds)
        (is (eq :tail-exit (aref reasons 0)))
        (is (= (1- n) (loop for i from 1 below n
                            count (linked-to-exit-p (aref reasons i) nil (aref reasons (1- i)))))
            "not every member exited with its successor's reason")
        (is (< seconds 30) "the chain took ~,1f s to die" seconds))))
  (retire-idle-workers))

(deftest link.trapper-linked-to-1000 (:timeout 120)
  "A trapping muproc linked to 1,000 muprocs at once (MUPROC-LINKS lists
them all) receives 1,000 notices when they exit, one per muproc, each with
that muproc's reason, and nothing more."
  (let ((n 1000))
    (destructuring-bind (listed wrong missing after)
        (muproc (100)
          (muproc-set-trap-exits t)
          (let* ((children (loop for i below n
                                 collect (muproc-spawn nil #'run-on-go nil :link t)))
                 (index (make-hash-table :test 'eq))
                 (seen (make-array n :initial-element nil))
                 (wrong '()))
            (loop for child in children for i from 0 do (setf (gethash child index) i))
            (let ((listed (length (muproc-links))))
              (loop for child in children
                    for i from 0
                    do (let ((reason (list :child i)))
                         (mumsg-send child :go (lambda () (muproc-exit reason)))))
              (loop repeat n
                    do (mumsg-receive (from)
                         ((terminated reason) t
                          (let ((i (gethash terminated index)))
                            (if (and i (not (aref seen i)) (equal reason (list :child i)))
                                (setf (aref seen i) t)
                                (push (list terminated reason) wrong))))))
              (mapc (lambda (m) (muproc-wait-for-exit m :timeout 10)) children)
              (list listed wrong (count nil seen) (next-message-after-marker)))))
      (is (= n listed) "MUPROC-LINKS listed ~d" listed)
      (is (null wrong) "unexpected notices: ~s" wrong)
      (is (zerop missing) "~d muprocs gave no notice" missing)
      (is (eq :only-marker after) "an extra message: ~s" after)))
  (retire-idle-workers))

;;; Exit signals and kills

(deftest link.exit-reaches-busy-muprocs ()
  "MUPROC-EXIT of another muproc reaches it promptly (measured; asserted
under 3 s, against its 30 s sleep) whether it sleeps (sleep 30), waits in a receive that nothing
matches, or spins without receiving; it exits with the reason given and
its cleanups run."
  (let ((results (muproc (30)
                   (list (exit-promptly (lambda () (sleep 30)))
                         (exit-promptly #'block-forever)
                         (exit-promptly #'spin-forever)))))
    (loop for (returned reason seconds cleanup) in results
          for what in '(:sleeping :receiving :spinning)
          do (report-measurement "link.exit-reaches-busy-muprocs: ~(~a~) muproc exited ~,2f ms ~
                                  after MUPROC-EXIT" what (* 1000 seconds))
             (is (eq t returned) "~s: MUPROC-EXIT returned ~s" what returned)
             (is (eq :stop reason) "~s: exit reason ~s" what reason)
             (is (< seconds 3) "~s: took ~,3f s to exit" what seconds)
             (is-true cleanup "~s: cleanup did not run" what))))

(deftest link.exit-signal-trapped-or-not ()
  "A muproc that traps exits turns MUPROC-EXIT into the message
(:TERMINATED sender :REASON reason), sender EQ to the exiting muproc, and
lives on; MUPROC-SET-TRAP-EXITS (here or on another muproc) returns the
previous setting, MUPROC-TRAP-EXITS-P tells it, and once trapping is off
an exit signal ends the muproc."
  (destructuring-bind (me trapped alive previous trapping-after reason)
      (muproc (20)
        (let* ((me (muproc-current-process))
               (target (muproc-spawn nil (lambda ()
                                           (let ((previous (muproc-set-trap-exits t)))
                                             (mumsg-send me :trapping previous))
                                           (loop (mumsg-receive (from)
                                                   ((terminated) t
                                                    (mumsg-send me :notice
                                                                (mumsg-plist *muproc-packet*))))))
                                     nil)))
          (list me
                (let ((previous (mumsg-receive (from) ((trapping) t trapping))))
                  (muproc-exit :please target)
                  (list previous (mumsg-receive (from) ((notice) t notice))))
                (muproc-alive-p target)
                (list (muproc-trap-exits-p target) (muproc-set-trap-exits nil target))
                (muproc-trap-exits-p target)
                (progn (muproc-exit :now-really target)
                       (muproc-wait-for-exit target :timeout 5)))))
    (is (null (first trapped)) "trap-exits was on before it was set")
    (is (eq me (getf (second trapped) :terminated)) "notice ~s" (second trapped))
    (is (eq :please (getf (second trapped) :reason)) "notice ~s" (second trapped))
    (is-true alive)
    (is (equal '(t t) previous))
    (is (null trapping-after))
    (is (eq :now-really reason))))

(deftest link.kill-is-not-trappable ()
  "MUPROC-KILL ends a muproc that traps exits, sleeping or waiting, with
:KILLED or the reason given, and logs the seed's \"NAME was terminated due
to #<EXIT NAME reason>.\" line on its errorstream; the kill travels over
its links like any exit.  MUPROC-KILL of a dead muproc returns NIL."
  (let* ((log (make-string-output-stream))
         (sleeper (muproc-spawn 'link-test-sleeper (lambda () (sleep 30)) nil
                                :trap-exits t :errorstream log))
         (waiter (spawn-idle 'link-test-waiter :trap-exits t :errorstream log))
         (notice nil)
         (watcher (muproc-spawn nil (lambda ()
                                      (mumsg-receive (from)
                                        ((terminated reason) t
                                         (setf notice (list terminated reason)))))
                                nil :trap-exits t))
         (plain (spawn-idle)))
    (muproc-link watcher waiter)
    (muproc-link plain sleeper)
    (is (eq t (muproc-kill sleeper)))
    (is (eq t (muproc-kill waiter :custom)))
    (is (eq :killed (muproc-wait-for-exit sleeper :timeout 5)))
    (is (eq :custom (muproc-wait-for-exit waiter :timeout 5)))
    (is (linked-to-exit-p (muproc-wait-for-exit plain :timeout 5) 'link-test-sleeper :killed))
    (is (eq :normal (muproc-wait-for-exit watcher :timeout 5)))
    (is (equal (list waiter :custom) notice))
    (is (null (muproc-kill sleeper)))
    (let ((text (get-output-stream-string log)))
      (is (search "LINK-TEST-SLEEPER was terminated due to #<EXIT LINK-TEST-SLEEPER :KILLED>."
                  text)
          "the errorstream got: ~s" text)
      (is (search "LINK-TEST-WAITER was terminated due to #<EXIT LINK-TEST-WAITER :CUSTOM>."
                  text)
          "the errorstream got: ~s" text))))

(deftest link.send-to-a-terminated-muproc ()
  "Sending to a terminated muproc signals
MUPROC-SEND-TO-TERMINATED-MUPROC-CONDITION (not an error) naming it and
returns NIL, from a muproc as from a plain thread."
  (let ((dead (nth-value 1 (spawn-and-wait (lambda () nil))))
        (conditions '()))
    (flet ((send ()
             (handler-bind ((muproc-send-to-terminated-muproc-condition
                              (lambda (c) (push c conditions))))
               (mumsg-send dead :hello 1))))
      (is (null (send)))
      (is (null (muproc () (send)))))
    (is (= 2 (length conditions)))
    (is (notany (lambda (c) (typep c 'error)) conditions))
    (is (every (lambda (c) (eq dead (muproc-condition-muproc c))) conditions))
    (is (null (handler-case (mumsg-send dead :hello 2) (error (e) e))))))

;;; Monitors

(deftest monitor.notice-and-never-kills ()
  "MUPROC-MONITOR returns a tag; when the target exits the watcher, which
does not trap exits, receives (:TERMINATED target :REASON reason :MONITOR
tag) with MUPROC-MSGTAG= to the tag it got, and is not killed.  Two
monitors of one target give two notices; a monitor is no link; the runtime
counts armed monitors."
  (destructuring-bind (target tags counted links notices reason after)
      (muproc ()
        (let* ((target (spawn-idle))
               (tags (list (muproc-monitor target) (muproc-monitor target)))
               (counted (second (linkage-counts)))
               (links (muproc-links)))
          (list target tags counted links
                (progn (mumsg-send target :go (lambda () (muproc-exit (list :gone))))
                       (loop repeat 2
                             collect (mumsg-receive (from :timeout 5)
                                       ((terminated reason monitor) t
                                        (list terminated reason monitor))
                                       (:timeout :no-notice))))
                (muproc-wait-for-exit target :timeout 5)
                (next-message-after-marker))))
    (is (every #'muproc-tag-p tags))
    (is (not (muproc-msgtag= (first tags) (second tags))))
    (is (= 2 counted))
    (is (null links))
    (is (every (lambda (n) (and (consp n) (eq target (first n)) (eq reason (second n))))
               notices)
        "notices: ~s" notices)
    (is (equal '(:gone) reason))
    (is (= 2 (length notices)))
    (is (every (lambda (tag) (= 1 (count-if (lambda (n) (muproc-msgtag= tag (third n))) notices)))
               tags)
        "the notices' tags ~s are not the two monitors' ~s" (mapcar #'third notices) tags)
    (is (eq :only-marker after) "an extra message: ~s" after)))

(deftest monitor.dead-target-gives-noproc ()
  "Monitoring a muproc that has already exited queues (:TERMINATED
target :REASON :NOPROC :MONITOR tag) at once."
  (let ((dead (nth-value 1 (spawn-and-wait (lambda () nil)))))
    (destructuring-bind (tag notice)
        (muproc () (let ((tag (muproc-monitor dead))) (list tag (notice-now dead))))
      (is (muproc-tag-p tag))
      (is (and (listp notice) (eq dead (getf notice :terminated))
               (eq :noproc (getf notice :reason))
               (muproc-msgtag= tag (getf notice :monitor)))
          "notice ~s" notice))))

(deftest monitor.demonitor-before-the-exit ()
  "MUPROC-DEMONITOR before the target exits returns T, and no notice ever
comes (after the exit, the next message is one sent later); demonitoring
again returns NIL."
  (destructuring-bind (first-time counted reason after second-time)
      (muproc ()
        (let* ((target (spawn-idle))
               (tag (muproc-monitor target)))
          (list (muproc-demonitor tag)
                (second (linkage-counts))
                (go-and-wait target (lambda () :done))
                (next-message-after-marker)
                (muproc-demonitor tag))))
    (is (eq t first-time))
    (is (= 0 counted))
    (is (eq :normal reason))
    (is (eq :only-marker after) "a notice came after all: ~s" after)
    (is (null second-time))))

(deftest monitor.demonitor-flush ()
  "Once the target has exited its notice is queued: MUPROC-DEMONITOR
returns NIL, and with :FLUSH T removes that notice (only that one) while
without it the notice stays; on an armed monitor :FLUSH T returns T."
  (destructuring-bind (queued flushed after-flush kept after-keep left armed after)
      (muproc ()
        (let* ((t1 (spawn-idle))
               (t2 (spawn-idle))
               (tag1 (muproc-monitor t1))
               (tag2 (muproc-monitor t2)))
          (go-and-wait t1 (lambda () nil))
          (go-and-wait t2 (lambda () nil))
          (list (muproc-unmatched-input-count)
                (muproc-demonitor tag1 :flush t)
                (muproc-unmatched-input-count)
                (muproc-demonitor tag2)
                (muproc-unmatched-input-count)
                (mumsg-receive (from :timeout 0)
                  ((monitor) t (and (muproc-msgtag= monitor tag2) :tag2))
                  (:timeout :none))
                (let ((t3 (spawn-idle)))
                  (prog1 (muproc-demonitor (muproc-monitor t3) :flush t)
                    (go-and-wait t3 (lambda () nil))))
                (next-message-after-marker))))
    (is (= 2 queued))
    (is (null flushed))
    (is (= 1 after-flush))
    (is (null kept))
    (is (= 1 after-keep))
    (is (eq :tag2 left))
    (is (eq t armed))
    (is (eq :only-marker after) "an extra message: ~s" after)))

;;; Interrupts

(defun interrupt-report (requester)
  "Run by MUPROC-INTERRUPT: tell REQUESTER whose environment this is."
  (mumsg-send requester :seen (list (muproc-current-process) *muproc-inport*
                                    *link-test-special*)))

(deftest interrupt.runs-inside-the-target ()
  "MUPROC-INTERRUPT makes a muproc, sleeping or waiting in a receive, call
the function with the arguments given inside itself, at once (measured):
it sees that muproc's specials (*MUPROC-INPORT* is the target, its initial
bindings); afterwards a receiving target goes on receiving, and an
interrupt that calls MUPROC-EXIT ends the target.  Returns T, or NIL for
a dead muproc."
  (destructuring-bind (sleeping receiving)
      (muproc (20)
        (let ((me (muproc-current-process)))
          (flet ((probe (workload)
                   (let* ((target (muproc-spawn nil workload nil
                                                :initial-bindings
                                                '((*link-test-special* . :target))))
                          (start (progn (await (lambda () (member (muproc-state target)
                                                                  '(:running :waiting))))
                                        (now)))
                          (returned (muproc-interrupt target #'interrupt-report me))
                          (seen (mumsg-receive (from :timeout 5)
                                  ((seen) t seen)
                                  (:timeout :none)))
                          (seconds (seconds-since start)))
                     (list target returned seen seconds))))
            (list (destructuring-bind (target returned seen seconds)
                      (probe (lambda () (sleep 30)))
                    (muproc-interrupt target (lambda () (muproc-exit :interrupted)))
                    (list target returned seen seconds
                          (muproc-wait-for-exit target :timeout 5)
                          (muproc-interrupt target #'interrupt-report me)))
                  (destructuring-bind (target returned seen seconds) (probe #'run-on-go)
                    (list target returned seen seconds
                          (go-and-wait target (lambda () :done))
                          nil))))))
    (loop for (target returned seen seconds reason dead-returned) in (list sleeping receiving)
          for what in '(:sleeping :receiving)
          do (report-measurement "interrupt.runs-inside-the-target: ~(~a~) muproc ran it after ~,2f ms"
                                 what (* 1000 seconds))
             (is (eq t returned) "~s: returned ~s" what returned)
             (is (equal (list target target :target) seen) "~s: saw ~s" what seen)
             (is (< seconds 3) "~s: took ~,3f s (its sleep: 30 s)" what seconds)
             (is (null dead-returned)))
    (is (eq :interrupted (fifth sleeping)))
    (is (eq :normal (fifth receiving)))))
