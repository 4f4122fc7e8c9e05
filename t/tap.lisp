;;;; tap.lisp - run the suites and print TAP, for make check.
;;;;
;;;; FiveAM 1.4 exports no accessors for its results, hence the internal
;;;; symbols below.

(in-package #:muproc-tests)

(defun run-tap (&optional (suite :muproc))
  "Run SUITE through RUN-TESTS and print one TAP line per test (details of
failures as comments).  Returns T when everything passed."
  (let ((*test-dribble* (make-broadcast-stream))
        ;; Muprocs log to *TRACE-OUTPUT* by default: keep their lines out
        ;; of the TAP stream.
        (*trace-output* *error-output*))
    (run-tests :suite suite :report #'print-tap)))

(defun print-tap (results)
  "Print FiveAM's RESULTS as TAP, one line per test; true when every test
passed."
  (let* ((by-test (make-hash-table :test 'eq))
         (order '()))
    (dolist (r results)
      (let ((name (fiveam::name (fiveam::test-case r))))
        (unless (gethash name by-test) (push name order))
        (push r (gethash name by-test))))
    (setf order (nreverse order))
    (format t "1..~d~%" (length order))
    (loop for name in order
          for i from 1
          for rs = (gethash name by-test)
          for failures = (remove-if (lambda (r) (typep r 'fiveam::test-passed)) rs)
          do (format t "~:[not ok~;ok~] ~d - ~(~a~)~%" (null failures) i name)
             (dolist (f failures)
               (format t "~{# ~a~%~}"
                       (uiop:split-string
                        (remove #\Return
                                (princ-to-string
                                 (if (typep f 'fiveam::unexpected-test-failure)
                                     (fiveam::actual-condition f)
                                     (fiveam::reason f))))
                        :separator '(#\Newline)))))
    (finish-output)
    (every (lambda (name)
             (every (lambda (r) (typep r 'fiveam::test-passed)) (gethash name by-test)))
           order)))
