;;;; perf-map.lisp - name Lisp functions for perf (used by bench/profile).
;;;;
;;;; perf can't see inside SBCL's core: it reports compiled Lisp code as
;;;; "[JIT] tid N" addresses.  WRITE-PERF-MAP writes /tmp/perf-<pid>.map,
;;;; one line "start size name" per compiled function alive now, which
;;;; perf report reads to name those addresses.  Code compiled (or moved
;;;; by the GC) afterwards stays unnamed.

(in-package #:muproc-bench)

(defun write-perf-map ()
  "Write /tmp/perf-<pid>.map for every compiled function; return how many."
  (let ((entries '()))
    (sb-vm::map-allocated-objects
     (lambda (obj type size)
       (when (= type sb-vm:code-header-widetag)
         (let* ((n (sb-kernel:code-n-entries obj))
                (code-start (logandc2 (sb-kernel:get-lisp-obj-address obj)
                                      sb-vm:lowtag-mask))
                (code-end (+ code-start size))
                (funs (loop for i below n collect (sb-kernel:%code-entry-point obj i)))
                (starts (mapcar (lambda (f) (sb-sys:sap-int (sb-vm:simple-fun-entry-sap f)))
                                funs)))
           (loop for f in funs
                 for (start next) on starts
                 do (push (list start (- (or next code-end) start)
                                (let ((*package* (find-package :keyword))
                                      (*print-pretty* nil))
                                  (substitute-if #\_ (lambda (c) (member c '(#\Space #\Newline #\Tab)))
                                                 (princ-to-string (sb-kernel:%simple-fun-name f)))))
                          entries)))))
     :all)
    (with-open-file (out (format nil "/tmp/perf-~d.map" (sb-unix:unix-getpid))
                         :direction :output :if-exists :supersede)
      (dolist (e entries)
        (format out "~x ~x ~a~%" (first e) (second e) (third e))))
    (length entries)))

(defun start-perf ()
  "Under bench/profile: name the Lisp functions, then tell perf (waiting
with events disabled) to start recording, so loading is not profiled."
  (let ((ctl (sb-ext:posix-getenv "BENCH_PERF_CTL"))
        (ack (sb-ext:posix-getenv "BENCH_PERF_ACK")))
    (when (and ctl ack)
      (format *error-output* "~&perf map: ~d functions~%" (write-perf-map))
      (with-open-file (out ctl :direction :output :if-exists :append)
        (write-line "enable" out))
      (with-open-file (in ack)
        (read-line in nil)))))
