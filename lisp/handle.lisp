;;;; handle.lisp - Lisp objects passed by reference through C.
;;;;
;;;; C never holds a Lisp object (the GC moves them); it holds a handle
;;;; whose low 32 bits index this table.  The table is two-level so it
;;;; grows without copying: a slot written by one thread is never lost to
;;;; another thread's growth.  A slot holds (handle . object); it is
;;;; cleared only by compare-and-swap against that very cell, so a late
;;;; clear can't wipe an object stored under a newer handle of the same
;;;; index.

(in-package #:muproc)

(defconstant +chunk-bits+ 12)
(defconstant +chunk-size+ (ash 1 +chunk-bits+))
(defconstant +max-chunks+ 4096)

(declaim (type simple-vector *handle-chunks*))
(defvar *handle-chunks* (make-array +max-chunks+ :initial-element nil))
(defvar *handle-lock* (sb-thread:make-mutex :name "muproc handle chunks"))

(defun handle-chunk (index)
  (let ((c (ash index (- +chunk-bits+))))
    (or (svref *handle-chunks* c)
        (sb-thread:with-mutex (*handle-lock*)
          (or (svref *handle-chunks* c)
              (setf (svref *handle-chunks* c)
                    (make-array +chunk-size+ :initial-element nil)))))))

(defun store-handle (handle object)
  "Make HANDLE (fresh from libmuproc) refer to OBJECT."
  (let ((index (ldb (byte 32 0) handle)))
    (setf (svref (handle-chunk index) (logand index (1- +chunk-size+)))
          (cons handle object))))

(defun handle-object (handle)
  "The object HANDLE refers to."
  (let* ((index (ldb (byte 32 0) handle))
         (cell (svref (handle-chunk index) (logand index (1- +chunk-size+)))))
    (unless (and cell (= (car cell) handle))
      (error 'muproc-runtime-error :code muproc.ffi:+einval+
                                   :operation (format nil "handle ~x lookup" handle)))
    (cdr cell)))

(defun clear-handle-slot (handle)
  "Clear HANDLE's slot: libmuproc has dropped its last reference."
  (let* ((index (ldb (byte 32 0) handle))
         (chunk (handle-chunk index))
         (i (logand index (1- +chunk-size+)))
         (cell (svref chunk i)))
    (when (and cell (= (car cell) handle))
      (sb-ext:compare-and-swap (svref chunk i) cell nil))))

(defun forget-handle (handle)
  "Clear HANDLE's slot if libmuproc no longer references it."
  (when (zerop (muproc.ffi:%handle-live handle))
    (clear-handle-slot handle)))

(defun new-standalone-handle (object)
  "A handle for OBJECT with one reference owned by the caller."
  (cffi:with-foreign-object (out :uint64)
    (muproc.ffi:%handle-new out)
    (let ((handle (cffi:mem-ref out :uint64)))
      (store-handle handle object)
      handle)))

(defun release-standalone-handle (handle)
  "Drop the caller's reference to HANDLE."
  (muproc.ffi:%handle-release handle)
  (forget-handle handle))

(defun lisp-handle-count ()
  "How many slots of the handle table hold an object (for leak checks)."
  (loop for chunk across *handle-chunks*
        when chunk sum (count-if-not #'null chunk)))
