;;;; generic-server.lisp - the seed's generic servers, with OTP-grade calls.
;;;;
;;;; A server type is a Lisp package: INITIALIZE returns the state,
;;;; TERMINATE cleans up, MUPROC-DEFINE-CALL-HANDLER and
;;;; MUPROC-DEFINE-CAST-HANDLER define the handlers and their client
;;;; functions.  A call carries a reply alias (libmuproc drops a reply once
;;;; the caller stopped waiting), the caller monitors the server for the
;;;; duration and gives up after a timeout: the three ways a cl-muproc
;;;; call could hang forever or pollute a mailbox are closed.

(defpackage #:muproc.generic-server
  (:use #:common-lisp #:muproc)
  (:import-from #:muproc.internal #:open-reply-alias #:close-reply-alias
                #:send-through-alias)
  (:nicknames #:muproc.gensrv #:cl-muproc.generic-server #:cl-muproc.gensrv)
  (:documentation "Generic servers in the style of cl-muproc (and of
Erlang's gen_server): a server type is a package defining INITIALIZE,
optionally TERMINATE, LINKED-EXIT and UNHANDLED-MESSAGE, and handlers
defined with MUPROC-DEFINE-CALL-HANDLER and MUPROC-DEFINE-CAST-HANDLER.")
  (:export #:muproc-generic-start #:muproc-generic-call #:muproc-generic-cast
           #:muproc-generic-stop #:muproc-define-call-handler
           #:muproc-define-cast-handler #:muproc-default-server-name
           #:muproc-exit-after-handler #:muproc-generic-defer-reply
           #:muproc-generic-reply
           #:muproc-generic-get-state #:muproc-generic-replace-state
           #:*muproc-generic-call-timeout* #:*muproc-generic-server-package*
           #:*muproc-generic-server-port-name*
           #:generic-server-error #:generic-call-timeout #:generic-server-down
           #:generic-server-not-running #:generic-handler-error
           #:generic-call-to-self
           #:generic-server-error-server #:generic-server-error-handler
           #:generic-server-down-reason #:generic-call-timeout-seconds
           #:generic-handler-error-original))

(in-package #:muproc.generic-server)

;;; Conditions

(define-condition generic-server-error (muproc-error)
  ((server :initarg :server :reader generic-server-error-server)
   (handler :initarg :handler :initform nil :reader generic-server-error-handler))
  (:documentation "Base class of the errors a generic-server call signals."))

(define-condition generic-call-timeout (generic-server-error)
  ((timeout :initarg :timeout :reader generic-call-timeout-seconds))
  (:report (lambda (c s)
             (format s "Call ~s to ~a got no reply within ~a s."
                     (generic-server-error-handler c) (generic-server-error-server c)
                     (generic-call-timeout-seconds c))))
  (:documentation "Signalled in a caller whose call got no reply within the
timeout (*MUPROC-GENERIC-CALL-TIMEOUT*).  A reply arriving later is
dropped, never left in the caller's inport."))

(define-condition generic-server-down (generic-server-error)
  ((reason :initarg :reason :reader generic-server-down-reason))
  (:report (lambda (c s)
             (format s "Server ~a exited with reason ~s during call ~s."
                     (generic-server-error-server c) (generic-server-down-reason c)
                     (generic-server-error-handler c))))
  (:documentation "Signalled in a caller, at once, when the server exits
before replying; carries the server's exit reason."))

(define-condition generic-server-not-running (generic-server-down) ()
  (:report (lambda (c s)
             (format s "No server ~s is running (call ~s)."
                     (generic-server-error-server c) (generic-server-error-handler c))))
  (:documentation "Signalled at once by a call or cast to a server that is
not running (an unknown name or port, or a muproc that has exited)."))

(define-condition generic-call-to-self (generic-server-error) ()
  (:report (lambda (c s)
             (format s "Server ~a called itself (~s): it would wait for its own reply."
                     (generic-server-error-server c) (generic-server-error-handler c))))
  (:documentation "Signalled at once when a generic server calls itself."))

(define-condition generic-handler-error (generic-server-error)
  ((original :initarg :original :reader generic-handler-error-original))
  (:report (lambda (c s)
             (format s "Handler ~s of ~a failed: ~a"
                     (generic-server-error-handler c) (generic-server-error-server c)
                     (generic-handler-error-original c))))
  (:documentation "Signalled in a caller when the call's handler signalled
an error; GENERIC-HANDLER-ERROR-ORIGINAL is the handler's condition.  The
server keeps its state and goes on serving."))

(setf (documentation 'generic-server-error-server 'function)
      "The server reference the failed call or cast was given."
      (documentation 'generic-server-error-handler 'function)
      "The handler the failed call or cast named."
      (documentation 'generic-call-timeout-seconds 'function)
      "The seconds the timed-out call waited."
      (documentation 'generic-server-down-reason 'function)
      "The exit reason of the server that went down during the call."
      (documentation 'generic-handler-error-original 'function)
      "The condition the handler signalled.")

;;; Configuration

(defvar *muproc-generic-call-timeout* 5
  "Seconds a generic-server call waits for its reply (NIL: forever).
Bind it around a call to change one call's timeout.")

(defvar *muproc-generic-server-package* nil
  "Inside a generic server: the package that defines its type.")

(defvar *muproc-generic-server-port-name* nil
  "Inside a generic server: the port name it registered, or NIL.")

(defvar *default-server-names* (make-hash-table :test 'eq :synchronized t)
  "Package -> the name of its default server.")

(defmacro muproc-default-server-name (name)
  "Declare NAME (a symbol, or a keyword port name) as the server that the
client functions of the current package's handlers call by default."
  `(setf (gethash (find-package ,(package-name *package*)) *default-server-names*)
         ',name))

(defun default-server (package)
  (or (gethash (find-package package) *default-server-names*)
      (error 'generic-server-not-running :server (format nil "(default of ~a)" package)
                                         :reason :noproc)))

;;; The protocol.  A call is (:gs-call REQUEST), a cast (:gs-cast
;;; REQUEST), a reply (:gs-reply REPLY): one object each, so one handle
;;; per message rather than one per field (each handle is made, stored,
;;; looked up and released).

(defstruct (request (:constructor make-request (handler args &optional alias))
                    (:copier nil))
  "What a client asks of a server: HANDLER applied to ARGS, replied to
through ALIAS (NIL for a cast)."
  (handler nil :type symbol :read-only t)
  (args '() :type list :read-only t)
  (alias nil :read-only t))

(defstruct (reply (:constructor make-reply (alias status values))
                  (:copier nil))
  "A server's answer to the call whose alias is ALIAS: STATUS :NORMAL with
the handler's VALUES, or :ERROR with (condition)."
  (alias nil :read-only t)
  (status :normal :type keyword :read-only t)
  (values '() :type list :read-only t))

(defun reply-to-p (object alias)
  "True if OBJECT, a received :gs-reply value, answers the call of ALIAS."
  (and (reply-p object) (eq (reply-alias object) alias)))

;;; Client side

(defun resolve-server (server-ref)
  "The live muproc SERVER-REF designates, or NIL.  SERVER-REF is a muproc,
a registered port name, or a muproc's name: a keyword is looked up as a
port name first, then as a muproc name (as in cl-muproc, where a server
spawned under a keyword is called by it)."
  (let ((muproc (typecase server-ref
                  (muproc server-ref)
                  (keyword (or (muproc-get-registered-port server-ref)
                               (muproc-find server-ref)))
                  (symbol (muproc-find server-ref)))))
    (and muproc (muproc-alive-p muproc) muproc)))

(defun live-server-or-lose (server-ref handler)
  (or (resolve-server server-ref)
      (error 'generic-server-not-running :server server-ref :handler handler
                                         :reason :noproc)))

(defun handler-function-symbol (kind handler)
  "The symbol of the KIND (:CALL or :CAST) handler that HANDLER designates:
the name given to MUPROC-DEFINE-CALL-HANDLER (or -CAST-HANDLER), or the
handler's own CALL-HANDLER/NAME symbol, as the seed's expansion passes."
  (or (and (symbolp handler) (get handler (handler-indicator kind)))
      handler))

(defun handler-indicator (kind)
  "The property of a handler's name that holds the KIND handler's symbol."
  (ecase kind (:call 'call-handler) (:cast 'cast-handler)))

(defun call-server (operation server-ref handler args)
  "The values of the call of HANDLER (a handler symbol) with ARGS to
SERVER-REF; see MUPROC-GENERIC-CALL.  OPERATION names the operator the
user called, for the errors."
  (let* ((self (or (muproc-current-process)
                   (error 'muproc-not-in-muproc :operation operation)))
         (server (live-server-or-lose server-ref handler))
         (timeout *muproc-generic-call-timeout*)
         (server-monitor nil)
         (alias nil)
         (result nil))
    (when (eq server self)
      (error 'generic-call-to-self :server server-ref :handler handler))
    (unwind-protect
         (progn
           (setf server-monitor (muproc-monitor server)
                 alias (open-reply-alias self))
           (mumsg-send server :gs-call (make-request handler args alias))
           (setf result
                 (mumsg-receive (from :timeout timeout)
                   ((gs-reply) (reply-to-p gs-reply alias)
                    (setf alias nil) ; a reply alias: its delivery closed it
                    (cons (reply-status gs-reply) (reply-values gs-reply)))
                   ((terminated reason monitor) (muproc-msgtag= monitor server-monitor)
                    (setf server-monitor nil) ; its notice is consumed
                    (list :down reason))
                   (:timeout (list :timeout)))))
      (when alias (close-alias self alias))
      (when server-monitor (muproc-demonitor server-monitor :flush t)))
    (destructuring-bind (status . results) result
      (ecase status
        (:normal (values-list results))
        (:error (error 'generic-handler-error :server server-ref :handler handler
                                              :original (first results)))
        (:down (error 'generic-server-down :server server-ref :handler handler
                                           :reason (first results)))
        (:timeout (error 'generic-call-timeout :server server-ref :handler handler
                                               :timeout timeout))))))

(defun muproc-generic-call (server-ref handler &rest args)
  "Call HANDLER of the generic server SERVER-REF (a muproc, a muproc name
or a port name) with ARGS and return the values its handler returned.
HANDLER is the name given to MUPROC-DEFINE-CALL-HANDLER, or the handler's
CALL-HANDLER/NAME symbol.  Blocks at most *MUPROC-GENERIC-CALL-TIMEOUT*
seconds.  Signals GENERIC-SERVER-NOT-RUNNING at once if the server is not
running, GENERIC-SERVER-DOWN at once if it exits before replying,
GENERIC-CALL-TIMEOUT when the timeout passes, GENERIC-HANDLER-ERROR if the
handler signalled an error, GENERIC-CALL-TO-SELF if the server is the
caller.  However the call ends (even by a non-local exit), no late reply
and no notice of the server's monitor reach the caller's inport.  Must be
called inside a muproc."
  (call-server "MUPROC-GENERIC-CALL" server-ref
               (handler-function-symbol :call handler) args))

(defun close-alias (self alias)
  "Close ALIAS, then drop a reply that got through before it closed (a
call that ends without taking its reply: timeout, server down, unwind)."
  (close-reply-alias self alias)
  (mumsg-receive (from :timeout 0)
    ((gs-reply) (reply-to-p gs-reply alias) nil)))

(defun muproc-generic-cast (server-ref handler &rest args)
  "Send HANDLER of the generic server SERVER-REF (a muproc, a muproc name
or a port name) ARGS, without waiting.  HANDLER is the name given to
MUPROC-DEFINE-CAST-HANDLER, or the handler's CAST-HANDLER/NAME symbol.
Returns T.  Signals GENERIC-SERVER-NOT-RUNNING if the server is not
running."
  (let* ((handler (handler-function-symbol :cast handler))
         (server (live-server-or-lose server-ref handler)))
    (or (mumsg-send server :gs-cast (make-request handler args))
        (error 'generic-server-not-running :server server-ref :handler handler
                                           :reason :noproc))))

(defun muproc-generic-stop (server-ref &optional (reason :normal))
  "Make the generic server SERVER-REF call its TERMINATE and exit with
REASON, and wait (without a timeout, as OTP's stop) until it has.
Returns T.  Must be called inside a muproc."
  (unless (in-muproc-p)
    (error 'muproc-not-in-muproc :operation "MUPROC-GENERIC-STOP"))
  (let ((server (live-server-or-lose server-ref 'muproc-generic-stop))
        (*muproc-generic-call-timeout* nil)) ; a busy server is waited for, as in OTP
    (call-server "MUPROC-GENERIC-STOP" server '%stop (list reason))
    (muproc-wait-for-exit server)
    t))

;;; Handler definition

(defun lambda-list-call-arguments (lambda-list)
  "The forms passing the parameters of LAMBDA-LIST (required, &optional,
&rest) on to another function, and whether the last one is a &rest."
  (let ((forms '()) (rest nil) (mode :required))
    (dolist (item lambda-list)
      (case item
        (&optional (setf mode :optional))
        (&rest (setf mode :rest))
        (t (case mode
             (:rest (setf rest item))
             (t (push (if (consp item) (first item) item) forms))))))
    (values (nreverse forms) rest)))

(defun client-functions (name lambda-list handler kind)
  "The client functions NAME and NAME* of a handler.  They are not
exported: an export made here would make the package's DEFPACKAGE
disagree with it on the next compile or reload (a package-variance
warning, which fails COMPILE-FILE and ASDF).  List them in DEFPACKAGE's
:EXPORT to make them public."
  (let ((star (intern (format nil "~a*" (symbol-name name)) (symbol-package name)))
        (server (intern "SERVER-REF" :muproc.generic-server))
        (entry (ecase kind (:call 'muproc-generic-call) (:cast 'muproc-generic-cast))))
    (multiple-value-bind (args rest) (lambda-list-call-arguments lambda-list)
      (flet ((call (server-form)
               `(apply #',entry ,server-form ',handler ,@args ,rest)))
        `((defun ,name ,lambda-list
            ,(format nil "~:(~a~) the default server of ~a (see ~s)." kind
                     (package-name (symbol-package name)) handler)
            ,(call `(default-server ,(package-name *package*))))
          (defun ,star (,server ,@lambda-list)
            ,(format nil "~:(~a~) SERVER-REF (a muproc, muproc name or port name) ~
                          with handler ~s." kind handler)
            ,(call server)))))))

(defun handler-symbol (kind name)
  (intern (format nil "~a-HANDLER/~a" kind (symbol-name name)) (symbol-package name)))

(defun handler-definition (kind name state from lambda-list body)
  "The expansion of MUPROC-DEFINE-CALL-HANDLER or -CAST-HANDLER (KIND :CALL
or :CAST): the client functions, the handler KIND-HANDLER/NAME, and NAME's
KIND property naming the handler, by which MUPROC-GENERIC-CALL and -CAST
accept NAME itself."
  (let ((handler (handler-symbol (symbol-name kind) name)))
    `(progn
       ,@(client-functions name lambda-list handler kind)
       (defun ,handler (,state ,from ,@lambda-list)
         (declare (ignorable ,state ,from))
         ,@body)
       (setf (get ',name ',(handler-indicator kind)) ',handler)
       ',name)))

(defmacro muproc-define-call-handler (name (state from &rest lambda-list) &body body)
  "Define the call handler NAME of the current package's server type: BODY
runs in the server with STATE (the server's state), FROM (the calling
muproc) and the call's arguments bound by LAMBDA-LIST (required, &optional
and &rest parameters); its values are the reply.  Also defines the client
functions NAME (calls the package's default server) and NAME* (takes a
server reference first); unlike cl-muproc's, they are not exported (list
them in DEFPACKAGE's :EXPORT to make them public), so that the file can be
compiled and loaded again.  (muproc-generic-call server 'NAME args...)
calls the handler too.  Redefining the handler at the REPL takes effect on
the next call."
  (handler-definition :call name state from lambda-list body))

(defmacro muproc-define-cast-handler (name (state from &rest lambda-list) &body body)
  "Define the cast handler NAME of the current package's server type: BODY
runs in the server with STATE, FROM (the casting muproc, NIL if the cast
came from outside any muproc) and the cast's arguments bound by
LAMBDA-LIST; nothing is replied.  Also defines the client functions NAME
and NAME* (not exported, as for MUPROC-DEFINE-CALL-HANDLER), which return
T at once."
  (handler-definition :cast name state from lambda-list body))

;;; Server side

(defstruct (reply-token (:constructor make-reply-token (caller alias)))
  caller alias)

(defvar *current-reply* nil
  "Inside a call handler: where its reply goes, or NIL once deferred.")

(defvar *exit-after-handler* nil
  "Inside a handler: (list reason) once MUPROC-EXIT-AFTER-HANDLER was called.")

(defun muproc-exit-after-handler (&optional (reason :normal) &key unsettingp)
  "Inside a handler: once the handler has returned (and its reply, if a
call, was sent), make the server call TERMINATE and exit with REASON.
With UNSETTINGP true (cl-muproc's), cancel such an exit instead.  Returns
NIL."
  ;; Both lambda-list keywords, so that cl-muproc's (reason :unsettingp t)
  ;; and muproc's () and (reason) all work: SBCL's style warning about
  ;; the pair is moot here.
  (declare (sb-ext:muffle-conditions style-warning))
  (setf *exit-after-handler* (if unsettingp nil (list reason)))
  nil)

(defun muproc-generic-defer-reply ()
  "Inside a call handler: don't reply when the handler returns; return a
token that MUPROC-GENERIC-REPLY uses later, from this server or from any
muproc it hands the token to."
  (shiftf *current-reply* nil))

(defun muproc-generic-reply (token &rest values)
  "Reply VALUES to the call TOKEN (from MUPROC-GENERIC-DEFER-REPLY) stands
for.  Returns T if the caller was still waiting, NIL if it gave up or
already had its reply (a call takes one)."
  (send-reply token :normal values))

(defun send-reply (token status values)
  (send-through-alias (reply-token-caller token) (reply-token-alias token)
                      :gs-reply (make-reply (reply-token-alias token) status values)))

(defun server-function (package name)
  (let ((symbol (find-symbol name package)))
    (and symbol (fboundp symbol) (symbol-function symbol))))

(defun log-handler-error (handler condition)
  (muproc-log-errorstream "Handler ~s failed: ~a" handler condition))

(defun run-handler (handler function reply)
  "Apply FUNCTION to the server state etc.; reply to a call unless the
handler deferred; an error goes to the caller (or the log for a cast)."
  (let ((*current-reply* reply))
    (handler-case
        (let ((values (multiple-value-list (funcall function))))
          (when *current-reply*
            (send-reply *current-reply* :normal values)))
      (error (c)
        (log-handler-error handler c)
        (when *current-reply*
          (send-reply *current-reply* :error (list c)))))))

(defun serve (package cell)
  "Serve until the server exits; CELL's car holds the state (see
MUPROC-GENERIC-REPLACE-STATE)."
  (loop
    (let ((state (car cell))
          (*exit-after-handler* nil))
      (mumsg-receive (from)
        ((gs-call) (request-p gs-call)
         (let ((handler (request-handler gs-call))
               (args (request-args gs-call))
               (reply (make-reply-token from (request-alias gs-call))))
           (if (eq handler '%stop)
               (progn (send-reply reply :normal (list t))
                      (muproc-exit (first args)))
               (run-handler handler
                            (lambda () (apply (symbol-function handler) state from args))
                            reply))))
        ((gs-cast) (request-p gs-cast)
         (let ((handler (request-handler gs-cast)))
           (run-handler handler
                        (lambda () (apply (symbol-function handler) state from
                                          (request-args gs-cast)))
                        nil)))
        ((gs-system) (muproc.internal:system-request-p gs-system)
         (setf (car cell) (muproc.internal:run-system-request gs-system state)))
        ((terminated reason monitor) t
         (handle-unexpected package state *muproc-packet*))
        ((terminated reason) t
         ;; Only a server that traps exits gets here: a linked muproc's
         ;; exit (with :link) or an exit signal sent to the server.
         (let ((linked-exit (server-function package "LINKED-EXIT")))
           (cond (linked-exit
                  (funcall linked-exit state terminated reason))
                 ((mumsg-get *muproc-packet* :link)
                  (muproc-exit (list :linked-to-exit (and terminated (muproc-name terminated))
                                     :for-reason reason)))
                 (t (muproc-exit reason)))))
        (() t
         (handle-unexpected package state *muproc-packet*)))
      (when *exit-after-handler*
        (muproc-exit (first *exit-after-handler*))))))

(defun handle-unexpected (package state mumsg)
  (let ((handler (server-function package "UNHANDLED-MESSAGE")))
    (if handler
        (funcall handler state mumsg)
        (muproc-log-errorstream "Dropped unexpected message ~a" mumsg))))

(defun generic-start (package initargs port-name)
  (unless (muproc-current-process)
    (error 'muproc-not-in-muproc :operation "MUPROC-GENERIC-START"))
  (let* ((package (or (find-package package)
                      (error "No package ~s for MUPROC-GENERIC-START." package)))
         (initialize (or (server-function package "INITIALIZE")
                         (error "Package ~a defines no INITIALIZE function." package)))
         (*muproc-generic-server-package* package)
         (*muproc-generic-server-port-name* port-name))
    ;; As OTP: the name first, so a taken name runs no INITIALIZE.
    (when port-name
      (muproc-register-port-name port-name))
    (muproc.internal:note-generic-server package)
    (let ((cell (list (apply initialize initargs))))
      (unwind-protect (serve package cell)
        (let ((terminate (server-function package "TERMINATE")))
          (when terminate
            (funcall terminate (car cell))))))))

(defmacro muproc-generic-start (&key initargs (package nil package-p) port-name)
  "Run the current muproc as a generic server of the server type PACKAGE
(default: the package this form is read in): call its INITIALIZE with
INITARGS (a list) to get the state, register PORT-NAME if given, then
serve calls and casts in the order they arrive until the server exits.
TERMINATE (state) is called on every way out: MUPROC-GENERIC-STOP,
MUPROC-EXIT-AFTER-HANDLER, MUPROC-EXIT, an exit signal, an error.  A
handler error is reported to its caller and the server keeps serving with
its state.  When trapping exits, a linked muproc's exit calls LINKED-EXIT
(state terminated reason) if defined, else ends the server.  Other
messages go to UNHANDLED-MESSAGE (state mumsg) if defined, else are logged
and dropped.  Does not return normally."
  `(generic-start ,(if package-p package (package-name *package*)) ,initargs ,port-name))
