;;;; package.lisp - the muproc packages.

(defpackage #:muproc.ffi
  (:use #:common-lisp)
  (:documentation "Raw CFFI bindings to libmuproc and the loading of the
library.  Internal: thin and boring by design; policy lives in MUPROC.")
  (:export #:load-library #:library-directories
           #:+ok+ #:+signalled+ #:+worker-needed+
           #:+taken+ #:+recv-restart+ #:+recv-take+ #:+filter-final+
           #:+forever+ #:+nowait+
           ;; error codes
           #:+einval+ #:+enomem+ #:+esrch+ #:+eexist+ #:+enoent+ #:+etimedout+
           #:+efull+ #:+ethreads+ #:+eproclim+ #:+enotinit+ #:+ebusy+ #:+eperm+
           #:+etype+ #:+erange+ #:+eshutdown+ #:+estate+
           ;; term types, kinds, states, stats
           #:+t-nil+ #:+t-int+ #:+t-double+ #:+t-atom+ #:+t-string+ #:+t-binary+
           #:+t-pid+ #:+t-ref+ #:+t-handle+
           #:+k-message+ #:+k-exit+ #:+k-kill+ #:+k-timer+ #:+k-interrupt+
           #:+kind-lisp+ #:+kind-c+ #:+max-procs+
           #:+s-noproc+ #:+s-created+ #:+s-running+ #:+s-waiting+ #:+s-exited+
           #:+stat-procs+ #:+stat-threads+ #:+stat-parked+ #:+stat-handles+
           #:+stat-messages+ #:+stat-atoms+ #:+stat-registered+
           #:+stat-timers+ #:+stat-links+ #:+stat-monitors+ #:+stat-key-indexes+
           ;; functions
           #:%version #:%version-string #:%strerror #:%err-name
           #:%init #:%now-ns #:%thread-cap #:%set-thread-cap #:%stat
           #:%atom #:%atom-name #:%make-ref #:%creation #:*creation*
           #:%handle-live #:%handle-new #:%handle-release
           #:%msg-new #:%msg-free #:%msg-put-nil #:%msg-put-int #:%msg-put-double
           #:%msg-put-atom #:%msg-put-string #:%msg-put-binary #:%msg-put-pid
           #:%msg-put-ref #:%msg-put-new-handle
           #:%msg-size #:%msg-key #:%msg-type #:%msg-int #:%msg-double #:%msg-atom
           #:%msg-bytes #:%msg-pid #:%msg-ref #:%msg-handle #:%msg-find
           #:%msg-sender #:%msg-kind #:%msg-view #:%msg-new-pairs
           #:+pair-size+ #:+view-size+
           #:%proc-create #:%proc-start #:%proc-exit #:%proc-release #:%self
           #:%proc-state #:%proc-name #:%proc-kind #:%proc-exit-reason
           #:%proc-list
           #:%register #:%unregister #:%whereis #:%registered-names
           #:%send #:%signal-send #:%recv #:%recv-signal #:%recv-take
           #:%recv-next #:%recv-take-mark #:%poke-request #:%msg-release
           #:%mbox-count #:%mbox-signal-count #:%mbox-capacity
           #:%mbox-totals #:%mbox-peek #:%proc-cpu-ns #:%monitors
           #:%link #:%unlink #:%links #:%monitor #:%demonitor #:%send-exit
           #:%set-trap-exits #:%trap-exits #:%poke-wait #:%poke-stop
           #:%alias-add #:%alias-add-reply #:%alias-remove #:%send-alias
           #:%timer-send-after #:%timer-signal #:%timer-cancel #:%timer-reap
           #:%worker-offer #:%worker-unreserve #:%worker-park #:%worker-exit
           #:%worker-trim))

(defpackage #:muproc
  (:use #:common-lisp)
  (:nicknames #:cl-muproc)
  (:documentation "Erlang-style concurrency: muprocs that share nothing but
property-list messages (mumsgs), selective receive, registered port names,
exits, and the MUPROC form for talking to muprocs from the REPL.  The names
are those of cl-muproc.")
  (:export
   ;; processes
   #:muproc #:muprocn #:muproc-spawn #:muproc-current-process #:muproc-name
   #:muproc-p #:in-muproc-p #:muproc-find #:muproc-all-processes
   #:muproc-state #:muproc-exit-reason #:muproc-alive-p
   #:muproc-exit #:muproc-kill #:muproc-wait-for-exit #:muproc-interrupt
   ;; links, monitors, trapping
   #:muproc-link #:muproc-unlink #:muproc-links
   #:muproc-monitor #:muproc-demonitor
   #:muproc-set-trap-exits #:muproc-trap-exits-p
   ;; timers
   #:muproc-schedule #:muproc-schedule-relative #:muproc-make-interrupt-timer
   #:muproc-schedule-timer #:muproc-schedule-timer-relative
   #:muproc-unschedule-timer #:muproc-send-after #:muproc-timer-p
   #:muproc-with-timeout
   #:*muproc-inport* #:*muproc-errorstream* #:*muproc-packet*
   #:*muproc-enter-debugger-on-error* #:*muproc-worker-idle-seconds*
   ;; messages
   #:mumsg #:mumsg-p #:mumsg-plist #:mumsg-get #:muproc-get-field #:mumsg-keys
   #:mumsg-send #:mumsg-receive
   #:muproc-unmatched-input-count #:muproc-unmatched-input-p
   #:muproc-discard-all-pending-input
   ;; ports
   #:muproc-register-port-name #:muproc-unregister-port-name
   #:muproc-get-registered-port #:muproc-with-registered-port
   #:muproc-registered-port-names
   ;; tags
   #:muproc-with-message-tag #:muproc-make-tag #:muproc-msgtag= #:muproc-tag-p
   ;; logging
   #:muproc-log-errorstream #:muproc-with-errorstream-lock
   ;; runtime
   #:muproc-thread-cap #:muproc-trim-workers #:muproc-runtime-stats
   ;; observing
   #:muproc-i #:muproc-info #:muproc-registered #:muproc-top #:muproc-tree
   #:muproc-trace #:muproc-untrace #:muproc-not-a-muproc
   ;; conditions
   #:muproc-error #:muproc-library-not-found #:muproc-version-mismatch
   #:muproc-runtime-error #:muproc-error-code #:muproc-name-taken
   #:muproc-port-name-taken #:muproc-unknown-port-name #:muproc-invalid-port-name
   #:mumsg-malformed #:mumsg-unsendable-value #:muproc-inport-full
   #:muproc-thread-limit #:muproc-not-in-muproc #:muproc-nested-receive
   #:muproc-receive-syntax-error
   #:muproc-send-to-terminated-muproc-condition
   #:muproc-condition-muproc #:muproc-error-in-process
   #:muproc-invalid-argument #:invalid-argument-operation #:invalid-argument-name
   #:invalid-argument-expected #:invalid-argument-usage
   #:muproc-not-a-muproc #:muproc-unknown-name #:muproc-unknown-name-name
   #:muproc-condition-operation #:muproc-condition-datum
   #:muproc-form-exited #:muproc-form-exit-reason
   #:muproc-form-timeout #:muproc-form-timeout-seconds
   ;; cl-muproc's names (compat.lisp)
   #:muproc-send #:muproc-receive #:muproc-port #:*muproc-mumsg*
   #:mupacket-p #:muproc-packet-age #:muproc-packet-without-send-time
   #:muproc-address-p #:muproc-name-p #:muproc-port-name-p
   #:muproc-exit-condition #:muproc-exit-condition-reason))
