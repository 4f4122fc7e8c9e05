;;;; atom.lisp - keywords <-> libmuproc atoms.
;;;;
;;;; A keyword travels as the atom of its name with the case inverted the
;;;; way readtable-case :INVERT does it, so :CMD is the Erlang atom 'cmd'
;;;; and the atom 'Cmd' comes back as :|Cmd|: the mapping is one to one.

(in-package #:muproc)

(defun invert-case (string)
  "STRING with its case inverted if all its letters have one case."
  (let ((upper (some #'upper-case-p string))
        (lower (some #'lower-case-p string)))
    (cond ((and upper (not lower)) (string-downcase string))
          ((and lower (not upper)) (string-upcase string))
          (t string))))

(defun intern-atom (string)
  "The atom id for STRING, interning it in libmuproc, or NIL if STRING
can't be an atom (empty, or longer than 255 bytes)."
  (let ((octets (sb-ext:string-to-octets string :external-format :utf-8)))
    (unless (or (zerop (length octets)) (> (length octets) 255))
      (cffi:with-pointer-to-vector-data (ptr octets)
        (muproc.ffi:%atom ptr (length octets))))))

;;; Keyword -> atom is on the send path of every message, so the id is
;;; cached on the keyword itself: a lock-free plist read.  The runtime's
;;; creation tags the cache, so a core saved and restarted re-interns.
(defvar *atom-lock* (sb-thread:make-mutex :name "muproc atom cache"))

(declaim (inline keyword-atom))
(defun keyword-atom (keyword)
  "The atom id for KEYWORD, or NIL if its name can't be an atom."
  (let ((cached (get keyword '%atom)))
    (if (and cached (eql (car cached) muproc.ffi:*creation*))
        (cdr cached)
        (%cache-keyword-atom keyword))))

(defun %cache-keyword-atom (keyword)
  (let ((id (intern-atom (invert-case (symbol-name keyword)))))
    (when id
      (sb-thread:with-mutex (*atom-lock*)
        (setf (get keyword '%atom) (cons muproc.ffi:*creation* id)))
      (remember-atom-keyword id keyword))
    id))

;;; Atom -> keyword: a vector indexed by atom id, grown under the lock;
;;; readers see either the old or the new vector, both valid.
(defvar *atom-keywords* (make-array 1024 :initial-element nil))

(defun remember-atom-keyword (id keyword)
  (sb-thread:with-mutex (*atom-lock*)
    (let ((table *atom-keywords*))
      (when (>= id (length table))
        (let ((new (make-array (max (1+ id) (* 2 (length table)))
                               :initial-element nil)))
          (replace new table)
          (setf table new *atom-keywords* new)))
      (setf (svref table id) keyword))))

(declaim (inline atom-keyword))
(defun atom-keyword (id)
  "The keyword for atom ID."
  (let ((table *atom-keywords*))
    (declare (simple-vector table))
    (or (and (< id (length table)) (svref table id))
        (%learn-atom-keyword id))))

(defun %learn-atom-keyword (id)
  (let ((keyword (intern (invert-case (atom-string id)) :keyword)))
    (remember-atom-keyword id keyword)
    keyword))

;;; As a value (not a key), the atom 'true' is T: T travels to C as
;;; 'true', and a C muproc's 'true' (a trapped link notice's :link, say)
;;; comes back as T.  So :TRUE itself travels between Lisp muprocs by
;;; reference, like any object without an atom.

(declaim (inline value-atom))
(defun value-atom (keyword)
  "The atom id KEYWORD travels as when it is a value for a Lisp receiver,
or NIL when it must travel by reference."
  (and (not (eq keyword :true)) (keyword-atom keyword)))

(declaim (inline atom-value))
(defun atom-value (id)
  "The Lisp value of atom ID received as a value: its keyword, or T for
'true'."
  (let ((keyword (atom-keyword id)))
    (if (eq keyword :true) t keyword)))

(defun atom-string (id)
  "The name of atom ID as a Lisp string."
  (cffi:with-foreign-object (len :size)
    (let ((ptr (muproc.ffi:%atom-name id len)))
      (when (cffi:null-pointer-p ptr)
        (error 'muproc-runtime-error :code muproc.ffi:+einval+
                                     :operation "muproc_atom_name"))
      (cffi:foreign-string-to-lisp ptr :count (cffi:mem-ref len :size)
                                       :encoding :utf-8))))
