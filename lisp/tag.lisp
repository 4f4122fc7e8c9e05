;;;; tag.lisp - message tags: truly unique references.

(in-package #:muproc)

(defstruct (muproc-tag (:constructor %make-tag (id))
                       (:predicate muproc-tag-p)
                       (:copier nil))
  (id 0 :type (unsigned-byte 64) :read-only t))

(setf (documentation 'muproc-tag-p 'function)
      "True if OBJECT is a message tag made by MUPROC-MAKE-TAG.")

(defmethod print-object ((tag muproc-tag) stream)
  (print-unreadable-object (tag stream)
    (format stream "TAG ~d" (muproc-tag-id tag))))

(defun muproc-make-tag ()
  "A fresh message tag, unique in this runtime (a reference, like
Erlang's make_ref(), not a random number)."
  (%make-tag (muproc.ffi:%make-ref)))

(defmacro muproc-with-message-tag ((var) &body body)
  "Evaluate BODY with VAR bound to a fresh, unique message tag, to match a
reply to its request: send it along and receive with a guard such as
(muproc-msgtag= tag VAR)."
  `(let ((,var (muproc-make-tag)))
     ,@body))

(defun muproc-msgtag= (tag1 tag2)
  "True if TAG1 and TAG2 are the same message tag."
  (and (muproc-tag-p tag1) (muproc-tag-p tag2)
       (= (muproc-tag-id tag1) (muproc-tag-id tag2))))
