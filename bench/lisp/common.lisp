;;;; common.lisp - timing, reporting and loading for the Lisp benchmarks.
;;;;
;;;; Every benchmark times its loop REPS times in one process, after one
;;;; warm-up at a tenth of the size (not counted), and prints
;;;;   RESULT <bench> <variant> <median> <min> <max> <unit> n=<N> reps=<REPS>
;;;; on *STANDARD-OUTPUT*, which bench/report.lisp collects.  A benchmark
;;;; that fails prints FAILED <bench> <variant> <reason> instead.

(defpackage #:muproc-bench
  (:use #:common-lisp)
  (:export #:now-ns #:seconds-since #:measure #:report #:report-values
           #:rss-kib #:time-gc-ms #:fail #:define-bench #:run-benches
           #:load-muproc #:integer-arg))

(in-package #:muproc-bench)

(declaim (inline now-ns))
(defun now-ns ()
  "CLOCK_MONOTONIC in nanoseconds."
  (multiple-value-bind (sec nsec) (sb-unix::clock-gettime 1)
    (+ (* sec 1000000000) nsec)))

(defun seconds-since (t0)
  (/ (- (now-ns) t0) 1d9))

(defun median (sorted)
  (let ((n (length sorted)))
    (if (oddp n)
        (nth (floor n 2) sorted)
        (/ (+ (nth (1- (floor n 2)) sorted) (nth (floor n 2) sorted)) 2))))

(defun reported-bench (bench)
  "BENCH, or $BENCH_REPORT_AS if set: bench/run runs a benchmark under
other conditions (pinned to one CPU) as a benchmark of its own."
  (or (sb-ext:posix-getenv "BENCH_REPORT_AS") bench))

(defun report-values (bench variant unit n values)
  "Print the RESULT line for the figures VALUES (one per repetition)."
  (let ((sorted (sort (mapcar (lambda (v) (coerce v 'double-float)) values) #'<)))
    (format t "RESULT ~a ~a ~,6,,,,,'eE ~,6,,,,,'eE ~,6,,,,,'eE ~a n=~d reps=~d~%"
            (reported-bench bench) variant (median sorted) (first sorted) (car (last sorted))
            unit n (length sorted))
    (finish-output)))

(defun report (bench variant unit n value)
  "A single figure (e.g. a memory size): median = min = max."
  (report-values bench variant unit n (list value)))

(defun fail (bench variant reason)
  (format t "FAILED ~a ~a ~a~%" (reported-bench bench) variant
          (substitute #\Space #\Newline (princ-to-string reason)))
  (finish-output))

(defun measure (bench variant unit n reps fn)
  "Warm up with (FN (max 1 (floor N 10))), then call (FN N) REPS times; FN
returns the seconds its N operations took.  UNIT \"Mmsg/s\" reports
millions of operations per second, a \"us/...\" unit microseconds per
operation.  Errors become a FAILED line."
  (handler-case
      (let ((per-op (char= (char unit 0) #\u)))
        (funcall fn (max 1 (floor n 10)))
        (report-values bench variant unit n
                       (loop repeat reps
                             collect (let ((s (funcall fn n)))
                                       (if per-op
                                           (/ (* s 1d6) n)
                                           (/ n s 1d6))))))
    (serious-condition (c)
      (fail bench variant c))))

(defun rss-kib ()
  "The resident set size of this process, KiB (VmRSS)."
  (with-open-file (in "/proc/self/status")
    (loop for line = (read-line in nil)
          while line
          when (and (> (length line) 6) (string= "VmRSS:" line :end2 6))
            do (return (parse-integer line :start 6 :junk-allowed t)))))

(defun time-gc-ms (&key full)
  "Milliseconds one (SB-EXT:GC) takes (a nursery collection unless FULL)."
  (let ((t0 (now-ns)))
    (sb-ext:gc :full full)
    (/ (- (now-ns) t0) 1d6)))

;;; Benchmarks are named functions taking their integer arguments.

(defvar *benches* (make-hash-table :test 'equal)
  "Name -> (arity . function).")

(defmacro define-bench (name (&rest args) &body body)
  "Define the benchmark NAME (a string) taking the integer ARGS (a
&REST parameter takes all the numbers that follow)."
  `(setf (gethash ,name *benches*)
         (cons ,(if (member '&rest args) -1 (length args))
               (lambda ,args ,@body))))

(defun integer-arg (string)
  (or (parse-integer string :junk-allowed t)
      (error "Not an integer: ~s" string)))

(defun run-benches (args)
  "ARGS: a benchmark name followed by its integer arguments, possibly
several times.  Runs them in order."
  (loop while args
        do (let* ((name (pop args))
                  (entry (or (gethash name *benches*)
                             (error "Unknown benchmark ~s; known: ~{~a~^ ~}" name
                                    (sort (loop for k being the hash-keys of *benches*
                                                collect k)
                                          #'string<))))
                  (arity (car entry))
                  (numbers (if (minusp arity)
                               ;; &rest: the numbers up to the next name
                               (loop while (and args (digit-char-p (char (first args) 0)))
                                     collect (integer-arg (pop args)))
                               (loop repeat arity
                                     collect (integer-arg
                                              (or (pop args)
                                                  (error "~a: too few arguments" name)))))))
             (apply (cdr entry) numbers))))

(defun load-muproc (root)
  "Load muproc.asd from ROOT and the muproc system, printing the
compiler's output (to *ERROR-OUTPUT*) only if loading fails."
  (require :asdf)
  (let ((log (make-string-output-stream))
        (stderr *error-output*)
        (ok nil))
    (unwind-protect
         (let ((*standard-output* log)
               (*error-output* log))
           (funcall (intern "LOAD-ASD" "ASDF") (merge-pathnames "muproc.asd" root))
           (funcall (intern "LOAD-SYSTEM" "ASDF") "muproc")
           (setf ok t))
      (unless ok
        (write-string (get-output-stream-string log) stderr)))))
