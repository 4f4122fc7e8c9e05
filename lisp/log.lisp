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
  "Run BODY with the printer settings of every log line: shared and
circular structure printed with #n= labels, long lists and deep nesting
cut short, never readably.  Whatever a muproc logs, printing it ends.
The debugger's settings are the same, for backtraces."
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

(defun log-line (format-control arguments)
  "The text of a log line of the current muproc: its time, its name and
FORMAT-CONTROL applied to ARGUMENTS, or a note saying they could not be
printed."
  (let ((prefix (format nil "~a ~a" (log-timestamp)
                        (let ((m *current-muproc*))
                          (if (and m (%muproc-name m))
                              (with-log-printing (princ-to-string (%muproc-name m)))
                              "-")))))
    (handler-case
        (with-log-printing (format nil "~a ~?" prefix format-control arguments))
      (serious-condition (c)
        (format nil "~a [a log line could not be printed: ~a]" prefix (type-of c))))))

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
FORMAT-CONTROL applied to ARGUMENTS, printed with *PRINT-CIRCLE* true and
bounded *PRINT-LENGTH* and *PRINT-LEVEL*, so any value can be logged.
Lines from different muprocs never interleave.  Never signals: if the
errorstream fails (closed, say) the line goes to *ERROR-OUTPUT*; if the
text can't be printed a note says so.  Returns NIL."
  (write-log-line (log-line format-control arguments)
                  (or *muproc-errorstream* *trace-output*))
  nil)

(defun report-text (condition)
  "CONDITION's report, printed as log lines are, or a note saying it could
not be printed."
  (handler-case (with-log-printing (princ-to-string condition))
    (serious-condition (c)
      (format nil "[the report of this ~a failed: ~a]" (type-of condition) (type-of c)))))

(defun backtrace-text (count)
  "The innermost COUNT frames of the current thread's backtrace, printed
as log lines are, or a note saying they could not be printed."
  (handler-case
      (with-log-printing
        (with-output-to-string (s)
          (sb-debug:print-backtrace :stream s :count count)))
    (serious-condition (c)
      (format nil "[the backtrace could not be printed: ~a]" (type-of c)))))
