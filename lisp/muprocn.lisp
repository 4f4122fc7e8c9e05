;;;; muprocn.lisp - the MUPROC form: progn in a fresh muproc.

(in-package #:muproc)

(defun run-in-fresh-muproc (function timeout timeout-action)
  "Call FUNCTION in a new anonymous muproc and return its values once that
muproc has ended; see the MUPROC macro."
  (let ((values nil)
        (returned nil)
        (failure nil)
        (muproc nil)
        (ended nil)
        (killed nil))
    (flet ((body ()
             (handler-case
                 (setf values (multiple-value-list (funcall function))
                       returned t)
               (serious-condition (c)
                 (setf failure c)
                 (muproc-exit (cons :error-in-process c)))))
           (kill (reason)
             ;; Once only: a second kill would cut short the cleanups the
             ;; muproc runs for the first.
             (sb-sys:without-interrupts
               (unless (or killed (%muproc-exited muproc))
                 (send-signal muproc muproc.ffi:+k-kill+ (list :reason reason :quiet t))
                 (setf killed t)))))
      ;; A caller that leaves early (killed, or a non-local exit such as an
      ;; abort at the REPL) takes its muproc with it: nothing may keep
      ;; running that no one waits for.  So the cleanup is in place, and
      ;; the spawned muproc recorded, before any interrupt can act; errors
      ;; and waits happen with interrupts allowed, so a REPL user can
      ;; still interrupt a muproc that won't die.
      (sb-sys:without-interrupts
        (unwind-protect
             (let ((spawn-failure
                     (handler-case (progn (setf muproc (muproc-spawn nil #'body nil)) nil)
                       (serious-condition (c) c))))
               (sb-sys:with-local-interrupts
                 (when spawn-failure
                   (error spawn-failure))
                 (multiple-value-bind (reason exited)
                     (muproc-wait-for-exit muproc :timeout timeout)
                   (cond (exited
                          (setf ended t)
                          (cond (failure (error failure))
                                (returned (values-list values))
                                (t (with-simple-restart
                                       (continue "Return no values from the MUPROC form.")
                                     (error 'muproc-form-exited :muproc muproc
                                                                :reason reason))
                                   (values))))
                         (t
                          (kill :timeout)
                          (muproc-wait-for-exit muproc)
                          (setf ended t)
                          (warn 'muproc-form-timeout :muproc muproc :seconds timeout)
                          (funcall timeout-action))))))
          (when (and muproc (not ended))
            (kill :abandoned)
            (sb-sys:with-local-interrupts
              (muproc-wait-for-exit muproc))))))))

(defmacro muproc ((&optional (timeout 10) (timeout-action :timeout)) &body body)
  "Evaluate BODY in a fresh muproc and return all its values: muproc's
PROGN, for talking to muprocs from the REPL, e.g.
  (muproc () (mumsg-send :area-server :cmd :areas)
             (mumsg-receive (from) ((answer) t answer)))
The values are returned once that muproc has ended.  How else it can end:
- An error in BODY is signalled again in the caller.
- If the muproc exits without BODY returning (BODY calls MUPROC-EXIT, or
  the muproc is killed, or exits over a link), MUPROC-FORM-EXITED is
  signalled in the caller, carrying the exit reason; its CONTINUE restart
  returns no values.
- If BODY takes longer than TIMEOUT seconds (default 10; NIL: no limit),
  the muproc is killed with reason :TIMEOUT, the warning
  MUPROC-FORM-TIMEOUT is signalled, and TIMEOUT-ACTION's values are
  returned (evaluated then, in the caller; default :TIMEOUT).  The
  warning tells the time limit from a body that returned :TIMEOUT.
- If the caller leaves the form before that (it is killed, or an abort at
  the REPL unwinds it), the muproc is killed with reason :ABANDONED and
  waited for."
  `(run-in-fresh-muproc (lambda () ,@body) ,timeout (lambda () ,timeout-action)))

(defmacro muprocn ((&optional (timeout 10) (timeout-action :timeout)) &body body)
  "Another name for the MUPROC form (cl-muproc's)."
  `(muproc (,timeout ,timeout-action) ,@body))
