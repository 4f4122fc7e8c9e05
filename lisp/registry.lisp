;;;; registry.lisp - registered port names.
;;;;
;;;; A port name is a keyword naming one live muproc, so that others can
;;;; send to it by name; one muproc may hold several.  The registry lives
;;;; in libmuproc, which frees a muproc's names the moment it exits.

(in-package #:muproc)

(defun port-atom (name)
  (or (and (keywordp name) (keyword-atom name))
      (error 'muproc-invalid-port-name :name name)))

(defun registered-muproc (name)
  "The muproc registered as port NAME, alive or exiting, or NIL."
  (cffi:with-foreign-object (out :uint64)
    (when (zerop (muproc.ffi:%whereis (port-atom name) out))
      (pid-muproc (cffi:mem-ref out :uint64)))))

(defun port-being-released-p (name)
  "True while port NAME is held by a muproc whose exit is under way in
libmuproc: it is free once that exit ends, which it does without waiting
on anyone (the name is released under the same lock as the state)."
  (let ((owner (registered-muproc name)))
    (or (null owner) (not (muproc-alive-p owner)))))

(defun muproc-register-port-name (name &optional (muproc (muproc-current-process)))
  "Register the keyword NAME as a port name of MUPROC (default: the current
muproc), so that (mumsg-send NAME ...) reaches it.  Returns NAME.  Signals
MUPROC-PORT-NAME-TAKEN if another live muproc holds NAME,
MUPROC-INVALID-PORT-NAME if NAME is not a keyword, MUPROC-NOT-IN-MUPROC
without a muproc.  MUPROC may be given as for MUPROC-KILL.  The name is
released when MUPROC exits, at the moment its muproc name is."
  (let ((atom (port-atom name)))
    (unless muproc
      (error 'muproc-not-in-muproc :operation "MUPROC-REGISTER-PORT-NAME"))
    (setf muproc (find-muproc-or-lose muproc "MUPROC-REGISTER-PORT-NAME"))
    (let ((rc (loop
                (let ((rc (muproc.ffi:%register atom (%muproc-pid muproc))))
                  (unless (and (= rc muproc.ffi:+eexist+) (port-being-released-p name))
                    (return rc)))
                (sb-thread:thread-yield))))
      (cond ((zerop rc) name)
            ((= rc muproc.ffi:+eexist+)
             (error 'muproc-port-name-taken :name name
                                            :owner (registered-muproc name)))
            ((= rc muproc.ffi:+esrch+)
             (error 'muproc-runtime-error :code rc
                                          :operation (format nil "registering ~s for ~a"
                                                             name muproc)))
            (t (error 'muproc-runtime-error :code rc :operation "muproc_register"))))))

(defun muproc-unregister-port-name (name)
  "Release the port name NAME.  Returns NAME.  Signals
MUPROC-UNKNOWN-PORT-NAME if it is not registered."
  (let ((rc (muproc.ffi:%unregister (port-atom name))))
    (unless (zerop rc)
      (error 'muproc-unknown-port-name :name name))
    name))

(defun muproc-get-registered-port (name)
  "The live muproc registered as port NAME, or NIL.  A muproc that is
exiting holds its port names no more, as it holds its name no more (see
MUPROC-FIND)."
  (let ((owner (registered-muproc name)))
    (and owner (muproc-alive-p owner) owner)))

(defun muproc-registered-port-names (&optional (muproc (muproc-current-process)))
  "The port names MUPROC holds."
  (let ((n (muproc.ffi:%registered-names (%muproc-pid muproc) (cffi:null-pointer) 0)))
    (when (plusp n)
      (cffi:with-foreign-object (buf :uint32 n)
        (let ((got (min n (muproc.ffi:%registered-names (%muproc-pid muproc) buf n))))
          (loop for i below got collect (atom-keyword (cffi:mem-aref buf :uint32 i))))))))

(defmacro muproc-with-registered-port ((name &optional (muproc '(muproc-current-process)))
                                       &body body)
  "Evaluate BODY with the port name NAME registered for MUPROC (default:
the current muproc), and release it afterwards however BODY ends."
  (let ((port (gensym "PORT")))
    `(let ((,port ,name))
       (muproc-register-port-name ,port ,muproc)
       (unwind-protect (progn ,@body)
         (ignore-errors (muproc-unregister-port-name ,port))))))
