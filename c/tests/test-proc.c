/* test-proc.c - runtime basics and the process table: creation, names,
 * states, exit reasons, pid reuse, limits. */
#include "tap.h"

static muproc_atom_t normal;

static void init_ok(uint32_t max_procs) {
  CHECK_OK(muproc_init(max_procs, 0));
  normal = ATOM("normal");
}

static muproc_pid_t create(muproc_atom_t name) {
  muproc_pid_t pid = 0;
  CHECK_OK(muproc_proc_create(name, MUPROC_KIND_LISP, 0, &pid));
  CHECK(pid != 0);
  return pid;
}

/* End a process that nobody started (any thread may exit it). */
static void exit_release(muproc_pid_t pid) {
  CHECK_OK(muproc_proc_exit(pid, MUPROC_T_ATOM, normal));
  CHECK_OK(muproc_proc_release(pid));
}

/* ---- runtime ---------------------------------------------------------- */

static void runtime_version_and_errors(void) {
  char want[32];
  const char *names[17];
  uint64_t refs[1000];
  int64_t t0, t1;
  int i, j;

  CHECK_EQ_INT(muproc_version(), MUPROC_VERSION_HEX);
  snprintf(want, sizeof want, "%d.%d.%d", MUPROC_VERSION_MAJOR,
           MUPROC_VERSION_MINOR, MUPROC_VERSION_PATCH);
  CHECK(strcmp(muproc_version_string(), want) == 0);
  for (i = 0; i <= 16; i++) {
    const char *s = muproc_strerror(-i);
    names[i] = muproc_err_name(-i);
    CHECK(s != NULL && s[0] != '\0');
    CHECK(names[i] != NULL && strncmp(names[i], "MUPROC_", 7) == 0);
    for (j = 0; j < i; j++)
      CHECK(strcmp(names[i], names[j]) != 0);
  }
  CHECK(strcmp(muproc_err_name(MUPROC_ESRCH), "MUPROC_ESRCH") == 0);
  CHECK(strcmp(muproc_err_name(MUPROC_ESTATE), "MUPROC_ESTATE") == 0);

  CHECK_OK(muproc_init(0, 0));
  t0 = muproc_now_ns();
  for (i = 0; i < 1000; i++) {
    refs[i] = muproc_make_ref();
    CHECK(refs[i] != 0);
  }
  for (i = 0; i < 1000; i++) /* unique: quadratic, but small */
    for (j = 0; j < i; j++)
      CHECK(refs[i] != refs[j]);
  t1 = muproc_now_ns();
  CHECK(t0 > 0 && t1 >= t0);
  CHECK_RC(muproc_stat(99), MUPROC_EINVAL);
  CHECK_RC(muproc_stat(-1), MUPROC_EINVAL);
  MUPROC_FINISH();
}

static void runtime_init_shutdown(void) {
  muproc_pid_t pid = 0;
  uint32_t creation, cap;

  CHECK_RC(muproc_proc_create(0, MUPROC_KIND_LISP, 0, &pid),
           MUPROC_ENOTINIT);
  init_ok(0);
  CHECK_EQ_INT(muproc_init(0, 0), 1); /* already initialised */
  creation = muproc_creation();

  cap = muproc_thread_cap();
  CHECK(cap > 0);
  CHECK_RC(muproc_set_thread_cap(0), MUPROC_EINVAL);
  CHECK_EQ_INT(muproc_thread_cap(), cap);
  CHECK_EQ_INT(muproc_set_thread_cap(5), cap);
  CHECK_EQ_INT(muproc_thread_cap(), 5);
  CHECK_EQ_INT(muproc_set_thread_cap(cap), 5);

  /* A live process keeps the runtime up, and the refusal changes nothing. */
  pid = create(ATOM("keeper"));
  CHECK_RC(muproc_shutdown(), MUPROC_EBUSY);
  CHECK_EQ_INT(muproc_proc_state(pid), MUPROC_S_CREATED);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 1);
  exit_release(pid);
  MUPROC_FINISH();

  /* A second life, with a new creation. */
  CHECK_OK(muproc_init(0, 0));
  CHECK(muproc_creation() != creation);
  MUPROC_FINISH();
}

/* ---- processes -------------------------------------------------------- */

static void proc_create_named_and_anonymous(void) {
  muproc_atom_t alpha;
  muproc_pid_t p, q, r, dup = 0, found = 0;

  init_ok(0);
  alpha = ATOM("alpha");
  p = create(alpha);
  q = create(0);
  CHECK(p != q);
  CHECK_OK(muproc_proc_create(0, MUPROC_KIND_C, 5, &r));
  CHECK_EQ_INT(muproc_proc_state(p), MUPROC_S_CREATED);
  CHECK_EQ_INT(muproc_proc_state(q), MUPROC_S_CREATED);
  CHECK_EQ_INT(muproc_proc_name(p), alpha);
  CHECK_EQ_INT(muproc_proc_name(q), 0);
  CHECK_EQ_INT(muproc_proc_kind(p), MUPROC_KIND_LISP);
  CHECK_EQ_INT(muproc_proc_kind(r), MUPROC_KIND_C);
  CHECK_EQ_INT(muproc_mbox_capacity(p), 0);
  CHECK_EQ_INT(muproc_mbox_capacity(r), 5);
  CHECK_OK(muproc_proc_find(alpha, &found));
  CHECK_EQ_U64(found, p);
  CHECK_RC(muproc_proc_find(ATOM("nobody"), &found), MUPROC_ENOENT);

  /* Refusals create nothing. */
  CHECK_RC(muproc_proc_create(alpha, MUPROC_KIND_LISP, 0, &dup),
           MUPROC_EEXIST);
  CHECK_RC(muproc_proc_create(0, 7, 0, &dup), MUPROC_EINVAL);
  CHECK_RC(muproc_proc_create(0, MUPROC_KIND_LISP, 0, NULL), MUPROC_EINVAL);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 3);

  exit_release(p);
  exit_release(q);
  exit_release(r);
  MUPROC_FINISH();
}

/* A name belongs to processes not yet exited: it is free again as soon as
 * its holder exits, before the slot is released. */
static void proc_name_free_after_exit(void) {
  muproc_atom_t beta;
  muproc_pid_t p, p2, found = 0;

  init_ok(0);
  beta = ATOM("beta");
  p = create(beta);
  CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, normal));
  CHECK_EQ_INT(muproc_proc_state(p), MUPROC_S_EXITED);
  CHECK_RC(muproc_proc_find(beta, &found), MUPROC_ENOENT);
  p2 = create(beta);
  CHECK(p2 != p);
  CHECK_OK(muproc_proc_find(beta, &found));
  CHECK_EQ_U64(found, p2);
  CHECK_OK(muproc_proc_release(p));
  CHECK_OK(muproc_proc_find(beta, &found)); /* p's release keeps p2's name */
  CHECK_EQ_U64(found, p2);
  exit_release(p2);
  MUPROC_FINISH();
}

/* CREATED -> RUNNING (bound to a thread) -> EXITED -> NOPROC. */
struct lifecycle {
  muproc_pid_t pid;
  pthread_barrier_t step;
  muproc_pid_t self_before, self_running, self_after;
  int start_rc, exit_rc, exit_again_rc, release_rc;
};

static void *lifecycle_thread(void *arg) {
  struct lifecycle *l = arg;
  l->self_before = muproc_self();
  l->start_rc = muproc_proc_start(l->pid);
  l->self_running = muproc_self();
  pthread_barrier_wait(&l->step); /* main looks at RUNNING */
  pthread_barrier_wait(&l->step);
  l->exit_rc = muproc_proc_exit(l->pid, MUPROC_T_ATOM, ATOM("done"));
  l->exit_again_rc = muproc_proc_exit(l->pid, MUPROC_T_ATOM, ATOM("done"));
  pthread_barrier_wait(&l->step); /* main looks at EXITED */
  pthread_barrier_wait(&l->step);
  l->release_rc = muproc_proc_release(l->pid);
  l->self_after = muproc_self();
  return NULL;
}

static void proc_state_transitions(void) {
  struct lifecycle l;
  muproc_atom_t name;
  pthread_t t;
  int type = -1;
  uint64_t value = 0;

  init_ok(0);
  memset(&l, 0, sizeof l);
  name = ATOM("cycler");
  l.pid = create(name);
  CHECK_EQ_INT(muproc_proc_state(l.pid), MUPROC_S_CREATED);
  CHECK_RC(muproc_proc_exit_reason(l.pid, &type, &value), MUPROC_ESTATE);
  CHECK_RC(muproc_proc_release(l.pid), MUPROC_ESTATE);
  CHECK_EQ_INT(pthread_barrier_init(&l.step, NULL, 2), 0);
  t = THREAD(lifecycle_thread, &l);

  pthread_barrier_wait(&l.step);
  CHECK_OK(l.start_rc);
  CHECK_EQ_U64(l.self_before, 0);
  CHECK_EQ_U64(l.self_running, l.pid);
  CHECK_EQ_U64(muproc_self(), 0); /* binding is per thread */
  CHECK_EQ_INT(muproc_proc_state(l.pid), MUPROC_S_RUNNING);
  CHECK_RC(muproc_proc_start(l.pid), MUPROC_ESTATE);
  CHECK_RC(muproc_proc_release(l.pid), MUPROC_ESTATE);
  /* Only its receiver exits a running process (EPERM as for recv). */
  CHECK_RC(muproc_proc_exit(l.pid, MUPROC_T_ATOM, normal), MUPROC_EPERM);
  CHECK_EQ_INT(muproc_proc_state(l.pid), MUPROC_S_RUNNING);
  pthread_barrier_wait(&l.step);

  pthread_barrier_wait(&l.step);
  CHECK_OK(l.exit_rc);
  CHECK_RC(l.exit_again_rc, MUPROC_ESRCH);
  CHECK_EQ_INT(muproc_proc_state(l.pid), MUPROC_S_EXITED);
  CHECK_RC(muproc_proc_start(l.pid), MUPROC_ESTATE);
  CHECK_OK(muproc_proc_exit_reason(l.pid, &type, &value));
  CHECK_EQ_INT(type, MUPROC_T_ATOM);
  CHECK_EQ_U64(value, ATOM("done"));
  pthread_barrier_wait(&l.step);

  JOIN(t);
  pthread_barrier_destroy(&l.step);
  CHECK_OK(l.release_rc);
  CHECK_EQ_U64(l.self_after, 0); /* release unbinds */
  CHECK_EQ_INT(muproc_proc_state(l.pid), MUPROC_S_NOPROC);
  CHECK_EQ_INT(muproc_proc_name(l.pid), 0);
  CHECK_RC(muproc_proc_kind(l.pid), MUPROC_ESRCH);
  CHECK_RC(muproc_proc_exit_reason(l.pid, &type, &value), MUPROC_ESRCH);
  CHECK_RC(muproc_proc_release(l.pid), MUPROC_ESRCH);
  CHECK_RC(muproc_proc_start(l.pid), MUPROC_ESRCH);
  CHECK_RC(muproc_proc_exit(l.pid, MUPROC_T_ATOM, normal), MUPROC_ESRCH);
  MUPROC_FINISH();
}

static void proc_exit_reasons(void) {
  static const int bad_types[] = {MUPROC_T_DOUBLE, MUPROC_T_STRING,
                                  MUPROC_T_BINARY, 9, -1};
  muproc_pid_t p[6];
  uint64_t ref, h = 0, values[6];
  int types[6], type, i;
  uint64_t value;
  muproc_msg_t *m;

  init_ok(0);
  ref = muproc_make_ref();
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_new_handle(m, ATOM("obj"), &h));
  for (i = 0; i < 6; i++)
    p[i] = create(0);
  types[0] = MUPROC_T_ATOM;
  values[0] = ATOM("shutdown");
  types[1] = MUPROC_T_INT;
  values[1] = (uint64_t)(int64_t)-42;
  types[2] = MUPROC_T_PID;
  values[2] = p[0];
  types[3] = MUPROC_T_REF;
  values[3] = ref;
  types[4] = MUPROC_T_NIL;
  values[4] = 0;
  types[5] = MUPROC_T_HANDLE;
  values[5] = h;

  for (i = 0; i < (int)(sizeof bad_types / sizeof bad_types[0]); i++)
    CHECK_RC(muproc_proc_exit(p[0], bad_types[i], 1), MUPROC_EINVAL);
  CHECK_EQ_INT(muproc_proc_state(p[0]), MUPROC_S_CREATED);

  for (i = 0; i < 6; i++) {
    CHECK_OK(muproc_proc_exit(p[i], types[i], values[i]));
    CHECK_OK(muproc_proc_exit_reason(p[i], &type, &value));
    CHECK_EQ_INT(type, types[i]);
    CHECK_EQ_U64(value, values[i]);
  }
  CHECK_OK(muproc_proc_exit_reason(p[1], &type, &value));
  CHECK_EQ_INT((int64_t)value, -42);

  /* The handle reason holds a reference of its own until release. */
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 1);
  for (i = 0; i < 5; i++)
    CHECK_OK(muproc_proc_release(p[i]));
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  CHECK_OK(muproc_proc_release(p[5]));
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  MUPROC_FINISH();
}

/* A dead handle given as an exit reason must not take (or, at release,
 * drop) a reference on whatever handle reuses its index later. */
static void proc_exit_reason_stale_handle(void) {
  enum { LIMIT = 1 << 18 };
  muproc_atom_t k;
  muproc_pid_t p;
  muproc_msg_t *m, *hold;
  uint64_t stale = 0, h = 0;
  int rc, n;

  init_ok(0);
  k = ATOM("obj");
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_new_handle(m, k, &stale));
  muproc_msg_free(m);
  p = create(0);
  rc = muproc_proc_exit(p, MUPROC_T_HANDLE, stale);
  CHECK(rc == 0 || rc == MUPROC_EINVAL); /* refusing it is fine too */
  if (rc != 0)
    CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, normal));
  CHECK_EQ_INT(muproc_handle_live(stale), 0);

  hold = muproc_msg_new(16, 0);
  CHECK(hold != NULL);
  for (n = 1; n <= LIMIT; n++) {
    CHECK_OK(muproc_msg_put_new_handle(hold, k, &h));
    if (MUPROC_HANDLE_INDEX(h) == MUPROC_HANDLE_INDEX(stale))
      break;
  }
  CHECK(n <= LIMIT);
  CHECK_OK(muproc_proc_release(p));
  CHECK_EQ_INT(muproc_handle_live(h), 1); /* HOLD still carries it */
  CHECK_EQ_INT(muproc_handle_live(stale), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), n);
  muproc_msg_free(hold);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  MUPROC_FINISH();
}

static int cmp_number(const void *a, const void *b) {
  uint32_t x = MUPROC_PID_NUMBER(*(const muproc_pid_t *)a);
  uint32_t y = MUPROC_PID_NUMBER(*(const muproc_pid_t *)b);
  return (x > y) - (x < y);
}

static void proc_find_and_list(void) {
  muproc_pid_t p[3], sorted[3], buf[8] = {0}, found = 0;
  muproc_atom_t a, c;

  init_ok(0);
  a = ATOM("a");
  c = ATOM("c");
  p[0] = create(a);
  p[1] = create(0);
  p[2] = create(c);
  memcpy(sorted, p, sizeof p);
  qsort(sorted, 3, sizeof sorted[0], cmp_number);

  CHECK_EQ_INT(muproc_proc_list(buf, 8), 3); /* oldest slot first */
  CHECK_EQ_U64(buf[0], sorted[0]);
  CHECK_EQ_U64(buf[1], sorted[1]);
  CHECK_EQ_U64(buf[2], sorted[2]);
  memset(buf, 0, sizeof buf);
  CHECK_EQ_INT(muproc_proc_list(buf, 2), 3); /* the count, even if more */
  CHECK_EQ_U64(buf[0], sorted[0]);
  CHECK_EQ_U64(buf[1], sorted[1]);
  CHECK_EQ_U64(buf[2], 0);
  CHECK_EQ_INT(muproc_proc_list(NULL, 0), 3);
  CHECK_OK(muproc_proc_find(c, &found));
  CHECK_EQ_U64(found, p[2]);

  /* Exited processes are not listed, though not yet released. */
  CHECK_OK(muproc_proc_exit(p[2], MUPROC_T_ATOM, normal));
  CHECK_EQ_INT(muproc_proc_list(buf, 8), 2);
  CHECK(buf[0] != p[2] && buf[1] != p[2]);
  CHECK_RC(muproc_proc_find(c, &found), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 3);
  CHECK_OK(muproc_proc_release(p[2]));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_PROCS), 2);
  exit_release(p[0]);
  exit_release(p[1]);
  CHECK_EQ_INT(muproc_proc_list(buf, 8), 0);
  MUPROC_FINISH();
}

/* A table of 4: the 5th process is refused until a slot is released (an
 * exited process still holds its slot); the reused slot gets a new serial
 * so the old pid stays dead. */
static void proc_table_limit_and_pid_reuse(void) {
  muproc_pid_t p[4], extra = 0, old;
  uint32_t serials[4];
  int i, round;

  init_ok(4);
  for (i = 0; i < 4; i++)
    p[i] = create(0);
  for (i = 0; i < 4; i++) {
    int j;
    for (j = 0; j < i; j++)
      CHECK(MUPROC_PID_NUMBER(p[i]) != MUPROC_PID_NUMBER(p[j]));
  }
  CHECK_RC(muproc_proc_create(0, MUPROC_KIND_LISP, 0, &extra),
           MUPROC_EPROCLIM);
  CHECK_RC(muproc_proc_create(ATOM("named"), MUPROC_KIND_LISP, 0, &extra),
           MUPROC_EPROCLIM);
  CHECK_OK(muproc_proc_exit(p[1], MUPROC_T_ATOM, normal));
  CHECK_RC(muproc_proc_create(0, MUPROC_KIND_LISP, 0, &extra),
           MUPROC_EPROCLIM);

  for (round = 0; round < 4; round++) {
    muproc_msg_t *m;
    old = p[1];
    serials[round] = MUPROC_PID_SERIAL(old);
    CHECK_OK(muproc_proc_release(old));
    p[1] = create(0);
    CHECK_EQ_INT(MUPROC_PID_NUMBER(p[1]), MUPROC_PID_NUMBER(old));
    CHECK(MUPROC_PID_SERIAL(p[1]) != MUPROC_PID_SERIAL(old));
    CHECK(p[1] != 0 && p[1] != old);
    CHECK_EQ_INT(muproc_proc_state(old), MUPROC_S_NOPROC);
    CHECK_EQ_INT(muproc_proc_state(p[1]), MUPROC_S_CREATED);
    CHECK_RC(muproc_proc_exit(old, MUPROC_T_ATOM, normal), MUPROC_ESRCH);
    m = muproc_msg_new(0, 0);
    CHECK(m != NULL);
    CHECK_RC(muproc_send(old, m), MUPROC_ESRCH);
    CHECK_EQ_INT(muproc_mbox_count(p[1]), 0); /* not delivered to p[1] */
    muproc_msg_free(m);
    CHECK_OK(muproc_proc_exit(p[1], MUPROC_T_ATOM, normal));
  }
  for (round = 1; round < 4; round++) /* every reuse a new serial */
    for (i = 0; i < round; i++)
      CHECK(serials[round] != serials[i]);
  CHECK_OK(muproc_proc_release(p[1]));
  exit_release(p[0]);
  exit_release(p[2]);
  exit_release(p[3]);
  MUPROC_FINISH();
}

static void proc_send_to_exited(void) {
  muproc_pid_t p;
  muproc_msg_t *m;
  uint64_t h = 0;

  init_ok(0);
  p = create(0);
  /* A created process already has a mailbox. */
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_new_handle(m, ATOM("obj"), &h));
  CHECK_OK(muproc_send(p, m));
  CHECK_EQ_INT(muproc_mbox_count(p), 1);
  CHECK_RC(muproc_send(p, NULL), MUPROC_EINVAL);

  CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, normal));
  m = muproc_msg_new(0, 0);
  CHECK(m != NULL);
  CHECK_RC(muproc_send(p, m), MUPROC_ESRCH);
  CHECK_RC(muproc_signal_send(p, MUPROC_K_EXIT, m), MUPROC_ESRCH);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 2); /* m is still ours */

  /* Release frees what was still queued, with its handles. */
  CHECK_OK(muproc_proc_release(p));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 1);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  CHECK_RC(muproc_send(p, m), MUPROC_ESRCH);
  CHECK_RC(muproc_mbox_count(p), MUPROC_ESRCH);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

struct self_probe {
  muproc_pid_t pid, before, during, after_exit, after_release;
};

static void *self_thread(void *arg) {
  struct self_probe *s = arg;
  s->before = muproc_self();
  CHECK_OK(muproc_proc_start(s->pid));
  s->during = muproc_self();
  CHECK_OK(muproc_proc_exit(s->pid, MUPROC_T_ATOM, normal));
  s->after_exit = muproc_self();
  CHECK_OK(muproc_proc_release(s->pid));
  s->after_release = muproc_self();
  return NULL;
}

static void proc_self(void) {
  struct self_probe s = {0, 1, 0, 0, 1};
  muproc_pid_t mine;
  pthread_t t;

  init_ok(0);
  CHECK_EQ_U64(muproc_self(), 0);
  s.pid = create(0);
  t = THREAD(self_thread, &s);
  JOIN(t);
  CHECK_EQ_U64(s.before, 0);
  CHECK_EQ_U64(s.during, s.pid);
  CHECK_EQ_U64(s.after_exit, s.pid); /* bound until release */
  CHECK_EQ_U64(s.after_release, 0);
  CHECK_EQ_U64(muproc_self(), 0);

  /* The main thread can be a process too. */
  mine = create(0);
  CHECK_OK(muproc_proc_start(mine));
  CHECK_EQ_U64(muproc_self(), mine);
  CHECK_EQ_INT(muproc_proc_state(mine), MUPROC_S_RUNNING);
  exit_release(mine);
  CHECK_EQ_U64(muproc_self(), 0);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(runtime_version_and_errors),
    TAP_CASE(runtime_init_shutdown),
    TAP_CASE(proc_create_named_and_anonymous),
    TAP_CASE(proc_name_free_after_exit),
    TAP_CASE(proc_state_transitions),
    TAP_CASE(proc_exit_reasons),
    TAP_CASE(proc_exit_reason_stale_handle),
    TAP_CASE(proc_find_and_list),
    TAP_CASE(proc_table_limit_and_pid_reuse),
    TAP_CASE(proc_send_to_exited),
    TAP_CASE(proc_self),
};
TAP_MAIN(cases)
