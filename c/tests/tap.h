/*
 * tap.h - a tiny TAP harness for the libmuproc C tests.
 *
 * A test program lists its cases in a table and ends with TAP_MAIN(table):
 *
 *   static void msg_roundtrip(void) { CHECK_OK(muproc_init(0, 0)); ...
 *                                     MUPROC_FINISH(); }
 *   static const struct tap_case cases[] = { TAP_CASE(msg_roundtrip),
 *                                            TAP_CASE_TIMEOUT(slow, 120) };
 *   TAP_MAIN(cases)
 *
 * Every case runs in a forked child, so a crash, a deadlock or a runtime
 * left in a bad state is confined to that case; the parent kills a child
 * that outlives its timeout (a hung case fails, it never hangs `make
 * check`).  Output is TAP on stdout: the plan `1..N`, then `ok N - name` or
 * `not ok N - name # reason`.  The program exits 0 only if every case
 * passed.
 *
 * CHECK* macros may be used from any thread: the first failure is recorded
 * (file:line and the failed expression) and ends the child at once, since
 * a case whose invariant broke cannot meaningfully go on.
 *
 *   ./test-msg                 run every case
 *   ./test-msg NAME...         run only the cases named
 *   MUPROC_TEST_NOFORK=1       run in-process (for a debugger); stops at
 *                              the first failure
 *   MUPROC_TEST_TIMEOUT_SCALE  multiply every timeout (slow machines);
 *                              under valgrind the default is 10, and
 *                              make check-tsan sets 5
 */
#ifndef MUPROC_TAP_H
#define MUPROC_TAP_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "muproc.h"

struct tap_case {
  const char *name;
  void (*fn)(void);
  unsigned timeout_s; /* 0: TAP_DEFAULT_TIMEOUT */
};
#define TAP_DEFAULT_TIMEOUT 30
#define TAP_CASE(fn) {#fn, fn, 0}
#define TAP_CASE_TIMEOUT(fn, secs) {#fn, fn, secs}

/* The first failure of a case.  Shared memory, because the child writes it
 * and dies right after: the parent reads it to explain `not ok`. */
struct tap_shared {
  atomic_int failed;
  char reason[512];
};
static struct tap_shared *tap_sh;

#define TAP_UNUSED __attribute__((unused))

static TAP_UNUSED int64_t tap_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Valgrind runs everything ~10-50x slower.  It announces itself through the
 * preload it puts into every client's environment. */
static TAP_UNUSED int tap_under_valgrind(void) {
  const char *p = getenv("LD_PRELOAD");
  return p && strstr(p, "vgpreload") != NULL;
}

static TAP_UNUSED double tap_timeout_scale(void) {
  const char *s = getenv("MUPROC_TEST_TIMEOUT_SCALE");
  double v = s ? atof(s) : 0;
  if (v > 0)
    return v;
  return tap_under_valgrind() ? 10 : 1;
}

static TAP_UNUSED void tap_diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static TAP_UNUSED void tap_diag(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  /* One locked stdio call per line, so lines of threads don't interleave. */
  printf("# %s\n", buf);
  fflush(stdout);
}

static void tap_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
static void tap_fail(const char *file, int line, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (atomic_exchange(&tap_sh->failed, 1) != 0) {
    /* Another thread is already reporting; it will end the process. */
    for (;;)
      pause();
  }
  snprintf(tap_sh->reason, sizeof tap_sh->reason, "%s:%d: %s", file, line,
           msg);
  tap_diag("%s", tap_sh->reason);
  _exit(1);
}

/* "-3 (MUPROC_ESRCH)" for error codes, the bare number otherwise. */
static TAP_UNUSED const char *tap_code(long long v, char *buf, size_t n) {
  const char *name =
      (v < 0 && v >= MUPROC_ESTATE) ? muproc_err_name((int)v) : NULL;
  if (name)
    snprintf(buf, n, "%lld (%s)", v, name);
  else
    snprintf(buf, n, "%lld", v);
  return buf;
}

#define CHECK(expr)                                                            \
  do {                                                                         \
    if (!(expr))                                                               \
      tap_fail(__FILE__, __LINE__, "CHECK(%s) failed", #expr);                 \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_)                                                              \
      tap_fail(__FILE__, __LINE__, "CHECK_EQ_INT(%s, %s): %lld != %lld", #a,  \
               #b, a_, b_);                                                    \
  } while (0)

/* For pids, handles, refs: unsigned, printed in hex. */
#define CHECK_EQ_U64(a, b)                                                     \
  do {                                                                         \
    unsigned long long a_ = (unsigned long long)(a),                           \
                       b_ = (unsigned long long)(b);                           \
    if (a_ != b_)                                                              \
      tap_fail(__FILE__, __LINE__, "CHECK_EQ_U64(%s, %s): %#llx != %#llx",    \
               #a, #b, a_, b_);                                                \
  } while (0)

/* A libmuproc return code: shows error names on mismatch. */
#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    long long got_ = (long long)(expr), want_ = (long long)(want);             \
    char gb_[64], wb_[64];                                                     \
    if (got_ != want_)                                                         \
      tap_fail(__FILE__, __LINE__, "%s: got %s, want %s", #expr,               \
               tap_code(got_, gb_, sizeof gb_),                                \
               tap_code(want_, wb_, sizeof wb_));                              \
  } while (0)
#define CHECK_OK(expr) CHECK_RC(expr, 0)

#define CHECK_MEM_EQ(p, q, n)                                                  \
  do {                                                                         \
    if (memcmp((p), (q), (n)) != 0)                                            \
      tap_fail(__FILE__, __LINE__, "CHECK_MEM_EQ(%s, %s, %s) failed", #p, #q,  \
               #n);                                                            \
  } while (0)

/* Waiting for a state another thread reaches, by polling with a bound:
 * only where no message or condition variable can tell us (e.g. "that
 * thread is now blocked in muproc_recv"). */
static TAP_UNUSED void tap_pause(void) {
  struct timespec ts = {0, 100000};
  nanosleep(&ts, NULL);
}
#define WAIT_UNTIL(cond, secs)                                                 \
  do {                                                                         \
    int64_t wdl_ =                                                             \
        tap_now_ns() + (int64_t)((secs)*1e9 * tap_timeout_scale());            \
    while (!(cond)) {                                                          \
      if (tap_now_ns() > wdl_)                                                 \
        tap_fail(__FILE__, __LINE__, "WAIT_UNTIL(%s) timed out after %ss",     \
                 #cond, #secs);                                                \
      tap_pause();                                                             \
    }                                                                          \
  } while (0)

/* ---- libmuproc helpers ------------------------------------------------ */

static TAP_UNUSED muproc_atom_t tap_atom_at(const char *file, int line,
                                            const char *name) {
  int64_t a = muproc_atom(name, strlen(name));
  if (a <= 0)
    tap_fail(file, line, "muproc_atom(\"%s\") = %lld", name, (long long)a);
  return (muproc_atom_t)a;
}
#define ATOM(name) tap_atom_at(__FILE__, __LINE__, name)

static TAP_UNUSED pthread_t tap_thread_at(const char *file, int line,
                                          void *(*fn)(void *), void *arg) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, fn, arg);
  if (rc != 0)
    tap_fail(file, line, "pthread_create: %s", strerror(rc));
  return t;
}
#define THREAD(fn, arg) tap_thread_at(__FILE__, __LINE__, fn, arg)
#define JOIN(t) CHECK_EQ_INT(pthread_join((t), NULL), 0)

/* End of every case: nothing may be left behind.  Before shutdown: no
 * process, Lisp-object handle, message, registered name, timer, link or
 * monitor, the calling
 * thread unbound, and every remaining runtime thread a parked worker (a C
 * worker may still be on its way to park right after muproc_wait_c_idle).
 * Then shutdown must succeed and join those workers: no thread survives. */
static TAP_UNUSED void tap_muproc_finish(const char *file, int line) {
  static const struct {
    int what;
    const char *name;
  } counters[] = {{MUPROC_STAT_PROCS, "PROCS"},
                  {MUPROC_STAT_HANDLES, "HANDLES"},
                  {MUPROC_STAT_MESSAGES, "MESSAGES"},
                  {MUPROC_STAT_REGISTERED, "REGISTERED"},
                  {MUPROC_STAT_TIMERS, "TIMERS"},
                  {MUPROC_STAT_LINKS, "LINKS"},
                  {MUPROC_STAT_MONITORS, "MONITORS"},
                  {MUPROC_STAT_KEY_INDEXES, "KEY_INDEXES"},
                  {MUPROC_STAT_THREADS, "THREADS"},
                  {MUPROC_STAT_PARKED, "PARKED"}};
  enum { BEFORE_SHUTDOWN = 8 }; /* all but the thread counters */
  size_t i;
  int64_t dl, v;
  int rc;
  char b[64];

  for (i = 0; i < BEFORE_SHUTDOWN; i++)
    if ((v = muproc_stat(counters[i].what)) != 0)
      tap_fail(file, line, "leak before shutdown: STAT_%s = %lld",
               counters[i].name, (long long)v);
  if (muproc_self() != 0)
    tap_fail(file, line, "calling thread still bound to a process");
  dl = tap_now_ns() + (int64_t)(10e9 * tap_timeout_scale());
  while (muproc_stat(MUPROC_STAT_THREADS) != muproc_stat(MUPROC_STAT_PARKED)) {
    if (tap_now_ns() > dl)
      tap_fail(file, line, "runtime threads not parked: THREADS %lld PARKED "
               "%lld",
               (long long)muproc_stat(MUPROC_STAT_THREADS),
               (long long)muproc_stat(MUPROC_STAT_PARKED));
    tap_pause();
  }
  if ((rc = muproc_shutdown()) != 0)
    tap_fail(file, line, "muproc_shutdown() = %s", tap_code(rc, b, sizeof b));
  for (i = 0; i < sizeof counters / sizeof counters[0]; i++)
    if ((v = muproc_stat(counters[i].what)) != 0)
      tap_fail(file, line, "after shutdown: STAT_%s = %lld", counters[i].name,
               (long long)v);
}
#define MUPROC_FINISH() tap_muproc_finish(__FILE__, __LINE__)

/* ---- the runner ------------------------------------------------------- */

/* Run one case in a child; returns 1 if it passed.  REASON gets why not. */
static int tap_run_forked(const struct tap_case *c, char *reason, size_t n) {
  sigset_t chld, old;
  int64_t deadline;
  unsigned secs = c->timeout_s ? c->timeout_s : TAP_DEFAULT_TIMEOUT;
  double scaled = secs * tap_timeout_scale();
  int status = 0, timed_out = 0;
  pid_t pid;

  /* SIGCHLD blocked: sigtimedwait below then sleeps until the child ends
   * or the timeout, with no handler and no lost wake-up. */
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);
  fflush(stdout); /* or the child would print our buffer again */
  pid = fork();
  if (pid < 0) {
    snprintf(reason, n, "fork failed");
    return 0;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    c->fn();
    fflush(stdout);
    exit(0); /* not _exit: let LeakSanitizer and valgrind check at exit */
  }
  deadline = tap_now_ns() + (int64_t)(scaled * 1e9);
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    int64_t left = deadline - tap_now_ns();
    struct timespec ts;
    if (r == pid)
      break;
    if (left <= 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      timed_out = 1;
      break;
    }
    /* Wake at least every 100 ms: a SIGCHLD merged with an earlier one
     * must not make us wait for the full timeout. */
    if (left > 100000000)
      left = 100000000;
    ts.tv_sec = left / 1000000000;
    ts.tv_nsec = left % 1000000000;
    sigtimedwait(&chld, NULL, &ts);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);

  if (timed_out)
    snprintf(reason, n, "timeout: killed after %.0f s%s%s", scaled,
             tap_sh->failed ? "; " : "", tap_sh->failed ? tap_sh->reason : "");
  else if (WIFSIGNALED(status))
    snprintf(reason, n, "crashed: signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else if (tap_sh->failed)
    snprintf(reason, n, "%s", tap_sh->reason);
  else if (WEXITSTATUS(status) != 0)
    snprintf(reason, n, "exit status %d (sanitizer or valgrind report on "
             "stderr?)",
             WEXITSTATUS(status));
  else
    return 1;
  return 0;
}

static TAP_UNUSED int tap_main(int argc, char **argv,
                               const struct tap_case *cases, size_t n) {
  static struct tap_shared nofork_shared;
  int nofork = getenv("MUPROC_TEST_NOFORK") != NULL;
  size_t i, planned = 0, num = 0;
  int all_ok = 1, a;

  for (i = 0; i < n; i++) {
    int wanted = argc < 2;
    for (a = 1; a < argc; a++)
      wanted |= strcmp(argv[a], cases[i].name) == 0;
    planned += wanted;
  }
  printf("1..%zu\n", planned);
  fflush(stdout);

  tap_sh = nofork ? &nofork_shared
                  : mmap(NULL, sizeof *tap_sh, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (tap_sh == MAP_FAILED) {
    printf("Bail out! mmap failed\n");
    return 1;
  }
  for (i = 0; i < n; i++) {
    char reason[600];
    int wanted = argc < 2, ok;
    for (a = 1; a < argc; a++)
      wanted |= strcmp(argv[a], cases[i].name) == 0;
    if (!wanted)
      continue;
    num++;
    atomic_store(&tap_sh->failed, 0);
    tap_sh->reason[0] = 0;
    if (nofork) {
      cases[i].fn(); /* a failure exits from tap_fail */
      ok = 1;
    } else {
      ok = tap_run_forked(&cases[i], reason, sizeof reason);
    }
    if (ok) {
      printf("ok %zu - %s\n", num, cases[i].name);
    } else {
      char *p;
      for (p = reason; *p; p++) /* a TAP line must stay one line */
        if (*p == '\n' || *p == '#')
          *p = ' ';
      printf("not ok %zu - %s # %s\n", num, cases[i].name, reason);
      all_ok = 0;
    }
    fflush(stdout);
  }
  return all_ok ? 0 : 1;
}

#define TAP_MAIN(table)                                                        \
  int main(int argc, char **argv) {                                            \
    return tap_main(argc, argv, table, sizeof table / sizeof table[0]);        \
  }

#endif /* MUPROC_TAP_H */
