;;;; test-readme.lisp - the README's Lisp snippets run as written.

(in-package #:muproc-tests)

(def-suite :muproc/readme :in :muproc :description "README.md's snippets.")
(in-suite :muproc/readme)

(defun readme-lisp-blocks ()
  "The ```lisp code blocks of README.md, in order, as strings.  A block
whose info string goes on with no-run (```lisp no-run) is left out: one
that needs editing first, such as a path."
  (let ((blocks '()) (lines '()) (in-block nil) (skip nil))
    (dolist (line (uiop:read-file-lines (asdf:system-relative-pathname "muproc" "README.md")))
      (cond ((and (not in-block) (uiop:string-prefix-p "```lisp" line))
             (setf in-block t lines '() skip (search "no-run" line)))
            ((and in-block (string= (string-trim " " line) "```"))
             (unless skip
               (push (format nil "~{~a~%~}" (reverse lines)) blocks))
             (setf in-block nil))
            (in-block (push line lines))))
    (nreverse blocks)))

(defparameter *readme-runner*
  "(defun cl-user::run-readme (file)
  \"Evaluate FILE's forms in order, as a user pasting them at the REPL
would; where a form's line ends with a comment '; => value' and the value
is readable, print a MISMATCH line unless the form returned it.\"
  (let ((*package* (find-package :cl-user))
        (checked 0))
    (with-open-file (in file)
      (loop for form = (read-preserving-whitespace in nil in)
            until (eq form in)
            do (let* ((rest (read-line in nil \"\"))
                      (mark (search \"; => \" rest))
                      (expected (and mark (string-trim \" \" (subseq rest (+ mark 5)))))
                      (values (multiple-value-list (eval form))))
                 (when (and expected (not (search \"#<\" expected)))
                   (incf checked)
                   (let ((got (format nil \"~{~s~^ ~}\" values)))
                     (unless (string-equal got expected)
                       (format t \"~&MISMATCH ~s~%  expected ~a, got ~a~%\"
                               form expected got)))))))
    (format t \"~&README-CHECKED ~d~%\" checked)))
"
  "Defines, in the child, the function that runs the README's snippets.")

(deftest readme.snippets-run-in-a-fresh-image (:timeout 400)
  "Every ```lisp block of README.md (but those marked no-run), pasted in
order into a fresh SBCL that has loaded muproc, runs without an error, and
each form whose line ends with '; => value' returns that value (unless it
is an unreadable #<...>)."
  (let ((blocks (readme-lisp-blocks))
        (file (merge-pathnames "readme-snippets.lisp" (fresh-temporary-directory))))
    (is (< 3 (length blocks)) "found only ~d blocks" (length blocks))
    (ensure-directories-exist file)
    (with-open-file (out file :direction :output :if-exists :supersede)
      (format out "~{~a~%~}" blocks))
    (unwind-protect
         (multiple-value-bind (out code err)
             (run-lisp-in-child (format nil "~a~%(cl-user::run-readme ~s)~%" *readme-runner*
                                        (namestring file)))
           (is (= 0 code) "the child failed (exit ~a):~%~a~%~a" code out
               (subseq err (max 0 (- (length err) 2000))))
           (is (not (search "MISMATCH" out)) "~a" out)
           (let ((start (search "README-CHECKED " out)))
             (is-true start "the snippets did not all run:~%~a" out)
             (when start
               (is (<= 5 (parse-integer out :start (+ start 15) :junk-allowed t))
                   "too few values checked: ~a" out))))
      (uiop:delete-directory-tree (uiop:pathname-directory-pathname file)
                                  :validate t :if-does-not-exist :ignore))))
