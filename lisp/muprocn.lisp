;;;; muprocn.lisp - the MUPROC form: progn in a fresh muproc.

(in-package #:muproc)

(defun run-in-fresh-muproc (function timeout timeout-action)
  "Call FUNCTION in a new anonymous muproc and return its values once that
muproc has ended; see the MUPROC macro."
  (let* ((values nil)
         (failure nil)
         (muproc (muproc-spawn nil (lambda ()
                                     (handler-case
                                         (setf values (multiple-value-list
                                                       (funcall function)))
                                       (serious-condition (c)
                                         (setf failure c)
                                         (muproc-exit (cons :error-in-process c)))))
                               nil)))
    (cond ((nth-value 1 (muproc-wait-for-exit muproc :timeout timeout))
           (when failure (error failure))
           (values-list values))
          (t
           (send-signal muproc muproc.ffi:+k-kill+ (list :reason :timeout :quiet t))
           (muproc-wait-for-exit muproc)
           timeout-action))))

(defmacro muproc ((&optional (timeout 10) (timeout-action :timeout)) &body body)
  "Evaluate BODY in a fresh muproc and return all its values: muproc's
PROGN, for talking to muprocs from the REPL, e.g.
  (muproc () (mumsg-send :area-server :cmd :areas)
             (mumsg-receive (from) ((answer) t answer)))
The values are returned once that muproc has ended.  An error in BODY is
signalled again in the caller.  If BODY takes longer than TIMEOUT seconds
(default 10; NIL: no limit), the muproc is killed with reason :TIMEOUT and
TIMEOUT-ACTION (evaluated; default :TIMEOUT) is returned."
  `(run-in-fresh-muproc (lambda () ,@body) ,timeout ,timeout-action))

(defmacro muprocn ((&optional (timeout 10) (timeout-action :timeout)) &body body)
  "Another name for the MUPROC form (cl-muproc's)."
  `(muproc (,timeout ,timeout-action) ,@body))
