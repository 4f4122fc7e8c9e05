;;;; test-harness.lisp - the test harness itself: the leak check's thread
;;;; baseline.

(in-package #:muproc-tests)

(def-suite :muproc/harness :in :muproc :description "The test harness itself.")
(in-suite :muproc/harness)

(deftest harness.threads-alive-before-a-test-are-not-leaks ()
  "The leak check's thread baseline is taken when each test begins, so
threads that were alive then (a REPL's own, the signal dispatcher, the
thread running the suite) are never leaks, however the suite is run
(ASDF:TEST-SYSTEM, FIVEAM:RUN!, make check); a thread started after that
and still alive is one."
  (let* ((release (sb-thread:make-semaphore))
         (earlier (sb-thread:make-thread (lambda () (sb-thread:wait-on-semaphore release))
                                         :name "harness: alive before"))
         (before (sb-thread:list-all-threads))
         (later (sb-thread:make-thread (lambda () (sb-thread:wait-on-semaphore release))
                                       :name "harness: started after")))
    (unwind-protect
         (progn
           (is (member sb-thread:*current-thread* before))
           (is (equal (list later) (stray-threads before))))
      (sb-thread:signal-semaphore release 2)
      (sb-thread:join-thread earlier :default nil)
      (sb-thread:join-thread later :default nil))))
