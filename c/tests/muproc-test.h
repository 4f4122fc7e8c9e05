/*
 * muproc-test.h - muproc-specific helpers shared by the C test programs.
 *
 * tap.h is the generic harness (cases, forking, CHECK*, THREAD, ATOM); this
 * header holds what several test-*.c programs used to copy: the atoms they
 * all need, processes created or bound to the calling thread, C muprocs
 * spawned, {:n N} messages, receiving the next message or signal, reading
 * the pairs of a notice (exit signal, trapped exit), waiting for a state,
 * and the exit race that test-link and test-monitor both run.  One copy
 * means a fix to a helper (say a stricter notice check) reaches every test.
 *
 * Everything is static (and TAP_UNUSED, or a macro): each test program is a
 * single translation unit that includes this header once and uses only
 * some of it.  The helpers fail through CHECK*, so a failure inside one is
 * reported at this header's line with the failed call spelled out.
 */
#ifndef MUPROC_TEST_H
#define MUPROC_TEST_H

#include "tap.h"

/* ---- build speed ------------------------------------------------------- */

/* ThreadSanitizer (like valgrind) is 10x-50x slower: tests that size their
 * work take the smaller default there. */
#if defined(__SANITIZE_THREAD__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

static TAP_UNUSED int slow(void) { return SLOW_BUILD || tap_under_valgrind(); }

/* A size from the environment variable NAME if it is a positive number,
 * else DFLT, or SLOW_DFLT on a slow build (see slow()). */
static TAP_UNUSED int env_size(const char *name, int dflt, int slow_dflt) {
  const char *s = getenv(name);
  int v = s ? atoi(s) : 0;
  if (v > 0)
    return v;
  return slow() ? slow_dflt : dflt;
}

/* ---- the runtime and common atoms -------------------------------------- */

/* Atoms used by more than one test program: reasons (a_*) and keys (k_*).
 * Set by test_init, since every case starts a fresh runtime. */
static muproc_atom_t a_normal, a_noproc, a_true, a_boom, a_bye, k_from,
    k_reason, k_link, k_terminated, k_monitor, k_n;

/* muproc_init (MAX_PROCS 0: the default) and the atoms above; a test's own
 * init_ok calls this and then interns its own atoms. */
static TAP_UNUSED void test_init(uint32_t max_procs) {
  CHECK_OK(muproc_init(max_procs, 0));
  a_normal = ATOM("normal");
  a_noproc = ATOM("noproc");
  a_true = ATOM("true");
  a_boom = ATOM("boom");
  a_bye = ATOM("bye");
  k_from = ATOM("from");
  k_reason = ATOM("reason");
  k_link = ATOM("link");
  k_terminated = ATOM("terminated");
  k_monitor = ATOM("monitor");
  k_n = ATOM("n");
}

/* A deadline S seconds from now, stretched for slow machines. */
static TAP_UNUSED int64_t in_secs(double s) {
  return muproc_now_ns() + (int64_t)(s * 1e9 * tap_timeout_scale());
}

/* A short busy wait, to shift the timing of races. */
static TAP_UNUSED void spin(unsigned n) {
  for (volatile unsigned i = 0; i < n; i++)
    ;
}

/* ---- processes --------------------------------------------------------- */

/* A Lisp-kind process nobody runs yet (state CREATED); any thread may exit
 * it, so it stands for a process that never got to run. */
static TAP_UNUSED muproc_pid_t created(uint32_t capacity) {
  muproc_pid_t p = 0;
  CHECK_OK(muproc_proc_create(0, MUPROC_KIND_LISP, capacity, &p));
  return p;
}

/* A Lisp-kind process run by the calling thread. */
static TAP_UNUSED muproc_pid_t bind_self(uint32_t capacity) {
  muproc_pid_t p = created(capacity);
  CHECK_OK(muproc_proc_start(p));
  return p;
}

/* Exit P with the atom REASON and drop the caller's reference. */
static TAP_UNUSED void exit_release(muproc_pid_t p, muproc_atom_t reason) {
  CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, reason));
  CHECK_OK(muproc_proc_release(p));
}

/* A C muproc running FN(ARG) on a pooled worker, registered as NAME
 * unless 0. */
static TAP_UNUSED muproc_pid_t spawn_c(muproc_atom_t name, muproc_fn_t fn,
                                       void *arg) {
  muproc_pid_t p = 0;
  CHECK_OK(muproc_spawn_c(name, fn, arg, 0, &p));
  return p;
}

/* A pid whose process exited and was released, and whose slot now holds
 * another process, *REUSE (state CREATED, the caller's to exit): a stale
 * pid that must not reach the newcomer. */
static TAP_UNUSED muproc_pid_t stale_pid(muproc_pid_t *reuse) {
  muproc_pid_t stale = created(0), r;
  int tries = 0;
  exit_release(stale, a_normal);
  for (;;) {
    CHECK(++tries < 100);
    r = created(0);
    if (MUPROC_PID_NUMBER(r) == MUPROC_PID_NUMBER(stale))
      break;
    exit_release(r, a_normal);
  }
  CHECK(r != stale);
  *reuse = r;
  return stale;
}

/* A C muproc (spawn_c) that receives one message, then returns. */
static TAP_UNUSED void block_until_told(void *arg) {
  muproc_pid_t self = muproc_self();
  muproc_msg_t *m = NULL;
  (void)arg;
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_FOREVER, &m));
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
}

/* Poll (bounded by SECS, see WAIT_UNTIL) until PID is in STATE, e.g. until
 * a receiver blocks (MUPROC_S_WAITING).  A macro, so that a timeout is
 * reported at the caller's line. */
#define WAIT_STATE(pid, state, secs)                                           \
  WAIT_UNTIL(muproc_proc_state(pid) == (state), secs)

/* ---- messages ---------------------------------------------------------- */

/* A message {:n N}. */
static TAP_UNUSED muproc_msg_t *msg_n(int64_t n) {
  muproc_msg_t *m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_int(m, k_n, n));
  return m;
}

/* The integer under :n (which must be there). */
static TAP_UNUSED int64_t n_of(const muproc_msg_t *m) {
  int i = muproc_msg_find(m, k_n);
  CHECK(i >= 0);
  return muproc_msg_int(m, (uint32_t)i);
}

/* The atom under :reason of a notice (which must be there). */
static TAP_UNUSED muproc_atom_t reason_of(const muproc_msg_t *m) {
  int i = muproc_msg_find(m, k_reason);
  CHECK(i >= 0);
  return muproc_msg_atom(m, (uint32_t)i);
}

/* The next signal of SELF (the caller's process), owned by the caller. */
static TAP_UNUSED muproc_msg_t *next_signal(muproc_pid_t self,
                                            int64_t deadline) {
  muproc_msg_t *m = NULL;
  CHECK_RC(muproc_recv_signal(self, deadline, &m), MUPROC_SIGNALLED);
  return m;
}

/* The oldest ordinary message of SELF, taken; no signal may come first. */
static TAP_UNUSED muproc_msg_t *next_msg(muproc_pid_t self, int64_t deadline) {
  muproc_msg_t *m = NULL;
  CHECK_RC(muproc_recv(self, NULL, NULL, deadline, &m), 0);
  CHECK_OK(muproc_recv_take(self, m));
  return m;
}

/* Nothing queued for P: no message, no signal. */
static TAP_UNUSED void check_empty(muproc_pid_t p) {
  CHECK_EQ_INT(muproc_mbox_count(p), 0);
  CHECK_EQ_INT(muproc_mbox_signal_count(p), 0);
}

/* ---- reading notices --------------------------------------------------- */

/* The value of pair I of M as TYPE, widened to 64 bits for comparing. */
static TAP_UNUSED uint64_t term_value(const muproc_msg_t *m, uint32_t i,
                                      int type) {
  switch (type) {
  case MUPROC_T_INT: return (uint64_t)muproc_msg_int(m, i);
  case MUPROC_T_ATOM: return muproc_msg_atom(m, i);
  case MUPROC_T_PID: return muproc_msg_pid(m, i);
  case MUPROC_T_REF: return muproc_msg_ref(m, i);
  case MUPROC_T_HANDLE: return muproc_msg_handle(m, i);
  default: return 0;
  }
}

/* M has KEY, of TYPE, equal to VALUE; else fail at FILE:LINE. */
static TAP_UNUSED void check_term(const char *file, int line,
                                  const muproc_msg_t *m, muproc_atom_t key,
                                  int type, uint64_t value) {
  int i = muproc_msg_find(m, key);
  int t;
  uint64_t v;
  if (i < 0)
    tap_fail(file, line, "notice has no key '%s'", muproc_atom_name(key, NULL));
  t = muproc_msg_type(m, (uint32_t)i);
  if (t != type)
    tap_fail(file, line, "notice key '%s': type %d, want %d",
             muproc_atom_name(key, NULL), t, type);
  v = term_value(m, (uint32_t)i, type);
  if (v != value)
    tap_fail(file, line, "notice key '%s': value %#llx, want %#llx",
             muproc_atom_name(key, NULL), (unsigned long long)v,
             (unsigned long long)value);
}

/* M has no KEY; else fail at FILE:LINE. */
static TAP_UNUSED void check_no_key(const char *file, int line,
                                    const muproc_msg_t *m, muproc_atom_t key) {
  if (muproc_msg_find(m, key) >= 0)
    tap_fail(file, line, "notice has an unexpected key '%s'",
             muproc_atom_name(key, NULL));
}

/* What exit signals and trapped exits share: reason: RT/RV, and link: true
 * exactly when LINK. */
static TAP_UNUSED void check_reason_link(const char *file, int line,
                                         const muproc_msg_t *m, int rt,
                                         uint64_t rv, int link) {
  check_term(file, line, m, k_reason, rt, rv);
  if (link)
    check_term(file, line, m, k_link, MUPROC_T_ATOM, a_true);
  else
    check_no_key(file, line, m, k_link);
}

/* An exit signal: kind EXIT, from: FROM  reason: RT/RV, and link: true
 * exactly when LINK. */
static TAP_UNUSED void check_exit_signal(const char *file, int line,
                                         const muproc_msg_t *m,
                                         muproc_pid_t from, int rt,
                                         uint64_t rv, int link) {
  if (muproc_msg_kind(m) != MUPROC_K_EXIT)
    tap_fail(file, line, "kind %d, want MUPROC_K_EXIT", muproc_msg_kind(m));
  check_term(file, line, m, k_from, MUPROC_T_PID, from);
  check_reason_link(file, line, m, rt, rv, link);
  check_no_key(file, line, m, k_terminated);
}
#define CHECK_EXIT_SIGNAL(m, from, rt, rv, link)                               \
  check_exit_signal(__FILE__, __LINE__, m, from, rt, rv, link)

/* A trapped exit: an ordinary message  terminated: FROM  reason: RT/RV,
 * plus link: true exactly when LINK (it came over a link); never
 * 'monitor' or 'from'. */
static TAP_UNUSED void check_trapped(const char *file, int line,
                                     const muproc_msg_t *m, muproc_pid_t from,
                                     int rt, uint64_t rv, int link) {
  if (muproc_msg_kind(m) != MUPROC_K_MESSAGE)
    tap_fail(file, line, "kind %d, want MUPROC_K_MESSAGE", muproc_msg_kind(m));
  check_term(file, line, m, k_terminated, MUPROC_T_PID, from);
  check_reason_link(file, line, m, rt, rv, link);
  check_no_key(file, line, m, k_monitor);
  check_no_key(file, line, m, k_from);
}
#define CHECK_TRAPPED(m, from, rt, rv, link)                                   \
  check_trapped(__FILE__, __LINE__, m, from, rt, rv, link)

/* ---- a race with an exit ------------------------------------------------ */

/* Each round the main thread creates a process A (state CREATED) and the
 * race_exiter thread starts it; both pass b0 and b1 (race_go), then the
 * exiter exits A with reason bye and releases it while the main thread
 * does what races the exit (link, unlink, monitor, demonitor); b2 ends the
 * round.  Odd rounds the exiter spins first, even rounds the main thread.
 * MUPROC_TEST_ITERS sets the rounds (default 3000, 300 on slow builds). */
struct race {
  pthread_barrier_t b0, b1, b2;
  muproc_pid_t a;
  int iters;
  pthread_t exiter;
};

static TAP_UNUSED void *race_exiter(void *arg) {
  struct race *r = arg;
  int i;
  for (i = 0; i < r->iters; i++) {
    pthread_barrier_wait(&r->b0);
    CHECK_OK(muproc_proc_start(r->a));
    pthread_barrier_wait(&r->b1);
    if (i % 2)
      spin((unsigned)(i * 7919) % 2000);
    CHECK_OK(muproc_proc_exit(r->a, MUPROC_T_ATOM, a_bye));
    CHECK_OK(muproc_proc_release(r->a));
    pthread_barrier_wait(&r->b2);
  }
  return NULL;
}

static TAP_UNUSED void race_init(struct race *r, int iters) {
  memset(r, 0, sizeof *r);
  r->iters = iters;
  CHECK_EQ_INT(pthread_barrier_init(&r->b0, NULL, 2), 0);
  CHECK_EQ_INT(pthread_barrier_init(&r->b1, NULL, 2), 0);
  CHECK_EQ_INT(pthread_barrier_init(&r->b2, NULL, 2), 0);
}

static TAP_UNUSED void race_destroy(struct race *r) {
  pthread_barrier_destroy(&r->b0);
  pthread_barrier_destroy(&r->b1);
  pthread_barrier_destroy(&r->b2);
}

/* Set up R and start its exiter thread. */
static TAP_UNUSED void race_begin(struct race *r) {
  race_init(r, env_size("MUPROC_TEST_ITERS", 3000, 300));
  r->exiter = THREAD(race_exiter, r);
}

/* The main thread's start of round I: past b0 and b1, then (even rounds)
 * a spin, so that either side may come first. */
static TAP_UNUSED void race_go(struct race *r, int i) {
  pthread_barrier_wait(&r->b0);
  pthread_barrier_wait(&r->b1);
  if (i % 2 == 0)
    spin((unsigned)(i * 7919) % 2000);
}

/* After the last round: join the exiter, free the barriers. */
static TAP_UNUSED void race_end(struct race *r) {
  JOIN(r->exiter);
  race_destroy(r);
}

#endif /* MUPROC_TEST_H */
