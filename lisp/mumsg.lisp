;;;; mumsg.lisp - mumsgs, and their encoding into libmuproc messages.
;;;;
;;;; Between Lisp muprocs a value travels by reference: the object that
;;;; arrives is EQ to the one sent.  Fixnums, keywords and NIL travel as C
;;;; terms (no handle needed, and still EQ); everything else goes through
;;;; the handle table.  Towards a C muproc every value must become a term.

(in-package #:muproc)

(defstruct (mumsg (:constructor %make-mumsg (plist))
                  ;; The keyword constructor is what #S(MUMSG ...) reads with.
                  (:constructor %read-mumsg)
                  (:predicate mumsg-p)
                  (:copier nil))
  (plist nil :type list :read-only t))

(setf (documentation 'mumsg-p 'function)
      "True if OBJECT is a mumsg."
      (documentation 'mumsg-plist 'function)
      "The property list of a mumsg: keyword keys and their values, in order.")

(defmethod print-object ((m mumsg) stream)
  ;; Readably it is the #S form, which reads back as an EQUALP mumsg.
  (if *print-readably*
      (call-next-method)
      (print-unreadable-object (m stream)
        (format stream "MUMSG~{ ~s~}" (mumsg-plist m)))))

(defun check-plist (plist)
  "Signal MUMSG-MALFORMED unless PLIST is a proper list of keyword/value
pairs."
  (unless (and (listp plist) (null (cdr (last plist))))
    (error 'mumsg-malformed :plist plist :problem "not a proper list"))
  (when (oddp (length plist))
    (error 'mumsg-malformed :plist plist :problem "an odd number of elements"))
  (loop for key in plist by #'cddr
        unless (keywordp key)
          do (error 'mumsg-malformed :plist plist
                                     :problem (format nil "the key ~s is not a keyword" key))
        unless (<= 1 (length (symbol-name key)) 255)
          do (error 'mumsg-malformed :plist plist
                                     :problem (format nil "the key ~s is not 1 to 255 characters long"
                                                      key))))

(defun mumsg (&rest plist)
  "A mumsg holding PLIST, e.g. (mumsg :quantity 3 :price 42).  Keys must be
keywords; signals MUMSG-MALFORMED otherwise."
  (check-plist plist)
  (%make-mumsg plist))

(defun mumsg-get (mumsg key &optional default)
  "The value of KEY in MUMSG, or DEFAULT; second value true if KEY is
present."
  (loop for (k v) on (mumsg-plist mumsg) by #'cddr
        when (eq k key) do (return-from mumsg-get (values v t)))
  (values default nil))

(defun muproc-get-field (key mumsg)
  "cl-muproc's name for (MUMSG-GET MUMSG KEY)."
  (mumsg-get mumsg key))

(defun mumsg-keys (mumsg)
  "The keys of MUMSG, in order."
  (loop for key in (mumsg-plist mumsg) by #'cddr collect key))

;;; Encoding

(defun free-message (msg)
  "Free a libmuproc message this thread owns, and clear the slots of the
handles that no longer have a reference."
  (let ((handles (loop for i below (muproc.ffi:%msg-size msg)
                       when (= (muproc.ffi:%msg-type msg i) muproc.ffi:+t-handle+)
                         collect (muproc.ffi:%msg-handle msg i))))
    (muproc.ffi:%msg-free msg)
    (mapc #'forget-handle handles)))

(defun put-handle (msg key value)
  (cffi:with-foreign-object (out :uint64)
    (muproc.ffi:check (muproc.ffi:%msg-put-new-handle msg key out)
                      "muproc_msg_put_new_handle")
    (store-handle (cffi:mem-ref out :uint64) value)
    muproc.ffi:+ok+))

(defun put-bytes (msg key octets binaryp)
  (let ((octets (coerce octets '(simple-array (unsigned-byte 8) (*)))))
    (cffi:with-pointer-to-vector-data (ptr octets)
      (if binaryp
          (muproc.ffi:%msg-put-binary msg key ptr (length octets))
          (muproc.ffi:%msg-put-string msg key ptr (length octets))))))

(defun put-term (msg key-atom key value destination)
  "Append VALUE as a C term, for a receiver outside the Lisp heap."
  (typecase value
    (null (muproc.ffi:%msg-put-nil msg key-atom))
    ((signed-byte 64) (muproc.ffi:%msg-put-int msg key-atom value))
    (float (muproc.ffi:%msg-put-double msg key-atom (coerce value 'double-float)))
    ((and keyword (satisfies keyword-atom))
     (muproc.ffi:%msg-put-atom msg key-atom (keyword-atom value)))
    ((eql t) (muproc.ffi:%msg-put-atom msg key-atom (keyword-atom :true)))
    (string (put-bytes msg key-atom
                       (sb-ext:string-to-octets value :external-format :utf-8) nil))
    ((vector (unsigned-byte 8)) (put-bytes msg key-atom value t))
    (muproc (muproc.ffi:%msg-put-pid msg key-atom (%muproc-pid value)))
    (muproc-tag (muproc.ffi:%msg-put-ref msg key-atom (muproc-tag-id value)))
    (t (error 'mumsg-unsendable-value :key key :value value
                                      :destination destination))))

(defun put-lisp-value (msg key-atom value)
  "Append VALUE for a Lisp receiver: by reference unless it is immediate."
  (typecase value
    (null (muproc.ffi:%msg-put-nil msg key-atom))
    (fixnum (muproc.ffi:%msg-put-int msg key-atom value))
    ((and keyword (satisfies keyword-atom))
     (muproc.ffi:%msg-put-atom msg key-atom (keyword-atom value)))
    (t (put-handle msg key-atom value))))

(defun encode-plist (plist lisp-receiver-p destination)
  "A new libmuproc message holding PLIST (already checked), owned by the
caller.  LISP-RECEIVER-P chooses by-reference values."
  (let ((msg (muproc.ffi:%msg-new (floor (length plist) 2) 0))
        (done nil))
    (when (cffi:null-pointer-p msg)
      (error 'muproc-runtime-error :code muproc.ffi:+enomem+
                                   :operation "muproc_msg_new"))
    (unwind-protect
         (progn
           (loop for (key value) on plist by #'cddr
                 for key-atom = (keyword-atom key)
                 do (muproc.ffi:check
                     (if lisp-receiver-p
                         (put-lisp-value msg key-atom value)
                         (put-term msg key-atom key value destination))
                     "muproc_msg_put"))
           (setf done t)
           msg)
      (unless done (free-message msg)))))

;;; Decoding

(defun decode-value (msg i)
  (let ((type (muproc.ffi:%msg-type msg i)))
    (cond
      ((= type muproc.ffi:+t-nil+) nil)
      ((= type muproc.ffi:+t-int+) (muproc.ffi:%msg-int msg i))
      ((= type muproc.ffi:+t-atom+) (atom-keyword (muproc.ffi:%msg-atom msg i)))
      ((= type muproc.ffi:+t-handle+) (handle-object (muproc.ffi:%msg-handle msg i)))
      ((= type muproc.ffi:+t-double+) (muproc.ffi:%msg-double msg i))
      ((or (= type muproc.ffi:+t-string+) (= type muproc.ffi:+t-binary+))
       (cffi:with-foreign-object (len :size)
         (let* ((ptr (muproc.ffi:%msg-bytes msg i len))
                (n (cffi:mem-ref len :size)))
           (if (= type muproc.ffi:+t-string+)
               (cffi:foreign-string-to-lisp ptr :count n :encoding :utf-8)
               (let ((octets (make-array n :element-type '(unsigned-byte 8))))
                 (dotimes (k n octets)
                   (setf (aref octets k) (cffi:mem-aref ptr :uint8 k))))))))
      ((= type muproc.ffi:+t-pid+)
       (let ((pid (muproc.ffi:%msg-pid msg i)))
         (unless (zerop pid) (pid-muproc pid))))
      ((= type muproc.ffi:+t-ref+) (%make-tag (muproc.ffi:%msg-ref msg i)))
      (t (error 'muproc-runtime-error :code type :operation "decoding a term")))))

(defun decode-plist (msg)
  "The property list held by libmuproc message MSG (which stays owned by
its holder)."
  (loop for i below (muproc.ffi:%msg-size msg)
        collect (atom-keyword (muproc.ffi:%msg-key msg i))
        collect (decode-value msg i)))
