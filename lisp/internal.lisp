;;;; internal.lisp - what the generic server and the supervisor build on
;;;; besides the public API: reply aliases, and whether a muproc is being
;;;; killed.  Package MUPROC.INTERNAL names them, so that those layers
;;;; never reach into MUPROC.FFI or MUPROC:: (IOLib's rule: higher layers
;;;; stay off the raw bindings).

(in-package #:muproc)

;;; Reply aliases (c/alias.c): a caller opens one per call; the reply sent
;;; through it is delivered only while the alias is open, and closes it.
;;; So a reply that comes after the caller gave up is dropped by
;;; libmuproc, never left in the caller's inport.

(defun open-reply-alias (muproc)
  "A fresh reply alias of MUPROC (a tag): one message sent through it with
SEND-THROUGH-ALIAS reaches MUPROC, and closes it."
  (cffi:with-foreign-object (out :uint64)
    (muproc.ffi:%alias-add-reply (%muproc-pid muproc) out)
    (%make-tag (cffi:mem-ref out :uint64))))

(defun close-reply-alias (muproc alias)
  "Close MUPROC's reply ALIAS (nothing more gets through it).  A message
already delivered through it stays queued.  Returns NIL."
  (muproc.ffi:%alias-remove (%muproc-pid muproc) (muproc-tag-id alias))
  nil)

(defun send-through-alias (muproc alias &rest plist)
  "Send the mumsg PLIST to MUPROC through its reply ALIAS.  Returns T if it
was delivered, NIL if the alias was closed or MUPROC has exited."
  (check-plist plist)
  (zerop (deliver-plist (%muproc-pid muproc) plist muproc
                        :alias (muproc-tag-id alias))))

;;; Kills

(defun unwinding-from-kill-p (&optional (muproc (muproc-current-process)))
  "True while MUPROC (default: the current one) is unwinding because it was
killed (MUPROC-KILL): its cleanups must not wait for anything that may
never come."
  (and muproc (%muproc-kill-reason muproc) t))

(defpackage #:muproc.internal
  (:use)
  (:import-from #:muproc #:open-reply-alias #:close-reply-alias #:send-through-alias
                #:unwinding-from-kill-p
                ;; The observer's, for the supervisor tree and server state
                ;; (observer.lisp).
                #:find-muproc-or-lose #:muproc-pid-label #:muproc-label #:generic-servers
                #:make-reply-box #:reply-box-wait #:make-system-request
                #:system-request-p
                #:run-system-request #:note-generic-server #:muproc-id)
  (:export #:open-reply-alias #:close-reply-alias #:send-through-alias
           #:unwinding-from-kill-p
           #:find-muproc-or-lose #:muproc-pid-label #:muproc-label #:generic-servers
           #:make-reply-box #:reply-box-wait #:make-system-request
           #:system-request-p
           #:run-system-request #:note-generic-server #:muproc-id)
  (:documentation "Operators of the muproc core that MUPROC.GENERIC-SERVER
and MUPROC.SUPERVISOR use and that are not public API."))
