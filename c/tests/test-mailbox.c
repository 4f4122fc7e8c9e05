/* test-mailbox.c - sending and receiving: order, cursors, filters,
 * deadlines, blocking, the priority lane, capacity, ownership, and
 * delivery through reply aliases. */
#include <stdbool.h>

#include "muproc-test.h"

static muproc_atom_t ka, kb, kc, kd, kwanted;

/* Every case runs with the main thread as the receiver of a process. */
static muproc_pid_t setup(uint32_t capacity) {
  test_init(0);
  ka = ATOM("a");
  kb = ATOM("b");
  kc = ATOM("c");
  kd = ATOM("d");
  kwanted = ATOM("wanted");
  return bind_self(capacity);
}

static void teardown(muproc_pid_t self) {
  exit_release(self, a_normal); /* frees what is still queued */
  MUPROC_FINISH();
}

static void send_n(muproc_pid_t to, int64_t n) { CHECK_OK(muproc_send(to, msg_n(n))); }

/* Walk the mailbox with a cursor (nothing is removed): the :n of every
 * message passing FILTER, in order, into OUT; returns how many. */
static int walk(muproc_pid_t self, const uint32_t *filter, int64_t *out,
                int max) {
  muproc_msg_t *cursor = NULL, *m = NULL;
  int n = 0, rc;
  while ((rc = muproc_recv(self, cursor, filter, MUPROC_NOWAIT, &m)) == 0) {
    CHECK(n < max);
    out[n++] = n_of(m);
    cursor = m;
  }
  CHECK_RC(rc, MUPROC_ETIMEDOUT);
  return n;
}

#define CHECK_WALK(self, filter, ...)                                          \
  do {                                                                         \
    static const int64_t want_[] = {__VA_ARGS__};                              \
    int64_t got_[64];                                                          \
    int n_ = walk(self, filter, got_, 64), i_;                                 \
    CHECK_EQ_INT(n_, (int)(sizeof want_ / sizeof want_[0]));                   \
    for (i_ = 0; i_ < n_; i_++)                                                \
      CHECK_EQ_INT(got_[i_], want_[i_]);                                       \
  } while (0)

static void mbox_fifo(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m = NULL;
  int i;

  for (i = 0; i < 5; i++)
    send_n(self, i);
  CHECK_EQ_INT(muproc_mbox_count(self), 5);
  for (i = 0; i < 5; i++) {
    CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
    CHECK_EQ_INT(n_of(m), i);
    CHECK_OK(muproc_recv_take(self, m));
    CHECK_EQ_INT(muproc_mbox_count(self), 4 - i);
    muproc_msg_free(m);
  }
  CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m),
           MUPROC_ETIMEDOUT);
  teardown(self);
}

static void mbox_cursor_and_take(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m[5], *x = NULL;
  int i;

  for (i = 0; i < 5; i++)
    send_n(self, i);
  /* Walking leaves everything queued; the same message comes back. */
  CHECK_WALK(self, NULL, 0, 1, 2, 3, 4);
  CHECK_WALK(self, NULL, 0, 1, 2, 3, 4);
  CHECK_EQ_INT(muproc_mbox_count(self), 5);
  for (i = 0; i < 5; i++)
    CHECK_OK(muproc_recv(self, i ? m[i - 1] : NULL, NULL, MUPROC_NOWAIT,
                         &m[i]));
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &x));
  CHECK(x == m[0]);
  CHECK_OK(muproc_recv(self, m[1], NULL, MUPROC_NOWAIT, &x));
  CHECK(x == m[2]);

  /* Take from the middle: the rest keep their order. */
  CHECK_OK(muproc_recv_take(self, m[2]));
  CHECK_EQ_INT(muproc_mbox_count(self), 4);
  CHECK_EQ_INT(n_of(m[2]), 2);
  muproc_msg_free(m[2]);
  CHECK_WALK(self, NULL, 0, 1, 3, 4);
  CHECK_OK(muproc_recv(self, m[1], NULL, MUPROC_NOWAIT, &x));
  CHECK(x == m[3]);
  /* Take the first and the last. */
  CHECK_OK(muproc_recv_take(self, m[0]));
  CHECK_OK(muproc_recv_take(self, m[4]));
  muproc_msg_free(m[0]);
  muproc_msg_free(m[4]);
  CHECK_WALK(self, NULL, 1, 3);
  CHECK_RC(muproc_recv(self, m[3], NULL, MUPROC_NOWAIT, &x),
           MUPROC_ETIMEDOUT);
  send_n(self, 5); /* arrives after the cursor */
  CHECK_OK(muproc_recv(self, m[3], NULL, MUPROC_NOWAIT, &x));
  CHECK_EQ_INT(n_of(x), 5);
  teardown(self);
}

/* Taking what is not queued is refused and harms nothing. */
static void mbox_take_not_queued(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m = NULL, *mine;

  send_n(self, 0);
  send_n(self, 1);
  send_n(self, 2);
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_OK(muproc_recv(self, m, NULL, MUPROC_NOWAIT, &m));
  CHECK_OK(muproc_recv_take(self, m));
  CHECK_RC(muproc_recv_take(self, m), MUPROC_EINVAL); /* already taken */
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  CHECK_WALK(self, NULL, 0, 2);
  muproc_msg_free(m);
  mine = msg_n(7);
  CHECK_RC(muproc_recv_take(self, mine), MUPROC_EINVAL); /* never sent */
  CHECK_RC(muproc_recv_take(self, NULL), MUPROC_EINVAL);
  muproc_msg_free(mine);
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  CHECK_WALK(self, NULL, 0, 2);
  teardown(self);
}

/* Message I holds :n I and the keys given. */
static void send_keys(muproc_pid_t to, int64_t n, int nkeys,
                      const muproc_atom_t *keys) {
  muproc_msg_t *m = muproc_msg_new(4, 0);
  int i;
  CHECK(m != NULL);
  for (i = 0; i < nkeys; i++)
    CHECK_OK(muproc_msg_put_atom(m, keys[i], keys[i]));
  CHECK_OK(muproc_msg_put_int(m, k_n, n));
  CHECK_OK(muproc_send(to, m));
}

static void mbox_filter(void) {
  muproc_pid_t self = setup(0);
  const muproc_atom_t k0[] = {ka}, k1[] = {kb}, k2[] = {ka, kb}, k3[] = {kc},
                      k4[] = {kb, ka, ka};
  uint32_t f_a[] = {1, 1, ka};
  uint32_t f_ab[] = {1, 2, ka, kb};
  uint32_t f_c_or_ab[] = {2, 1, kc, 2, ka, kb};
  uint32_t f_d[] = {1, 1, kd};
  uint32_t f_all[] = {1, 0};
  uint32_t f_d_or_all[] = {2, 1, kd, 0};
  uint32_t f_n[] = {1, 1, k_n};
  muproc_msg_t *m = NULL;

  send_keys(self, 0, 1, k0);
  send_keys(self, 1, 1, k1);
  send_keys(self, 2, 2, k2);
  send_keys(self, 3, 1, k3);
  send_keys(self, 4, 3, k4);
  send_keys(self, 5, 0, NULL);

  CHECK_WALK(self, NULL, 0, 1, 2, 3, 4, 5);
  CHECK_WALK(self, f_all, 0, 1, 2, 3, 4, 5);
  CHECK_WALK(self, f_d_or_all, 0, 1, 2, 3, 4, 5);
  CHECK_WALK(self, f_n, 0, 1, 2, 3, 4, 5);
  CHECK_WALK(self, f_a, 0, 2, 4);
  CHECK_WALK(self, f_ab, 2, 4); /* every key of the set, in any order */
  CHECK_WALK(self, f_c_or_ab, 2, 3, 4);
  CHECK_RC(muproc_recv(self, NULL, f_d, MUPROC_NOWAIT, &m), MUPROC_ETIMEDOUT);

  /* Filtered take from the middle, then the rest in order. */
  CHECK_OK(muproc_recv(self, NULL, f_c_or_ab, MUPROC_NOWAIT, &m));
  CHECK_EQ_INT(n_of(m), 2);
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  CHECK_WALK(self, f_c_or_ab, 3, 4);
  CHECK_WALK(self, NULL, 0, 1, 3, 4, 5);
  teardown(self);
}

static void mbox_deadlines(void) {
  muproc_pid_t self = setup(0);
  uint32_t f_d[] = {1, 1, kd};
  double margin = 5e9 * tap_timeout_scale(); /* generous: loaded machines */
  muproc_msg_t *m = NULL;
  int64_t t0, deadline, now;

  CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m), MUPROC_ETIMEDOUT);
  CHECK_RC(muproc_recv(self, NULL, NULL, muproc_now_ns() - 1000, &m),
           MUPROC_ETIMEDOUT); /* already past */

  t0 = muproc_now_ns();
  deadline = t0 + 150000000;
  CHECK_RC(muproc_recv(self, NULL, NULL, deadline, &m), MUPROC_ETIMEDOUT);
  now = muproc_now_ns();
  CHECK(now >= deadline);
  CHECK(now < deadline + margin);

  /* A queued message that fails the filter does not end the wait. */
  send_n(self, 1);
  deadline = muproc_now_ns() + 100000000;
  CHECK_RC(muproc_recv(self, NULL, f_d, deadline, &m), MUPROC_ETIMEDOUT);
  now = muproc_now_ns();
  CHECK(now >= deadline && now < deadline + margin);

  /* Nor does one before the cursor. */
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  deadline = muproc_now_ns() + 100000000;
  CHECK_RC(muproc_recv(self, m, NULL, deadline, &m), MUPROC_ETIMEDOUT);
  now = muproc_now_ns();
  CHECK(now >= deadline && now < deadline + margin);
  teardown(self);
}

/* A receiver thread blocks in muproc_recv with a cursor and a filter; the
 * main thread watches it wait, sends what must not wake it, then what
 * must.  Then it blocks again and a signal wakes it. */
struct blocked {
  muproc_pid_t pid;
  atomic_int phase; /* 1: first recv returned, 2: second returned */
  int rc1, rc2;
  int64_t n1;
  int kind2;
  int64_t count_after;
};

static void *blocked_receiver(void *arg) {
  struct blocked *b = arg;
  uint32_t f_wanted[] = {1, 1, kwanted}, f_never[] = {1, 1, kd};
  muproc_msg_t *first = NULL, *m = NULL;

  CHECK_OK(muproc_proc_start(b->pid));
  CHECK_OK(muproc_recv(b->pid, NULL, NULL, MUPROC_NOWAIT, &first));
  b->rc1 = muproc_recv(b->pid, first, f_wanted, MUPROC_FOREVER, &m);
  b->n1 = b->rc1 == 0 ? n_of(m) : -1;
  b->count_after = muproc_mbox_count(b->pid);
  atomic_store(&b->phase, 1);

  b->rc2 = muproc_recv(b->pid, m, f_never, MUPROC_FOREVER, &m);
  if (b->rc2 == MUPROC_SIGNALLED) {
    b->kind2 = muproc_msg_kind(m);
    muproc_msg_free(m); /* a signal belongs to the caller */
  }
  atomic_store(&b->phase, 2);
  exit_release(b->pid, a_normal);
  return NULL;
}

static void mbox_blocked_recv_wakes(void) {
  struct blocked b;
  muproc_msg_t *m;
  pthread_t t;
  int64_t until;

  test_init(0);
  kd = ATOM("d");
  kwanted = ATOM("wanted");
  memset(&b, 0, sizeof b);
  atomic_init(&b.phase, 0);
  b.pid = created(0);
  send_n(b.pid, 1); /* the cursor: the receiver waits for what follows */
  t = THREAD(blocked_receiver, &b);
  WAIT_STATE(b.pid, MUPROC_S_WAITING, 10);

  /* Fails the filter: the receiver must stay blocked.  (Bounded look.) */
  send_n(b.pid, 2);
  until = tap_now_ns() + 50000000;
  while (tap_now_ns() < until) {
    CHECK_EQ_INT(atomic_load(&b.phase), 0);
    tap_pause();
  }
  WAIT_STATE(b.pid, MUPROC_S_WAITING, 10);
  CHECK_EQ_INT(atomic_load(&b.phase), 0);

  m = msg_n(3);
  CHECK_OK(muproc_msg_put_nil(m, kwanted));
  CHECK_OK(muproc_send(b.pid, m));
  WAIT_UNTIL(atomic_load(&b.phase) == 1, 10);
  CHECK_OK(b.rc1);
  CHECK_EQ_INT(b.n1, 3);
  CHECK_EQ_INT(b.count_after, 3); /* found, not taken */

  /* Blocked again on a filter nothing passes: a signal still wakes it. */
  WAIT_STATE(b.pid, MUPROC_S_WAITING, 10);
  m = msg_n(4);
  CHECK_OK(muproc_signal_send(b.pid, MUPROC_K_INTERRUPT, m));
  JOIN(t);
  CHECK_RC(b.rc2, MUPROC_SIGNALLED);
  CHECK_EQ_INT(b.kind2, MUPROC_K_INTERRUPT);
  MUPROC_FINISH();
}

static void mbox_signal_priority_lane(void) {
  muproc_pid_t self = setup(2);
  uint32_t f_d[] = {1, 1, kd};
  muproc_msg_t *m = NULL, *s;
  int64_t msgs;

  send_n(self, 0);
  send_n(self, 1);
  m = msg_n(2);
  CHECK_RC(muproc_send(self, m), MUPROC_EFULL);
  /* Signals ignore capacity, are counted apart, sent after yet seen first. */
  CHECK_OK(muproc_signal_send(self, MUPROC_K_EXIT, m));
  CHECK_OK(muproc_signal_send(self, MUPROC_K_TIMER, msg_n(11)));
  CHECK_OK(muproc_signal_send(self, MUPROC_K_KILL, msg_n(12)));
  s = msg_n(13);
  CHECK_RC(muproc_signal_send(self, MUPROC_K_MESSAGE, s), MUPROC_EINVAL);
  CHECK_RC(muproc_signal_send(self, 42, s), MUPROC_EINVAL);
  muproc_msg_free(s);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 3);
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  msgs = muproc_stat(MUPROC_STAT_MESSAGES);

  CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &s),
           MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(s), MUPROC_K_EXIT);
  CHECK_EQ_INT(n_of(s), 2);
  CHECK_EQ_U64(muproc_msg_sender(s), self);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 2); /* removed from the lane */
  muproc_msg_free(s);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), msgs - 1);
  /* Even a filter that passes nothing sees signals (exits are not
   * selective in Erlang either). */
  CHECK_RC(muproc_recv(self, NULL, f_d, MUPROC_NOWAIT, &s), MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(s), MUPROC_K_TIMER);
  CHECK_EQ_INT(n_of(s), 11);
  muproc_msg_free(s);
  CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &s),
           MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(s), MUPROC_K_KILL);
  CHECK_EQ_INT(n_of(s), 12);
  muproc_msg_free(s);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 0);

  /* Only ordinary messages are left, in order... */
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_EQ_INT(n_of(m), 0);
  CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_MESSAGE);
  CHECK_WALK(self, NULL, 0, 1);
  /* ...until a signal arrives: a receive from a cursor sees it too. */
  CHECK_OK(muproc_signal_send(self, MUPROC_K_INTERRUPT, msg_n(13)));
  CHECK_RC(muproc_recv(self, m, NULL, MUPROC_NOWAIT, &s), MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(s), MUPROC_K_INTERRUPT);
  muproc_msg_free(s);
  CHECK_WALK(self, NULL, 0, 1);
  /* Pending signals are freed at release like queued messages. */
  CHECK_OK(muproc_signal_send(self, MUPROC_K_EXIT, msg_n(14)));
  teardown(self);
}

static void mbox_capacity(void) {
  muproc_pid_t self = setup(3), wide = 0;
  muproc_msg_t *m = NULL, *extra;
  int i;

  CHECK_EQ_INT(muproc_mbox_capacity(self), 3);
  for (i = 0; i < 3; i++)
    send_n(self, i);
  extra = msg_n(3);
  CHECK_RC(muproc_send(self, extra), MUPROC_EFULL);
  CHECK_RC(muproc_send(self, extra), MUPROC_EFULL);
  CHECK_EQ_INT(muproc_mbox_count(self), 3);
  CHECK_WALK(self, NULL, 0, 1, 2); /* nothing queued was dropped */

  /* Found but not taken still counts; taking makes room. */
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_OK(muproc_recv(self, m, NULL, MUPROC_NOWAIT, &m));
  CHECK_RC(muproc_send(self, extra), MUPROC_EFULL);
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  CHECK_OK(muproc_send(self, extra));
  CHECK_EQ_INT(muproc_mbox_count(self), 3);
  CHECK_WALK(self, NULL, 0, 2, 3);

  /* Capacity 0 is unbounded. */
  wide = created(0);
  CHECK_EQ_INT(muproc_mbox_capacity(wide), 0);
  for (i = 0; i < 1000; i++)
    send_n(wide, i);
  CHECK_EQ_INT(muproc_mbox_count(wide), 1000);
  exit_release(wide, a_normal);
  teardown(self);
}

/* A plain alias delivers until it is closed, past a full mailbox; a
 * reply alias delivers once and is closed by that delivery; a refused
 * send leaves the message with the sender. */
static void mbox_aliases(void) {
  muproc_pid_t self = setup(1), gone = 0;
  uint64_t plain = 0, reply = 0, other = 0;
  muproc_msg_t *m = NULL, *refused;

  CHECK_RC(muproc_alias_add(self, NULL), MUPROC_EINVAL);
  CHECK_RC(muproc_alias_add_reply(self, NULL), MUPROC_EINVAL);
  CHECK_OK(muproc_alias_add(self, &plain));
  CHECK_OK(muproc_alias_add_reply(self, &reply));
  CHECK_OK(muproc_alias_add_reply(self, &other));
  CHECK(plain != reply && reply != other && plain != other);

  refused = msg_n(4);
  send_n(self, 0);
  CHECK_RC(muproc_send(self, refused), MUPROC_EFULL); /* capacity 1 */
  CHECK_OK(muproc_send_alias(self, plain, msg_n(1)));
  CHECK_OK(muproc_send_alias(self, plain, msg_n(2)));
  CHECK_OK(muproc_send_alias(self, reply, msg_n(3)));
  CHECK_RC(muproc_send_alias(self, reply, refused), MUPROC_ENOENT);
  CHECK_RC(muproc_alias_remove(self, reply), MUPROC_ENOENT);
  CHECK_RC(muproc_send_alias(self, 12345, refused), MUPROC_ENOENT);
  CHECK_WALK(self, NULL, 0, 1, 2, 3);

  /* Closing: nothing more through it, and once only. */
  CHECK_OK(muproc_alias_remove(self, plain));
  CHECK_RC(muproc_alias_remove(self, plain), MUPROC_ENOENT);
  CHECK_RC(muproc_send_alias(self, plain, refused), MUPROC_ENOENT);
  /* A reply alias not yet used closes like any other. */
  CHECK_OK(muproc_alias_remove(self, other));
  CHECK_RC(muproc_send_alias(self, other, refused), MUPROC_ENOENT);
  CHECK_WALK(self, NULL, 0, 1, 2, 3);

  /* Aliases of a process that exited go nowhere. */
  gone = created(0);
  CHECK_OK(muproc_alias_add_reply(gone, &other));
  exit_release(gone, a_normal);
  CHECK_RC(muproc_send_alias(gone, other, refused), MUPROC_ESRCH);
  CHECK_RC(muproc_alias_add(gone, &other), MUPROC_ESRCH);
  muproc_msg_free(refused);

  while (muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m) == 0) {
    CHECK_OK(muproc_recv_take(self, m));
    muproc_msg_free(m);
  }
  teardown(self);
}

/* Only the receiver may receive or take. */
struct intruder {
  muproc_pid_t victim, own;
  muproc_msg_t *queued;
  int recv_rc, take_rc, own_recv_rc;
};

static void *intrude(void *arg) {
  struct intruder *x = arg;
  muproc_msg_t *m = NULL;
  if (x->own)
    CHECK_OK(muproc_proc_start(x->own));
  x->recv_rc = muproc_recv(x->victim, NULL, NULL, MUPROC_NOWAIT, &m);
  x->take_rc = muproc_recv_take(x->victim, x->queued);
  if (x->own) {
    x->own_recv_rc = muproc_recv(x->own, NULL, NULL, MUPROC_NOWAIT, &m);
    exit_release(x->own, a_normal);
  }
  return NULL;
}

static void mbox_recv_by_other_thread(void) {
  muproc_pid_t self = setup(0), idle = 0;
  struct intruder x;
  muproc_msg_t *m = NULL;
  pthread_t t;

  send_n(self, 1);
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  memset(&x, 0, sizeof x);
  x.victim = self;
  x.queued = m;
  t = THREAD(intrude, &x); /* a plain thread */
  JOIN(t);
  CHECK_RC(x.recv_rc, MUPROC_EPERM);
  CHECK_RC(x.take_rc, MUPROC_EPERM);

  x.own = created(0);
  t = THREAD(intrude, &x); /* a thread running another process */
  JOIN(t);
  CHECK_RC(x.recv_rc, MUPROC_EPERM);
  CHECK_RC(x.take_rc, MUPROC_EPERM);
  CHECK_RC(x.own_recv_rc, MUPROC_ETIMEDOUT);

  /* Nobody receives for a process that was never started, not even us. */
  idle = created(0);
  CHECK_RC(muproc_recv(idle, NULL, NULL, MUPROC_NOWAIT, &m), MUPROC_EPERM);
  exit_release(idle, a_normal);

  CHECK_EQ_INT(muproc_mbox_count(self), 1); /* untouched */
  CHECK_WALK(self, NULL, 1);
  teardown(self);
}

/* The sender recorded is the sending thread's process, 0 for none. */
struct sender {
  muproc_pid_t to, as;
};

static void *send_from_thread(void *arg) {
  struct sender *s = arg;
  if (s->as)
    CHECK_OK(muproc_proc_start(s->as));
  CHECK_EQ_U64(muproc_self(), s->as);
  send_n(s->to, (int64_t)s->as);
  if (s->as) {
    exit_release(s->as, a_normal);
  }
  return NULL;
}

static void mbox_sender_recorded(void) {
  muproc_pid_t self = setup(0), other = 0;
  struct sender s;
  muproc_msg_t *m = NULL;
  pthread_t t;

  send_n(self, (int64_t)self);
  s.to = self;
  s.as = 0;
  t = THREAD(send_from_thread, &s);
  JOIN(t);
  other = created(0);
  s.as = other;
  t = THREAD(send_from_thread, &s);
  JOIN(t);

  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_EQ_U64(muproc_msg_sender(m), self);
  CHECK_OK(muproc_recv(self, m, NULL, MUPROC_NOWAIT, &m));
  CHECK_EQ_U64(muproc_msg_sender(m), 0);
  CHECK_OK(muproc_recv(self, m, NULL, MUPROC_NOWAIT, &m));
  CHECK_EQ_U64(muproc_msg_sender(m), other);
  CHECK_OK(muproc_recv_take(self, m)); /* still known after the take */
  CHECK_EQ_U64(muproc_msg_sender(m), other);
  CHECK_EQ_INT(n_of(m), (int64_t)other);
  muproc_msg_free(m);
  teardown(self);
}

/* After its exit a process drains what was queued; release frees the rest
 * with their handles. */
static void mbox_drain_after_exit(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m = NULL, *late;
  uint64_t h = 0;

  send_n(self, 0);
  m = msg_n(1);
  CHECK_OK(muproc_msg_put_new_handle(m, ka, &h));
  CHECK_OK(muproc_send(self, m));
  send_n(self, 2);
  CHECK_OK(muproc_proc_exit(self, MUPROC_T_ATOM, a_normal));
  late = msg_n(9);
  CHECK_RC(muproc_send(self, late), MUPROC_ESRCH);
  muproc_msg_free(late);

  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_EQ_INT(n_of(m), 0);
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 2);
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  CHECK_OK(muproc_proc_release(self));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  MUPROC_FINISH();
}

/* Selective receive through the key index (keyindex.c) must find exactly
 * what a plain scan finds.  A model of the queue (each message's :n and
 * which of six keys it has) is kept next to the real mailbox; random
 * bursts of messages, random filters (one or two sets of zero to two
 * keys), cursor walks and takes are applied to both, and every receive is
 * compared with the model's answer.  Keys are skewed (k0 on most
 * messages, k5 on one in a hundred) so that filtered receives skip long
 * runs: the index is built, used, and dropped as the queue shrinks,
 * many times over. */
#define MODEL_KEYS 6
#define MODEL_MAX 4096
struct model_entry {
  int64_t n;
  unsigned mask;
  muproc_msg_t *msg; /* as received, once seen */
};

static uint64_t lcg_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t below) {
  lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(lcg_state >> 33) % below;
}

static unsigned random_mask(void) {
  static const uint32_t percent[MODEL_KEYS] = {90, 40, 20, 10, 5, 1};
  unsigned mask = 0;
  for (int k = 0; k < MODEL_KEYS; k++)
    if (rnd(100) < percent[k])
      mask |= 1u << k;
  return mask;
}

static bool model_passes(unsigned mask, const uint32_t *filter,
                         const unsigned *set_masks) {
  for (uint32_t s = 0; s < filter[0]; s++)
    if ((mask & set_masks[s]) == set_masks[s])
      return true;
  return false;
}

static void mbox_filter_index_agrees_with_scan(void) {
  muproc_pid_t self = setup(0);
  muproc_atom_t keys[MODEL_KEYS];
  static struct model_entry model[MODEL_MAX];
  int len = 0, rounds = slow() ? 300 : 3000, builds = 0;
  int64_t next_n = 0, indexed = 0;
  for (int k = 0; k < MODEL_KEYS; k++) {
    char name[8];
    snprintf(name, sizeof name, "k%d", k);
    keys[k] = ATOM(name);
  }
  for (int round = 0; round < rounds; round++) {
    /* Phases of filling and draining swing the queue between a few
     * thousand messages and none. */
    bool filling = (round / 100) % 2 == 0;
    int burst = filling ? (int)rnd(60) : (int)rnd(2);
    for (int b = 0; b < burst && len < MODEL_MAX; b++) {
      unsigned mask = random_mask();
      muproc_msg_t *m = muproc_msg_new(1 + MODEL_KEYS, 0);
      CHECK_OK(muproc_msg_put_int(m, ATOM("n"), next_n));
      for (int k = 0; k < MODEL_KEYS; k++)
        if (mask & (1u << k))
          CHECK_OK(muproc_msg_put_int(m, keys[k], k));
      CHECK_OK(muproc_send(self, m));
      model[len++] = (struct model_entry){next_n++, mask, NULL};
    }
    /* A random filter: one or two sets of zero to two keys. */
    uint32_t filter[1 + 2 * 3];
    unsigned set_masks[2] = {0, 0};
    uint32_t at = 1;
    filter[0] = 1 + rnd(2);
    for (uint32_t s = 0; s < filter[0]; s++) {
      uint32_t nkeys = rnd(3);
      filter[at++] = nkeys;
      for (uint32_t k = 0; k < nkeys; k++) {
        uint32_t key = 1 + rnd(MODEL_KEYS - 1); /* k0 is too common to skip */
        filter[at++] = keys[key];
        set_masks[s] |= 1u << key;
      }
    }
    /* Walk up to four matches with a cursor, then take the last one. */
    muproc_msg_t *cursor = NULL, *m = NULL;
    int pos = -1, steps = 1 + (int)rnd(4);
    for (int step = 0; step < steps; step++) {
      int want = pos + 1;
      while (want < len && !model_passes(model[want].mask, filter, set_masks))
        want++;
      int rc = muproc_recv(self, cursor, filter, MUPROC_NOWAIT, &m);
      if (want == len) {
        CHECK_RC(rc, MUPROC_ETIMEDOUT);
        break;
      }
      CHECK_OK(rc);
      CHECK_EQ_INT(n_of(m), model[want].n);
      cursor = m;
      pos = want;
    }
    if (pos >= 0 && rnd(10) < 8) {
      CHECK_OK(muproc_recv_take(self, cursor));
      muproc_msg_free(cursor);
      memmove(&model[pos], &model[pos + 1], (size_t)(len - pos - 1) * sizeof *model);
      len--;
    }
    /* The backlog must be indexed now and then, or this tests nothing. */
    int64_t now_indexed = muproc_stat(MUPROC_STAT_KEY_INDEXES);
    builds += now_indexed > indexed;
    indexed = now_indexed;
    /* Some go oldest first, as plain receives take them. */
    for (int t = filling ? (int)rnd(2) : 1 + (int)rnd(100); t > 0 && len > 0; t--) {
      CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
      CHECK_EQ_INT(n_of(m), model[0].n);
      CHECK_OK(muproc_recv_take(self, m));
      muproc_msg_free(m);
      memmove(&model[0], &model[1], (size_t)(len - 1) * sizeof *model);
      len--;
    }
    CHECK_EQ_INT(muproc_mbox_count(self), len);
  }
  if (builds < (slow() ? 1 : 4))
    tap_fail(__FILE__, __LINE__, "the index was built %d times", builds);
  teardown(self); /* frees what is still queued, index and all */
}

/* The index finds a message carrying a key the backlog lacks without
 * walking the backlog: with 20,000 messages queued ahead of it, each
 * filtered receive returns it, and a reply sent later is found after the
 * previous one is taken.  A lone receive scans (no index for one use);
 * the index comes once scans have skipped the backlog four times over,
 * and goes when the backlog is taken. */
static void mbox_filter_index_backlog(void) {
  muproc_pid_t self = setup(0);
  uint32_t wanted[] = {1, 1, kwanted};
  muproc_msg_t *m = NULL;
  int backlog = slow() ? 2000 : 20000;
  for (int i = 0; i < backlog; i++)
    send_n(self, i);
  for (int round = 0; round < 100; round++) {
    m = muproc_msg_new(2, 0);
    CHECK_OK(muproc_msg_put_int(m, ATOM("n"), 1000000 + round));
    CHECK_OK(muproc_msg_put_nil(m, kwanted));
    CHECK_OK(muproc_send(self, m));
    CHECK_OK(muproc_recv(self, NULL, wanted, MUPROC_NOWAIT, &m));
    CHECK_EQ_INT(n_of(m), 1000000 + round);
    if (round == 0)
      CHECK_EQ_INT(muproc_stat(MUPROC_STAT_KEY_INDEXES), 0);
    CHECK_OK(muproc_recv_take(self, m));
    muproc_msg_free(m);
    CHECK_RC(muproc_recv(self, NULL, wanted, MUPROC_NOWAIT, &m), MUPROC_ETIMEDOUT);
    /* Two scans of the backlog per round: paid for (four backlogs
     * skipped) at the end of the second. */
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_KEY_INDEXES), round >= 1 ? 1 : 0);
  }
  /* The backlog is intact and in order. */
  for (int i = 0; i < backlog; i++) {
    CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
    CHECK_EQ_INT(n_of(m), i);
    CHECK_OK(muproc_recv_take(self, m));
    muproc_msg_free(m);
  }
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_KEY_INDEXES), 0);
  teardown(self);
}


/* A message {:n N, KEY 1}. */
static muproc_msg_t *msg_n_key(int64_t n, muproc_atom_t key) {
  muproc_msg_t *m = msg_n(n);
  CHECK_OK(muproc_msg_put_int(m, key, 1));
  return m;
}

/* The receive mark: the scan resumes after the last message examined,
 * whatever happened to the queue in between; taking or removing the
 * marked message moves the mark back, never onto freed memory. */
static void mbox_receive_mark(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m = NULL, *x = NULL;
  int32_t set = -1;
  for (int i = 0; i < 5; i++)
    send_n(self, i);
  /* Examine 0 and 1 (rejected, say, by a guard). */
  CHECK_OK(muproc_recv_next(self, MUPROC_RECV_RESTART, NULL, MUPROC_NOWAIT, &m, NULL, &set));
  CHECK_EQ_INT(n_of(m), 0);
  CHECK_EQ_INT(set, 0);
  CHECK_OK(muproc_recv_next(self, 0, NULL, MUPROC_NOWAIT, &m, NULL, &set));
  CHECK_EQ_INT(n_of(m), 1);
  /* Someone else takes the marked message (a nested receive): the next
   * call resumes at 2, and taking the mark now is refused. */
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  CHECK_RC(muproc_recv_take_mark(self, &x), MUPROC_ESTATE);
  CHECK_OK(muproc_recv_next(self, 0, NULL, MUPROC_NOWAIT, &m, NULL, &set));
  CHECK_EQ_INT(n_of(m), 2);
  CHECK_OK(muproc_recv_take_mark(self, &x));
  CHECK(x == m);
  muproc_msg_free(x);
  /* The mark went back to 0: 3 is next. */
  CHECK_OK(muproc_recv_next(self, 0, NULL, MUPROC_NOWAIT, &m, NULL, &set));
  CHECK_EQ_INT(n_of(m), 3);
  /* A pointer to a taken message is no cursor any more: refused, not
   * followed into the queue it left (its links are poisoned). */
  CHECK_OK(muproc_recv_take_mark(self, &x));
  CHECK_RC(muproc_recv(self, x, NULL, MUPROC_NOWAIT, &m), MUPROC_EINVAL);
  CHECK_RC(muproc_recv_take(self, x), MUPROC_EINVAL);
  muproc_msg_free(x);
  /* Restart: from the oldest again. */
  CHECK_OK(muproc_recv_next(self, MUPROC_RECV_RESTART, NULL, MUPROC_NOWAIT, &m, NULL, &set));
  CHECK_EQ_INT(n_of(m), 0);
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  CHECK_WALK(self, NULL, 0, 4);
  teardown(self);
}

/* A match is taken only when no signal waits: the signal comes first and
 * the match stays queued and marked. */
static void mbox_take_mark_yields_to_signals(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m = NULL, *x = NULL;
  int32_t set;
  send_n(self, 0);
  CHECK_OK(muproc_recv_next(self, MUPROC_RECV_RESTART, NULL, MUPROC_NOWAIT, &m, NULL, &set));
  CHECK_OK(muproc_signal_send(self, MUPROC_K_INTERRUPT, msg_n(99)));
  CHECK_RC(muproc_recv_take_mark(self, &x), MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(x), MUPROC_K_INTERRUPT);
  muproc_msg_free(x);
  CHECK_EQ_INT(muproc_mbox_count(self), 1);
  CHECK_OK(muproc_recv_take_mark(self, &x));
  CHECK(x == m);
  CHECK_EQ_INT(n_of(x), 0);
  muproc_msg_free(x);
  CHECK_EQ_INT(muproc_mbox_count(self), 0);
  teardown(self);
}

/* Final sets are matched and taken in one call; the set index tells
 * which clause; a view comes with the message. */
static void mbox_recv_next_final_sets(void) {
  muproc_pid_t self = setup(0);
  muproc_msg_t *m = NULL;
  muproc_msg_view_t view;
  int32_t set = -1;
  /* Clause 0: (a) with a guard; clause 1: (b), no guard. */
  uint32_t filter[] = {2, 1, ka, 1 | MUPROC_FILTER_FINAL, kb};
  CHECK_OK(muproc_send(self, msg_n_key(0, kc)));
  CHECK_OK(muproc_send(self, msg_n_key(1, ka)));
  CHECK_OK(muproc_send(self, msg_n_key(2, kb)));
  int rc = muproc_recv_next(self, MUPROC_RECV_RESTART | MUPROC_RECV_TAKE, filter,
                            MUPROC_NOWAIT, &m, &view, &set);
  CHECK_RC(rc, 0); /* :a needs its guard: only examined */
  CHECK_EQ_INT(n_of(m), 1);
  CHECK_EQ_INT(set, 0);
  CHECK_EQ_INT((int)view.npairs, 2);
  rc = muproc_recv_next(self, MUPROC_RECV_TAKE, filter, MUPROC_NOWAIT, &m, &view, &set);
  CHECK_RC(rc, MUPROC_TAKEN);
  CHECK_EQ_INT(n_of(m), 2);
  CHECK_EQ_INT(set, 1);
  CHECK_EQ_INT(view.kind, MUPROC_K_MESSAGE);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  CHECK_RC(muproc_recv_next(self, MUPROC_RECV_TAKE, filter, MUPROC_NOWAIT, &m, &view, &set),
           MUPROC_ETIMEDOUT);
  CHECK_RC(muproc_recv_next(self, 4, filter, MUPROC_NOWAIT, &m, &view, &set), MUPROC_EINVAL);
  teardown(self);
}

/* muproc_msg_release reports the handles whose last reference died, and
 * never writes past the room it is given. */
static void mbox_release_reports_dead_handles(void) {
  muproc_pid_t self = setup(0);
  uint64_t h[3] = {0}, dead[2] = {0, 0};
  muproc_msg_t *m = muproc_msg_new(4, 0);
  CHECK_OK(muproc_msg_put_int(m, kc, 5));
  for (int i = 0; i < 3; i++)
    CHECK_OK(muproc_msg_put_new_handle(m, i == 0 ? ka : i == 1 ? kb : kd, &h[i]));
  CHECK_EQ_INT((int)muproc_msg_release(m, dead, 1), 3);
  CHECK(dead[0] == h[0]);
  CHECK(dead[1] == 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  CHECK_EQ_INT((int)muproc_msg_release(NULL, dead, 2), 0);
  teardown(self);
}

static const struct tap_case cases[] = {
    TAP_CASE(mbox_fifo),
    TAP_CASE(mbox_cursor_and_take),
    TAP_CASE(mbox_take_not_queued),
    TAP_CASE(mbox_receive_mark),
    TAP_CASE(mbox_take_mark_yields_to_signals),
    TAP_CASE(mbox_recv_next_final_sets),
    TAP_CASE(mbox_release_reports_dead_handles),
    TAP_CASE(mbox_filter),
    TAP_CASE_TIMEOUT(mbox_filter_index_agrees_with_scan, 120),
    TAP_CASE_TIMEOUT(mbox_filter_index_backlog, 120),
    TAP_CASE(mbox_deadlines),
    TAP_CASE(mbox_blocked_recv_wakes),
    TAP_CASE(mbox_signal_priority_lane),
    TAP_CASE(mbox_capacity),
    TAP_CASE(mbox_aliases),
    TAP_CASE(mbox_recv_by_other_thread),
    TAP_CASE(mbox_sender_recorded),
    TAP_CASE(mbox_drain_after_exit),
};
TAP_MAIN(cases)
