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

(defun muproc-log-errorstream (format-control &rest arguments)
  "Write one line \"HH:MM:SS.mmm NAME text\" to the current muproc's
errorstream (*TRACE-OUTPUT* outside a muproc) and flush it.  The text is
FORMAT-CONTROL applied to ARGUMENTS.  Lines from different muprocs never
interleave.  Returns NIL."
  (let ((stream (or *muproc-errorstream* *trace-output*))
        (line (format nil "~a ~a ~?" (log-timestamp)
                      (let ((m *current-muproc*))
                        (if (and m (%muproc-name m)) (princ-to-string (%muproc-name m)) "-"))
                      format-control arguments)))
    (muproc-with-errorstream-lock
      (write-line line stream)
      (force-output stream))
    nil))
