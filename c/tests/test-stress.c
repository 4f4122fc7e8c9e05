/* test-stress.c - many senders, one receiver: nothing lost, nothing
 * duplicated, per-sender order kept; with selective receive and with a
 * bounded mailbox.
 *
 * N senders x M messages {:s sender :i sequence}.  M comes from the
 * environment variable MUPROC_STRESS_M (default 20000; 2000 under
 * ThreadSanitizer and valgrind, which are 10x-50x slower). */
#include "muproc-test.h"

enum { N = 8 };
static int M;
static muproc_atom_t ks, ki, kzero, keven, khandle;

static void init_ok(uint32_t max_procs) {
  M = env_size("MUPROC_STRESS_M", 20000, 2000);
  CHECK(M > 0);
  test_init(max_procs);
  ks = ATOM("s");
  ki = ATOM("i");
  kzero = ATOM("zero");
  keven = ATOM("even");
  khandle = ATOM("handle");
}

/* {:s S :i I}; sender 0 adds :zero, even senders add :even, so that
 * receive filters can pick senders by keys. */
static muproc_msg_t *stress_msg(int s, int i) {
  muproc_msg_t *m = muproc_msg_new(4, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_int(m, ks, s));
  CHECK_OK(muproc_msg_put_int(m, ki, i));
  if (s == 0)
    CHECK_OK(muproc_msg_put_nil(m, kzero));
  if (s % 2 == 0)
    CHECK_OK(muproc_msg_put_nil(m, keven));
  return m;
}

/* What the receiver has seen so far. */
struct tally {
  muproc_pid_t sender_pid[N];
  int last[N];       /* last i from each sender, -1 for none */
  int count[N];
  unsigned char *seen; /* N*M flags */
};

static void tally_init(struct tally *t) {
  int s;
  for (s = 0; s < N; s++) {
    t->last[s] = -1;
    t->count[s] = 0;
  }
  t->seen = calloc((size_t)N * (size_t)M, 1);
  CHECK(t->seen != NULL);
}

/* Take M (the receive result) and account for it: each (s,i) once, i
 * strictly increasing per sender, the sender pid the right one. */
static int tally_take(struct tally *t, muproc_pid_t self, muproc_msg_t *m) {
  int s, i;
  CHECK_EQ_INT(muproc_msg_key(m, 0), ks);
  CHECK_EQ_INT(muproc_msg_key(m, 1), ki);
  s = (int)muproc_msg_int(m, 0);
  i = (int)muproc_msg_int(m, 1);
  CHECK(s >= 0 && s < N && i >= 0 && i < M);
  CHECK_EQ_U64(muproc_msg_sender(m), t->sender_pid[s]);
  if (t->seen[(size_t)s * M + i])
    tap_fail(__FILE__, __LINE__, "duplicate message s=%d i=%d", s, i);
  if (i <= t->last[s])
    tap_fail(__FILE__, __LINE__, "sender %d: i=%d after i=%d", s, i,
             t->last[s]);
  t->seen[(size_t)s * M + i] = 1;
  t->last[s] = i;
  t->count[s]++;
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  return s;
}

static void tally_check_complete(struct tally *t) {
  int s;
  for (s = 0; s < N; s++)
    CHECK_EQ_INT(t->count[s], M); /* with no duplicates: every i once */
  free(t->seen);
}

/* ---- senders on plain threads bound to their own processes ------------ */

struct sender {
  int s;
  muproc_pid_t self, to;
  pthread_barrier_t *start;
};

static void *sender_thread(void *arg) {
  struct sender *x = arg;
  int i;
  CHECK_OK(muproc_proc_start(x->self));
  pthread_barrier_wait(x->start);
  for (i = 0; i < M; i++) {
    muproc_msg_t *m = stress_msg(x->s, i);
    int rc;
    /* Only the bounded variant sees EFULL: wait for the receiver. */
    while ((rc = muproc_send(x->to, m)) == MUPROC_EFULL)
      sched_yield();
    CHECK_OK(rc);
  }
  exit_release(x->self, a_normal);
  return NULL;
}

struct run {
  muproc_pid_t self;
  struct sender senders[N];
  pthread_t threads[N];
  pthread_barrier_t start;
  struct tally tally;
};

static void start_senders(struct run *r, uint32_t capacity) {
  int s;
  init_ok(0);
  r->self = created(capacity);
  CHECK_OK(muproc_proc_start(r->self));
  tally_init(&r->tally);
  CHECK_EQ_INT(pthread_barrier_init(&r->start, NULL, N), 0);
  for (s = 0; s < N; s++) {
    struct sender *x = &r->senders[s];
    x->s = s;
    x->to = r->self;
    x->start = &r->start;
    x->self = created(0);
    r->tally.sender_pid[s] = x->self;
    r->threads[s] = THREAD(sender_thread, x);
  }
}

static void finish_senders(struct run *r) {
  int s;
  for (s = 0; s < N; s++)
    JOIN(r->threads[s]);
  pthread_barrier_destroy(&r->start);
  tally_check_complete(&r->tally);
  CHECK_EQ_INT(muproc_mbox_count(r->self), 0);
  exit_release(r->self, a_normal);
  MUPROC_FINISH();
}

static int64_t receive_deadline(void) {
  return muproc_now_ns() + (int64_t)(30e9 * tap_timeout_scale());
}

static void stress_take_all(void) {
  static struct run r;
  muproc_msg_t *m;
  long total;

  start_senders(&r, 0);
  for (total = 0; total < (long)N * M; total++) {
    CHECK_OK(muproc_recv(r.self, NULL, NULL, receive_deadline(), &m));
    tally_take(&r.tally, r.self, m);
  }
  finish_senders(&r);
}

/* Selective receive under load: first only sender 0's messages, found
 * with a filter (:zero or :even) and a cursor that steps over the even
 * senders' messages left in place; then everything else, oldest first. */
static void stress_filter_and_cursor(void) {
  static struct run r;
  muproc_msg_t *cursor = NULL, *m;
  long total;

  start_senders(&r, 0);
  {
    uint32_t zero_or_even[] = {2, 1, kzero, 1, keven};
    while (r.tally.count[0] < M) {
      CHECK_OK(muproc_recv(r.self, cursor, zero_or_even, receive_deadline(),
                           &m));
      CHECK(muproc_msg_int(m, 0) % 2 == 0); /* no odd sender passes */
      if (muproc_msg_int(m, 0) == 0)
        tally_take(&r.tally, r.self, m); /* the cursor stays queued */
      else
        cursor = m;
    }
  }
  for (total = M; total < (long)N * M; total++) {
    CHECK_OK(muproc_recv(r.self, NULL, NULL, receive_deadline(), &m));
    CHECK(tally_take(&r.tally, r.self, m) != 0);
  }
  finish_senders(&r);
}

/* ---- senders as C muprocs into a bounded mailbox ---------------------- */

static struct {
  muproc_pid_t to;
  pthread_barrier_t start;
  muproc_pid_t self[N];
  atomic_long efull;
} bounded;

static void c_sender(void *arg) {
  int s = (int)(intptr_t)arg, i;
  bounded.self[s] = muproc_self();
  pthread_barrier_wait(&bounded.start);
  for (i = 0; i < M; i++) {
    muproc_msg_t *m = stress_msg(s, i);
    uint64_t h;
    int rc;
    if (i % 16 == 0) /* the handle table under contention too */
      CHECK_OK(muproc_msg_put_new_handle(m, khandle, &h));
    while ((rc = muproc_send(bounded.to, m)) == MUPROC_EFULL) {
      atomic_fetch_add(&bounded.efull, 1);
      sched_yield();
    }
    CHECK_OK(rc);
  }
}

static void stress_bounded_mailbox(void) {
  enum { CAPACITY = 64 };
  struct tally t;
  muproc_pid_t self = 0, pids[N];
  muproc_msg_t *m;
  long total;
  int s;

  init_ok(0);
  self = created(CAPACITY);
  CHECK_OK(muproc_proc_start(self));
  bounded.to = self;
  atomic_store(&bounded.efull, 0);
  tally_init(&t);
  /* N+1: the senders and us, so that we know every pid before the first
   * message arrives. */
  CHECK_EQ_INT(pthread_barrier_init(&bounded.start, NULL, N + 1), 0);
  for (s = 0; s < N; s++)
    pids[s] = spawn_c(0, c_sender, (void *)(intptr_t)s);
  pthread_barrier_wait(&bounded.start);
  for (s = 0; s < N; s++) {
    CHECK_EQ_U64(bounded.self[s], pids[s]);
    t.sender_pid[s] = pids[s];
  }
  for (total = 0; total < (long)N * M; total++) {
    CHECK(muproc_mbox_count(self) <= CAPACITY);
    CHECK_OK(muproc_recv(self, NULL, NULL, receive_deadline(), &m));
    tally_take(&t, self, m);
  }
  CHECK_OK(muproc_wait_c_idle(receive_deadline()));
  pthread_barrier_destroy(&bounded.start);
  tally_check_complete(&t);
  tap_diag("bounded mailbox: %ld sends refused with EFULL and retried",
           (long)atomic_load(&bounded.efull));
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Senders keep sending while the receiver exits: once muproc_proc_exit
 * returns, no message lands anymore (senders get ESRCH), and every send
 * that succeeded is in the mailbox. */
enum { SPAMMERS = 4 };
struct spammer {
  muproc_pid_t to;
  long delivered;
};

static void *spam(void *arg) {
  struct spammer *x = arg;
  int rc;
  for (;;) {
    muproc_msg_t *m = stress_msg(1, 0);
    if ((rc = muproc_send(x->to, m)) != 0) {
      muproc_msg_free(m);
      break;
    }
    x->delivered++;
  }
  CHECK_RC(rc, MUPROC_ESRCH);
  return NULL;
}

static void stress_exit_while_sending(void) {
  struct spammer x[SPAMMERS];
  pthread_t t[SPAMMERS];
  muproc_pid_t self = 0;
  muproc_msg_t *m;
  int64_t at_exit;
  long delivered = 0, drained = 0;
  int i, rc;

  init_ok(0);
  self = created(0);
  CHECK_OK(muproc_proc_start(self));
  for (i = 0; i < SPAMMERS; i++) {
    x[i].to = self;
    x[i].delivered = 0;
    t[i] = THREAD(spam, &x[i]);
  }
  WAIT_UNTIL(muproc_mbox_count(self) >= M / 4, 20);
  CHECK_OK(muproc_proc_exit(self, MUPROC_T_ATOM, a_normal));
  at_exit = muproc_mbox_count(self);
  for (i = 0; i < SPAMMERS; i++) {
    JOIN(t[i]);
    delivered += x[i].delivered;
  }
  CHECK_EQ_INT(muproc_mbox_count(self), at_exit);
  CHECK_EQ_INT(delivered, at_exit);
  while ((rc = muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m)) == 0) {
    CHECK_OK(muproc_recv_take(self, m));
    muproc_msg_free(m);
    drained++;
  }
  CHECK_RC(rc, MUPROC_ETIMEDOUT);
  CHECK_EQ_INT(drained, delivered);
  CHECK_OK(muproc_proc_release(self));
  MUPROC_FINISH();
}

/* Threads create, name, exit and release processes as fast as they can in
 * a small table: slots and names must never be handed out twice. */
enum { CHURNERS = 4 };
static pthread_barrier_t churn_start;

static void *churn(void *arg) {
  int c = (int)(intptr_t)arg, i;
  char name[32];
  muproc_atom_t mine;
  muproc_pid_t prev = 0;
  snprintf(name, sizeof name, "churner-%d", c);
  mine = ATOM(name);
  pthread_barrier_wait(&churn_start);
  for (i = 0; i < M / 4; i++) {
    muproc_pid_t pid = 0, found = 0;
    CHECK_OK(muproc_proc_create(i % 2 ? mine : 0, MUPROC_KIND_LISP, 0, &pid));
    CHECK(pid != prev);
    CHECK_EQ_INT(muproc_proc_state(pid), MUPROC_S_CREATED);
    if (i % 2) {
      CHECK_OK(muproc_proc_find(mine, &found));
      CHECK_EQ_U64(found, pid);
    }
    CHECK_OK(muproc_proc_exit(pid, MUPROC_T_INT, (uint64_t)i));
    CHECK_OK(muproc_proc_release(pid));
    CHECK_EQ_INT(muproc_proc_state(pid), MUPROC_S_NOPROC);
    prev = pid;
  }
  return NULL;
}

static void stress_proc_churn(void) {
  pthread_t t[CHURNERS];
  int i;

  init_ok(CHURNERS); /* exactly one slot per thread */
  CHECK_EQ_INT(pthread_barrier_init(&churn_start, NULL, CHURNERS), 0);
  for (i = 0; i < CHURNERS; i++)
    t[i] = THREAD(churn, (void *)(intptr_t)i);
  for (i = 0; i < CHURNERS; i++)
    JOIN(t[i]);
  pthread_barrier_destroy(&churn_start);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE_TIMEOUT(stress_take_all, 120),
    TAP_CASE_TIMEOUT(stress_filter_and_cursor, 120),
    TAP_CASE_TIMEOUT(stress_bounded_mailbox, 120),
    TAP_CASE_TIMEOUT(stress_exit_while_sending, 120),
    TAP_CASE_TIMEOUT(stress_proc_churn, 120),
};
TAP_MAIN(cases)
