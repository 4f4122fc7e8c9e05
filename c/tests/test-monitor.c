/* test-monitor.c - monitors: the DOWN message  terminated: T  reason: R
 * monitor: REF  (an ordinary message, never an exit signal), noproc for a
 * dead target, demonitor before and after the DOWN and racing the exit,
 * monitors dropped with their watcher, DOWN past a full mailbox.
 *
 * Processes are C muprocs (muproc_spawn_c) or Lisp-kind processes bound
 * to plain threads (muproc_proc_create + muproc_proc_start); a process
 * still in state CREATED stands for one that never got to run (any
 * thread may exit it).
 *
 * MUPROC_TEST_ITERS sets the rounds of the race cases (default 3000, 300
 * under ThreadSanitizer and valgrind). */
#include "muproc-test.h"

static void init_ok(uint32_t max_procs) { test_init(max_procs); }

/* A DOWN: an ordinary message  terminated: T  reason: RT/RV  monitor: REF,
 * without 'from' or 'link'. */
static void check_down(const char *file, int line, const muproc_msg_t *m,
                       muproc_pid_t target, int rt, uint64_t rv,
                       uint64_t ref) {
  if (muproc_msg_kind(m) != MUPROC_K_MESSAGE)
    tap_fail(file, line, "kind %d, want MUPROC_K_MESSAGE", muproc_msg_kind(m));
  check_term(file, line, m, k_terminated, MUPROC_T_PID, target);
  check_term(file, line, m, k_reason, rt, rv);
  check_term(file, line, m, k_monitor, MUPROC_T_REF, ref);
  check_no_key(file, line, m, k_from);
  check_no_key(file, line, m, k_link);
}
#define CHECK_DOWN(m, target, rt, rv, ref)                                     \
  check_down(__FILE__, __LINE__, m, target, rt, rv, ref)

/* The ref of a DOWN. */
static uint64_t ref_of(const muproc_msg_t *m) {
  int i = muproc_msg_find(m, k_monitor);
  CHECK(i >= 0);
  CHECK_EQ_INT(muproc_msg_type(m, (uint32_t)i), MUPROC_T_REF);
  return muproc_msg_ref(m, (uint32_t)i);
}

/* ---- the DOWN message -------------------------------------------------- */

/* A thread that runs a process and exits it with an integer reason once
 * told (a message {n: REASON}). */
static void *exit_when_told(void *arg) {
  muproc_pid_t p = *(muproc_pid_t *)arg;
  muproc_msg_t *m = NULL;
  int64_t reason;
  CHECK_OK(muproc_proc_start(p));
  CHECK_OK(muproc_recv(p, NULL, NULL, MUPROC_FOREVER, &m));
  CHECK_OK(muproc_recv_take(p, m));
  reason = n_of(m);
  muproc_msg_free(m);
  CHECK_OK(muproc_proc_exit(p, MUPROC_T_INT, (uint64_t)reason));
  CHECK_OK(muproc_proc_release(p));
  return NULL;
}

static void monitor_down(void) {
  muproc_pid_t self, t = 0, u = 0;
  uint64_t ref = 0, ref2 = 0;
  muproc_msg_t *m;
  pthread_t th;

  init_ok(0);
  self = bind_self(0);

  /* A C muproc that returns: reason normal. */
  t = spawn_c(0, block_until_told, NULL);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK(ref != 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 1);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0); /* one-way, no link */
  CHECK_OK(muproc_send(t, msg_n(0)));
  m = next_msg(self, in_secs(10)); /* no signal comes first */
  CHECK_DOWN(m, t, MUPROC_T_ATOM, a_normal, ref);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  CHECK_OK(muproc_wait_c_idle(in_secs(10)));
  CHECK_EQ_INT(muproc_proc_state(self), MUPROC_S_RUNNING);
  check_empty(self);

  /* A thread-bound process, other reason; the target may be monitored
   * before it starts.  Monitoring never makes an exit signal, trapping
   * or not. */
  u = created(0);
  CHECK_OK(muproc_monitor(self, u, &ref2));
  CHECK(ref2 != ref && ref2 != 0);
  th = THREAD(exit_when_told, &u);
  CHECK_OK(muproc_send(u, msg_n(-3)));
  JOIN(th);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 0);
  CHECK_EQ_INT(muproc_mbox_count(self), 1);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_DOWN(m, u, MUPROC_T_INT, (uint64_t)-3, ref2);
  muproc_msg_free(m);
  check_empty(self);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Each monitor is its own: two monitors, two refs, two DOWNs, in the
 * order the messages were queued after older ones. */
static void monitor_twice(void) {
  muproc_pid_t self, t;
  uint64_t r1 = 0, r2 = 0;
  muproc_msg_t *m;
  int got1 = 0, got2 = 0, i;

  init_ok(0);
  self = bind_self(0);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &r1));
  CHECK_OK(muproc_monitor(self, t, &r2));
  CHECK(r1 != r2);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 2);
  CHECK_OK(muproc_send(self, msg_n(7)));
  exit_release(t, a_bye);
  CHECK_EQ_INT(muproc_mbox_count(self), 3);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_EQ_INT(n_of(m), 7);
  muproc_msg_free(m);
  for (i = 0; i < 2; i++) {
    uint64_t r;
    m = next_msg(self, MUPROC_NOWAIT);
    r = ref_of(m);
    CHECK(r == r1 || r == r2);
    CHECK_DOWN(m, t, MUPROC_T_ATOM, a_bye, r);
    got1 += r == r1;
    got2 += r == r2;
    muproc_msg_free(m);
  }
  CHECK(got1 == 1 && got2 == 1);
  CHECK_RC(muproc_demonitor(self, r1), MUPROC_ENOENT);
  CHECK_RC(muproc_demonitor(self, r2), MUPROC_ENOENT);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Monitoring a process that is not alive: an immediate DOWN with reason
 * noproc and the ref returned. */
static void check_noproc_monitor(muproc_pid_t self, muproc_pid_t dead) {
  muproc_msg_t *m;
  uint64_t ref = 0;
  CHECK_OK(muproc_monitor(self, dead, &ref));
  CHECK(ref != 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 0);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_DOWN(m, dead, MUPROC_T_ATOM, a_noproc, ref);
  muproc_msg_free(m);
  CHECK_RC(muproc_demonitor(self, ref), MUPROC_ENOENT); /* already fired */
  check_empty(self);
}

static void monitor_noproc(void) {
  muproc_pid_t self, exited, released, stale, reuse = 0, never, x;
  uint64_t ref = 0;

  init_ok(8);
  self = bind_self(1);
  CHECK_OK(muproc_send(self, msg_n(1))); /* full: noproc comes anyway */
  CHECK_OK(muproc_monitor(self, 0x7fffffff, &ref));
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  {
    muproc_msg_t *m = next_msg(self, MUPROC_NOWAIT);
    CHECK_EQ_INT(n_of(m), 1);
    muproc_msg_free(m);
    m = next_msg(self, MUPROC_NOWAIT);
    CHECK_DOWN(m, 0x7fffffff, MUPROC_T_ATOM, a_noproc, ref);
    muproc_msg_free(m);
  }

  exited = created(0);
  CHECK_OK(muproc_proc_exit(exited, MUPROC_T_ATOM, a_normal));
  check_noproc_monitor(self, exited);
  CHECK_OK(muproc_proc_release(exited));

  released = created(0);
  exit_release(released, a_normal);
  check_noproc_monitor(self, released);

  stale = stale_pid(&reuse);
  check_noproc_monitor(self, stale);
  exit_release(reuse, a_boom); /* not monitored: nothing for us */
  check_empty(self);

  never = ((uint64_t)3 << 32) | 6000;
  check_noproc_monitor(self, never);

  /* Errors, and nothing sent for them. */
  x = created(0);
  CHECK_RC(muproc_monitor(0, x, &ref), MUPROC_EINVAL);
  CHECK_RC(muproc_monitor(self, 0, &ref), MUPROC_EINVAL);
  CHECK_RC(muproc_monitor(self, x, NULL), MUPROC_EINVAL);
  CHECK_OK(muproc_proc_exit(x, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_monitor(x, self, &ref), MUPROC_ESRCH); /* watcher exited */
  CHECK_OK(muproc_proc_release(x));
  CHECK_RC(muproc_monitor(x, self, &ref), MUPROC_ESRCH); /* released */
  check_empty(self);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- demonitor --------------------------------------------------------- */

static void demonitor_before_exit(void) {
  muproc_pid_t self, t, other;
  uint64_t ref = 0, ref2 = 0;
  muproc_msg_t *m;

  init_ok(0);
  self = bind_self(0);
  other = created(0);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK_OK(muproc_monitor(other, t, &ref2));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 2);
  /* A ref is only its watcher's to remove. */
  CHECK_RC(muproc_demonitor(other, ref), MUPROC_ENOENT);
  CHECK_RC(muproc_demonitor(self, ref2), MUPROC_ENOENT);
  CHECK_RC(muproc_demonitor(self, 12345678), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 2);

  CHECK_OK(muproc_demonitor(self, ref));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 1);
  CHECK_RC(muproc_demonitor(self, ref), MUPROC_ENOENT); /* gone */
  exit_release(t, a_boom);
  /* The exit is complete: no DOWN for us, one for the other watcher. */
  check_empty(self);
  CHECK_EQ_INT(muproc_mbox_count(other), 1);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  CHECK_RC(muproc_demonitor(other, ref2), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_mbox_count(other), 1); /* not taken back */
  exit_release(other, a_normal);

  /* Demonitor, then monitor the same target again: a new ref fires. */
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK_OK(muproc_demonitor(self, ref));
  CHECK_OK(muproc_monitor(self, t, &ref2));
  CHECK(ref2 != ref);
  exit_release(t, a_bye);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_DOWN(m, t, MUPROC_T_ATOM, a_bye, ref2);
  muproc_msg_free(m);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static void demonitor_after_down(void) {
  muproc_pid_t self, t;
  uint64_t ref = 0;
  muproc_msg_t *m = NULL;

  init_ok(0);
  self = bind_self(0);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK_OK(muproc_proc_exit(t, MUPROC_T_ATOM, a_boom));
  CHECK_RC(muproc_demonitor(self, ref), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_mbox_count(self), 1); /* the DOWN stays */
  CHECK_OK(muproc_proc_release(t));
  CHECK_RC(muproc_demonitor(self, ref), MUPROC_ENOENT);
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_DOWN(m, t, MUPROC_T_ATOM, a_boom, ref);
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- races with an exit ------------------------------------------------ */

/* Demonitor racing the target's exit: either 0 and no DOWN ever, or
 * ENOENT and exactly one DOWN, already queued when it returned. */
static void demonitor_races_exit(void) {
  struct race r;
  muproc_pid_t self;
  int i, removed = 0, fired = 0;

  init_ok(0);
  self = bind_self(0);
  race_begin(&r);
  for (i = 0; i < r.iters; i++) {
    uint64_t ref = 0;
    int rc;
    int64_t queued;
    r.a = created(0);
    CHECK_OK(muproc_monitor(self, r.a, &ref));
    race_go(&r, i);
    rc = muproc_demonitor(self, ref);
    queued = muproc_mbox_count(self);
    pthread_barrier_wait(&r.b2);
    /* The exit has finished. */
    CHECK_EQ_INT(muproc_mbox_signal_count(self), 0);
    if (rc == 0) {
      CHECK_EQ_INT(queued, 0);
      CHECK_EQ_INT(muproc_mbox_count(self), 0);
      removed++;
    } else {
      muproc_msg_t *m;
      CHECK_RC(rc, MUPROC_ENOENT);
      CHECK_EQ_INT(queued, 1); /* queued before demonitor returned */
      CHECK_EQ_INT(muproc_mbox_count(self), 1);
      m = next_msg(self, MUPROC_NOWAIT);
      CHECK_DOWN(m, r.a, MUPROC_T_ATOM, a_bye, ref);
      muproc_msg_free(m);
      fired++;
    }
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  }
  race_end(&r);
  tap_diag("demonitor vs exit: %d removed before, %d fired", removed, fired);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Monitor racing the target's exit: exactly one DOWN, its reason or
 * noproc. */
static void monitor_races_exit(void) {
  struct race r;
  muproc_pid_t self;
  int i, told = 0, noproc = 0;

  init_ok(0);
  self = bind_self(0);
  race_begin(&r);
  for (i = 0; i < r.iters; i++) {
    uint64_t ref = 0;
    muproc_msg_t *m;
    muproc_atom_t reason;
    r.a = created(0);
    race_go(&r, i);
    CHECK_OK(muproc_monitor(self, r.a, &ref));
    pthread_barrier_wait(&r.b2);
    CHECK_EQ_INT(muproc_mbox_signal_count(self), 0);
    CHECK_EQ_INT(muproc_mbox_count(self), 1);
    m = next_msg(self, MUPROC_NOWAIT);
    reason = reason_of(m);
    CHECK(reason == a_bye || reason == a_noproc);
    CHECK_DOWN(m, r.a, MUPROC_T_ATOM, reason, ref);
    muproc_msg_free(m);
    told += reason == a_bye;
    noproc += reason == a_noproc;
    CHECK_RC(muproc_demonitor(self, ref), MUPROC_ENOENT);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  }
  race_end(&r);
  tap_diag("monitor vs exit: %d monitored before the exit, %d noproc", told,
           noproc);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- the watcher's side ------------------------------------------------- */

/* A C muproc that monitors its target and returns. */
static void monitor_and_return(void *arg) {
  muproc_pid_t target = *(muproc_pid_t *)arg;
  uint64_t ref = 0;
  CHECK_OK(muproc_monitor(muproc_self(), target, &ref));
  CHECK_OK(muproc_monitor(muproc_self(), target, &ref));
}

/* A watcher's monitors go with it; the targets live on and tell no one. */
static void watcher_exit_drops_monitors(void) {
  muproc_pid_t self, w, t1, t2;
  uint64_t wref = 0, ref = 0;
  int i;

  init_ok(0);
  self = bind_self(0);
  w = created(0);
  t1 = created(0);
  t2 = created(0);
  CHECK_OK(muproc_monitor(w, t1, &wref));
  CHECK_OK(muproc_monitor(w, t2, &wref));
  CHECK_OK(muproc_monitor(w, t2, &wref));
  CHECK_OK(muproc_monitor(self, t1, &ref)); /* someone else's: stays */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 4);
  CHECK_OK(muproc_proc_exit(w, MUPROC_T_ATOM, a_normal));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 1);
  CHECK_EQ_INT(muproc_proc_state(t1), MUPROC_S_CREATED);
  CHECK_EQ_INT(muproc_proc_state(t2), MUPROC_S_CREATED);
  CHECK_RC(muproc_demonitor(w, wref), MUPROC_ENOENT); /* gone with it */
  exit_release(t2, a_boom);
  CHECK_EQ_INT(muproc_mbox_count(w), 0); /* exited: nothing lands */
  CHECK_OK(muproc_proc_release(w));
  exit_release(t1, a_boom);
  CHECK_EQ_INT(muproc_mbox_count(self), 1); /* our own DOWN only */
  {
    muproc_msg_t *m = next_msg(self, MUPROC_NOWAIT);
    CHECK_DOWN(m, t1, MUPROC_T_ATOM, a_boom, ref);
    muproc_msg_free(m);
  }
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);

  /* C muprocs that monitor us and return: their monitors are gone while
   * we live on. */
  for (i = 0; i < 20; i++)
    (void)spawn_c(0, monitor_and_return, &self);
  CHECK_OK(muproc_wait_c_idle(in_secs(10)));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  CHECK_EQ_INT(muproc_proc_state(self), MUPROC_S_RUNNING);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* A DOWN is never refused for capacity: it queues past a full mailbox,
 * after what was there. */
static void down_to_full_mailbox(void) {
  muproc_pid_t self, t;
  uint64_t ref = 0;
  muproc_msg_t *m, *extra;
  int i;

  init_ok(0);
  self = bind_self(2);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK_OK(muproc_send(self, msg_n(0)));
  CHECK_OK(muproc_send(self, msg_n(1)));
  extra = msg_n(2);
  CHECK_RC(muproc_send(self, extra), MUPROC_EFULL);
  exit_release(t, a_boom);
  CHECK_EQ_INT(muproc_mbox_count(self), 3);
  CHECK_RC(muproc_send(self, extra), MUPROC_EFULL); /* still full */
  muproc_msg_free(extra);
  for (i = 0; i < 2; i++) {
    m = next_msg(self, MUPROC_NOWAIT);
    CHECK_EQ_INT(n_of(m), i);
    muproc_msg_free(m);
  }
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_DOWN(m, t, MUPROC_T_ATOM, a_boom, ref);
  muproc_msg_free(m);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Linked and monitoring at once: one exit signal for the link, one DOWN
 * for the monitor; trapping changes the first only. */
static void monitor_and_link(void) {
  muproc_pid_t self, t;
  uint64_t ref = 0;
  muproc_msg_t *m;
  int trap;

  init_ok(0);
  self = bind_self(0);
  for (trap = 0; trap < 2; trap++) {
    CHECK(muproc_proc_set_trap_exits(self, trap) >= 0);
    t = created(0);
    CHECK_OK(muproc_link(self, t));
    CHECK_OK(muproc_monitor(self, t, &ref));
    exit_release(t, a_bye);
    if (trap) {
      int i, trapped = 0, down = 0;
      CHECK_EQ_INT(muproc_mbox_signal_count(self), 1); /* trapped when taken */
      CHECK_EQ_INT(muproc_mbox_count(self), 1);
      for (i = 0; i < 2; i++) { /* both ordinary messages, in some order */
        m = next_msg(self, MUPROC_NOWAIT);
        if (muproc_msg_find(m, k_monitor) >= 0) {
          CHECK_DOWN(m, t, MUPROC_T_ATOM, a_bye, ref);
          down++;
        } else {
          CHECK_TRAPPED(m, t, MUPROC_T_ATOM, a_bye, 1);
          trapped++;
        }
        muproc_msg_free(m);
      }
      CHECK(trapped == 1 && down == 1);
    } else {
      CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
      CHECK_EQ_INT(muproc_mbox_count(self), 1);
      m = next_signal(self, MUPROC_NOWAIT);
      CHECK_EXIT_SIGNAL(m, t, MUPROC_T_ATOM, a_bye, 1);
      muproc_msg_free(m);
      m = next_msg(self, MUPROC_NOWAIT);
      CHECK_DOWN(m, t, MUPROC_T_ATOM, a_bye, ref);
      muproc_msg_free(m);
    }
    check_empty(self);
  }
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Many watchers on their own threads, each blocked in receive, each
 * woken by its own DOWN when the target exits. */
enum { WATCHERS = 8 };
struct watcher {
  muproc_pid_t pid, target;
  uint64_t ref[2];
  pthread_barrier_t *monitored;
};

static void *watch(void *arg) {
  struct watcher *w = arg;
  int i, got[2] = {0, 0};
  CHECK_OK(muproc_proc_start(w->pid));
  CHECK_OK(muproc_monitor(w->pid, w->target, &w->ref[0]));
  CHECK_OK(muproc_monitor(w->pid, w->target, &w->ref[1]));
  pthread_barrier_wait(w->monitored);
  for (i = 0; i < 2; i++) {
    muproc_msg_t *m = next_msg(w->pid, in_secs(20));
    uint64_t r = ref_of(m);
    CHECK(r == w->ref[0] || r == w->ref[1]);
    CHECK_DOWN(m, w->target, MUPROC_T_INT, 99, r);
    got[r == w->ref[1]]++;
    muproc_msg_free(m);
  }
  CHECK(got[0] == 1 && got[1] == 1);
  check_empty(w->pid);
  exit_release(w->pid, a_normal);
  return NULL;
}

static void many_watchers(void) {
  struct watcher w[WATCHERS];
  pthread_t t[WATCHERS];
  pthread_barrier_t monitored;
  muproc_pid_t target;
  int i;

  init_ok(0);
  target = created(0);
  CHECK_EQ_INT(pthread_barrier_init(&monitored, NULL, WATCHERS + 1), 0);
  for (i = 0; i < WATCHERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].target = target;
    w[i].monitored = &monitored;
    w[i].pid = created(1);
    t[i] = THREAD(watch, &w[i]);
  }
  pthread_barrier_wait(&monitored);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 2 * WATCHERS);
  CHECK_OK(muproc_proc_exit(target, MUPROC_T_INT, 99));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  for (i = 0; i < WATCHERS; i++)
    JOIN(t[i]);
  CHECK_OK(muproc_proc_release(target));
  pthread_barrier_destroy(&monitored);
  MUPROC_FINISH();
}

/* A handle reason is held by each DOWN until it is freed. */
static void down_handle_reason(void) {
  muproc_pid_t self, t;
  uint64_t h = 0, r1 = 0, r2 = 0;
  muproc_msg_t *m;

  init_ok(0);
  self = bind_self(0);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &r1));
  CHECK_OK(muproc_monitor(self, t, &r2));
  CHECK_OK(muproc_handle_new(&h));
  CHECK_OK(muproc_proc_exit(t, MUPROC_T_HANDLE, h));
  CHECK_EQ_INT(muproc_handle_release(h), 0);
  CHECK_OK(muproc_proc_release(t));
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_DOWN(m, t, MUPROC_T_HANDLE, h, ref_of(m));
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(h), 1); /* the second DOWN's */
  exit_release(self, a_normal);           /* frees it */
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  MUPROC_FINISH();
}

/* A monitor reserves its DOWN notice when it is made: with every message
 * allocation failing from then on, the target's exit still delivers it.
 * A monitor that can't reserve it is refused with MUPROC_ENOMEM and
 * leaves nothing behind (no monitor, no message, not even the noproc
 * notice).  (Issue 10, item 6: the DOWN used to be dropped when its
 * allocation at exit failed.) */
static void monitor_out_of_memory(void) {
  muproc_pid_t self, t, dead;
  uint64_t ref = 0, unset = 0;
  muproc_msg_t *m;
  int64_t messages;

  init_ok(0);
  self = bind_self(0);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 1); /* reserved */
  muproc_testing_msg_alloc_limit(0);
  exit_release(t, a_bye);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_DOWN(m, t, MUPROC_T_ATOM, a_bye, ref);
  muproc_msg_free(m);
  check_empty(self);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);

  messages = muproc_stat(MUPROC_STAT_MESSAGES);
  t = created(0);
  dead = created(0);
  exit_release(dead, a_normal);
  CHECK_RC(muproc_monitor(self, t, &unset), MUPROC_ENOMEM);
  CHECK_RC(muproc_monitor(self, dead, &unset), MUPROC_ENOMEM);
  CHECK_EQ_U64(unset, 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MONITORS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), messages);
  exit_release(t, a_bye);
  check_empty(self);

  /* Reserved, then removed: the notice is freed with the monitor. */
  muproc_testing_msg_alloc_limit(-1);
  t = created(0);
  CHECK_OK(muproc_monitor(self, t, &ref));
  CHECK_OK(muproc_demonitor(self, ref));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), messages);
  exit_release(t, a_bye);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(monitor_down),
    TAP_CASE(monitor_twice),
    TAP_CASE(monitor_noproc),
    TAP_CASE(demonitor_before_exit),
    TAP_CASE(demonitor_after_down),
    TAP_CASE_TIMEOUT(demonitor_races_exit, 120),
    TAP_CASE_TIMEOUT(monitor_races_exit, 120),
    TAP_CASE(watcher_exit_drops_monitors),
    TAP_CASE(down_to_full_mailbox),
    TAP_CASE(monitor_and_link),
    TAP_CASE(many_watchers),
    TAP_CASE(down_handle_reason),
    TAP_CASE(monitor_out_of_memory),
};
TAP_MAIN(cases)
