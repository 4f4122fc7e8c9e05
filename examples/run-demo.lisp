;;;; Run: MUPROC_LIBDIR=$PWD/c/.libs sbcl --noinform --non-interactive --no-sysinit --no-userinit --load examples/run-demo.lisp
;;;; run-demo.lisp - the seed's examples, one after another (./quickstart demo).
;;;;
;;;; Prints a heading line, "== NAME (seed: ...)", before the transcript of
;;;; each example; examples/NAME.lisp holds its code.

(load (merge-pathnames "load-muproc.lisp" *load-truename*))

(loop for (name seed) in '(("area-server" "examples 6 and 7, Area Server and Area Client")
                           ("named-server" "example 8, Named Server")
                           ("ping-pong" "'ping-pong', muproc"))
      do (format t "== ~a (seed: ~a)~%" name seed)
         (finish-output)
         (funcall (muproc-examples:load-example name)))
