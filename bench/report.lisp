;;;; report.lisp - collect the benchmark results into a table and a JSON file.
;;;;
;;;;   sbcl --script bench/report.lisp RAW JSON TABLE
;;;;
;;;; RAW holds the lines the benchmark programs printed, as bench/run
;;;; gathered them:
;;;;   RESULT <bench> <variant> <median> <min> <max> <unit> [n=N] [reps=R]
;;;;   FAILED <bench> <variant> <reason...>
;;;;   INFO <key> <value...>
;;;;   META <key> <value...>        (bench/run: date, load average, versions)
;;;;   STEP <name> <seconds> <exit status> <other CPUs busy> <load average>
;;;; Prints the table on stdout and into TABLE; writes every figure, the
;;;; ratios ours/anchor and the targets into JSON.
;;;;
;;;; A ratio is (our median) / (the anchor's median) in the benchmark's
;;;; own unit: for a time per operation lower is better, for a rate
;;;; (Mmsg/s) higher is better.  Each target says which way it reads.

(defpackage #:muproc-bench.report (:use #:common-lisp))
(in-package #:muproc-bench.report)

;;; What is compared with what.  Each entry: (BENCH OURS ANCHOR...) where
;;; an ANCHOR is a variant of BENCH, or "bench/variant" of another one,
;;; or (ANCHOR OP VALUE) with a target: OP :<= or :>= on the ratio.

(defparameter *comparisons*
  '(("ping-pong" "muproc"
     ("erlang" :<= 1.0) "baseline" "c-condvar" "c-futex" "c-futexspin" "sbcl-mailbox")
    ("ping-pong-1cpu" "muproc"
     ("sbcl-mailbox" :<= 1.0))
    ("ping-pong-c" "muproc-c"
     "ping-pong/erlang" "ping-pong/c-condvar" "ping-pong/c-futex" "ping-pong/c-futexspin")
    ("one-way" "muproc"
     ("erlang" :>= 2.0) "baseline" "sbcl-mailbox" "c-queue")
    ("one-way-c" "muproc-c"
     "one-way/erlang" "one-way/c-queue")
    ("fan-in" "muproc"
     ("erlang" :>= 1.0) "sbcl-mailbox")
    ("spawn" "muproc"
     ("erlang" :<= 2.0) "spawn-seq/sbcl-thread")
    ("spawn-seq" "muproc"
     "erlang" "sbcl-thread")
    ("call" "muproc"
     ("erlang" :<= 1.5) "baseline")
    ("ring" "muproc"
     "erlang")
    ("selective" "muproc"
     ("erlang" :<= 0.5) "baseline" "erlang-ref")
    ("selective-10x" "muproc"
     "selective/muproc" "selective/erlang")
    ("selective-first" "muproc"
     "selective/erlang" "baseline")
    ("selective-first-10x" "muproc"
     "selective-first/muproc")
    ("selective-guard" "muproc"
     "selective/erlang" "baseline")
    ("selective-empty" "muproc"
     "erlang")
    ;; BENCH ending in "-*": one entry per level present (memory-1000...).
    ("spawn-alive-*" "muproc" "sbcl-thread")
    ("memory-*" "muproc" "sbcl-thread" "erlang" "erlang-rss")
    ("gc-*" "muproc" "sbcl-thread")))

(defparameter *descriptions*
  '(("ping-pong" . "round trip of a 1-key mumsg between two muprocs (Lisp)")
    ("ping-pong-1cpu" . "ping-pong with the process pinned to one CPU (taskset -c 0)")
    ("ping-pong-c" . "round trip between two C muprocs (libmuproc C API)")
    ("one-way" . "(:cmd :square :x i) one sender -> one receiver")
    ("one-way-c" . "{cmd: square, x: i} between two C muprocs")
    ("fan-in" . "8 senders -> one receiver")
    ("spawn" . "spawn N muprocs that each send one message and exit, then receive the N messages")
    ("spawn-seq" . "spawn one, wait for its message, repeat")
    ("call" . "generic-server call round trip (Erlang: gen_server:call)")
    ("ring" . "N=1000 muprocs in a ring, token passed M=100 times")
    ("selective" . "match behind 10,000 queued messages that lack the clause's key, once they are indexed")
    ("selective-10x" . "match behind 100,000 such messages: O(1) if it costs what selective does")
    ("selective-first" . "the first receive behind 10,000 such messages: a scan")
    ("selective-first-10x" . "the first receive behind 100,000: a scan, O(n)")
    ("selective-guard" . "match behind 10,000 messages that hold the key; the guard rejects each")
    ("selective-empty" . "the same receive, empty inport")
    ("spawn-alive-*" . "spawn time while up to N idle muprocs are alive (RSS: KiB per muproc)")
    ("memory-*" . "RSS per idle muproc (blocked in receive) with N alive; Erlang: memory(processes)")
    ("gc-*" . "one nursery (gc) with N idle muprocs alive")))

;;; Reading

(defstruct result bench variant median min max unit n reps failed)

(defun split (line)
  (let ((words '()) (start nil))
    (loop for i from 0 to (length line)
          for c = (if (< i (length line)) (char line i) #\Space)
          do (if (member c '(#\Space #\Tab))
                 (when start (push (subseq line start i) words) (setf start nil))
                 (unless start (setf start i))))
    (nreverse words)))

(defun number-from (string)
  (let ((*read-default-float-format* 'double-float)
        (*read-eval* nil))
    (let ((x (ignore-errors (read-from-string string))))
      (if (realp x) (coerce x 'double-float) nil))))

(defun keyed (words key)
  (let ((w (find-if (lambda (w) (and (> (length w) (length key))
                                     (string= key w :end2 (length key))))
                    words)))
    (and w (parse-integer w :start (length key) :junk-allowed t))))

(defvar *results* '())
(defvar *meta* '())
(defvar *info* '())
(defvar *steps* '())

(defun read-raw (file)
  (with-open-file (in file :external-format :utf-8)
    (loop for line = (read-line in nil)
          while line
          do (let ((words (split line)))
               (cond
                 ((null words))
                 ((and (string= (first words) "RESULT") (>= (length words) 7))
                  (destructuring-bind (bench variant median min max unit &rest more)
                      (rest words)
                    (push (make-result :bench bench :variant variant
                                       :median (number-from median)
                                       :min (number-from min) :max (number-from max)
                                       :unit unit :n (keyed more "n=")
                                       :reps (keyed more "reps="))
                          *results*)))
                 ((and (string= (first words) "FAILED") (>= (length words) 3))
                  (push (make-result :bench (second words) :variant (third words)
                                     :failed (format nil "~{~a~^ ~}" (nthcdr 3 words)))
                        *results*))
                 ((and (string= (first words) "META") (>= (length words) 2))
                  (push (cons (second words) (format nil "~{~a~^ ~}" (cddr words))) *meta*))
                 ((and (string= (first words) "INFO") (>= (length words) 2))
                  (push (cons (second words) (format nil "~{~a~^ ~}" (cddr words))) *info*))
                 ((and (string= (first words) "STEP") (>= (length words) 4))
                  (push words *steps*))))))
  (setf *results* (nreverse *results*)
        *meta* (nreverse *meta*)
        *info* (nreverse *info*)
        *steps* (nreverse *steps*)))

(defun find-result (bench variant)
  ;; The last one wins, should a benchmark have been run twice.
  (find-if (lambda (r) (and (string= (result-bench r) bench)
                            (string= (result-variant r) variant)))
           *results* :from-end t))

(defun level (bench)
  (parse-integer bench :start (1+ (position #\- bench :from-end t)) :junk-allowed t))

;;; Anchors of "-*" entries run only up to a level: raw SBCL threads have
;;; no cap, and 10,000 of them come too near vm.max_map_count (bench/run).
(defparameter *anchor-max-level* '(("sbcl-thread" . 5000)))

(defun anchors-at-level (anchors level)
  (remove-if (lambda (spec)
               (let ((max (cdr (assoc (if (consp spec) (first spec) spec)
                                      *anchor-max-level* :test #'string=))))
                 (and max (> level max))))
             anchors))

(defun expand-comparisons ()
  "*COMPARISONS* with each \"prefix-*\" entry replaced by one entry per
benchmark of that prefix in the results, in numeric order, without the
anchors not run at that level (*ANCHOR-MAX-LEVEL*)."
  (loop for entry in *comparisons*
        for bench = (first entry)
        append (if (and (> (length bench) 2) (string= "-*" bench :start2 (- (length bench) 2)))
                   (let* ((prefix (subseq bench 0 (1- (length bench))))
                          (names (remove-duplicates
                                  (loop for r in *results*
                                        when (and (> (length (result-bench r)) (length prefix))
                                                  (string= prefix (result-bench r)
                                                           :end2 (length prefix))
                                                  (level (result-bench r)))
                                          collect (result-bench r))
                                  :test #'string=)))
                     (loop for name in (sort names #'< :key #'level)
                           collect (list* name (second entry)
                                          (anchors-at-level (cddr entry) (level name)))))
                   (list entry))))

(defun anchor-ref (bench anchor)
  "(values bench variant) of an anchor designator."
  (let ((slash (position #\/ anchor)))
    (if slash
        (values (subseq anchor 0 slash) (subseq anchor (1+ slash)))
        (values bench anchor))))

;;; Comparisons

(defstruct (comparison (:conc-name ratio-) (:constructor make-ratio))
  bench ours anchor-bench anchor value op target met)

(defun ok-result-p (r)
  (and r (not (result-failed r)) (result-median r) (plusp (result-median r))))

(defun compute-ratios ()
  (loop for (bench ours . anchors) in *comparisons*
        for our = (find-result bench ours)
        append (loop for spec in anchors
                     for (anchor op target) = (if (consp spec) spec (list spec))
                     ;; The baseline is there only when bench/run --baseline ran it.
                     unless (and (string= anchor "baseline") (null (find-result bench anchor)))
                     collect (multiple-value-bind (abench avariant) (anchor-ref bench anchor)
                               (let* ((their (find-result abench avariant))
                                      (value (and (ok-result-p our) (ok-result-p their)
                                                  (/ (result-median our) (result-median their)))))
                                 (make-ratio :bench bench :ours ours
                                             :anchor-bench abench :anchor avariant
                                             :value value :op op :target target
                                             :met (and value op
                                                       (if (eq op :<=)
                                                           (<= value target)
                                                           (>= value target)))))))))

;;; Formatting

(defun fmt (x &optional (digits 3))
  "X with DIGITS significant digits, plain decimal."
  (cond ((null x) "-")
        ((zerop x) "0")
        (t (let* ((mag (floor (log (abs x) 10)))
                  (decimals (max 0 (- digits 1 mag))))
             (if (zerop decimals)
                 (format nil "~d" (round x))
                 (format nil "~,vF" decimals x))))))

(defun unit-label (unit)
  (cond ((null unit) "")
        ((and (> (length unit) 3) (string= "us/" unit :end2 3))
         (concatenate 'string "µs/" (subseq unit 3)))
        (t unit)))

(defun target-string (ratio)
  (if (ratio-op ratio)
      (format nil "~a ~a: ~a" (if (eq (ratio-op ratio) :<=) "≤" "≥")
              (fmt (ratio-target ratio) 2)
              (cond ((null (ratio-value ratio)) "n/a")
                    ((ratio-met ratio) "met")
                    (t "MISSED")))
      ""))

(defun row-cells (label result)
  (list label
        (cond ((null result) "missing")
              ((result-failed result) "FAILED")
              (t (fmt (result-median result))))
        (if (ok-result-p result)
            (format nil "~a–~a" (fmt (result-min result)) (fmt (result-max result)))
            "")
        (if result (unit-label (result-unit result)) "")
        (if (and result (result-reps result)) (format nil "~d" (result-reps result)) "")))

(defun table-rows (ratios)
  "Rows of strings: (bench variant median range unit reps ratio target)."
  (let ((rows '()))
    (loop for (bench ours) in *comparisons*
          for our = (find-result bench ours)
          when (or our
                   (some (lambda (r) (and (string= (ratio-bench r) bench)
                                          (find-result (ratio-anchor-bench r) (ratio-anchor r))))
                         ratios))
            do (push (append (list bench) (row-cells ours our) (list "" "")) rows)
               (dolist (ratio (remove bench ratios :key #'ratio-bench :test-not #'string=))
                 (let* ((label (if (string= (ratio-anchor-bench ratio) bench)
                                   (ratio-anchor ratio)
                                   (format nil "~a/~a" (ratio-anchor-bench ratio)
                                           (ratio-anchor ratio))))
                        (their (find-result (ratio-anchor-bench ratio) (ratio-anchor ratio))))
                   (push (append (list "") (row-cells (concatenate 'string "  " label) their)
                                 (list (if (ratio-value ratio) (fmt (ratio-value ratio)) "-")
                                       (target-string ratio)))
                         rows))))
    ;; Whatever no comparison mentions.
    (dolist (r *results*)
      (unless (or (find-if (lambda (c) (and (string= (first c) (result-bench r))
                                            (string= (second c) (result-variant r))))
                           *comparisons*)
                  (find-if (lambda (ratio) (and (string= (ratio-anchor-bench ratio) (result-bench r))
                                                (string= (ratio-anchor ratio) (result-variant r))))
                           ratios))
        (push (append (list (result-bench r)) (row-cells (result-variant r) r) (list "" ""))
              rows)))
    (nreverse rows)))

(defun print-table (rows stream)
  (let* ((header '("benchmark" "variant" "median" "min–max" "unit" "reps" "ours/anchor" "target"))
         (widths (loop for i below (length header)
                       collect (reduce #'max (cons header rows)
                                       :key (lambda (row) (length (nth i row)))))))
    (flet ((line (row)
             (format stream "~{~a~^  ~}~%"
                     (loop for cell in row
                           for w in widths
                           for i from 0
                           collect (if (member i '(2 6))
                                       (format nil "~v@a" w cell)
                                       (format nil "~va" w cell))))))
      (line header)
      (line (mapcar (lambda (w) (make-string w :initial-element #\-)) widths))
      (let ((previous nil))
        (dolist (row rows)
          (when (and previous (plusp (length (first row))))
            (terpri stream))
          (line row)
          (setf previous row))))))

(defun print-report (ratios stream)
  (let ((meta (lambda (k) (cdr (assoc k *meta* :test #'string=)))))
    (format stream "muproc benchmarks (~a mode), ~a on ~a~%"
            (or (funcall meta "mode") "?") (or (funcall meta "date") "?")
            (or (funcall meta "host") "?"))
    (format stream "load average: ~a at the start, ~a at the end; ~a CPUs~%"
            (or (funcall meta "loadavg-start") "?") (or (funcall meta "loadavg-end") "?")
            (or (funcall meta "nproc") "?"))
    (let ((others (sort (remove nil (mapcar (lambda (s) (and (fifth s) (number-from (fifth s))))
                                            *steps*))
                        #'<)))
      (when others
        (format stream "CPUs kept busy by other processes during the steps: median ~a, max ~a~%"
                (fmt (nth (floor (length others) 2) others) 2) (fmt (car (last others)) 2))))
    (terpri stream)
    (print-table (table-rows ratios) stream)
    (let ((misses (remove-if-not (lambda (r) (and (ratio-op r) (ratio-value r)
                                                  (not (ratio-met r))))
                                 ratios))
          (unknown (count-if (lambda (r) (and (ratio-op r) (null (ratio-value r)))) ratios)))
      (format stream "~%Targets: ~d met, ~d missed~@[ (~{~a~^, ~})~]~[~:;, ~:*~d without figures~].~%"
              (count-if (lambda (r) (and (ratio-op r) (ratio-met r))) ratios)
              (length misses)
              (mapcar (lambda (r) (format nil "~a ~a/~a ~a" (ratio-bench r) (ratio-ours r)
                                          (ratio-anchor r) (target-string r)))
                      misses)
              unknown))
    (when *info*
      (format stream "~%~{~a~%~}"
              (mapcar (lambda (i) (format nil "~a: ~a" (car i) (cdr i))) *info*)))
    (let ((failed (remove-if-not #'result-failed *results*)))
      (when failed
        (format stream "~%Failed:~%")
        (dolist (r failed)
          (format stream "  ~a/~a: ~a~%" (result-bench r) (result-variant r) (result-failed r)))))))

;;; JSON

(defun json-string (s stream)
  (write-char #\" stream)
  (loop for c across s
        do (case c
             (#\" (write-string "\\\"" stream))
             (#\\ (write-string "\\\\" stream))
             (#\Newline (write-string "\\n" stream))
             (#\Tab (write-string "\\t" stream))
             (t (if (< (char-code c) 32)
                    (format stream "\\u~4,'0x" (char-code c))
                    (write-char c stream)))))
  (write-char #\" stream))

(defun json-value (v stream)
  (cond ((null v) (write-string "null" stream))
        ((eq v :true) (write-string "true" stream))
        ((eq v :false) (write-string "false" stream))
        ((stringp v) (json-string v stream))
        ((integerp v) (format stream "~d" v))
        ((realp v) (write-string (fmt v 6) stream))
        ((and (consp v) (eq (car v) :object))
         (write-char #\{ stream)
         (loop for ((k . val) . more) on (cdr v)
               do (json-string k stream) (write-string ": " stream)
                  (json-value val stream)
                  (when more (write-string ", " stream)))
         (write-char #\} stream))
        ((listp v)
         (write-char #\[ stream)
         (loop for (x . more) on v
               do (terpri stream) (write-string "  " stream)
                  (json-value x stream)
                  (when more (write-char #\, stream)))
         (write-char #\] stream))))

(defun obj (&rest kvs)
  (cons :object (loop for (k v) on kvs by #'cddr collect (cons k v))))

(defun write-json (ratios file)
  (with-open-file (out file :direction :output :if-exists :supersede
                            :external-format :utf-8)
    (json-value
     (obj "suite" "muproc bench"
          "meta" (cons :object *meta*)
          "info" (cons :object *info*)
          "results" (mapcar (lambda (r)
                              (if (result-failed r)
                                  (obj "bench" (result-bench r) "variant" (result-variant r)
                                       "failed" (result-failed r))
                                  (obj "bench" (result-bench r) "variant" (result-variant r)
                                       "median" (result-median r) "min" (result-min r)
                                       "max" (result-max r) "unit" (result-unit r)
                                       "n" (result-n r) "reps" (result-reps r))))
                            *results*)
          "ratios" (mapcar (lambda (r)
                             (obj "bench" (ratio-bench r) "ours" (ratio-ours r)
                                  "anchor" (format nil "~a/~a" (ratio-anchor-bench r)
                                                   (ratio-anchor r))
                                  "ratio" (ratio-value r)
                                  "target" (and (ratio-op r)
                                                (format nil "~a ~a" (if (eq (ratio-op r) :<=)
                                                                        "<=" ">=")
                                                        (ratio-target r)))
                                  "met" (and (ratio-op r) (ratio-value r)
                                             (if (ratio-met r) :true :false))))
                           ratios)
          "steps" (mapcar (lambda (s)
                            (destructuring-bind (name seconds status &optional other &rest load)
                                (rest s)
                              (obj "step" name "seconds" (number-from seconds)
                                   "exit" (parse-integer status :junk-allowed t)
                                   "other_cpu" (and other (number-from other))
                                   "loadavg" (format nil "~{~a~^ ~}" load))))
                          *steps*)
          "descriptions" (cons :object *descriptions*))
     out)
    (terpri out)))

(defun missing-results ()
  "Descriptions of the figures the comparisons expect but that are
missing or failed."
  (let ((missing '()))
    (flet ((check (bench variant)
             (let ((r (find-result bench variant)))
               (unless (ok-result-p r)
                 (pushnew (format nil "~a/~a~:[ (missing)~; (failed)~]" bench variant r)
                          missing :test #'string=)))))
      (loop for (bench ours . anchors) in *comparisons*
            do (check bench ours)
               (dolist (spec anchors)
                 (multiple-value-call #'check
                   (anchor-ref bench (if (consp spec) (first spec) spec)))))
      (dolist (pattern '("memory-" "gc-" "spawn-alive-"))
        (unless (find-if (lambda (c) (eql 0 (search pattern (first c)))) *comparisons*)
          (push (format nil "~a* (none)" pattern) missing))))
    (nreverse missing)))

(defun main (args)
  (destructuring-bind (raw json table &optional (strictness "partial")) args
    (read-raw raw)
    (setf *comparisons* (expand-comparisons))
    (let ((ratios (compute-ratios)))
      (with-open-file (out table :direction :output :if-exists :supersede
                                 :external-format :utf-8)
        (print-report ratios out))
      ;; UTF-8 whatever the locale: the table has µ, – and ≤ in it.
      (let ((stdout (sb-sys:make-fd-stream 1 :output t :external-format :utf-8
                                             :buffering :full)))
        (print-report ratios stdout)
        (finish-output stdout))
      (write-json ratios json)
      (let ((missing (missing-results)))
        (when (and missing (string= strictness "strict"))
          (format *error-output* "bench/report.lisp: missing or failed: ~{~a~^, ~}~%" missing)
          (sb-ext:exit :code 2))))))

(handler-case (main (rest sb-ext:*posix-argv*))
  (error (c)
    (format *error-output* "bench/report.lisp: ~a~%" c)
    (sb-ext:exit :code 1)))
