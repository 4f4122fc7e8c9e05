/* test-link.c - links and the exit notices they carry: exit signals,
 * trapped exits, noproc, unlink, races of link and unlink with an exit,
 * long chains and wide fans of links, muproc_send_exit, exit reasons that
 * are handles; and pokes (signals to Lisp muprocs that are not receiving).
 *
 * Processes are C muprocs (muproc_spawn_c) or Lisp-kind processes bound
 * to plain threads (muproc_proc_create + muproc_proc_start); a process
 * still in state CREATED stands for one that never got to run (any
 * thread may exit it).
 *
 * Sizes: MUPROC_TEST_N (processes in the chain and the fan; default 1000,
 * 100 under ThreadSanitizer and valgrind) and MUPROC_TEST_ITERS (rounds of
 * the race cases; default 3000, 300 there). */
#include "muproc-test.h"

static muproc_atom_t k_die, k_ready;

static void init_ok(uint32_t max_procs) {
  test_init(max_procs);
  k_die = ATOM("die");
  k_ready = ATOM("ready");
}

/* ---- exit signals ------------------------------------------------------ */

/* A thread that runs process A: starts it, says so, waits to be told,
 * exits with REASON and releases. */
struct runner {
  muproc_pid_t pid;
  muproc_atom_t reason;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int started, go;
};

static void runner_init(struct runner *r, muproc_pid_t pid,
                        muproc_atom_t reason) {
  memset(r, 0, sizeof *r);
  r->pid = pid;
  r->reason = reason;
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
}

static void runner_destroy(struct runner *r) {
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
}

static void *runner_main(void *arg) {
  struct runner *r = arg;
  CHECK_OK(muproc_proc_start(r->pid));
  pthread_mutex_lock(&r->lock);
  r->started = 1;
  pthread_cond_broadcast(&r->cond);
  while (!r->go)
    pthread_cond_wait(&r->cond, &r->lock);
  pthread_mutex_unlock(&r->lock);
  CHECK_OK(muproc_proc_exit(r->pid, MUPROC_T_ATOM, r->reason));
  CHECK_OK(muproc_proc_release(r->pid));
  CHECK_EQ_U64(muproc_self(), 0);
  return NULL;
}

static void runner_wait_started(struct runner *r) {
  pthread_mutex_lock(&r->lock);
  while (!r->started)
    pthread_cond_wait(&r->cond, &r->lock);
  pthread_mutex_unlock(&r->lock);
}

static void runner_go(struct runner *r) {
  pthread_mutex_lock(&r->lock);
  r->go = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

/* A running process that exits delivers to its linked peer an exit
 * signal from: A  reason: <A's reason>  link: true; normal exits too. */
static void link_exit_signal(void) {
  static const muproc_atom_t *reasons[] = {&a_boom, &a_normal};
  muproc_pid_t self, a, buf[4];
  muproc_msg_t *m;
  size_t i;

  init_ok(0);
  self = bind_self(0);
  for (i = 0; i < 2; i++) {
    struct runner r;
    pthread_t t;
    muproc_atom_t reason = *reasons[i];

    a = created(0);
    runner_init(&r, a, reason);
    t = THREAD(runner_main, &r);
    runner_wait_started(&r);
    CHECK_EQ_INT(muproc_proc_state(a), MUPROC_S_RUNNING);
    CHECK_OK(muproc_link(self, a));
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 2);
    CHECK_EQ_INT(muproc_links(self, buf, 4), 1);
    CHECK_EQ_U64(buf[0], a);
    CHECK_EQ_INT(muproc_links(a, buf, 4), 1);
    CHECK_EQ_U64(buf[0], self);
    check_empty(self);
    runner_go(&r);
    JOIN(t);
    runner_destroy(&r);

    /* The exit is complete when muproc_proc_exit returned: the notice is
     * already in the priority lane, never an ordinary message. */
    CHECK_EQ_INT(muproc_proc_state(a), MUPROC_S_NOPROC);
    CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
    CHECK_EQ_INT(muproc_mbox_count(self), 0);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
    CHECK_EQ_INT(muproc_links(self, buf, 4), 0);
    CHECK_RC(muproc_recv(self, NULL, NULL, MUPROC_NOWAIT, &m),
             MUPROC_SIGNALLED);
    CHECK_EXIT_SIGNAL(m, a, MUPROC_T_ATOM, reason, 1);
    muproc_msg_free(m);
    /* C muprocs don't die of exit signals by themselves: still alive. */
    CHECK_EQ_INT(muproc_proc_state(self), MUPROC_S_RUNNING);
    check_empty(self);
  }
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* A C muproc links to its parent and returns: the parent gets the exit
 * signal with reason normal. */
struct linker {
  muproc_pid_t parent, child;
};

static void link_to_parent_and_return(void *arg) {
  struct linker *l = arg;
  l->child = muproc_self();
  CHECK_OK(muproc_link(l->child, l->parent));
}

static void link_c_muproc_returns(void) {
  struct linker l;
  muproc_pid_t self, child = 0;
  muproc_msg_t *m;

  init_ok(0);
  self = bind_self(0);
  l.parent = self;
  l.child = 0;
  child = spawn_c(0, link_to_parent_and_return, &l);
  m = next_signal(self, in_secs(10));
  CHECK_EXIT_SIGNAL(m, child, MUPROC_T_ATOM, a_normal, 1);
  muproc_msg_free(m);
  CHECK_OK(muproc_wait_c_idle(in_secs(10)));
  CHECK_EQ_U64(l.child, child);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Links are two-way: whichever end exits, the other is told; the one who
 * called muproc_link does not matter. */
struct waiter {
  muproc_pid_t pid;
  muproc_msg_t *got;
  int rc;
  atomic_int ready;
};

static void *wait_for_signal(void *arg) {
  struct waiter *w = arg;
  CHECK_OK(muproc_proc_start(w->pid));
  atomic_store(&w->ready, 1);
  w->rc = muproc_recv(w->pid, NULL, NULL, MUPROC_FOREVER, &w->got);
  exit_release(w->pid, a_normal);
  return NULL;
}

static void link_two_way(void) {
  muproc_pid_t self, a, b;
  struct waiter w;
  muproc_msg_t *m;
  pthread_t t;

  init_ok(0);
  self = bind_self(0);

  /* Linked by the other end's call; the other end exits. */
  a = created(0);
  CHECK_OK(muproc_link(a, self));
  CHECK_OK(muproc_proc_exit(a, MUPROC_T_INT, 42));
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, a, MUPROC_T_INT, 42, 1);
  muproc_msg_free(m);
  CHECK_OK(muproc_proc_release(a));

  /* Linked by our call; we exit and the other end, blocked in receive,
   * is woken by the signal. */
  b = created(0);
  CHECK_OK(muproc_link(self, b));
  memset(&w, 0, sizeof w);
  w.pid = b;
  atomic_init(&w.ready, 0);
  t = THREAD(wait_for_signal, &w);
  WAIT_UNTIL(atomic_load(&w.ready) && muproc_proc_state(b) == MUPROC_S_WAITING,
             10);
  CHECK_OK(muproc_proc_exit(self, MUPROC_T_ATOM, a_bye));
  JOIN(t);
  CHECK_RC(w.rc, MUPROC_SIGNALLED);
  CHECK_EXIT_SIGNAL(w.got, self, MUPROC_T_ATOM, a_bye, 1);
  muproc_msg_free(w.got);
  CHECK_OK(muproc_proc_release(self));
  MUPROC_FINISH();
}

/* A process trapping exits gets an ordinary message instead: the exit
 * signal waits in the priority lane until the receiver takes it, then
 * joins the queue after what was already there, even past its capacity. */
static void link_trap_exits(void) {
  muproc_pid_t self, a, dead;
  muproc_msg_t *m, *extra;
  int i;

  init_ok(0);
  self = bind_self(2);
  CHECK_EQ_INT(muproc_proc_trap_exits(self), 0);
  CHECK_EQ_INT(muproc_proc_set_trap_exits(self, 1), 0);
  CHECK_EQ_INT(muproc_proc_trap_exits(self), 1);
  CHECK_EQ_INT(muproc_proc_set_trap_exits(self, 1), 1);

  a = created(0);
  CHECK_OK(muproc_link(self, a));
  CHECK_OK(muproc_send(self, msg_n(1)));
  CHECK_OK(muproc_send(self, msg_n(2)));
  extra = msg_n(3);
  CHECK_RC(muproc_send(self, extra), MUPROC_EFULL); /* full */
  muproc_msg_free(extra);
  CHECK_OK(muproc_proc_exit(a, MUPROC_T_ATOM, a_boom));
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  for (i = 1; i <= 2; i++) {
    m = next_msg(self, MUPROC_NOWAIT);
    CHECK_EQ_INT(n_of(m), i);
    muproc_msg_free(m);
  }
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_TRAPPED(m, a, MUPROC_T_ATOM, a_boom, 1);
  muproc_msg_free(m);
  CHECK_OK(muproc_proc_release(a));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);

  /* A normal exit is trapped the same way. */
  a = created(0);
  CHECK_OK(muproc_link(a, self));
  CHECK_OK(muproc_send(self, msg_n(4)));
  exit_release(a, a_normal);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_EQ_INT(n_of(m), 4);
  muproc_msg_free(m);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_TRAPPED(m, a, MUPROC_T_ATOM, a_normal, 1);
  muproc_msg_free(m);

  /* And noproc too. */
  dead = created(0);
  exit_release(dead, a_normal);
  CHECK_OK(muproc_link(self, dead));
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_TRAPPED(m, dead, MUPROC_T_ATOM, a_noproc, 1);
  muproc_msg_free(m);

  /* Trapping off again: signals again. */
  CHECK_EQ_INT(muproc_proc_set_trap_exits(self, 0), 1);
  a = created(0);
  CHECK_OK(muproc_link(self, a));
  exit_release(a, a_bye);
  CHECK_EQ_INT(muproc_mbox_count(self), 0);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, a, MUPROC_T_ATOM, a_bye, 1);
  muproc_msg_free(m);
  check_empty(self);
  exit_release(self, a_normal);
  CHECK_RC(muproc_proc_set_trap_exits(self, 1), MUPROC_ESRCH);
  CHECK_RC(muproc_proc_trap_exits(self), MUPROC_ESRCH);
  MUPROC_FINISH();
}

/* Linking to a process that is not alive: an immediate noproc notice,
 * whatever the reason it is not alive; no link is left. */
static void check_noproc_link(muproc_pid_t self, muproc_pid_t dead) {
  muproc_msg_t *m;
  muproc_pid_t buf[2];
  CHECK_OK(muproc_link(self, dead));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
  CHECK_EQ_INT(muproc_links(self, buf, 2), 0);
  CHECK_EQ_INT(muproc_mbox_count(self), 0);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, dead, MUPROC_T_ATOM, a_noproc, 1);
  muproc_msg_free(m);
  check_empty(self);
}

static void link_noproc(void) {
  muproc_pid_t self, exited, released, stale, reuse = 0, never, x;

  init_ok(8);
  self = bind_self(0);

  exited = created(0);
  CHECK_OK(muproc_proc_exit(exited, MUPROC_T_ATOM, a_normal));
  check_noproc_link(self, exited);
  CHECK_OK(muproc_proc_release(exited));

  released = created(0);
  exit_release(released, a_normal);
  check_noproc_link(self, released);

  /* A stale pid whose slot now holds another process: the newcomer is
   * not linked. */
  stale = stale_pid(&reuse);
  check_noproc_link(self, stale);
  CHECK_EQ_INT(muproc_links(reuse, NULL, 0), 0);
  /* The newcomer linking to the stale pid of its own slot: noproc too. */
  CHECK_OK(muproc_link(reuse, stale));
  CHECK_EQ_INT(muproc_links(reuse, NULL, 0), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
  CHECK_EQ_INT(muproc_mbox_signal_count(reuse), 1);
  exit_release(reuse, a_boom);
  check_empty(self);

  /* A pid that never existed. */
  never = ((uint64_t)7 << 32) | 5000;
  check_noproc_link(self, never);

  /* Errors, and nothing sent for them. */
  CHECK_RC(muproc_link(self, self), MUPROC_EINVAL);
  CHECK_RC(muproc_link(self, 0), MUPROC_EINVAL);
  CHECK_RC(muproc_link(0, self), MUPROC_EINVAL);
  x = created(0);
  CHECK_OK(muproc_proc_exit(x, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_link(x, self), MUPROC_ESRCH); /* A exited */
  CHECK_OK(muproc_proc_release(x));
  CHECK_RC(muproc_link(x, self), MUPROC_ESRCH); /* A released */
  CHECK_EQ_INT(muproc_mbox_count(x), MUPROC_ESRCH);
  check_empty(self);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static int has_pid(const muproc_pid_t *buf, int64_t n, muproc_pid_t p) {
  int64_t i;
  for (i = 0; i < n; i++)
    if (buf[i] == p)
      return 1;
  return 0;
}

/* muproc_links lists the peers; linking twice is one link (one notice);
 * after muproc_unlink no notice comes. */
static void link_list_idempotent_unlink(void) {
  muproc_pid_t self, p[3], buf[8];
  muproc_msg_t *m;
  int i;

  init_ok(0);
  self = bind_self(0);
  for (i = 0; i < 3; i++) {
    p[i] = created(0);
    CHECK_OK(muproc_link(self, p[i]));
  }
  CHECK_OK(muproc_link(self, p[0])); /* again: no-op */
  CHECK_OK(muproc_link(p[0], self)); /* from the other end: same link */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 6);
  CHECK_EQ_INT(muproc_links(self, buf, 8), 3);
  for (i = 0; i < 3; i++) {
    CHECK(has_pid(buf, 3, p[i]));
    CHECK_EQ_INT(muproc_links(p[i], buf + 4, 4), 1);
    CHECK_EQ_U64(buf[4], self);
  }
  /* A short buffer: the count is still the whole. */
  memset(buf, 0, sizeof buf);
  CHECK_EQ_INT(muproc_links(self, buf, 2), 3);
  CHECK(buf[0] != 0 && buf[1] != 0 && buf[2] == 0);
  CHECK_EQ_INT(muproc_links(self, NULL, 0), 3);

  CHECK_OK(muproc_unlink(self, p[1]));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 4);
  CHECK_OK(muproc_unlink(self, p[1])); /* not linked anymore: still 0 */
  CHECK_OK(muproc_unlink(p[2], self)); /* from the other end */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 2);
  CHECK_EQ_INT(muproc_links(self, buf, 8), 1);
  CHECK_EQ_U64(buf[0], p[0]);
  CHECK_EQ_INT(muproc_links(p[1], buf, 8), 0);
  CHECK_EQ_INT(muproc_links(p[2], buf, 8), 0);

  exit_release(p[1], a_boom);
  exit_release(p[2], a_boom);
  check_empty(self);
  exit_release(p[0], a_bye);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 1); /* linked twice, told once */
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, p[0], MUPROC_T_ATOM, a_bye, 1);
  muproc_msg_free(m);
  check_empty(self);
  CHECK_RC(muproc_links(p[0], buf, 8), MUPROC_ESRCH); /* released */

  /* Unlinking pids that are gone, or unrelated, harms nothing. */
  CHECK_OK(muproc_unlink(self, p[0]));
  CHECK_OK(muproc_unlink(p[0], p[1]));
  CHECK_OK(muproc_unlink(self, 0));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- races with an exit ------------------------------------------------ */

/* Each round (struct race, muproc-test.h) the main thread creates a
 * process A and a racer thread starts it; both pass a barrier, then the
 * racer exits and releases A while the main thread links to it (or
 * unlinks from it). */

/* A link racing the target's exit yields exactly one notice: the exit's
 * (reason bye) or noproc.  Every other round traps exits. */
static void link_races_exit(void) {
  struct race r;
  muproc_pid_t self;
  int i, told = 0, noproc = 0;

  init_ok(0);
  self = bind_self(0);
  race_begin(&r);
  for (i = 0; i < r.iters; i++) {
    int trap = i % 4 >= 2;
    muproc_msg_t *m;
    muproc_atom_t reason;

    CHECK(muproc_proc_set_trap_exits(self, trap) >= 0);
    r.a = created(0);
    race_go(&r, i);
    CHECK_OK(muproc_link(self, r.a));
    pthread_barrier_wait(&r.b2);
    /* Both returned: whatever is owed has been delivered. */
    CHECK_EQ_INT(muproc_mbox_count(self) + muproc_mbox_signal_count(self), 1);
    if (trap)
      m = next_msg(self, MUPROC_NOWAIT);
    else
      m = next_signal(self, MUPROC_NOWAIT);
    reason = reason_of(m);
    CHECK(reason == a_bye || reason == a_noproc);
    if (trap)
      CHECK_TRAPPED(m, r.a, MUPROC_T_ATOM, reason, 1);
    else
      CHECK_EXIT_SIGNAL(m, r.a, MUPROC_T_ATOM, reason, 1);
    muproc_msg_free(m);
    told += reason == a_bye;
    noproc += reason == a_noproc;
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
    CHECK_EQ_INT(muproc_links(self, NULL, 0), 0);
  }
  race_end(&r);
  tap_diag("link vs exit: %d linked before the exit, %d noproc", told,
           noproc);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* Once muproc_unlink returned, no notice from that link arrives. */
static void unlink_races_exit(void) {
  struct race r;
  muproc_pid_t self;
  int i, before = 0;

  init_ok(0);
  self = bind_self(0);
  race_begin(&r);
  for (i = 0; i < r.iters; i++) {
    int64_t c0;
    r.a = created(0);
    CHECK_OK(muproc_link(self, r.a));
    race_go(&r, i);
    CHECK_OK(muproc_unlink(self, r.a));
    c0 = muproc_mbox_signal_count(self);
    CHECK(c0 == 0 || c0 == 1);
    pthread_barrier_wait(&r.b2);
    /* The exit has finished: nothing more came. */
    CHECK_EQ_INT(muproc_mbox_signal_count(self), c0);
    CHECK_EQ_INT(muproc_mbox_count(self), 0);
    if (c0) {
      muproc_msg_t *m = next_signal(self, MUPROC_NOWAIT);
      CHECK_EXIT_SIGNAL(m, r.a, MUPROC_T_ATOM, a_bye, 1);
      muproc_msg_free(m);
      before++;
    }
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
  }
  race_end(&r);
  tap_diag("unlink vs exit: %d told before the unlink, %d not", before,
           r.iters - before);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- many links -------------------------------------------------------- */

/* A chain of C muprocs, each linked to the previous one.  A member exits
 * with the reason of the first exit signal it gets (C muprocs don't die of
 * exit signals by themselves), or with the reason in a {die: R} message. */
struct chain {
  muproc_pid_t main;
  muproc_pid_t *pids;
  muproc_pid_t *prev;
  muproc_pid_t *got_from;
  muproc_atom_t *got_reason;
  int *got_link;
};
struct chain_arg {
  struct chain *c;
  int i;
};

static void chain_member(void *arg) {
  struct chain_arg *a = arg;
  struct chain *c = a->c;
  muproc_pid_t self = muproc_self();
  muproc_msg_t *m;

  if (c->prev[a->i])
    CHECK_OK(muproc_link(self, c->prev[a->i]));
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_int(m, k_ready, a->i));
  CHECK_OK(muproc_send(c->main, m));
  for (;;) {
    int rc, ri, fi;
    m = NULL;
    rc = muproc_recv(self, NULL, NULL, MUPROC_FOREVER, &m);
    if (rc == MUPROC_SIGNALLED) {
      CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_EXIT);
      fi = muproc_msg_find(m, k_from);
      ri = muproc_msg_find(m, k_reason);
      CHECK(fi >= 0 && ri >= 0);
      c->got_from[a->i] = muproc_msg_pid(m, (uint32_t)fi);
      c->got_reason[a->i] = muproc_msg_atom(m, (uint32_t)ri);
      c->got_link[a->i] = muproc_msg_find(m, k_link) >= 0;
      muproc_msg_free(m);
      CHECK_OK(muproc_proc_exit(self, MUPROC_T_ATOM, c->got_reason[a->i]));
      return;
    }
    CHECK_OK(rc);
    CHECK_OK(muproc_recv_take(self, m));
    ri = muproc_msg_find(m, k_die);
    if (ri >= 0) {
      muproc_atom_t reason = muproc_msg_atom(m, (uint32_t)ri);
      muproc_msg_free(m);
      CHECK_OK(muproc_proc_exit(self, MUPROC_T_ATOM, reason));
      return;
    }
    muproc_msg_free(m);
  }
}

static void link_chain(void) {
  int n = env_size("MUPROC_TEST_N", 1000, 100), i;
  struct chain c;
  struct chain_arg *args;
  muproc_pid_t self, tail;
  muproc_msg_t *m;
  char *ready;

  init_ok(0);
  self = bind_self(0);
  c.main = self;
  c.pids = calloc((size_t)n, sizeof *c.pids);
  c.prev = calloc((size_t)n, sizeof *c.prev);
  c.got_from = calloc((size_t)n, sizeof *c.got_from);
  c.got_reason = calloc((size_t)n, sizeof *c.got_reason);
  c.got_link = calloc((size_t)n, sizeof *c.got_link);
  args = calloc((size_t)n, sizeof *args);
  ready = calloc((size_t)n, 1);
  CHECK(c.pids && c.prev && c.got_from && c.got_reason && c.got_link && args &&
        ready);
  for (i = 0; i < n; i++) {
    args[i].c = &c;
    args[i].i = i;
    c.prev[i] = i ? c.pids[i - 1] : 0;
    c.pids[i] = spawn_c(0, chain_member, &args[i]);
  }
  /* Every member has linked once all said ready. */
  for (i = 0; i < n; i++) {
    int64_t k;
    m = next_msg(self, in_secs(60));
    CHECK(muproc_msg_find(m, k_ready) == 0);
    k = muproc_msg_int(m, 0);
    CHECK(k >= 0 && k < n && !ready[k]);
    ready[k] = 1;
    muproc_msg_free(m);
  }
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 2 * (n - 1));
  if (n > 2)
    CHECK_EQ_INT(muproc_links(c.pids[1], NULL, 0), 2);
  tail = c.pids[n - 1];
  CHECK_EQ_INT(muproc_proc_set_trap_exits(self, 1), 0);
  CHECK_OK(muproc_link(self, tail));

  /* Kill the head: the exit travels down the whole chain to us. */
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_atom(m, k_die, a_boom));
  CHECK_OK(muproc_send(c.pids[0], m));
  m = next_msg(self, in_secs(120));
  CHECK_TRAPPED(m, tail, MUPROC_T_ATOM, a_boom, 1);
  muproc_msg_free(m);
  CHECK_OK(muproc_wait_c_idle(in_secs(60)));
  for (i = 1; i < n; i++) {
    CHECK_EQ_U64(c.got_from[i], c.pids[i - 1]);
    CHECK_EQ_INT(c.got_reason[i], a_boom);
    CHECK_EQ_INT(c.got_link[i], 1);
  }
  CHECK_EQ_U64(c.got_from[0], 0); /* the head died of its message */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
  check_empty(self);
  exit_release(self, a_normal);
  free(c.pids);
  free(c.prev);
  free(c.got_from);
  free(c.got_reason);
  free(c.got_link);
  free(args);
  free(ready);
  MUPROC_FINISH();
}

/* One process linked to N others gets N notices when they all exit, here
 * concurrently from several threads. */
enum { FAN_THREADS = 8 };
struct fan {
  muproc_pid_t *pids;
  int n, k;
};

static void *fan_exiter(void *arg) {
  struct fan *f = arg;
  int i;
  for (i = f->k; i < f->n; i += FAN_THREADS) /* CREATED: any thread */
    CHECK_OK(muproc_proc_exit(f->pids[i], MUPROC_T_INT, (uint64_t)i));
  return NULL;
}

static void link_fan(void) {
  int n = env_size("MUPROC_TEST_N", 1000, 100), i, round;
  struct fan f[FAN_THREADS];
  pthread_t t[FAN_THREADS];
  muproc_pid_t self, *pids;
  char *seen;

  init_ok(0);
  self = bind_self(0);
  pids = calloc((size_t)n, sizeof *pids);
  seen = calloc((size_t)n, 1);
  CHECK(pids && seen);
  for (round = 0; round < 2; round++) { /* not trapping, then trapping */
    CHECK(muproc_proc_set_trap_exits(self, round) >= 0);
    for (i = 0; i < n; i++) {
      pids[i] = created(0);
      if (i % 2)
        CHECK_OK(muproc_link(self, pids[i]));
      else
        CHECK_OK(muproc_link(pids[i], self));
    }
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 2 * n);
    CHECK_EQ_INT(muproc_links(self, NULL, 0), n);
    for (i = 0; i < FAN_THREADS; i++) {
      f[i].pids = pids;
      f[i].n = n;
      f[i].k = i;
      t[i] = THREAD(fan_exiter, &f[i]);
    }
    for (i = 0; i < FAN_THREADS; i++)
      JOIN(t[i]);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
    CHECK_EQ_INT(muproc_links(self, NULL, 0), 0);
    CHECK_EQ_INT(muproc_mbox_signal_count(self), n); /* trapped or not */
    memset(seen, 0, (size_t)n);
    for (i = 0; i < n; i++) {
      muproc_msg_t *m = round ? next_msg(self, MUPROC_NOWAIT)
                              : next_signal(self, MUPROC_NOWAIT);
      int ri = muproc_msg_find(m, k_reason);
      int64_t k;
      CHECK(ri >= 0);
      k = muproc_msg_int(m, (uint32_t)ri);
      CHECK(k >= 0 && k < n && !seen[k]);
      seen[k] = 1;
      if (round)
        CHECK_TRAPPED(m, pids[k], MUPROC_T_INT, (uint64_t)k, 1);
      else
        CHECK_EXIT_SIGNAL(m, pids[k], MUPROC_T_INT, (uint64_t)k, 1);
      muproc_msg_free(m);
    }
    check_empty(self);
    for (i = 0; i < n; i++)
      CHECK_OK(muproc_proc_release(pids[i]));
  }
  free(pids);
  free(seen);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- muproc_send_exit --------------------------------------------------- */

struct exit_sender {
  muproc_pid_t as, to;
  int type;
  uint64_t value;
};

static void *send_exit_from(void *arg) {
  struct exit_sender *s = arg;
  if (s->as)
    CHECK_OK(muproc_proc_start(s->as));
  CHECK_OK(muproc_send_exit(s->to, s->type, s->value));
  if (s->as)
    exit_release(s->as, a_normal);
  return NULL;
}

static void send_exit(void) {
  struct exit_sender s;
  muproc_pid_t self, other, dead;
  muproc_msg_t *m;
  pthread_t t;

  init_ok(0);
  self = bind_self(1);

  /* From another process, to us (not trapping): an exit signal without
   * 'link'.  It does not make us exit. */
  other = created(0);
  s.as = other;
  s.to = self;
  s.type = MUPROC_T_ATOM;
  s.value = a_boom;
  t = THREAD(send_exit_from, &s);
  JOIN(t);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, other, MUPROC_T_ATOM, a_boom, 0);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_proc_state(self), MUPROC_S_RUNNING);

  /* From a thread that runs no process: from 0. */
  s.as = 0;
  s.type = MUPROC_T_INT;
  s.value = (uint64_t)-5;
  t = THREAD(send_exit_from, &s);
  JOIN(t);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, 0, MUPROC_T_INT, (uint64_t)-5, 0);
  muproc_msg_free(m);

  /* To ourselves, each reason type. */
  CHECK_OK(muproc_send_exit(self, MUPROC_T_NIL, 0));
  CHECK_OK(muproc_send_exit(self, MUPROC_T_PID, other));
  CHECK_OK(muproc_send_exit(self, MUPROC_T_REF, 77));
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, self, MUPROC_T_NIL, 0, 0);
  muproc_msg_free(m);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, self, MUPROC_T_PID, other, 0);
  muproc_msg_free(m);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, self, MUPROC_T_REF, 77, 0);
  muproc_msg_free(m);

  /* Trapping: an ordinary message, queued after what was there and past
   * the capacity (1, already used). */
  CHECK(muproc_proc_set_trap_exits(self, 1) >= 0);
  CHECK_OK(muproc_send(self, msg_n(1)));
  other = created(0);
  s.as = other;
  s.type = MUPROC_T_ATOM;
  s.value = a_bye;
  t = THREAD(send_exit_from, &s);
  JOIN(t);
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
  CHECK_EQ_INT(muproc_mbox_count(self), 1);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_EQ_INT(n_of(m), 1);
  muproc_msg_free(m);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_TRAPPED(m, other, MUPROC_T_ATOM, a_bye, 0); /* not over a link */
  muproc_msg_free(m);

  /* Errors. */
  dead = created(0);
  exit_release(dead, a_normal);
  CHECK_RC(muproc_send_exit(dead, MUPROC_T_ATOM, a_boom), MUPROC_ESRCH);
  CHECK_RC(muproc_send_exit(0, MUPROC_T_ATOM, a_boom), MUPROC_EINVAL);
  CHECK_RC(muproc_send_exit(self, MUPROC_T_STRING, 0), MUPROC_EINVAL);
  CHECK_RC(muproc_send_exit(self, MUPROC_T_DOUBLE, 0), MUPROC_EINVAL);
  CHECK_RC(muproc_send_exit(self, 99, 0), MUPROC_EINVAL);
  dead = created(0);
  CHECK_OK(muproc_proc_exit(dead, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_send_exit(dead, MUPROC_T_ATOM, a_boom), MUPROC_ESRCH);
  CHECK_OK(muproc_proc_release(dead));
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* A handle that is not live is no reason: muproc_send_exit must refuse it
 * (EINVAL) or deliver a notice; never report success and send nothing. */
static void send_exit_dead_handle(void) {
  muproc_pid_t self;
  uint64_t h = 0;
  int rc;

  init_ok(0);
  self = bind_self(0);
  CHECK_OK(muproc_handle_new(&h));
  CHECK_EQ_INT(muproc_handle_release(h), 1);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  rc = muproc_send_exit(self, MUPROC_T_HANDLE, h);
  if (rc == 0) {
    muproc_msg_t *m;
    /* Reported sent: a notice must be there. */
    CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
    m = next_signal(self, MUPROC_NOWAIT);
    muproc_msg_free(m);
  } else {
    CHECK_RC(rc, MUPROC_EINVAL);
  }
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- out of memory --------------------------------------------------- */

/* A link reserves both of its exit signals when it is made: with every
 * message allocation failing from then on, exits still tell each end,
 * trapped or not.  A link that can't reserve them is refused with
 * MUPROC_ENOMEM and leaves nothing behind: no link, no message, no
 * notice, not even the noproc one.  (Issue 10, item 6: exits used to
 * drop the signal when its allocation failed.) */
static void link_out_of_memory(void) {
  muproc_pid_t self, a, b, dead;
  muproc_msg_t *m;
  int64_t messages;

  init_ok(0);
  self = bind_self(0);
  a = created(0);
  b = created(0);
  CHECK_OK(muproc_link(self, a));
  CHECK_OK(muproc_link(b, self));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 4); /* reserved */
  CHECK_EQ_INT(muproc_testing_msg_alloc_limit(0), -1);
  CHECK(muproc_msg_new(1, 0) == NULL); /* the hook works */
  exit_release(a, a_bye);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, a, MUPROC_T_ATOM, a_bye, 1);
  muproc_msg_free(m);
  CHECK(muproc_proc_set_trap_exits(self, 1) >= 0);
  exit_release(b, a_boom);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_TRAPPED(m, b, MUPROC_T_ATOM, a_boom, 1);
  muproc_msg_free(m);
  check_empty(self);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);

  /* Refused: no memory at all, or for the second notice only. */
  messages = muproc_stat(MUPROC_STAT_MESSAGES);
  a = created(0);
  dead = created(0);
  exit_release(dead, a_normal);
  for (int limit = 0; limit < 2; limit++) {
    muproc_testing_msg_alloc_limit(limit);
    CHECK_RC(muproc_link(self, a), MUPROC_ENOMEM);
    muproc_testing_msg_alloc_limit(limit);
    CHECK_RC(muproc_link(a, self), MUPROC_ENOMEM);
    muproc_testing_msg_alloc_limit(limit);
    CHECK_RC(muproc_link(self, dead), MUPROC_ENOMEM);
    CHECK_EQ_INT(muproc_links(self, NULL, 0), 0);
    CHECK_EQ_INT(muproc_links(a, NULL, 0), 0);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_LINKS), 0);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), messages);
  }
  CHECK_RC(muproc_send_exit(a, MUPROC_T_ATOM, a_bye), MUPROC_ENOMEM);
  check_empty(a);
  exit_release(a, a_bye); /* not linked: tells nobody */
  check_empty(self);

  /* With memory back, a link is made and its exit told as ever. */
  CHECK_EQ_INT(muproc_testing_msg_alloc_limit(-1), 0);
  a = created(0);
  CHECK_OK(muproc_link(self, a));
  CHECK_OK(muproc_unlink(self, a)); /* frees both reserved signals */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), messages);
  exit_release(a, a_bye);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- trapping is decided on receipt ------------------------------------ */

/* Whether an exit signal is trapped is decided when its receiver takes it
 * in, not when it is sent: trapping turned on after the signal was queued
 * gets the message; turned off, the signal.  The trapped message keeps
 * its place of arrival: after the messages sent before the exit, before
 * those sent after it.  (Issue 10, item 7: the sender used to decide.) */
static void trap_decided_on_receipt(void) {
  muproc_pid_t self, a;
  muproc_msg_t *m, *first;

  init_ok(0);
  self = bind_self(0);
  CHECK_EQ_INT(muproc_proc_trap_exits(self), 0);
  a = created(0);
  CHECK_OK(muproc_link(self, a));
  first = msg_n(1);
  CHECK_OK(muproc_send(self, first));
  exit_release(a, a_boom);
  CHECK_OK(muproc_send(self, msg_n(2)));
  CHECK_EQ_INT(muproc_mbox_signal_count(self), 1);
  CHECK_EQ_INT(muproc_mbox_count(self), 2);
  CHECK_EQ_INT(muproc_proc_set_trap_exits(self, 1), 0);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_EQ_INT(n_of(m), 1);
  muproc_msg_free(m);
  m = next_msg(self, MUPROC_NOWAIT);
  CHECK_TRAPPED(m, a, MUPROC_T_ATOM, a_boom, 1);
  muproc_msg_free(m);
  m = next_msg(self, MUPROC_NOWAIT); /* sent after the exit: after it */
  CHECK_EQ_INT(n_of(m), 2);
  muproc_msg_free(m);
  check_empty(self);

  /* Sent while trapping, taken after trapping was turned off: a signal. */
  CHECK_OK(muproc_send_exit(self, MUPROC_T_ATOM, a_bye));
  CHECK_EQ_INT(muproc_proc_set_trap_exits(self, 0), 1);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, self, MUPROC_T_ATOM, a_bye, 0);
  muproc_msg_free(m);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- handles as exit reasons ------------------------------------------- */

/* Every notice holds its own reference to a handle reason: the handle
 * stays live while any notice carrying it is queued, and dies with the
 * last. */
static void exit_reason_handle(void) {
  muproc_pid_t self, a, l1, l2, l3;
  muproc_msg_t *m;
  uint64_t h = 0, h2 = 0, ref = 0;
  int i;

  init_ok(0);
  self = bind_self(0);
  a = created(0);
  l1 = created(0);
  l2 = created(0);
  l3 = created(0);
  CHECK(muproc_proc_set_trap_exits(l3, 1) == 0);
  CHECK_OK(muproc_link(self, a));
  CHECK_OK(muproc_link(l1, a));
  CHECK_OK(muproc_link(a, l2));
  CHECK_OK(muproc_link(l3, a));
  CHECK_OK(muproc_monitor(self, a, &ref));
  CHECK_OK(muproc_handle_new(&h));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 1);
  CHECK_OK(muproc_proc_exit(a, MUPROC_T_HANDLE, h));
  CHECK_EQ_INT(muproc_handle_release(h), 0); /* others hold it */
  CHECK_OK(muproc_proc_release(a));           /* drops A's reference */
  CHECK_EQ_INT(muproc_handle_live(h), 1);     /* the notices' */
  CHECK_EQ_INT(muproc_mbox_signal_count(l1), 1);
  CHECK_EQ_INT(muproc_mbox_signal_count(l2), 1);
  CHECK_EQ_INT(muproc_mbox_signal_count(l3), 1); /* trapped when taken */

  exit_release(l1, a_normal); /* frees its notice */
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, a, MUPROC_T_HANDLE, h, 1);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  m = next_msg(self, MUPROC_NOWAIT); /* the DOWN */
  CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_MESSAGE);
  check_term(__FILE__, __LINE__, m, k_terminated, MUPROC_T_PID, a);
  check_term(__FILE__, __LINE__, m, k_reason, MUPROC_T_HANDLE, h);
  check_term(__FILE__, __LINE__, m, k_monitor, MUPROC_T_REF, ref);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  exit_release(l2, a_normal);
  CHECK_EQ_INT(muproc_handle_live(h), 1); /* L3's trapped message */
  exit_release(l3, a_normal);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);

  /* muproc_send_exit with a handle: the notice holds a reference. */
  CHECK_OK(muproc_handle_new(&h2));
  for (i = 0; i < 3; i++)
    CHECK_OK(muproc_send_exit(self, MUPROC_T_HANDLE, h2));
  CHECK_EQ_INT(muproc_handle_release(h2), 0);
  for (i = 0; i < 3; i++) {
    CHECK_EQ_INT(muproc_handle_live(h2), 1);
    m = next_signal(self, MUPROC_NOWAIT);
    CHECK_EXIT_SIGNAL(m, self, MUPROC_T_HANDLE, h2, 0);
    muproc_msg_free(m);
  }
  CHECK_EQ_INT(muproc_handle_live(h2), 0);
  check_empty(self);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* ---- pokes ---------------------------------------------------------------
 * A signal to a Lisp-kind process that is not blocked in muproc_recv
 * queues its pid for muproc_poke_wait. */

struct poker {
  int64_t first_rc, rc;
  muproc_pid_t buf[8];
  atomic_int ready;
};

/* Waits once briefly (a poke consumer from now on), says so, then waits
 * without a deadline. */
static void *poke_waiter(void *arg) {
  struct poker *p = arg;
  p->first_rc = muproc_poke_wait(muproc_now_ns() + 1000000, p->buf, 8);
  atomic_store(&p->ready, 1);
  p->rc = muproc_poke_wait(MUPROC_FOREVER, p->buf, 8);
  return NULL;
}

static void poke_busy_lisp_process(void) {
  struct poker p;
  muproc_pid_t self, a, cproc, buf[8];
  muproc_msg_t *m;
  pthread_t t;

  init_ok(0);
  self = bind_self(0); /* Lisp kind, running, not in muproc_recv */
  memset(&p, 0, sizeof p);
  atomic_init(&p.ready, 0);
  t = THREAD(poke_waiter, &p);
  WAIT_UNTIL(atomic_load(&p.ready), 10);
  CHECK_RC(p.first_rc, MUPROC_ETIMEDOUT);

  /* A linked process exits: the exit signal pokes us. */
  a = created(0);
  CHECK_OK(muproc_link(self, a));
  exit_release(a, a_boom);
  JOIN(t);
  CHECK_RC(p.rc, 1);
  CHECK_EQ_U64(p.buf[0], self);
  m = next_signal(self, MUPROC_NOWAIT);
  CHECK_EXIT_SIGNAL(m, a, MUPROC_T_ATOM, a_boom, 1);
  muproc_msg_free(m);

  /* A C-kind process is never poked; a Lisp one for any signal kind. */
  CHECK_OK(muproc_proc_create(0, MUPROC_KIND_C, 0, &cproc));
  CHECK_OK(muproc_signal_send(cproc, MUPROC_K_INTERRUPT, msg_n(1)));
  CHECK_OK(muproc_signal_send(self, MUPROC_K_INTERRUPT, msg_n(2)));
  CHECK_OK(muproc_send_exit(self, MUPROC_T_ATOM, a_bye));
  CHECK_RC(muproc_poke_wait(in_secs(10), buf, 8), 2);
  CHECK_EQ_U64(buf[0], self);
  CHECK_EQ_U64(buf[1], self);
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 8), MUPROC_ETIMEDOUT);
  /* An ordinary message is no reason to poke. */
  CHECK_OK(muproc_send(self, msg_n(3)));
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 8), MUPROC_ETIMEDOUT);
  exit_release(cproc, a_normal);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

/* A Lisp process blocked in muproc_recv wakes by itself and needs no
 * poke.  The runtime checks whether the receiver waits only after it has
 * pushed and woken it, so a receiver quick to wake may still be poked: a
 * harmless extra poke, which can't be told apart deterministically.  So
 * this asserts the wake-up and that no other pid is poked, and only
 * counts the extra pokes. */
static void *recv_one_signal(void *arg) {
  muproc_pid_t q = *(muproc_pid_t *)arg;
  muproc_msg_t *m = NULL;
  CHECK_OK(muproc_proc_start(q));
  CHECK_RC(muproc_recv(q, NULL, NULL, MUPROC_FOREVER, &m), MUPROC_SIGNALLED);
  CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_INTERRUPT);
  muproc_msg_free(m);
  exit_release(q, a_normal);
  return NULL;
}

static void poke_waiting_receiver(void) {
  enum { ROUNDS = 20 };
  muproc_pid_t self, q = 0, buf[8];
  pthread_t t;
  int64_t n, i;
  int r, extra = 0;

  init_ok(0);
  self = bind_self(0);
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 8), MUPROC_ETIMEDOUT);
  for (r = 0; r < ROUNDS; r++) {
    q = created(0);
    t = THREAD(recv_one_signal, &q);
    WAIT_STATE(q, MUPROC_S_WAITING, 10);
    CHECK_OK(muproc_signal_send(q, MUPROC_K_INTERRUPT, msg_n(1)));
    JOIN(t); /* it woke by itself */
    /* A marker poke after it: Q's, if any, came first. */
    CHECK_OK(muproc_signal_send(self, MUPROC_K_INTERRUPT, msg_n(2)));
    n = muproc_poke_wait(in_secs(10), buf, 8);
    CHECK(n == 1 || n == 2);
    CHECK_EQ_U64(buf[n - 1], self);
    for (i = 0; i < n - 1; i++)
      CHECK_EQ_U64(buf[i], q);
    extra += n == 2;
    CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 8), MUPROC_ETIMEDOUT);
  }
  tap_diag("receiver blocked in muproc_recv poked anyway in %d of %d rounds",
           extra, ROUNDS);
  exit_release(self, a_normal);
  MUPROC_FINISH();
}

static void poke_wait_timeout(void) {
  muproc_pid_t buf[4];
  int64_t t0, dl;

  init_ok(0);
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 4), MUPROC_ETIMEDOUT);
  t0 = muproc_now_ns();
  dl = t0 + 50000000;
  CHECK_RC(muproc_poke_wait(dl, buf, 4), MUPROC_ETIMEDOUT);
  CHECK(muproc_now_ns() >= dl);
  CHECK_RC(muproc_poke_wait(muproc_now_ns() - 1000, buf, 4),
           MUPROC_ETIMEDOUT); /* already past */
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, NULL, 4), MUPROC_EINVAL);
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 0), MUPROC_EINVAL);
  MUPROC_FINISH();
}

/* muproc_shutdown ends a muproc_poke_wait blocked without deadline. */
static void poke_wait_shutdown(void) {
  struct poker p;
  pthread_t t;

  init_ok(0);
  memset(&p, 0, sizeof p);
  atomic_init(&p.ready, 0);
  t = THREAD(poke_waiter, &p);
  WAIT_UNTIL(atomic_load(&p.ready), 10);
  MUPROC_FINISH(); /* muproc_shutdown */
  JOIN(t);
  CHECK_RC(p.first_rc, MUPROC_ETIMEDOUT);
  CHECK_RC(p.rc, MUPROC_ESHUTDOWN);
}

/* muproc_poke_stop ends every muproc_poke_wait, now and later. */
static void poke_stop(void) {
  struct poker p;
  muproc_pid_t buf[4];
  pthread_t t;

  init_ok(0);
  memset(&p, 0, sizeof p);
  atomic_init(&p.ready, 0);
  t = THREAD(poke_waiter, &p);
  WAIT_UNTIL(atomic_load(&p.ready), 10);
  muproc_poke_stop();
  JOIN(t);
  CHECK_RC(p.rc, MUPROC_ESHUTDOWN);
  CHECK_RC(muproc_poke_wait(MUPROC_FOREVER, buf, 4), MUPROC_ESHUTDOWN);
  CHECK_RC(muproc_poke_wait(MUPROC_NOWAIT, buf, 4), MUPROC_ESHUTDOWN);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(link_exit_signal),
    TAP_CASE(link_c_muproc_returns),
    TAP_CASE(link_two_way),
    TAP_CASE(link_trap_exits),
    TAP_CASE(link_noproc),
    TAP_CASE(link_list_idempotent_unlink),
    TAP_CASE_TIMEOUT(link_races_exit, 120),
    TAP_CASE_TIMEOUT(unlink_races_exit, 120),
    TAP_CASE_TIMEOUT(link_chain, 180),
    TAP_CASE_TIMEOUT(link_fan, 120),
    TAP_CASE(send_exit),
    TAP_CASE(send_exit_dead_handle),
    TAP_CASE(exit_reason_handle),
    TAP_CASE(link_out_of_memory),
    TAP_CASE(trap_decided_on_receipt),
    TAP_CASE(poke_busy_lisp_process),
    TAP_CASE(poke_waiting_receiver),
    TAP_CASE(poke_wait_timeout),
    TAP_CASE(poke_wait_shutdown),
    TAP_CASE(poke_stop),
};
TAP_MAIN(cases)
