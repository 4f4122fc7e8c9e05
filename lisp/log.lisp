;;;; log.lisp - timestamped lines on a muproc's errorstream.

(in-package #:muproc)

(defvar *log-lock* (sb-thread:make-mutex :name "muproc errorstream")
  "One lock for all errorstreams: a line is written whole, never
interleaved with another muproc's.")

(defconstant +unix-epoch+ (encode-universal-time 0 0 0 1 1 1970 0))

(defun log-timestamp ()
  "The local time of day as HH:MM:SS.mmm."
  (multiple-value-bind (seconds microseconds) (sb-ext:get-time-of-day)
    (multiple-value-bind (s m h)
        ;; DECODE-UNIVERSAL-TIME calls localtime_r, which holds glibc's
        ;; tzset lock: an exit interrupt unwinding out of it would leave
        ;; the lock taken and the next muproc to log hung for good.
        (sb-sys:without-interrupts
          (decode-universal-time (+ seconds +unix-epoch+)))
      (format nil "~2,'0d:~2,'0d:~2,'0d.~3,'0d" h m s (floor microseconds 1000)))))

(defmacro muproc-with-errorstream-lock (&body body)
  "Run BODY holding the lock under which muprocs write their log lines,
and return its values.  Lisp streams are not safe for threads: a stream
that live muprocs log to (a string output stream, say) may be read, or
written by other code, only inside this form.  BODY may log itself (the
lock is recursive), but must not wait for another muproc, which may be
waiting for the lock: keep BODY short."
  `(sb-thread:with-recursive-lock (*log-lock*) ,@body))

(defmacro with-log-printing (&body body)
  "Run BODY with the printer settings for values too large to print
plainly in a log line: shared and circular structure printed with #n=
labels, long lists and deep nesting cut short, never readably.  The
debugger's settings are the same, for backtraces."
  `(let* ((*print-circle* t)
          (*print-length* 50)
          (*print-level* 10)
          (*print-readably* nil)
          (sb-debug:*debug-print-variable-alist*
            (list* (cons '*print-circle* *print-circle*)
                   (cons '*print-length* *print-length*)
                   (cons '*print-level* *print-level*)
                   (cons '*print-readably* *print-readably*)
                   sb-debug:*debug-print-variable-alist*)))
     ,@body))

(defconstant +plain-log-text+ 10000
  "Characters a value may take printed plainly in a log line; a value that
takes more (circular, shared in a way that multiplies it, or just large)
is printed WITH-LOG-PRINTING instead.")

(defconstant +longest-log-text+ 100000
  "Characters at which log text is cut, however it was printed.")

;;; A character output stream that gives up (throws to BOUNDED-OUTPUT)
;;; once more than its limit has been written to it: whatever a printer
;;; or print method does, the text it makes is bounded.
(defclass bounded-output-stream (sb-gray:fundamental-character-output-stream)
  ((text :initform (make-string-output-stream) :reader bounded-text)
   (left :initarg :left :accessor bounded-left)
   (column :initform 0 :accessor bounded-column)))

(defmethod sb-gray:stream-write-char ((stream bounded-output-stream) char)
  (when (minusp (decf (bounded-left stream)))
    (throw 'bounded-output nil))
  (setf (bounded-column stream) (if (char= char #\Newline) 0 (1+ (bounded-column stream))))
  (write-char char (bounded-text stream)))

(defmethod sb-gray:stream-line-column ((stream bounded-output-stream))
  (bounded-column stream))

(defun bounded-output (limit writer)
  "The text WRITER (a function of a stream) writes, and true if it wrote at
most LIMIT characters; else the first LIMIT characters and NIL."
  (let* ((stream (make-instance 'bounded-output-stream :left limit))
         (complete (catch 'bounded-output
                     (funcall writer stream)
                     t)))
    (values (get-output-stream-string (bounded-text stream)) complete)))

(defun log-text (writer)
  "The text WRITER (a function of a stream) prints for a log line: plainly
when that takes at most +PLAIN-LOG-TEXT+ characters (a log line shows
values as they print anywhere else), else WITH-LOG-PRINTING, cut at
+LONGEST-LOG-TEXT+ characters.  A note replaces text that can't be
printed.  Never signals."
  (handler-case
      (multiple-value-bind (text complete)
          (let ((*print-circle* nil)
                (*print-length* nil)
                ;; Deep enough for any value meant to be read, shallow
                ;; enough for the printer's recursion.
                (*print-level* 100)
                (*print-readably* nil))
            (bounded-output +plain-log-text+ writer))
        (if complete
            text
            (multiple-value-bind (text complete)
                (with-log-printing (bounded-output +longest-log-text+ writer))
              (if complete text (concatenate 'string text " [cut]")))))
    (serious-condition (c)
      (format nil "[could not be printed: ~a]" (type-of c)))))

(defun log-line (format-control arguments)
  "The text of a log line of the current muproc: its time, its name and
FORMAT-CONTROL applied to ARGUMENTS."
  (let ((m *current-muproc*))
    (format nil "~a ~a ~a" (log-timestamp)
            (if (and m (%muproc-name m))
                (log-text (lambda (s) (princ (%muproc-name m) s)))
                "-")
            (log-text (lambda (s) (format s "~?" format-control arguments))))))

(defun write-log-line (line stream)
  "Write LINE to STREAM, or else to *ERROR-OUTPUT*, or else nowhere: a log
line never makes its writer fail."
  (flet ((try (stream)
           (handler-case
               (muproc-with-errorstream-lock
                 (write-line line stream)
                 (force-output stream)
                 t)
             (serious-condition () nil))))
    (or (try stream) (try *error-output*))))

(defun muproc-log-errorstream (format-control &rest arguments)
  "Write one line \"HH:MM:SS.mmm NAME text\" to the current muproc's
errorstream (*TRACE-OUTPUT* outside a muproc) and flush it.  The text is
FORMAT-CONTROL applied to ARGUMENTS.  Values print as anywhere else,
except one too large to print plainly (circular, say): that prints with
*PRINT-CIRCLE* true and bounded *PRINT-LENGTH* and *PRINT-LEVEL*, so any
value can be logged.
Lines from different muprocs never interleave.  Never signals: if the
errorstream fails (closed, say) the line goes to *ERROR-OUTPUT*; if the
text can't be printed a note says so.  Returns NIL."
  (write-log-line (log-line format-control arguments)
                  (or *muproc-errorstream* *trace-output*))
  nil)

(defun report-text (condition)
  "CONDITION's report, printed as log text is (see LOG-TEXT)."
  (log-text (lambda (s) (princ condition s))))

(defun backtrace-text (count)
  "The innermost COUNT frames of the current thread's backtrace, printed
WITH-LOG-PRINTING (cut at +LONGEST-LOG-TEXT+ characters), or a note saying
they could not be printed."
  (handler-case
      (multiple-value-bind (text complete)
          (with-log-printing
            (bounded-output +longest-log-text+
                            (lambda (s) (sb-debug:print-backtrace :stream s :count count))))
        (if complete text (concatenate 'string text " [cut]")))
    (serious-condition (c)
      (format nil "[the backtrace could not be printed: ~a]" (type-of c)))))
