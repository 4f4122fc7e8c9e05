/* test-timer.c - timers: send-after at (never before) its deadline, order
 * by deadline, repeating timer signals with a copy of their payload,
 * cancel before and after firing and of a repeating timer, timers dropped
 * with their owner or destination (kept for muproc_timer_reap when they
 * carry handles), send-after to a full inport, accuracy, many threads at
 * once.
 *
 * A timer's lateness is measured on 100 timers of 5 ms and printed as a
 * TAP comment; only a generous bound is asserted (shared VMs are noisy). */
#include "muproc-test.h"

#define MS 1000000LL

static muproc_atom_t k_s, k_h, k_when, k_t, k_barrier;

static void init_ok(void) {
  test_init(0);
  k_s = ATOM("s");
  k_h = ATOM("h");
  k_when = ATOM("when");
  k_t = ATOM("t");
  k_barrier = ATOM("barrier");
}

/* A duration in ns stretched for slow machines. */
static int64_t scaled(int64_t ns) { return (int64_t)(ns * tap_timeout_scale()); }

/* The integer under KEY, which must be there and be an integer. */
static int64_t int_of(const muproc_msg_t *m, muproc_atom_t key) {
  int i = muproc_msg_find(m, key);
  CHECK(i >= 0);
  CHECK_EQ_INT(muproc_msg_type(m, (uint32_t)i), MUPROC_T_INT);
  return muproc_msg_int(m, (uint32_t)i);
}

/* A barrier through the timer: a send-after {barrier} at WHEN, received
 * with everything before it.  Returns how many MUPROC_K_TIMER signals
 * were seen before it (signals come before ordinary messages); no other
 * message may come first. */
static int until_barrier(muproc_pid_t self, int64_t when) {
  muproc_msg_t *b, *m = NULL;
  uint64_t id = 0;
  int timers = 0, rc;
  b = muproc_msg_new(1, 0);
  CHECK(b != NULL);
  CHECK_OK(muproc_msg_put_nil(b, k_barrier));
  CHECK_OK(muproc_timer_send_after(self, when, b, &id));
  for (;;) {
    rc = muproc_recv(self, NULL, NULL, in_secs(10), &m);
    if (rc == MUPROC_SIGNALLED) {
      CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_TIMER);
      muproc_msg_free(m);
      timers++;
      continue;
    }
    CHECK_OK(rc);
    CHECK_OK(muproc_recv_take(self, m));
    CHECK(muproc_msg_find(m, k_barrier) >= 0);
    muproc_msg_free(m);
    return timers;
  }
}

/* Poll (bounded) until COUNT() is non-zero; fail if it became so before
 * WHEN.  The clock is read after the count, so "seen before WHEN" proves
 * an early delivery. */
#define WAIT_DELIVERED(count, when)                                            \
  do {                                                                         \
    int64_t limit_ = (when) + scaled(10000 * MS);                              \
    for (;;) {                                                                 \
      int64_t c_ = (count), t_ = muproc_now_ns();                              \
      if (c_ != 0) {                                                           \
        if (t_ < (when))                                                       \
          tap_fail(__FILE__, __LINE__, "delivered %lld ns before its "         \
                   "deadline", (long long)((when) - t_));                      \
        break;                                                                 \
      }                                                                        \
      if (t_ > limit_)                                                         \
        tap_fail(__FILE__, __LINE__, "not delivered 10 s after its deadline"); \
      tap_pause();                                                             \
    }                                                                          \
  } while (0)

/* ---- send-after -------------------------------------------------------- */

static void send_after_at_deadline(void) {
  muproc_pid_t self;
  muproc_msg_t *m;
  uint64_t id = 0;
  int64_t when;
  size_t len = 0;
  const char *s;
  int i;

  init_ok();
  self = bind_self(0);
  m = msg_n(1);
  CHECK_OK(muproc_msg_put_string(m, k_s, "hello", 5));
  /* Far enough ahead to be pending still at the stat below, whatever
   * pauses the machine. */
  when = muproc_now_ns() + scaled(300 * MS);
  CHECK_OK(muproc_timer_send_after(self, when, m, &id));
  CHECK(id != 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 1);
  WAIT_DELIVERED(muproc_mbox_count(self), when);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 0);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_MESSAGE);
  CHECK_EQ_INT(int_of(m, k_n), 1);
  i = muproc_msg_find(m, k_s);
  CHECK(i >= 0);
  s = muproc_msg_bytes(m, (uint32_t)i, &len);
  CHECK(len == 5 && memcmp(s, "hello", 5) == 0);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  CHECK_RC(muproc_timer_cancel(id), MUPROC_ENOENT); /* fired */

  /* A receive blocked without deadline is woken by it. */
  when = muproc_now_ns() + 30 * MS;
  CHECK_OK(muproc_timer_send_after(self, when, msg_n(2), &id));
  m = next_msg(self, in_secs(10));
  CHECK(muproc_now_ns() >= when);
  CHECK_EQ_INT(int_of(m, k_n), 2);
  muproc_msg_free(m);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* A deadline already past fires at once; each timer gets its own id. */
static void send_after_past_deadline(void) {
  int n = slow() ? 300 : 3000, i;
  muproc_pid_t self;
  uint64_t *ids;
  char *seen;

  init_ok();
  self = bind_self(0);
  ids = calloc((size_t)n, sizeof *ids);
  seen = calloc((size_t)n, 1);
  CHECK(ids && seen);
  for (i = 0; i < n; i++) {
    int64_t when = i % 3 == 0 ? muproc_now_ns() - 1000
                 : i % 3 == 1 ? muproc_now_ns() : 1;
    CHECK_OK(muproc_timer_send_after(self, when, msg_n(i), &ids[i]));
    CHECK(ids[i] != 0);
  }
  for (i = 0; i < n; i++) {
    muproc_msg_t *m = next_msg(self, in_secs(10));
    int64_t k = int_of(m, k_n);
    CHECK(k >= 0 && k < n && !seen[k]);
    seen[k] = 1;
    muproc_msg_free(m);
  }
  qsort(ids, (size_t)n, sizeof *ids, cmp_u64);
  for (i = 1; i < n; i++)
    if (ids[i] == ids[i - 1])
      tap_fail(__FILE__, __LINE__, "timer id %#llx returned twice",
               (unsigned long long)ids[i]);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  check_empty(self);
  free(ids);
  free(seen);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Timers made in any order fire in the order of their deadlines. */
static void timers_in_deadline_order(void) {
  enum { K = 20 };
  static const int perm[K] = {7,  3, 19, 0,  12, 5,  16, 1, 9,  14,
                              18, 2, 11, 6,  17, 4,  13, 8, 15, 10};
  muproc_pid_t self;
  int64_t base;
  uint64_t id;
  int i;

  init_ok();
  self = bind_self(0);
  base = muproc_now_ns() + scaled(100 * MS);
  for (i = 0; i < K; i++) {
    muproc_msg_t *m = msg_n(perm[i]);
    int64_t when = base + perm[i] * 3 * MS;
    CHECK_OK(muproc_msg_put_int(m, k_when, when));
    CHECK_OK(muproc_timer_send_after(self, when, m, &id));
  }
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), K);
  for (i = 0; i < K; i++) {
    muproc_msg_t *m = next_msg(self, in_secs(10));
    CHECK_EQ_INT(int_of(m, k_n), i);
    CHECK(muproc_now_ns() >= int_of(m, k_when));
    muproc_msg_free(m);
  }
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- timer signals -------------------------------------------------- */

/* A repeating timer signal: MUPROC_K_TIMER with a copy of the payload
 * every REPEAT ns, the k-th never before WHEN + k*REPEAT; the payload's
 * handle is held by each copy and by the timer. */
static void timer_signal_repeating(void) {
  enum { N = 10 };
  const int64_t repeat = 10 * MS;
  muproc_pid_t self;
  muproc_msg_t *payload, *m;
  uint64_t id = 0, h = 0;
  int64_t when0, prev = 0, min_gap = INT64_MAX;
  int k, i;
  size_t len;
  const char *s;

  init_ok();
  self = bind_self(0);
  payload = muproc_msg_new(3, 8);
  CHECK(payload != NULL);
  CHECK_OK(muproc_msg_put_int(payload, k_n, 5));
  CHECK_OK(muproc_msg_put_string(payload, k_s, "tick", 4));
  CHECK_OK(muproc_msg_put_new_handle(payload, k_h, &h));
  when0 = muproc_now_ns() + 20 * MS;
  CHECK_OK(muproc_timer_signal(self, when0, repeat, payload, &id));
  CHECK(id != 0);
  for (k = 0; k < N; k++) {
    int64_t t;
    m = NULL;
    CHECK_RC(muproc_recv_signal(self, in_secs(10), &m), MUPROC_SIGNALLED);
    t = muproc_now_ns();
    if (t < when0 + k * repeat)
      tap_fail(__FILE__, __LINE__, "firing %d came %lld ns early", k,
               (long long)(when0 + k * repeat - t));
    if (k > 0 && t - prev < min_gap)
      min_gap = t - prev;
    prev = t;
    CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_TIMER);
    CHECK_EQ_INT(muproc_msg_size(m), 3);
    CHECK_EQ_INT(int_of(m, k_n), 5);
    i = muproc_msg_find(m, k_s);
    CHECK(i >= 0);
    s = muproc_msg_bytes(m, (uint32_t)i, &len);
    CHECK(len == 4 && memcmp(s, "tick", 4) == 0);
    i = muproc_msg_find(m, k_h);
    CHECK(i >= 0);
    CHECK_EQ_U64(muproc_msg_handle(m, (uint32_t)i), h);
    muproc_msg_free(m);
    CHECK_EQ_INT(muproc_handle_live(h), 1); /* the timer's payload */
  }
  tap_diag("repeating timer: %d firings, smallest gap %lld us (repeat %lld us)",
           N, (long long)(min_gap / 1000), (long long)(repeat / 1000));
  CHECK_OK(muproc_timer_cancel(id));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  CHECK_RC(muproc_timer_cancel(id), MUPROC_ENOENT);
  /* Firings queued before the cancel may still be in the lane. */
  (void)until_barrier(self, muproc_now_ns() + 3 * repeat);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* REPEAT 0: one firing; then the timer is gone. */
static void timer_signal_one_shot(void) {
  muproc_pid_t self;
  muproc_msg_t *m = NULL;
  uint64_t id = 0;
  int64_t when;

  init_ok();
  self = bind_self(0);
  when = muproc_now_ns() + 20 * MS;
  CHECK_OK(muproc_timer_signal(self, when, 0, msg_n(9), &id));
  WAIT_DELIVERED(muproc_mbox_signal_count(self), when);
  CHECK_EQ_INT(muproc_mbox_count(self), 0);
  CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m), MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_TIMER);
  CHECK_EQ_INT(int_of(m, k_n), 9);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  CHECK_RC(muproc_timer_cancel(id), MUPROC_ENOENT);
  CHECK_EQ_INT(until_barrier(self, muproc_now_ns() + 40 * MS), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- cancel ---------------------------------------------------------- */

static void cancel_before_firing(void) {
  muproc_pid_t self;
  uint64_t id1 = 0, id2 = 0, id3 = 0;
  int64_t when;

  init_ok();
  self = bind_self(0);
  when = muproc_now_ns() + scaled(300 * MS);
  CHECK_OK(muproc_timer_send_after(self, when, msg_n(1), &id1));
  CHECK_OK(muproc_timer_signal(self, when, 0, msg_n(2), &id2));
  CHECK_OK(muproc_timer_signal(self, when, MS, msg_n(3), &id3));
  CHECK(id1 != id2 && id2 != id3 && id1 != id3);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 3);
  CHECK_OK(muproc_timer_cancel(id2));
  CHECK_OK(muproc_timer_cancel(id1));
  CHECK_OK(muproc_timer_cancel(id3));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0); /* payloads freed */
  CHECK_RC(muproc_timer_cancel(id1), MUPROC_ENOENT);
  CHECK_RC(muproc_timer_cancel(id2), MUPROC_ENOENT);
  CHECK_RC(muproc_timer_cancel(id3), MUPROC_ENOENT);
  /* Past their deadline: nothing came but the barrier. */
  CHECK_EQ_INT(until_barrier(self, when + 30 * MS), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static void cancel_after_firing(void) {
  muproc_pid_t self;
  muproc_msg_t *m;
  uint64_t id = 0;

  init_ok();
  self = bind_self(0);
  CHECK_OK(muproc_timer_send_after(self, muproc_now_ns() + MS, msg_n(1), &id));
  m = next_msg(self, in_secs(10));
  muproc_msg_free(m);
  CHECK_RC(muproc_timer_cancel(id), MUPROC_ENOENT);
  CHECK_RC(muproc_timer_cancel(0), MUPROC_ENOENT);
  CHECK_RC(muproc_timer_cancel(id + 1000), MUPROC_ENOENT);
  CHECK_RC(muproc_timer_cancel(UINT64_MAX), MUPROC_ENOENT);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* After cancel returns, a repeating timer never fires again: the signals
 * in the lane then are all there will be.  Fast timers, so that cancels
 * meet firings in progress. */
static void cancel_repeating_stops(void) {
  int rounds = slow() ? 30 : 200, r;
  muproc_pid_t self;

  init_ok();
  self = bind_self(0);
  for (r = 0; r < rounds; r++) {
    int64_t repeat = (r % 2) ? 50000 : 2 * MS, c0;
    uint64_t id = 0;
    int got;
    CHECK_OK(muproc_timer_signal(self, muproc_now_ns(), repeat, msg_n(r), &id));
    WAIT_UNTIL(muproc_mbox_signal_count(self) >= 1 + r % 3, 10);
    CHECK_OK(muproc_timer_cancel(id));
    c0 = muproc_mbox_signal_count(self);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
    got = until_barrier(self, muproc_now_ns() + 10 * repeat);
    CHECK_EQ_INT(got, c0);
    CHECK_RC(muproc_timer_cancel(id), MUPROC_ENOENT);
  }
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- timers and exits --------------------------------------------------- */

struct owner {
  muproc_pid_t pid, to;
  int64_t after; /* TIMERS expected once PID has exited */
};

static void *make_timers_and_exit(void *arg) {
  struct owner *o = arg;
  uint64_t id = 0;
  int64_t far = muproc_now_ns() + 3600 * 1000 * MS;
  int64_t before = muproc_stat(MUPROC_STAT_TIMERS);
  CHECK_OK(muproc_proc_start(o->pid));
  CHECK_OK(muproc_timer_send_after(o->to, far, msg_n(1), &id));
  CHECK_OK(muproc_timer_signal(o->to, far, MS, msg_n(2), &id));
  CHECK_OK(muproc_timer_send_after(o->pid, far, msg_n(3), &id));
  CHECK_OK(muproc_timer_signal(o->pid, far, 0, msg_n(4), &id));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), before + 4);
  CHECK_OK(muproc_proc_exit(o->pid, MUPROC_T_ATOM, a_normal));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), o->after);
  CHECK_OK(muproc_proc_release(o->pid));
  return NULL;
}

/* The timers a process made go with it, wherever they were aimed. */
static void owner_exit_cancels(void) {
  struct owner o;
  muproc_pid_t self;
  uint64_t mine = 0;
  pthread_t t;

  init_ok();
  self = bind_self(0);
  /* Ours, aimed at ourselves, far ahead: must survive the other's exit
   * (cancelling it shows it was still pending). */
  CHECK_OK(muproc_timer_send_after(self, muproc_now_ns() + 3600 * 1000 * MS,
                                   msg_n(7), &mine));
  o.pid = created(0);
  o.to = self;
  o.after = 1;
  t = THREAD(make_timers_and_exit, &o);
  JOIN(t);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 1);
  CHECK_OK(muproc_timer_cancel(mine));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  check_empty(self); /* none of the other's timers delivered */
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Timers aimed at a process go when it exits, whoever made them. */
static void destination_exit_cancels(void) {
  muproc_pid_t self, d;
  uint64_t id = 0, mine = 0;
  int64_t far = muproc_now_ns() + 3600 * 1000 * MS;
  struct owner o;
  pthread_t t;

  init_ok();
  self = bind_self(0);
  d = created(0);
  CHECK_OK(muproc_timer_send_after(d, far, msg_n(1), &id));
  CHECK_OK(muproc_timer_signal(d, far, MS, msg_n(2), &id));
  CHECK_OK(muproc_timer_signal(d, muproc_now_ns(), 5 * MS, msg_n(3), &id));
  CHECK_OK(muproc_timer_send_after(self, far, msg_n(4), &mine));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 4);
  CHECK_OK(muproc_proc_exit(d, MUPROC_T_ATOM, a_normal));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 1);
  CHECK_RC(muproc_timer_cancel(id), MUPROC_ENOENT);
  CHECK_OK(muproc_proc_release(d));

  /* Made by a thread with no process; the destination runs on a thread
   * and exits there. */
  o.pid = created(0);
  o.to = self;
  o.after = 1; /* only ours aimed at ourselves is left */
  CHECK_OK(muproc_timer_send_after(o.pid, far, msg_n(5), &id));
  CHECK_OK(muproc_timer_signal(o.pid, far, MS, msg_n(6), &id));
  t = THREAD(make_timers_and_exit, &o);
  JOIN(t);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 1);
  CHECK_OK(muproc_timer_cancel(mine));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* A message {:h <new handle>}, its handle in *H. */
static muproc_msg_t *msg_handle(uint64_t *h) {
  muproc_msg_t *m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_new_handle(m, k_h, h));
  return m;
}

/* A send-after to a full bounded inport is dropped, like any send to it:
 * what was queued stays, nothing more is queued.  A dropped message that
 * carries a handle waits for muproc_timer_reap, which hands it over with
 * its handle still live; one without is freed at once. */
static void send_after_to_full_inport(void) {
  muproc_pid_t self;
  muproc_msg_t *m;
  uint64_t id = 0, h = 0;
  int64_t now;

  init_ok();
  self = bind_self(1);
  now = muproc_now_ns();
  CHECK_OK(muproc_timer_send_after(self, now, msg_n(1), &id));
  CHECK_OK(muproc_timer_send_after(self, now + MS, msg_n(2), &id));
  CHECK_OK(muproc_timer_send_after(self, now + 2 * MS, msg_handle(&h), &id));
  /* Each firing is done once its message is queued or freed: the two
   * dropped ones leave only the queued one and the kept one. */
  WAIT_UNTIL(muproc_stat(MUPROC_STAT_TIMERS) == 0 &&
                 muproc_stat(MUPROC_STAT_MESSAGES) == 2,
             10);
  CHECK_EQ_INT(muproc_mbox_count(self), 1);
  m = muproc_timer_reap();
  CHECK(m != NULL);
  CHECK_EQ_INT(muproc_msg_find(m, k_h), 0);
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  CHECK(muproc_timer_reap() == NULL);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_EQ_INT(n_of(m), 1);
  muproc_msg_free(m);
  check_empty(self);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Timers cancelled by an exit keep the messages that carry handles for
 * muproc_timer_reap; an explicit cancel frees its message at once. */
static void exit_keeps_handles_for_reap(void) {
  muproc_pid_t d;
  uint64_t id = 0, cancelled = 0, h1 = 0, h2 = 0, h3 = 0;
  int64_t far = muproc_now_ns() + 3600 * 1000 * MS;
  int reaped = 0;
  muproc_msg_t *m;

  init_ok();
  d = created(0);
  CHECK_OK(muproc_timer_send_after(d, far, msg_handle(&h1), &id));
  CHECK_OK(muproc_timer_signal(d, far, MS, msg_handle(&h2), &id));
  CHECK_OK(muproc_timer_send_after(d, far, msg_n(1), &id));
  CHECK_OK(muproc_timer_send_after(d, far, msg_handle(&h3), &cancelled));
  CHECK_OK(muproc_timer_cancel(cancelled));
  CHECK_EQ_INT(muproc_handle_live(h3), 0);
  CHECK(muproc_timer_reap() == NULL);
  exit_release(d, a_normal);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 2);
  CHECK_EQ_INT(muproc_handle_live(h1), 1);
  CHECK_EQ_INT(muproc_handle_live(h2), 1);
  while ((m = muproc_timer_reap()) != NULL) {
    reaped++;
    muproc_msg_free(m);
  }
  CHECK_EQ_INT(reaped, 2);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  MUPROC_FINISH();
}

/* A timer aimed at a process that is not alive is refused (ESRCH, the
 * caller keeps the message): exited, released, or a pid never used. */
static void timer_to_dead_destination(void) {
  muproc_pid_t exited, released, never = ((uint64_t)9 << 32) | 60000;
  muproc_pid_t dead[3];
  uint64_t id = 0;
  int i;

  init_ok();
  exited = created(0);
  CHECK_OK(muproc_proc_exit(exited, MUPROC_T_ATOM, a_normal));
  released = created(0);
  exit_release(released, a_normal);
  dead[0] = exited;
  dead[1] = released;
  dead[2] = never;
  for (i = 0; i < 3; i++) {
    muproc_msg_t *m = msg_n(i);
    CHECK_RC(muproc_timer_send_after(dead[i], muproc_now_ns(), m, &id),
             MUPROC_ESRCH);
    CHECK_RC(muproc_timer_signal(dead[i], muproc_now_ns(), 0, m, &id),
             MUPROC_ESRCH);
    CHECK_RC(muproc_timer_signal(dead[i], muproc_now_ns(), MS, m, &id),
             MUPROC_ESRCH);
    CHECK_EQ_INT(muproc_msg_size(m), 1); /* still ours */
    muproc_msg_free(m);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  }
  CHECK_EQ_INT(muproc_mbox_count(exited), 0);
  CHECK_EQ_INT(muproc_mbox_signal_count(exited), 0);
  CHECK_OK(muproc_proc_release(exited));
  MUPROC_FINISH();
}

/* A repeating timer made while its destination exits: refused, or
 * cancelled by the exit; never left firing at the dead for ever. */
struct dest_race {
  pthread_barrier_t b0, b1;
  muproc_pid_t d;
  int iters;
};

static void *exit_destination(void *arg) {
  struct dest_race *r = arg;
  int i;
  for (i = 0; i < r->iters; i++) {
    pthread_barrier_wait(&r->b0);
    if (i % 2)
      spin((unsigned)(i * 7919) % 3000);
    exit_release(r->d, a_normal);
    pthread_barrier_wait(&r->b1);
  }
  return NULL;
}

static void timer_races_destination_exit(void) {
  struct dest_race r;
  pthread_t t;
  int i, made = 0;

  init_ok();
  memset(&r, 0, sizeof r);
  r.iters = slow() ? 300 : 3000;
  CHECK_EQ_INT(pthread_barrier_init(&r.b0, NULL, 2), 0);
  CHECK_EQ_INT(pthread_barrier_init(&r.b1, NULL, 2), 0);
  t = THREAD(exit_destination, &r);
  for (i = 0; i < r.iters; i++) {
    muproc_msg_t *m = msg_n(i);
    uint64_t id = 0;
    int rc;
    r.d = created(0);
    pthread_barrier_wait(&r.b0);
    if (i % 2 == 0)
      spin((unsigned)(i * 7919) % 3000);
    rc = muproc_timer_signal(r.d, muproc_now_ns() + 3600 * 1000 * MS,
                             10 * MS, m, &id);
    pthread_barrier_wait(&r.b1);
    if (rc == 0) {
      made++;
      /* The destination is gone: so must the timer be. */
      if (muproc_stat(MUPROC_STAT_TIMERS) != 0)
        tap_fail(__FILE__, __LINE__, "round %d: a timer aimed at %#llx "
                 "outlived its exit (cancel: %d)", i, (unsigned long long)r.d,
                 muproc_timer_cancel(id));
    } else {
      CHECK_RC(rc, MUPROC_ESRCH);
      muproc_msg_free(m);
    }
  }
  JOIN(t);
  pthread_barrier_destroy(&r.b0);
  pthread_barrier_destroy(&r.b1);
  tap_diag("timer vs destination exit: %d made before the exit, %d refused",
           made, r.iters - made);
  MUPROC_FINISH();
}

static void timer_invalid_args(void) {
  muproc_pid_t self;
  muproc_msg_t *m;
  uint64_t id = 0;
  int64_t now;

  init_ok();
  self = bind_self(0);
  now = muproc_now_ns();
  m = msg_n(1);
  /* Refused: the caller keeps the message. */
  CHECK_RC(muproc_timer_send_after(0, now, m, &id), MUPROC_EINVAL);
  CHECK_RC(muproc_timer_send_after(self, now, NULL, &id), MUPROC_EINVAL);
  CHECK_RC(muproc_timer_send_after(self, now, m, NULL), MUPROC_EINVAL);
  CHECK_RC(muproc_timer_signal(0, now, 0, m, &id), MUPROC_EINVAL);
  CHECK_RC(muproc_timer_signal(self, now, 0, NULL, &id), MUPROC_EINVAL);
  CHECK_RC(muproc_timer_signal(self, now, 0, m, NULL), MUPROC_EINVAL);
  CHECK_RC(muproc_timer_signal(self, now, -1, m, &id), MUPROC_EINVAL);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  CHECK_EQ_INT(muproc_msg_size(m), 1);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- accuracy and load ---------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void timer_accuracy(void) {
  enum { N = 100 };
  int64_t late[N], median;
  muproc_pid_t self;
  uint64_t id;
  int i;

  init_ok();
  self = bind_self(0);
  for (i = 0; i < N; i++) {
    int64_t when = muproc_now_ns() + 5 * MS;
    muproc_msg_t *m;
    CHECK_OK(muproc_timer_send_after(self, when, msg_n(i), &id));
    m = next_msg(self, in_secs(10));
    late[i] = muproc_now_ns() - when;
    CHECK(late[i] >= 0);
    CHECK_EQ_INT(int_of(m, k_n), i);
    muproc_msg_free(m);
  }
  qsort(late, N, sizeof late[0], cmp_i64);
  median = (late[N / 2 - 1] + late[N / 2]) / 2;
  tap_diag("timer lateness: median %lld us, max %lld us",
           (long long)(median / 1000), (long long)(late[N - 1] / 1000));
  CHECK(median < scaled(50 * MS));
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Threads with no process make, and sometimes cancel, timers aimed at us
 * with scattered deadlines: each uncancelled one arrives once, never
 * before its deadline. */
enum { LOAD_THREADS = 8 };
struct loader {
  muproc_pid_t to;
  int t, n;
  char *expected; /* [n]: 1 unless cancelled in time */
  int64_t max_when;
};

static void *load_timers(void *arg) {
  struct loader *l = arg;
  int j;
  for (j = 0; j < l->n; j++) {
    int64_t when = muproc_now_ns() + ((j * 7919) % 40) * MS;
    muproc_msg_t *m = msg_n(j);
    uint64_t id = 0;
    int rc;
    CHECK_OK(muproc_msg_put_int(m, k_t, l->t));
    CHECK_OK(muproc_msg_put_int(m, k_when, when));
    CHECK_OK(muproc_timer_send_after(l->to, when, m, &id));
    l->expected[j] = 1;
    if (when > l->max_when)
      l->max_when = when;
    if (j % 4 == 0) {
      rc = muproc_timer_cancel(id);
      if (rc == 0)
        l->expected[j] = 0;
      else
        CHECK_RC(rc, MUPROC_ENOENT);
    }
  }
  return NULL;
}

static void timers_from_many_threads(void) {
  int n = slow() ? 50 : 400, i, total = 0;
  struct loader l[LOAD_THREADS];
  pthread_t t[LOAD_THREADS];
  muproc_pid_t self;
  int64_t max_when = 0;

  init_ok();
  self = bind_self(0);
  for (i = 0; i < LOAD_THREADS; i++) {
    l[i].to = self;
    l[i].t = i;
    l[i].n = n;
    l[i].max_when = 0;
    l[i].expected = calloc((size_t)n, 1);
    CHECK(l[i].expected != NULL);
    t[i] = THREAD(load_timers, &l[i]);
  }
  for (i = 0; i < LOAD_THREADS; i++) {
    int j;
    JOIN(t[i]);
    for (j = 0; j < n; j++)
      total += l[i].expected[j];
    if (l[i].max_when > max_when)
      max_when = l[i].max_when;
  }
  for (i = 0; i < total; i++) {
    muproc_msg_t *m = next_msg(self, in_secs(20));
    int64_t tt = int_of(m, k_t), j = int_of(m, k_n);
    CHECK(muproc_now_ns() >= int_of(m, k_when));
    CHECK(tt >= 0 && tt < LOAD_THREADS && j >= 0 && j < n);
    CHECK_EQ_INT(l[tt].expected[j], 1);
    l[tt].expected[j] = 2;
    muproc_msg_free(m);
  }
  tap_diag("%d timers delivered, %d cancelled in time", total,
           LOAD_THREADS * n - total);
  /* Nothing more: not a cancelled one, not a duplicate. */
  CHECK_EQ_INT(until_barrier(self, max_when + 10 * MS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_TIMERS), 0);
  check_empty(self);
  for (i = 0; i < LOAD_THREADS; i++)
    free(l[i].expected);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(send_after_at_deadline),
    TAP_CASE(send_after_past_deadline),
    TAP_CASE(timers_in_deadline_order),
    TAP_CASE(timer_signal_repeating),
    TAP_CASE(timer_signal_one_shot),
    TAP_CASE(cancel_before_firing),
    TAP_CASE(cancel_after_firing),
    TAP_CASE_TIMEOUT(cancel_repeating_stops, 60),
    TAP_CASE(owner_exit_cancels),
    TAP_CASE(destination_exit_cancels),
    TAP_CASE(send_after_to_full_inport),
    TAP_CASE(exit_keeps_handles_for_reap),
    TAP_CASE(timer_to_dead_destination),
    TAP_CASE_TIMEOUT(timer_races_destination_exit, 60),
    TAP_CASE(timer_invalid_args),
    TAP_CASE(timer_accuracy),
    TAP_CASE_TIMEOUT(timers_from_many_threads, 60),
};
TAP_MAIN(cases)
