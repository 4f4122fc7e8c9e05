/* test-worker.c - threads that run muprocs: C muprocs on pooled C workers,
 * the thread cap, and the Lisp-worker protocol driven from C threads that
 * play the Lisp side. */
#include "muproc-test.h"

static muproc_atom_t k_req, k_reply, k_ref, k_stop;

static void init_ok(void) {
  test_init(0);
  k_req = ATOM("req");
  k_reply = ATOM("reply");
  k_ref = ATOM("ref");
  k_stop = ATOM("stop");
}

static void wait_idle_and_parked(void) {
  CHECK_OK(muproc_wait_c_idle(in_secs(20)));
  /* Idle means released; the worker may still be on its way to park. */
  WAIT_UNTIL(muproc_stat(MUPROC_STAT_PARKED) ==
                 muproc_stat(MUPROC_STAT_THREADS),
             10);
}

/* ---- C muprocs -------------------------------------------------------- */

struct echo {
  muproc_atom_t name;
  muproc_pid_t server, client_self;
  atomic_int replies_ok, server_done;
};

/* Replies {:reply 2*req :ref ref} to the sender of each {:req :ref}, until
 * {:stop}. */
static void echo_server(void *arg) {
  struct echo *e = arg;
  muproc_pid_t self = muproc_self();
  CHECK(self != 0);
  CHECK_EQ_INT(muproc_proc_kind(self), MUPROC_KIND_C);
  CHECK_EQ_INT(muproc_proc_name(self), e->name);
  for (;;) {
    muproc_msg_t *m = NULL, *r;
    int req, ref;
    CHECK_OK(muproc_recv(self, NULL, NULL, MUPROC_FOREVER, &m));
    CHECK_OK(muproc_recv_take(self, m));
    if (muproc_msg_find(m, k_stop) >= 0) {
      muproc_msg_free(m);
      break;
    }
    req = muproc_msg_find(m, k_req);
    ref = muproc_msg_find(m, k_ref);
    CHECK(req >= 0 && ref >= 0);
    r = muproc_msg_new(2, 0);
    CHECK(r != NULL);
    CHECK_OK(muproc_msg_put_int(r, k_reply, 2 * muproc_msg_int(m, (uint32_t)req)));
    CHECK_OK(muproc_msg_put_ref(r, k_ref, muproc_msg_ref(m, (uint32_t)ref)));
    CHECK_OK(muproc_send(muproc_msg_sender(m), r));
    muproc_msg_free(m);
  }
  atomic_store(&e->server_done, 1);
}

static void echo_client(void *arg) {
  struct echo *e = arg;
  uint32_t only_replies[] = {1, 1, k_reply};
  muproc_pid_t self = muproc_self(), server = 0;
  muproc_msg_t *m;
  int i;

  e->client_self = self;
  CHECK_OK(muproc_proc_find(e->name, &server));
  for (i = 0; i < 10; i++) {
    uint64_t ref = muproc_make_ref();
    muproc_msg_t *r = NULL;
    m = muproc_msg_new(2, 0);
    CHECK(m != NULL);
    CHECK_OK(muproc_msg_put_int(m, k_req, i));
    CHECK_OK(muproc_msg_put_ref(m, k_ref, ref));
    CHECK_OK(muproc_send(server, m));
    CHECK_OK(muproc_recv(self, NULL, only_replies, in_secs(10), &r));
    CHECK_OK(muproc_recv_take(self, r));
    CHECK_EQ_U64(muproc_msg_sender(r), server);
    CHECK_EQ_INT(muproc_msg_int(r, (uint32_t)muproc_msg_find(r, k_reply)),
                 2 * i);
    CHECK_EQ_U64(muproc_msg_ref(r, (uint32_t)muproc_msg_find(r, k_ref)), ref);
    muproc_msg_free(r);
    atomic_fetch_add(&e->replies_ok, 1);
  }
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_nil(m, k_stop));
  CHECK_OK(muproc_send(server, m));
}

static void worker_c_echo(void) {
  struct echo e;
  muproc_pid_t client = 0, found = 0;

  init_ok();
  memset(&e, 0, sizeof e);
  atomic_init(&e.replies_ok, 0);
  atomic_init(&e.server_done, 0);
  e.name = ATOM("echo");
  e.server = spawn_c(e.name, echo_server, &e);
  client = spawn_c(0, echo_client, &e);
  CHECK(client != e.server);
  CHECK_OK(muproc_wait_c_idle(in_secs(20)));
  CHECK_EQ_INT(atomic_load(&e.replies_ok), 10);
  CHECK_EQ_INT(atomic_load(&e.server_done), 1);
  CHECK_EQ_U64(e.client_self, client);
  /* Returning from FN exits and releases the process. */
  CHECK_EQ_INT(muproc_proc_state(e.server), MUPROC_S_NOPROC);
  CHECK_EQ_INT(muproc_proc_state(client), MUPROC_S_NOPROC);
  CHECK_RC(muproc_proc_find(e.name, &found), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 0);
  MUPROC_FINISH();
}

static atomic_int runs;

static void count_run(void *arg) {
  (void)arg;
  CHECK(muproc_self() != 0);
  atomic_fetch_add(&runs, 1);
}

static void tell(muproc_pid_t pid) {
  muproc_msg_t *m = muproc_msg_new(0, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_send(pid, m));
}

/* Spawning after the previous muproc finished reuses the parked worker. */
static void worker_c_reuse(void) {
  muproc_pid_t pid[4];
  int i, round;

  init_ok();
  atomic_store(&runs, 0);
  CHECK_OK(muproc_wait_c_idle(MUPROC_NOWAIT)); /* nothing runs yet */
  for (i = 0; i < 50; i++) {
    pid[0] = spawn_c(0, count_run, NULL);
    wait_idle_and_parked();
  }
  CHECK_EQ_INT(atomic_load(&runs), 50);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 1);

  /* Four at once need four threads; the next four (round 1) reuse them. */
  for (round = 0; round < 2; round++) {
    for (i = 0; i < 4; i++)
      pid[i] = spawn_c(0, block_until_told, NULL);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 4);
    for (i = 0; i < 4; i++)
      tell(pid[i]);
    wait_idle_and_parked();
  }
  MUPROC_FINISH();
}

static void worker_c_thread_cap(void) {
  muproc_atom_t third;
  muproc_pid_t b[2], extra = 0, lisp = 0, found = 0;
  int64_t prev;
  int i;

  init_ok();
  third = ATOM("third");
  prev = muproc_set_thread_cap(2);
  CHECK(prev > 2);
  for (i = 0; i < 2; i++)
    b[i] = spawn_c(0, block_until_told, NULL);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 2);

  /* At the cap: refused, and nothing of the attempt is left. */
  CHECK_RC(muproc_spawn_c(third, block_until_told, NULL, 0, &extra),
           MUPROC_ETHREADS);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 2);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 2);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  CHECK_RC(muproc_proc_find(third, &found), MUPROC_ENOENT);
  /* The cap is shared with Lisp workers. */
  lisp = created(0);
  CHECK_RC(muproc_worker_offer(lisp), MUPROC_ETHREADS);
  exit_release(lisp, a_normal);

  for (i = 0; i < 2; i++)
    tell(b[i]);
  wait_idle_and_parked();
  /* Parked workers take new muprocs without counting against the cap. */
  b[0] = spawn_c(third, block_until_told, NULL);
  b[1] = spawn_c(0, block_until_told, NULL);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 2);
  for (i = 0; i < 2; i++)
    tell(b[i]);
  wait_idle_and_parked();
  CHECK_EQ_INT(muproc_set_thread_cap((uint32_t)prev), 2);
  MUPROC_FINISH();
}

static void worker_c_wait_idle_deadline(void) {
  muproc_pid_t pid = 0;
  int64_t deadline;

  init_ok();
  pid = spawn_c(0, block_until_told, NULL);
  CHECK_RC(muproc_wait_c_idle(MUPROC_NOWAIT), MUPROC_ETIMEDOUT);
  deadline = muproc_now_ns() + 100000000;
  CHECK_RC(muproc_wait_c_idle(deadline), MUPROC_ETIMEDOUT);
  CHECK(muproc_now_ns() >= deadline);
  tell(pid);
  wait_idle_and_parked();
  MUPROC_FINISH();
}

/* Any thread may exit a process still CREATED: a C muproc exited before
 * its worker got to it must never run, and the runtime still releases
 * it.  Whether the exit comes first is up to the scheduler, so try many
 * times; the outcome must be right either way. */
enum { TRIES = 50 };
static atomic_int ran[TRIES];

static void mark_ran(void *arg) {
  atomic_store(&ran[(intptr_t)arg], 1);
}

static void worker_c_exit_before_start(void) {
  muproc_pid_t pid[TRIES];
  int rc[TRIES], i, early = 0;

  init_ok();
  for (i = 0; i < TRIES; i++) {
    atomic_store(&ran[i], 0);
    pid[i] = spawn_c(0, mark_ran, (void *)(intptr_t)i);
    rc[i] = muproc_proc_exit(pid[i], MUPROC_T_ATOM, ATOM("killed"));
    /* 0: still CREATED; EPERM: running; ESRCH: already done. */
    CHECK(rc[i] == 0 || rc[i] == MUPROC_EPERM || rc[i] == MUPROC_ESRCH);
  }
  wait_idle_and_parked();
  for (i = 0; i < TRIES; i++) {
    if (rc[i] != 0)
      continue;
    early++;
    CHECK_EQ_INT(atomic_load(&ran[i]), 0);
    CHECK_EQ_INT(muproc_proc_state(pid[i]), MUPROC_S_NOPROC);
  }
  tap_diag("%d of %d exited before they ran", early, TRIES);
  MUPROC_FINISH();
}

static void worker_c_spawn_errors(void) {
  muproc_atom_t taken;
  muproc_pid_t holder = 0, pid = 0;

  init_ok();
  taken = ATOM("taken");
  CHECK_OK(muproc_proc_create(taken, MUPROC_KIND_LISP, 0, &holder));
  CHECK_RC(muproc_spawn_c(taken, count_run, NULL, 0, &pid), MUPROC_EEXIST);
  CHECK_RC(muproc_spawn_c(0, NULL, NULL, 0, &pid), MUPROC_EINVAL);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 1);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 0);
  CHECK_OK(muproc_wait_c_idle(MUPROC_NOWAIT));
  exit_release(holder, a_normal);
  MUPROC_FINISH();
}

/* ---- Lisp workers, played by pthreads --------------------------------- */

struct lisp_worker {
  muproc_pid_t first, ran[2], handed;
  int nran, park1_rc, park2_rc;
  int64_t park2_deadline, park2_end;
  atomic_int nowait_done; /* past the MUPROC_NOWAIT park (which counts as
                             parked for an instant) */
};

/* What the Lisp side does with a process it is given. */
static void run_process(struct lisp_worker *w, muproc_pid_t pid) {
  CHECK_OK(muproc_proc_start(pid));
  CHECK_EQ_U64(muproc_self(), pid);
  CHECK_EQ_INT(muproc_proc_kind(pid), MUPROC_KIND_LISP);
  exit_release(pid, a_normal);
  CHECK_EQ_U64(muproc_self(), 0);
  w->ran[w->nran++] = pid;
}

/* Runs its first process, parks and runs what it is handed, then parks
 * with a short idle deadline and retires. */
static void *lisp_worker(void *arg) {
  struct lisp_worker *w = arg;
  muproc_pid_t next = 0;
  run_process(w, w->first);
  w->park1_rc = muproc_worker_park(in_secs(20), &next);
  if (w->park1_rc == 0)
    run_process(w, next);
  w->park2_deadline = muproc_now_ns() + 100000000;
  w->park2_rc = muproc_worker_park(w->park2_deadline, &next);
  w->park2_end = muproc_now_ns();
  muproc_worker_exit();
  return NULL;
}

static void lisp_worker_offer_and_park(void) {
  struct lisp_worker w;
  muproc_pid_t p1 = 0, p2 = 0;
  pthread_t t;

  init_ok();
  memset(&w, 0, sizeof w);
  p1 = created(0);
  CHECK_RC(muproc_worker_offer(p1), MUPROC_WORKER_NEEDED);
  w.first = p1;
  t = THREAD(lisp_worker, &w);
  WAIT_UNTIL(muproc_stat(MUPROC_STAT_PARKED) == 1, 10);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 1);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 0); /* p1 ran and released */

  p2 = created(0);
  CHECK_OK(muproc_worker_offer(p2)); /* handed to the parked worker */
  JOIN(t);
  CHECK_OK(w.park1_rc);
  CHECK_EQ_INT(w.nran, 2);
  CHECK_EQ_U64(w.ran[0], p1);
  CHECK_EQ_U64(w.ran[1], p2);
  CHECK_RC(w.park2_rc, MUPROC_ETIMEDOUT);
  CHECK(w.park2_end >= w.park2_deadline);
  /* The worker retired through muproc_worker_exit: its slot is free. */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PARKED), 0);
  MUPROC_FINISH();
}

/* A slot reserved by WORKER_NEEDED counts against the cap until the new
 * thread exits or the reservation is given back. */
static void lisp_worker_reservation(void) {
  muproc_pid_t p1 = 0, p2 = 0;
  int64_t prev;

  init_ok();
  prev = muproc_set_thread_cap(1);
  p1 = created(0);
  p2 = created(0);
  CHECK_RC(muproc_worker_offer(p1), MUPROC_WORKER_NEEDED);
  CHECK_RC(muproc_worker_offer(p2), MUPROC_ETHREADS);
  muproc_worker_unreserve();
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 0);
  CHECK_RC(muproc_worker_offer(p2), MUPROC_WORKER_NEEDED);
  muproc_worker_unreserve();
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 0);
  exit_release(p1, a_normal);
  exit_release(p2, a_normal);
  CHECK_EQ_INT(muproc_set_thread_cap((uint32_t)prev), 1);
  MUPROC_FINISH();
}

/* Runs its first process, then parks without deadline until shutdown. */
static void *parks_forever(void *arg) {
  struct lisp_worker *w = arg;
  muproc_pid_t next = 0;
  int64_t t0;
  run_process(w, w->first);
  t0 = muproc_now_ns();
  CHECK_RC(muproc_worker_park(MUPROC_NOWAIT, &next), MUPROC_ETIMEDOUT);
  CHECK(muproc_now_ns() - t0 < (int64_t)(2e9 * tap_timeout_scale()));
  atomic_store(&w->nowait_done, 1);
  w->park1_rc = muproc_worker_park(MUPROC_FOREVER, &next);
  w->handed = next;
  muproc_worker_exit(); /* a retiring worker gives back its slot */
  return NULL;
}

static void lisp_worker_shutdown_while_parked(void) {
  struct lisp_worker w;
  pthread_t t;
  int64_t deadline;
  int rc;

  init_ok();
  memset(&w, 0, sizeof w);
  w.first = created(0);
  CHECK_RC(muproc_worker_offer(w.first), MUPROC_WORKER_NEEDED);
  atomic_init(&w.nowait_done, 0);
  t = THREAD(parks_forever, &w);
  WAIT_UNTIL(atomic_load(&w.nowait_done) &&
                 muproc_stat(MUPROC_STAT_PARKED) == 1,
             10);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 0);

  /* Shutdown tells the parked worker to retire; it may answer EBUSY until
   * the worker has come out of its park (header), or wait for it. */
  deadline = in_secs(10);
  while ((rc = muproc_shutdown()) == MUPROC_EBUSY && muproc_now_ns() < deadline)
    tap_pause();
  CHECK_OK(rc);
  JOIN(t);
  CHECK_RC(w.park1_rc, MUPROC_ESHUTDOWN);
  CHECK_EQ_U64(w.handed, 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_THREADS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PARKED), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
}

static const struct tap_case cases[] = {
    TAP_CASE(worker_c_echo),
    TAP_CASE(worker_c_reuse),
    TAP_CASE(worker_c_thread_cap),
    TAP_CASE(worker_c_wait_idle_deadline),
    TAP_CASE(worker_c_exit_before_start),
    TAP_CASE(worker_c_spawn_errors),
    TAP_CASE(lisp_worker_offer_and_park),
    TAP_CASE(lisp_worker_reservation),
    TAP_CASE(lisp_worker_shutdown_while_parked),
};
TAP_MAIN(cases)
