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

(defstruct (mupacket (:include mumsg)
                     (:constructor make-mupacket (plist sent-ns))
                     (:copier nil)
                     (:predicate %mupacket-p))
  "A received mumsg that knows when it was sent (a muproc_now_ns time):
what a receive binds *MUPROC-PACKET* to."
  (sent-ns 0 :type (signed-byte 64) :read-only t))

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
pairs.  One walk down the list: it is on the path of every send."
  (flet ((malformed (problem &rest arguments)
           (error 'mumsg-malformed :plist plist
                                   :problem (apply #'format nil problem arguments))))
    (do ((tail plist (cddr tail)))
        ((null tail))
      (unless (consp tail) (malformed "not a proper list"))
      (let ((key (car tail))
            (rest (cdr tail)))
        (cond ((null rest) (malformed "an odd number of elements"))
              ((not (consp rest)) (malformed "not a proper list"))
              ((not (keywordp key)) (malformed "the key ~s is not a keyword" key))
              ;; Atoms are limited in UTF-8 bytes, not characters; the
              ;; cached atom is also the fastest check.
              ((not (keyword-atom key))
               (malformed "the key ~s is not 1 to 255 bytes long in UTF-8" key)))))))

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

;;; Messages are read and built through their pairs in C memory, laid
;;; out as muproc_pair_t (public in muproc.h): one call to see a message
;;; (muproc_msg_view) and one to build it (muproc_msg_new_pairs), instead
;;; of one call per size, key, type and value.  Only the pair and view
;;; layouts are read, never the message header, which is libmuproc's own.

(deftype pair-index ()
  "An index into a message's pairs (libmuproc allows fewer than 2^20)."
  '(unsigned-byte 32))

(defmacro pair-ref (pairs i type offset)
  "The field of TYPE at OFFSET in pair I of the pair array PAIRS."
  `(cffi:mem-ref ,pairs ,type (+ (* (the pair-index ,i) muproc.ffi:+pair-size+) ,offset)))

(declaim (inline view-pairs view-bytes view-size view-kind view-sender-pid view-sent-ns))
(defun view-pairs (view) (cffi:mem-ref view :pointer 0))
(defun view-bytes (view) (cffi:mem-ref view :pointer 8))
(defun view-sender-pid (view) (cffi:mem-ref view :uint64 16))
(defun view-size (view) (cffi:mem-ref view :uint32 24))
(defun view-kind (view) (cffi:mem-ref view :int32 28))
(defun view-sent-ns (view) (cffi:mem-ref view :int64 32))

(defmacro with-message-view ((view msg) &body body)
  "Evaluate BODY with VIEW bound to a muproc_msg_view_t of MSG (a message
this thread may read), on the stack."
  `(cffi:with-foreign-object (,view :uint8 ,muproc.ffi:+view-size+)
     (muproc.ffi:%msg-view ,msg ,view)
     ,@body))

;;; Freeing

(defun view-handles (view)
  "The handles the message VIEW shows carries."
  (let ((pairs (view-pairs view)))
    (loop for i below (view-size view)
          when (= (pair-ref pairs i :uint32 4) muproc.ffi:+t-handle+)
            collect (pair-ref pairs i :uint64 8))))

(defun message-handles (msg)
  "The handles libmuproc message MSG carries."
  (with-message-view (view msg)
    (view-handles view)))

(defconstant +dead-handles-room+ 16
  "How many dying handles FREE-MESSAGE takes back from libmuproc in one
call; a message with more pairs than this is freed the slow way.")

(defun free-message (msg &optional view)
  "Free a libmuproc message this thread owns (VIEW, if given, is a view
of it), and clear the slots of the handles that no longer have a
reference.  One call to libmuproc for a message of up to
+DEAD-HANDLES-ROOM+ pairs, whatever it holds."
  (if (and view (<= (view-size view) +dead-handles-room+))
      (cffi:with-foreign-object (dead :uint64 +dead-handles-room+)
        (dotimes (i (muproc.ffi:%msg-release msg dead +dead-handles-room+))
          (clear-handle-slot (cffi:mem-aref dead :uint64 i))))
      (let ((handles (if view (view-handles view) (message-handles msg))))
        (muproc.ffi:%msg-free msg)
        (mapc #'forget-handle handles))))

;;; Encoding

(defmacro with-pair-buffer ((pairs npairs) &body body)
  "Evaluate BODY with PAIRS bound to foreign room for NPAIRS pairs: on the
stack for the usual small message, else allocated and freed.  malloc and
free run without interrupts: one unwinding out of them would leave the
allocator's lock taken."
  (let ((fn (gensym "BODY")) (n (gensym "N")))
    `(flet ((,fn (,pairs) ,@body))
       (declare (dynamic-extent #',fn))
       (let ((,n ,npairs))
         (if (<= ,n 8)
             (cffi:with-foreign-object (,pairs :uint8 ,(* 8 muproc.ffi:+pair-size+))
               (,fn ,pairs))
             (let ((,pairs nil))
               (unwind-protect
                    (progn
                      (sb-sys:without-interrupts
                        (setf ,pairs (cffi:foreign-alloc
                                      :uint8 :count (* ,n muproc.ffi:+pair-size+))))
                      (,fn ,pairs))
                 (when ,pairs
                   (sb-sys:without-interrupts (cffi:foreign-free ,pairs))))))))))

(defun put-value (pairs i type value)
  "Store TYPE and the 8-byte VALUE (an integer; a double for
MUPROC_T_DOUBLE) in pair I."
  (setf (pair-ref pairs i :uint32 4) type)
  (if (= type muproc.ffi:+t-double+)
      (setf (pair-ref pairs i :double 8) value)
      (setf (pair-ref pairs i :int64 8) value)))

(defun put-lisp-value (pairs i value)
  "Store VALUE in pair I for a Lisp receiver: by reference (a handle, made
by libmuproc) unless it is immediate."
  (typecase value
    (null (put-value pairs i muproc.ffi:+t-nil+ 0))
    (fixnum (put-value pairs i muproc.ffi:+t-int+ value))
    (t (let ((atom (and (keywordp value) (value-atom value))))
         (if atom
             (put-value pairs i muproc.ffi:+t-atom+ atom)
             (put-value pairs i muproc.ffi:+t-handle+ 0))))))

(defun put-term (pairs i key value destination byte-offset)
  "Store VALUE in pair I as a C term, for a receiver outside the Lisp heap.
A string or binary goes at BYTE-OFFSET of the message's byte buffer:
return its octets then, else NIL."
  (flet ((put-bytes (type octets)
           (let ((octets (coerce octets '(simple-array (unsigned-byte 8) (*)))))
             (setf (pair-ref pairs i :uint32 4) type
                   (pair-ref pairs i :uint32 8) byte-offset
                   (pair-ref pairs i :uint32 12) (length octets))
             (return-from put-term octets))))
    (typecase value
      (null (put-value pairs i muproc.ffi:+t-nil+ 0))
      ((signed-byte 64) (put-value pairs i muproc.ffi:+t-int+ value))
      (float (put-value pairs i muproc.ffi:+t-double+ (coerce value 'double-float)))
      ((and keyword (satisfies keyword-atom))
       (put-value pairs i muproc.ffi:+t-atom+ (keyword-atom value)))
      ((eql t) (put-value pairs i muproc.ffi:+t-atom+ (keyword-atom :true)))
      (string (put-bytes muproc.ffi:+t-string+
                         (sb-ext:string-to-octets value :external-format :utf-8)))
      ((vector (unsigned-byte 8)) (put-bytes muproc.ffi:+t-binary+ value))
      (muproc (put-value pairs i muproc.ffi:+t-pid+ (%muproc-pid value)))
      (muproc-tag (put-value pairs i muproc.ffi:+t-ref+ (muproc-tag-id value)))
      (t (error 'mumsg-unsendable-value :key key :value value
                                        :destination destination)))
    nil))

(defun fill-pairs (pairs plist lisp-receiver-p destination)
  "Store PLIST's pairs in PAIRS.  Returns the byte buffer the strings and
binaries among them index (a vector of octets), or NIL if there are none."
  (let ((chunks '()) (nbytes 0))
    (loop for (key value) on plist by #'cddr
          for i from 0
          do (setf (pair-ref pairs i :uint32 0) (keyword-atom key))
             (if lisp-receiver-p
                 (put-lisp-value pairs i value)
                 (let ((octets (put-term pairs i key value destination nbytes)))
                   (when octets
                     (push octets chunks)
                     (incf nbytes (length octets))))))
    (when chunks
      (let ((buffer (make-array nbytes :element-type '(unsigned-byte 8)))
            (start 0))
        (dolist (chunk (nreverse chunks) buffer)
          (replace buffer chunk :start1 start)
          (incf start (length chunk)))))))

(defun store-pair-handles (pairs plist)
  "Make the handles libmuproc wrote back into PAIRS refer to PLIST's
values."
  (loop for value in (cdr plist) by #'cddr
        for i from 0
        when (= (pair-ref pairs i :uint32 4) muproc.ffi:+t-handle+)
          do (store-handle (pair-ref pairs i :uint64 8) value)))

(defun encode-plist (plist lisp-receiver-p destination)
  "A new libmuproc message holding PLIST (already checked), owned by the
caller.  LISP-RECEIVER-P chooses by-reference values."
  (let ((npairs (floor (length plist) 2)))
    (with-pair-buffer (pairs npairs)
      (let* ((bytes (fill-pairs pairs plist lisp-receiver-p destination))
             (msg (cffi:with-foreign-object (out :pointer)
                    (if bytes
                        (cffi:with-pointer-to-vector-data (ptr bytes)
                          (muproc.ffi:%msg-new-pairs pairs npairs ptr (length bytes) out))
                        (muproc.ffi:%msg-new-pairs pairs npairs (cffi:null-pointer) 0 out))
                    (cffi:mem-ref out :pointer)))
             (done nil))
        (unwind-protect
             (progn (when lisp-receiver-p (store-pair-handles pairs plist))
                    (setf done t)
                    msg)
          (unless done (free-message msg)))))))

;;; Decoding

(defun decode-pair-value (pairs bytes i)
  "The Lisp value of pair I of PAIRS; BYTES is the message's byte area."
  (let ((type (pair-ref pairs i :uint32 4)))
    (cond
      ((= type muproc.ffi:+t-nil+) nil)
      ((= type muproc.ffi:+t-int+) (pair-ref pairs i :int64 8))
      ((= type muproc.ffi:+t-atom+) (atom-value (pair-ref pairs i :uint64 8)))
      ((= type muproc.ffi:+t-handle+) (handle-object (pair-ref pairs i :uint64 8)))
      ((= type muproc.ffi:+t-double+) (pair-ref pairs i :double 8))
      ((or (= type muproc.ffi:+t-string+) (= type muproc.ffi:+t-binary+))
       (let ((start (cffi:inc-pointer bytes (pair-ref pairs i :uint32 8)))
             (n (pair-ref pairs i :uint32 12)))
         (if (= type muproc.ffi:+t-string+)
             (cffi:foreign-string-to-lisp start :count n :encoding :utf-8)
             (let ((octets (make-array n :element-type '(unsigned-byte 8))))
               (dotimes (k n octets)
                 (setf (aref octets k) (cffi:mem-aref start :uint8 k)))))))
      ((= type muproc.ffi:+t-pid+)
       (let ((pid (pair-ref pairs i :uint64 8)))
         (unless (zerop pid) (pid-muproc pid))))
      ((= type muproc.ffi:+t-ref+) (%make-tag (pair-ref pairs i :uint64 8)))
      (t (error 'muproc-runtime-error :code type :operation "decoding a term")))))

(defun view-value (view i)
  "The Lisp value of pair I of the message VIEW shows."
  (decode-pair-value (view-pairs view) (view-bytes view) i))

(defun view-find (view key)
  "The index of the first pair of the message VIEW shows whose key is the
keyword KEY, or NIL."
  (let ((atom (keyword-atom key))
        (pairs (view-pairs view)))
    (when atom
      (loop for i below (view-size view)
            when (= (pair-ref pairs i :uint32 0) (the (unsigned-byte 32) atom))
              return i))))

(defun view-has-keys-p (view keys)
  "True if the message VIEW shows holds every keyword of KEYS."
  (loop for key in keys always (view-find view key)))

(defun view-plist (view)
  "The property list of the message VIEW shows."
  (let ((pairs (view-pairs view))
        (bytes (view-bytes view)))
    (loop for i below (view-size view)
          collect (atom-keyword (pair-ref pairs i :uint32 0))
          collect (decode-pair-value pairs bytes i))))

(defun decode-plist (msg)
  "The property list held by libmuproc message MSG (which stays owned by
its holder)."
  (with-message-view (view msg)
    (view-plist view)))
