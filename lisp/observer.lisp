;;;; observer.lisp - looking at a running system from the REPL: muproc-i,
;;;; muproc-info, muproc-registered, muproc-top, and the crash dossier.
;;;;
;;;; Everything here runs in the caller's thread, muproc or not.  What
;;;; libmuproc knows (states, counts, links, monitors, names, CPU) is read
;;;; without stopping anyone; what only a muproc's own thread may read (its
;;;; queued messages) is asked of it with an interrupt, which it answers
;;;; in an instant at its next safe point, and which the caller waits for
;;;; a bounded time.

(in-package #:muproc)

;;; Generic servers make themselves known when they start, so that the
;;; observer can name their type and find the supervisors.

(defvar *generic-servers* (make-hash-table :test 'eq :weakness :key :synchronized t)
  "Muprocs running a generic server -> the package of their server type.")

(defun note-generic-server (package)
  "Called by a generic server as it starts: remember its type."
  (setf (gethash *current-muproc* *generic-servers*) package))

(defun generic-server-package (muproc)
  "The server-type package of MUPROC if it runs a generic server, else NIL."
  (values (gethash muproc *generic-servers*)))

(defun generic-servers (package-name)
  "The live muprocs running a generic server of the type PACKAGE-NAME."
  (let ((package (find-package package-name)))
    (sort (loop for m being the hash-keys of *generic-servers* using (hash-value p)
                when (and (eq p package) (muproc-alive-p m)) collect m)
          #'< :key #'%muproc-pid)))

;;; A reply box: how a muproc hands a value to a thread that waits for it
;;; without being a muproc (so without an inport).

(defstruct (reply-box (:constructor make-reply-box ()))
  (semaphore (sb-thread:make-semaphore :name "muproc reply box"))
  (value nil))

(defun reply-box-post (box value)
  (setf (reply-box-value box) value)
  (sb-thread:signal-semaphore (reply-box-semaphore box)))

(defun reply-box-wait (box timeout &optional muproc)
  "Wait up to TIMEOUT seconds (NIL: no limit) for BOX's value, giving up
early once MUPROC (if given) is dead: (values value T), or (values NIL
NIL)."
  (let ((deadline (and timeout (+ (get-internal-real-time)
                                  (round (* timeout internal-time-units-per-second))))))
    (loop
      (let ((slice (if deadline
                       (min 0.05 (max 0 (/ (- deadline (get-internal-real-time))
                                           internal-time-units-per-second)))
                       0.05)))
        (when (sb-thread:wait-on-semaphore (reply-box-semaphore box) :timeout slice)
          (return (values (reply-box-value box) t)))
        (when (or (and deadline (>= (get-internal-real-time) deadline))
                  (and muproc (not (muproc-alive-p muproc))))
          (return (values nil nil)))))))

(defun call-in-muproc (muproc function timeout)
  "FUNCTION's value, called in MUPROC's own thread at its next safe point
(at once if MUPROC is the caller): (values value T), or (values NIL NIL)
if MUPROC did not answer within TIMEOUT seconds (it is dead, or busy
where interrupts wait).  FUNCTION must be quick and must not fail."
  (cond ((eq muproc *current-muproc*) (values (funcall function) t))
        ((not (eq (%muproc-kind muproc) :lisp)) (values nil nil))
        (t (let ((box (make-reply-box)))
             (if (muproc-interrupt muproc (lambda () (reply-box-post box (funcall function))))
                 (reply-box-wait box timeout muproc)
                 (values nil nil))))))

;;; A request a generic server answers between two messages, in its own
;;; thread (see lisp/generic-state.lisp).

(defstruct (system-request (:constructor make-system-request (function box)))
  "FUNCTION, called in the server with its state, returns (values REPLY
NEW-STATE); the reply goes to BOX as (:normal reply) or (:error condition)."
  function box)

(defun run-system-request (request state)
  "In the server: answer REQUEST; return the state to go on with (STATE
itself if the request's function failed)."
  (let ((box (system-request-box request)))
    (handler-case
        (multiple-value-bind (reply new-state) (funcall (system-request-function request) state)
          (reply-box-post box (list :normal reply))
          new-state)
      (error (c)
        (reply-box-post box (list :error c))
        state))))

;;; What libmuproc knows

(defun message-totals (muproc)
  "(values arrived taken sent) of MUPROC's messages since it started, or
NIL once it has been released."
  (cffi:with-foreign-objects ((arrived :int64) (taken :int64) (sent :int64))
    (when (and (not (%muproc-exited muproc))
               (zerop (muproc.ffi:%mbox-totals (%muproc-pid muproc) arrived taken sent)))
      (values (cffi:mem-ref arrived :int64) (cffi:mem-ref taken :int64)
              (cffi:mem-ref sent :int64)))))

(defun monitor-peers (muproc watchers)
  "The muprocs MUPROC monitors (WATCHERS false) or that monitor it, one
per monitor."
  (let ((pid (%muproc-pid muproc)))
    (loop
      (let* ((n (max 0 (muproc.ffi:%monitors pid (if watchers 1 0) (cffi:null-pointer) 0)))
             (cap (+ n 8)))
        (cffi:with-foreign-object (buf :uint64 cap)
          (let ((got (muproc.ffi:%monitors pid (if watchers 1 0) buf cap)))
            (when (<= got cap)
              (return (loop for i below (max 0 got)
                            collect (pid-muproc (cffi:mem-aref buf :uint64 i)))))))))))

(defun thread-cpu-seconds (muproc)
  "CPU seconds used by the thread running MUPROC, or NIL."
  (let ((ns (muproc.ffi:%proc-cpu-ns (%muproc-pid muproc))))
    (and (>= ns 0) (/ ns 1d9))))

(defun own-queued-messages (count)
  "The first COUNT messages queued for the current muproc, as (SENDER
PLIST) lists, left queued."
  (let ((pid (%muproc-pid *current-muproc*)))
    (cffi:with-foreign-object (view :uint8 muproc.ffi:+view-size+)
      (loop for i below count
            while (zerop (muproc.ffi:%mbox-peek pid i view))
            collect (let ((sender (view-sender-pid view)))
                      (list (if (zerop sender) nil (pid-muproc sender))
                            (view-plist view)))))))

(defun print-exit-reason (muproc stream)
  "The exit reason in MUPROC's printed form, short even when it is not."
  (when (eq (%muproc-kind muproc) :lisp)
    (let ((*print-length* 5) (*print-level* 3) (*print-circle* t))
      (format stream " ~s" (%muproc-exit-reason muproc)))))

;;; MUPROC-INFO

(defun muproc-info (muproc &key (messages 0) (timeout 1))
  "A plist describing MUPROC (a muproc, its name, or a port name), read
without stopping it: :PID, :NAME, :KIND (:LISP or :C), :STATE, :QUEUE
(messages waiting), :MESSAGES-IN (put in its inport since it started),
:MESSAGES-TAKEN (taken from it by receives or discards), :MESSAGES-OUT
(sent by it), :LINKS, :MONITORS (muprocs it monitors), :MONITORED-BY,
:TRAP-EXITS, :PORTS (its port names), :THREAD-CPU-SECONDS (CPU of the
worker thread running it, which may have run other muprocs before),
:GENERIC-SERVER (the package of its server type, or NIL), :TRACED,
:FUNCTION, :ARGLIST, :ERRORSTREAM, :EXIT-REASON, and :RECENT, the last
messages it took (see :DOSSIER-SIZE of MUPROC-SPAWN) as (SENDER PLIST)
lists, oldest first.  Counts, links and CPU are NIL once it has exited.
With MESSAGES N > 0, :MESSAGES holds the first N queued messages as
(SENDER PLIST) lists, left queued: MUPROC (a Lisp muproc) copies them in
its own thread at its next safe point, and the caller waits at most
TIMEOUT seconds; :MESSAGES is :UNAVAILABLE if it did not answer (busy
where interrupts wait, or dead).  Callable from any thread."
  (let ((m (find-muproc-or-lose muproc "MUPROC-INFO")))
    (check-type messages (integer 0))
    (multiple-value-bind (arrived taken sent) (message-totals m)
      (let* ((state (muproc-state m))
             (alive (not (eq state :dead)))
             (info
               (list :pid (pid-string (%muproc-pid m))
                     :name (%muproc-name m)
                     :kind (%muproc-kind m)
                     :state state
                     :queue (and arrived (max 0 (- arrived taken)))
                     :messages-in arrived
                     :messages-taken taken
                     :messages-out sent
                     :links (and alive (muproc-links m))
                     :monitors (and alive (monitor-peers m nil))
                     :monitored-by (and alive (monitor-peers m t))
                     :trap-exits (and alive (muproc-trap-exits-p m))
                     :ports (and alive (muproc-registered-port-names m))
                     :thread-cpu-seconds (and alive (thread-cpu-seconds m))
                     :generic-server (let ((p (generic-server-package m)))
                                       (and p (package-name p)))
                     :traced (and (%muproc-tracer m) t)
                     :function (%muproc-function m)
                     :arglist (%muproc-arglist m)
                     :errorstream (%muproc-errorstream m)
                     :exit-reason (%muproc-exit-reason m)
                     :recent (mapcar #'reverse (recent-messages m)))))
        (if (plusp messages)
            (append info
                    (list :messages
                          (multiple-value-bind (queued answered)
                              (and alive
                                   (call-in-muproc m (lambda () (own-queued-messages messages))
                                                   timeout))
                            (if answered queued :unavailable))))
            info)))))

(defun muproc-id (muproc)
  "MUPROC's pid as an integer: muprocs in the order they were made, by
slot."
  (%muproc-pid muproc))

(defun muproc-pid-label (muproc)
  "MUPROC's pid as it prints (number, or number.serial)."
  (pid-string (%muproc-pid muproc)))

(defun muproc-info-line (muproc)
  "One line on MUPROC's state, as MUPROC-I shows it."
  (let ((info (muproc-info muproc)))
    (destructuring-bind (&key state queue messages-in messages-out links monitors
                           monitored-by trap-exits ports &allow-other-keys)
        info
      (format nil "~a: ~(~a~), queue ~:[-~;~:*~d~], in ~:[-~;~:*~d~], out ~:[-~;~:*~d~], ~
                   links ~d, monitors ~d/~d~:[~;, traps exits~]~@[, ports ~{~s~^ ~}~]"
              (muproc-label muproc) state queue messages-in messages-out
              (length links) (length monitors) (length monitored-by) trap-exits ports))))

;;; The crash dossier

(defun crash-dossier (muproc)
  "What an unhandled error's log entry adds to the backtrace: the
messages MUPROC took last and its state line."
  (if (null muproc)
      ""
      ;; LOG-TEXT: never signals, and bounds what a message prints.
      (log-text
       (lambda (s)
        (let ((recent (recent-messages muproc))
              (*print-length* 10) (*print-level* 4) (*print-circle* t))
          (when recent
            (format s "~&Last ~d message~:p taken, oldest first:~%" (length recent))
            (loop for (plist sender) in recent
                  do (format s "  from ~a: ~s~%" (muproc-label sender) plist)))
          (format s "~&State: ~a" (ignore-errors (muproc-info-line muproc))))))))

;;; MUPROC-REGISTERED and MUPROC-I

(defun muproc-registered ()
  "Every registered port name with its owner: a list of (NAME MUPROC),
sorted by name.  Callable from any thread."
  (sort (loop for m in (muproc-all-processes)
              append (loop for name in (muproc-registered-port-names m)
                           collect (list name m)))
        #'string< :key #'first))

(defun name-width (muprocs)
  "The width of the name column: the longest name, within reason."
  (max 6 (min 40 (reduce #'max muprocs :initial-value 0
                                       :key (lambda (m) (length (muproc-label m)))))))

(defun table-row (stream muproc width)
  (multiple-value-bind (arrived taken sent) (message-totals muproc)
    (progn
      (format stream "~&~7a ~va ~8a ~6@a ~7@a ~7@a ~5d ~4d/~d ~4a ~{~s~^ ~}~%"
              (pid-string (%muproc-pid muproc)) width
              (subseq-label (muproc-label muproc) width)
              (string-downcase (muproc-state muproc))
              (if arrived (max 0 (- arrived taken)) "-")
              (or arrived "-") (or sent "-")
              (length (muproc-links muproc))
              (length (monitor-peers muproc nil)) (length (monitor-peers muproc t))
              (if (muproc-trap-exits-p muproc) "yes" "-")
              (muproc-registered-port-names muproc)))))

(defun muproc-i (&key (stream *standard-output*))
  "Print a table of every live muproc, as Erlang's i(): pid, name,
state, queue (messages waiting), in (put in its inport since it
started), out (sent by it), links, monitors (made / on it), whether it
traps exits, port names; then the runtime's totals.  Returns the number of
muprocs listed.  Callable from any thread."
  (let* ((all (sort (muproc-all-processes) #'< :key #'%muproc-pid))
         (width (name-width all)))
    (format stream "~&~7a ~va ~8a ~6@a ~7@a ~7@a ~5@a ~6a ~4a ~a~%"
            "PID" width "NAME" "STATE" "QUEUE" "IN" "OUT" "LINKS" "MONS" "TRAP" "PORTS")
    (dolist (m all)
      (table-row stream m width))
    (print-totals stream)
    (length all)))

(defun print-totals (stream)
  (destructuring-bind (&key processes threads parked messages timers registered
                         links monitors &allow-other-keys)
      (muproc-runtime-stats)
    (format stream "~&~d muproc~:p, ~d thread~:p (~d parked), ~d message~:p allocated, ~
                    ~d timer~:p, ~d port name~:p, ~d link end~:p, ~d monitor~:p~%"
            processes threads parked messages timers registered links monitors)))

;;; MUPROC-TOP

(defun top-sample ()
  "Per live muproc: (muproc taken sent cpu-seconds queue), and the time."
  (values (loop for m in (muproc-all-processes)
                collect (multiple-value-bind (arrived taken sent) (message-totals m)
                          (list m (or taken 0) (or sent 0) (thread-cpu-seconds m)
                                (if arrived (max 0 (- arrived taken)) 0))))
          (get-internal-real-time)))

(defun top-rows (before after seconds)
  "Rows (muproc queue in/s out/s cpu%) for the muprocs of sample AFTER,
rates from their entry in sample BEFORE (none for a muproc new since)."
  (loop for (m taken sent cpu queue) in after
        for old = (assoc m before)
        collect (list m queue
                      (if old (/ (- taken (second old)) seconds) 0)
                      (if old (/ (- sent (third old)) seconds) 0)
                      (if (and old cpu (fourth old))
                          (* 100 (/ (- cpu (fourth old)) seconds))
                          0))))

(defun top-sort-key (sort)
  (ecase sort
    (:queue #'second)
    (:messages (lambda (row) (+ (third row) (fourth row))))
    (:cpu #'fifth)))

(defun print-top-frame (stream rows sort count stoppable)
  (let ((now (multiple-value-list (get-decoded-time))))
    (format stream "~&muproc-top ~2,'0d:~2,'0d:~2,'0d, busiest by ~(~a~)~:[~;; Return stops~]~%"
            (third now) (second now) (first now) sort stoppable))
  (print-totals stream)
  (let* ((shown (subseq rows 0 (min count (length rows))))
         (width (name-width (mapcar #'first shown))))
  (format stream "~&~7a ~va ~8a ~6@a ~8@a ~8@a ~6@a~%"
          "PID" width "NAME" "STATE" "QUEUE" "IN/S" "OUT/S" "CPU%")
  (loop for (m queue in out cpu) in shown
        do (format stream "~&~7a ~va ~8a ~6d ~8,1f ~8,1f ~6,1f~%"
                   (pid-string (%muproc-pid m)) width (subseq-label (muproc-label m) width)
                   (string-downcase (muproc-state m)) queue in out cpu))))

(defun subseq-label (label width)
  (if (> (length label) width) (concatenate 'string (subseq label 0 (1- width)) "~") label))

(defun key-pressed-p (input)
  "True, and the line consumed, once the user typed something on INPUT."
  (when (and input (listen input))
    (read-line input nil)
    t))

(defun skip-typed-ahead (input)
  "Drop the end of the line that called MUPROC-TOP, so that only a key
typed later stops it."
  (loop while (and input (listen input)
                   (member (peek-char nil input nil) '(#\Newline #\Return #\Space)))
        do (read-char input nil)))

(defun muproc-top (&key (sort :queue) (count 15) (interval 1) refreshes
                        (stream *standard-output*) (input *standard-input*))
  "A live view of the busiest muprocs, redrawn every INTERVAL seconds
until a key (then Return) is typed on INPUT, or REFRESHES frames (if
given) have been drawn: the runtime's totals, then the COUNT muprocs with
the highest SORT, which is :QUEUE (messages waiting), :MESSAGES (taken and
sent per second) or :CPU (percent of one CPU used by its thread).  Rates
are measured over each interval.  On an interactive STREAM each frame
replaces the last.  INPUT NIL: stop only after REFRESHES.  Returns the
number of frames drawn."
  (check-type sort (member :queue :messages :cpu))
  (check-type count (integer 1))
  (check-type interval (real (0)))
  (check-type refreshes (or null (integer 1)))
  (skip-typed-ahead input)
  (let ((clear (interactive-stream-p stream))
        (frames 0))
    (multiple-value-bind (before then) (top-sample)
      (loop
        (let ((deadline (+ then (round (* interval internal-time-units-per-second)))))
          (loop while (< (get-internal-real-time) deadline)
                do (when (key-pressed-p input) (return-from muproc-top frames))
                   (sleep (min 0.05 (/ (max 1 (- deadline (get-internal-real-time)))
                                       internal-time-units-per-second)))))
        (multiple-value-bind (after now) (top-sample)
          (let ((rows (sort (top-rows before after
                                      (max 1/1000 (/ (- now then) internal-time-units-per-second)))
                            #'> :key (top-sort-key sort))))
            (when clear
              (format stream "~c[H~c[2J" #\Esc #\Esc))
            (print-top-frame stream rows sort count (and input t))
            (force-output stream))
          (setf before after then now)
          (incf frames)
          (when (and refreshes (>= frames refreshes))
            (return frames)))))))
