/* test-observe.c - what observers read from any thread: message totals,
 * peeking at a queue, monitor lists, a thread's CPU time. */
#include "muproc-test.h"

/* Totals count messages in, taken and out; signals count in none. */
static void observe_totals(void) {
  test_init(0);
  muproc_pid_t self = bind_self(0), other = created(0);
  int64_t in = -1, taken = -1, out = -1;
  muproc_msg_t *m = NULL;

  for (int i = 0; i < 3; i++)
    CHECK_OK(muproc_send(self, msg_n(i)));   /* from SELF to itself */
  CHECK_OK(muproc_send(other, msg_n(9)));
  CHECK_OK(muproc_signal_send(self, MUPROC_K_INTERRUPT, msg_n(7)));
  CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m), MUPROC_SIGNALLED);
  muproc_msg_free(m);
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_OK(muproc_recv_take(self, m));
  muproc_msg_free(m);
  CHECK_OK(muproc_mbox_totals(self, &in, &taken, &out));
  CHECK_EQ_INT(in, 3);
  CHECK_EQ_INT(taken, 1);
  CHECK_EQ_INT(out, 4);
  CHECK_EQ_INT(in - taken, muproc_mbox_count(self));
  CHECK_OK(muproc_mbox_totals(other, &in, NULL, &out));
  CHECK_EQ_INT(in, 1);
  CHECK_EQ_INT(out, 0);
  exit_release(other, a_normal);
  CHECK_RC(muproc_mbox_totals(other, &in, &taken, &out), MUPROC_ESRCH);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Peeking shows queued messages in order, moves nothing, takes nothing. */
static void observe_peek(void) {
  test_init(0);
  muproc_pid_t self = bind_self(0), other = created(0);
  muproc_msg_view_t view;
  muproc_msg_t *m = NULL;

  CHECK_RC(muproc_mbox_peek(self, 0, &view), MUPROC_ENOENT);
  for (int i = 0; i < 4; i++)
    CHECK_OK(muproc_send(self, msg_n(i)));
  /* The receive mark sits on message 1. */
  CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m));
  CHECK_OK(muproc_recv(self, m, NULL, MUPROC_NOWAIT, &m));
  CHECK_EQ_INT(n_of(m), 1);
  for (int i = 0; i < 4; i++) {
    CHECK_OK(muproc_mbox_peek(self, (uint64_t)i, &view));
    CHECK_EQ_INT((int)view.npairs, 1);
    CHECK_EQ_INT(view.pairs[0].v.i, i);
  }
  CHECK_RC(muproc_mbox_peek(self, 4, &view), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_mbox_count(self), 4);
  /* The mark did not move: the next one after it is 2. */
  CHECK_OK(muproc_recv_next(self, 0, NULL, MUPROC_NOWAIT, &m, &view, NULL));
  CHECK_EQ_INT(n_of(m), 2);
  /* Receiver only, and a view is needed. */
  CHECK_RC(muproc_mbox_peek(other, 0, &view), MUPROC_EPERM);
  CHECK_RC(muproc_mbox_peek(self, 0, NULL), MUPROC_EINVAL);
  exit_release(other, a_normal);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Monitor lists from both ends, one entry per monitor. */
static void observe_monitors(void) {
  test_init(0);
  muproc_pid_t self = bind_self(0), a = created(0), b = created(0);
  muproc_pid_t buf[4] = {0};
  uint64_t r1, r2, r3;

  CHECK_EQ_INT(muproc_monitors(self, 0, NULL, 0), 0);
  CHECK_OK(muproc_monitor(self, a, &r1));
  CHECK_OK(muproc_monitor(self, a, &r2));
  CHECK_OK(muproc_monitor(self, b, &r3));
  CHECK_EQ_INT(muproc_monitors(self, 0, buf, 4), 3);
  CHECK(buf[0] == a && buf[1] == a && buf[2] == b);
  CHECK_EQ_INT(muproc_monitors(a, 1, buf, 4), 2);
  CHECK(buf[0] == self && buf[1] == self);
  CHECK_EQ_INT(muproc_monitors(b, 0, buf, 4), 0);
  /* CAP bounds what is written, not what is counted. */
  buf[1] = 0;
  CHECK_EQ_INT(muproc_monitors(self, 0, buf, 1), 3);
  CHECK(buf[1] == 0);
  CHECK_OK(muproc_demonitor(self, r2));
  CHECK_EQ_INT(muproc_monitors(a, 1, NULL, 0), 1);
  CHECK_OK(muproc_demonitor(self, r1));
  CHECK_OK(muproc_demonitor(self, r3));
  exit_release(a, a_normal);
  exit_release(b, a_normal);
  CHECK_RC(muproc_monitors(a, 0, buf, 4), MUPROC_ESRCH);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* A started process's thread CPU time grows; none before it starts. */
static void observe_cpu(void) {
  test_init(0);
  muproc_pid_t self = bind_self(0), other = created(0);
  int64_t t0 = muproc_proc_cpu_ns(self), t1;
  volatile uint64_t x = 0;

  CHECK(t0 >= 0);
  do {
    for (int i = 0; i < 1000000; i++)
      x += (uint64_t)i;
    t1 = muproc_proc_cpu_ns(self);
  } while (t1 == t0);
  CHECK(t1 > t0);
  CHECK_RC(muproc_proc_cpu_ns(other), MUPROC_ESTATE);
  exit_release(other, a_normal);
  CHECK_RC(muproc_proc_cpu_ns(other), MUPROC_ESRCH);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(observe_totals),
    TAP_CASE(observe_peek),
    TAP_CASE(observe_monitors),
    TAP_CASE(observe_cpu),
};
TAP_MAIN(cases)
