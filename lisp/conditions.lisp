;;;; conditions.lisp - every condition muproc signals.

(in-package #:muproc)

(define-condition muproc-error (error) ()
  (:documentation "Base class of every error muproc signals."))

(define-condition muproc-library-not-found (muproc-error)
  ((tried :initarg :tried :reader library-not-found-tried)
   (cause :initarg :cause :initform nil :reader library-not-found-cause))
  (:report (lambda (c s)
             (format s "libmuproc could not be loaded.~%Tried:~{~%  ~a~}~@[~%~
                        Last error: ~a~]~%Fix: build it (./bootstrap && ./configure && ~
                        make), or install it (make install && ldconfig), or set ~
                        MUPROC_LIBDIR to the directory holding libmuproc.so.0."
                     (library-not-found-tried c) (library-not-found-cause c))))
  (:documentation "Signalled when libmuproc can't be found or loaded; the
report lists every path tried and how to build the library."))

(define-condition muproc-version-mismatch (muproc-error)
  ((loaded :initarg :loaded :reader version-mismatch-loaded)
   (expected :initarg :expected :reader version-mismatch-expected))
  (:report (lambda (c s)
             (format s "libmuproc ~a was loaded, but this Lisp code needs ~a ~
                        (same major version, at least that minor)."
                     (version-mismatch-loaded c) (version-mismatch-expected c))))
  (:documentation "Signalled at load when the C library's version does not
fit the Lisp side's."))

(define-condition muproc-runtime-error (muproc-error)
  ((code :initarg :code :reader muproc-error-code)
   (operation :initarg :operation :reader muproc-error-operation))
  (:report (lambda (c s)
             (format s "~a failed: ~a (~a)" (muproc-error-operation c)
                     (muproc.ffi:%strerror (muproc-error-code c))
                     (muproc.ffi:%err-name (muproc-error-code c)))))
  (:documentation "An unexpected failure code from libmuproc.
MUPROC-ERROR-CODE gives the negative MUPROC_E* code."))

(define-condition muproc-not-a-muproc (muproc-error)
  ((operation :initarg :operation :reader not-a-muproc-operation)
   (datum :initarg :datum :reader not-a-muproc-datum))
  (:report (lambda (c s)
             (format s "~a needs a muproc, got ~s." (not-a-muproc-operation c)
                     (not-a-muproc-datum c))))
  (:documentation "Signalled by an observing operator (MUPROC-INFO,
MUPROC-TRACE, ...) given something that is not a muproc."))

(define-condition muproc-name-taken (muproc-error)
  ((name :initarg :name :reader muproc-name-taken-name))
  (:report (lambda (c s)
             (format s "A live muproc is already named ~s."
                     (muproc-name-taken-name c))))
  (:documentation "Signalled by MUPROC-SPAWN when the name is in use by a
live muproc."))

(define-condition muproc-port-name-taken (muproc-error)
  ((name :initarg :name :reader port-name-taken-name)
   (owner :initarg :owner :reader port-name-taken-owner))
  (:report (lambda (c s)
             (format s "Port name ~s is already registered by ~a."
                     (port-name-taken-name c) (port-name-taken-owner c))))
  (:documentation "Signalled when registering a port name that is taken."))

(define-condition muproc-unknown-port-name (muproc-error)
  ((name :initarg :name :reader unknown-port-name))
  (:report (lambda (c s)
             (format s "No muproc is registered as port ~s." (unknown-port-name c))))
  (:documentation "Signalled when sending to, or unregistering, a port name
that no live muproc holds."))

(define-condition muproc-invalid-port-name (muproc-error)
  ((name :initarg :name :reader invalid-port-name))
  (:report (lambda (c s)
             (format s "~s is not a valid port name: port names are keywords of ~
                        1 to 255 characters." (invalid-port-name c))))
  (:documentation "Signalled for a port name that is not a keyword."))

(define-condition mumsg-malformed (muproc-error)
  ((plist :initarg :plist :reader mumsg-malformed-plist)
   (problem :initarg :problem :reader mumsg-malformed-problem))
  (:report (lambda (c s)
             (format s "Not a valid mumsg: ~a in ~s." (mumsg-malformed-problem c)
                     (mumsg-malformed-plist c))))
  (:documentation "Signalled at the send site (or by MUMSG) for an
odd-length property list or a key that is not a keyword."))

(define-condition mumsg-unsendable-value (muproc-error)
  ((key :initarg :key :reader unsendable-key)
   (value :initarg :value :reader unsendable-value)
   (destination :initarg :destination :reader unsendable-destination))
  (:report (lambda (c s)
             (format s "The value ~s of ~s can't be sent to ~a: only integers, ~
                        floats, keywords, strings, octet vectors, muprocs, tags ~
                        and NIL cross to a C muproc."
                     (unsendable-value c) (unsendable-key c)
                     (unsendable-destination c))))
  (:documentation "Signalled when a value can't be encoded as a term for a
receiver outside this Lisp image's heap (a C muproc)."))

(define-condition muproc-inport-full (muproc-error)
  ((destination :initarg :destination :reader inport-full-destination)
   (capacity :initarg :capacity :reader inport-full-capacity))
  (:report (lambda (c s)
             (format s "The inport of ~a is full (capacity ~a): the message was ~
                        not queued, nothing queued was dropped."
                     (inport-full-destination c) (inport-full-capacity c))))
  (:documentation "Signalled to a sender whose receiver's bounded inport
(:INPORT-CAPACITY) is full.  The message was not sent; nothing already
queued is lost.  A RETRY restart sends again."))

(define-condition muproc-thread-limit (muproc-error)
  ((cap :initarg :cap :reader thread-limit-cap))
  (:report (lambda (c s)
             (format s "Can't spawn: all ~a muproc threads are in use (the cap ~
                        keeps SBCL below vm.max_map_count; see MUPROC-THREAD-CAP)."
                     (thread-limit-cap c))))
  (:documentation "Signalled by MUPROC-SPAWN when the thread cap is reached
and no parked worker is free.  Nothing was started."))

(define-condition muproc-not-in-muproc (muproc-error)
  ((operation :initarg :operation :reader not-in-muproc-operation))
  (:report (lambda (c s)
             (format s "~a must be called inside a muproc (wrap the REPL form in ~
                        (muproc () ...))." (not-in-muproc-operation c))))
  (:documentation "Signalled by operations that need a muproc context, such
as MUMSG-RECEIVE, when called from a plain thread."))

(define-condition muproc-nested-receive (muproc-error)
  ((operation :initarg :operation :initform "MUMSG-RECEIVE"
              :reader nested-receive-operation))
  (:report (lambda (c s)
             (format s "~a was called from inside a receive guard; guards must
not receive, discard input (nor have other side effects)."
                     (nested-receive-operation c))))
  (:documentation "Signalled when a guard of MUMSG-RECEIVE itself receives
or discards input: the message the guard looks at is still in the inport."))

(define-condition muproc-send-to-terminated-muproc-condition (condition)
  ((muproc :initarg :muproc :reader muproc-condition-muproc))
  (:report (lambda (c s)
             (format s "Message to terminated muproc ~a dropped."
                     (muproc-condition-muproc c))))
  (:documentation "Signalled (with SIGNAL: not an error, unhandled it does
nothing) when MUMSG-SEND targets a muproc that has terminated.  The send then
returns NIL.  Handle it to learn about such sends.  MUPROC-CONDITION-MUPROC
is the terminated muproc (or the port name it held)."))

(define-condition muproc-error-in-process (muproc-error)
  ((muproc :initarg :muproc :reader muproc-condition-muproc)
   (original :initarg :original :reader muproc-error-original))
  (:report (lambda (c s)
             (format s "Error in ~a: ~a" (muproc-condition-muproc c)
                     (muproc-error-original c))))
  (:documentation "Carries an error that happened in another muproc."))

(define-condition muproc-receive-syntax-error (muproc-error)
  ((clause :initarg :clause :reader muproc-receive-syntax-error-clause)
   (problem :initarg :problem :reader muproc-receive-syntax-error-problem))
  (:report (lambda (c s)
             (format s "Bad MUMSG-RECEIVE clause ~s: ~a."
                     (muproc-receive-syntax-error-clause c)
                     (muproc-receive-syntax-error-problem c))))
  (:documentation "Signalled when a MUMSG-RECEIVE form is expanded and one of
its clauses could never match (no guard, a keyword as a key, a :TIMEOUT
clause without the :TIMEOUT option...)."))
