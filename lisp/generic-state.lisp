;;;; generic-state.lisp - a generic server's state, looked at and replaced
;;;; from outside, as OTP's sys:get_state and sys:replace_state.
;;;;
;;;; The request is an ordinary message: the server handles it between
;;;; two others, in its own thread, so it never sees its state change
;;;; under a handler.  The reply comes through a reply box, so the caller
;;;; needs no inport: the REPL thread may ask.

(in-package #:muproc.generic-server)

(defun call-with-server-state (server-ref operation function timeout)
  "Have the generic server SERVER-REF call FUNCTION with its state between
two messages; return FUNCTION's first value.  Signals as
MUPROC-GENERIC-CALL: GENERIC-SERVER-NOT-RUNNING, GENERIC-CALL-TO-SELF,
GENERIC-HANDLER-ERROR (FUNCTION failed), GENERIC-SERVER-DOWN,
GENERIC-CALL-TIMEOUT."
  (let ((server (live-server-or-lose server-ref operation))
        (box (muproc.internal:make-reply-box)))
    (when (eq server (muproc-current-process))
      (error 'generic-call-to-self :server server-ref :handler operation))
    (unless (mumsg-send server :gs-system (muproc.internal:make-system-request function box))
      (error 'generic-server-not-running :server server-ref :handler operation
                                         :reason :noproc))
    (multiple-value-bind (result answered) (muproc.internal:reply-box-wait box timeout server)
      (cond (answered
             (destructuring-bind (status value) result
               (ecase status
                 (:normal value)
                 (:error (error 'generic-handler-error :server server-ref :handler operation
                                                       :original value)))))
            ((muproc-alive-p server)
             (error 'generic-call-timeout :server server-ref :handler operation
                                          :timeout timeout))
            (t (error 'generic-server-down :server server-ref :handler operation
                                           :reason (muproc-exit-reason server)))))))

(defun muproc-generic-get-state (server-ref &key (timeout *muproc-generic-call-timeout*))
  "The state of the generic server SERVER-REF (a muproc, a muproc name or
a port name), as its handlers see it, taken by the server between two
messages.  Callable from any thread, the REPL's included; waits at most
TIMEOUT seconds.  Signals GENERIC-SERVER-NOT-RUNNING, GENERIC-SERVER-DOWN
or GENERIC-CALL-TIMEOUT as MUPROC-GENERIC-CALL does."
  (call-with-server-state server-ref 'muproc-generic-get-state
                          (lambda (state) (values state state))
                          timeout))

(defun muproc-generic-replace-state (server-ref function
                                     &key (timeout *muproc-generic-call-timeout*))
  "Make the generic server SERVER-REF replace its state by the value of
FUNCTION called with it, between two messages, and return the new state.
If FUNCTION signals an error, the server keeps its state and the caller
gets GENERIC-HANDLER-ERROR.  TERMINATE gets the state in force when the
server exits.  Callable from any thread; waits at most TIMEOUT seconds."
  (call-with-server-state server-ref 'muproc-generic-replace-state
                          (lambda (state)
                            (let ((new (funcall function state)))
                              (values new new)))
                          timeout))
