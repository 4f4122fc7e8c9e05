/* test-registry.c - registered port names. */
#include "muproc-test.h"

static void init_ok(void) { test_init(0); }

/* Is NAME among the N atoms of BUF? */
static int has(const muproc_atom_t *buf, int64_t n, muproc_atom_t name) {
  int64_t i;
  for (i = 0; i < n; i++)
    if (buf[i] == name)
      return 1;
  return 0;
}

static void registry_register_whereis_unregister(void) {
  muproc_atom_t port;
  muproc_pid_t p, q, found = 0;

  init_ok();
  port = ATOM("port1");
  p = created(0);
  q = created(0);
  CHECK_RC(muproc_whereis(port, &found), MUPROC_ENOENT);
  CHECK_OK(muproc_register(port, p));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 1);
  CHECK_OK(muproc_whereis(port, &found));
  CHECK_EQ_U64(found, p);
  /* Taken, whoever asks (Erlang's register/2 is badarg for both). */
  CHECK_RC(muproc_register(port, q), MUPROC_EEXIST);
  CHECK_RC(muproc_register(port, p), MUPROC_EEXIST);
  CHECK_OK(muproc_whereis(port, &found));
  CHECK_EQ_U64(found, p);
  CHECK_RC(muproc_register(0, p), MUPROC_EINVAL);

  CHECK_OK(muproc_unregister(port));
  CHECK_RC(muproc_whereis(port, &found), MUPROC_ENOENT);
  CHECK_RC(muproc_unregister(port), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 0);
  CHECK_OK(muproc_register(port, q)); /* free again */
  CHECK_OK(muproc_whereis(port, &found));
  CHECK_EQ_U64(found, q);
  CHECK_OK(muproc_unregister(port));
  exit_release(p, a_normal);
  exit_release(q, a_normal);
  MUPROC_FINISH();
}

static void registry_dead_pid(void) {
  muproc_atom_t port;
  muproc_pid_t p, found = 0;

  init_ok();
  port = ATOM("port");
  p = created(0);
  CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_register(port, p), MUPROC_ESRCH); /* exited */
  CHECK_OK(muproc_proc_release(p));
  CHECK_RC(muproc_register(port, p), MUPROC_ESRCH); /* released */
  CHECK_RC(muproc_register(port, ((muproc_pid_t)9 << 32) | 777),
           MUPROC_ESRCH); /* never existed */
  CHECK_RC(muproc_whereis(port, &found), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 0);
  MUPROC_FINISH();
}

/* Several names per process; all of them go when it exits. */
static void registry_names_released_on_exit(void) {
  muproc_atom_t a, b, c, d, buf[8];
  muproc_pid_t p, q, found = 0;
  int64_t n;

  init_ok();
  a = ATOM("a");
  b = ATOM("b");
  c = ATOM("c");
  d = ATOM("d");
  p = created(0);
  q = created(0);
  CHECK_OK(muproc_proc_start(p)); /* p runs on this thread */
  CHECK_OK(muproc_register(a, p));
  CHECK_OK(muproc_register(b, p));
  CHECK_OK(muproc_register(c, p));
  CHECK_OK(muproc_register(d, q));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 4);

  n = muproc_registered_names(p, buf, 8);
  CHECK_EQ_INT(n, 3);
  CHECK(has(buf, n, a) && has(buf, n, b) && has(buf, n, c));
  CHECK_EQ_INT(muproc_registered_names(p, buf, 1), 3);
  CHECK(buf[0] == a || buf[0] == b || buf[0] == c);
  CHECK_EQ_INT(muproc_registered_names(p, NULL, 0), 3);
  n = muproc_registered_names(q, buf, 8);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(buf[0], d);

  CHECK_OK(muproc_unregister(b));
  n = muproc_registered_names(p, buf, 8);
  CHECK_EQ_INT(n, 2);
  CHECK(has(buf, n, a) && has(buf, n, c) && !has(buf, n, b));

  /* Exit (by its receiver) releases a and c, before release. */
  CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_whereis(a, &found), MUPROC_ENOENT);
  CHECK_RC(muproc_whereis(c, &found), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 1);
  CHECK(muproc_registered_names(p, buf, 8) <= 0); /* 0 or ESRCH */
  CHECK_OK(muproc_register(a, q)); /* free for others */
  CHECK_OK(muproc_whereis(a, &found));
  CHECK_EQ_U64(found, q);
  CHECK_OK(muproc_proc_release(p));

  /* A process that exits without ever running drops its names too. */
  CHECK_OK(muproc_proc_exit(q, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_whereis(a, &found), MUPROC_ENOENT);
  CHECK_RC(muproc_whereis(d, &found), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 0);
  CHECK_OK(muproc_proc_release(q));
  MUPROC_FINISH();
}

static void registry_send_named(void) {
  muproc_atom_t inbox, small, key;
  muproc_pid_t p, tiny;
  muproc_msg_t *m, *got = NULL;

  init_ok();
  inbox = ATOM("inbox");
  small = ATOM("small");
  key = ATOM("n");
  p = created(0);
  tiny = created(1);
  CHECK_OK(muproc_proc_start(p));
  CHECK_OK(muproc_register(inbox, p));
  CHECK_OK(muproc_register(small, tiny));

  m = muproc_msg_new(1, 0);
  CHECK_OK(muproc_msg_put_int(m, key, 7));
  CHECK_OK(muproc_send_named(inbox, m));
  CHECK_EQ_INT(muproc_mbox_count(p), 1);
  CHECK_OK(muproc_recv(p, NULL, NULL, MUPROC_NOWAIT, &got));
  CHECK(got == m);
  CHECK_EQ_INT(muproc_msg_int(got, 0), 7);
  CHECK_EQ_U64(muproc_msg_sender(got), p);
  CHECK_OK(muproc_recv_take(p, got));
  muproc_msg_free(got);

  /* Unknown name: the caller keeps the message. */
  m = muproc_msg_new(0, 0);
  CHECK_RC(muproc_send_named(ATOM("nobody"), m), MUPROC_ENOENT);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 1);

  /* A named bounded mailbox reports EFULL like muproc_send. */
  CHECK_OK(muproc_send_named(small, m));
  m = muproc_msg_new(0, 0);
  CHECK_RC(muproc_send_named(small, m), MUPROC_EFULL);
  CHECK_EQ_INT(muproc_mbox_count(tiny), 1);

  /* After the holder exits, the name is gone. */
  CHECK_OK(muproc_proc_exit(p, MUPROC_T_ATOM, a_normal));
  CHECK_RC(muproc_send_named(inbox, m), MUPROC_ENOENT);
  muproc_msg_free(m);
  CHECK_OK(muproc_proc_release(p));
  exit_release(tiny, a_normal); /* frees the queued message */
  MUPROC_FINISH();
}

/* Four processes race for one name: exactly one wins. */
enum { RACERS = 4 };
static pthread_barrier_t start_line;
static muproc_atom_t contested;
struct racer {
  muproc_pid_t pid;
  int rc;
};

static void *race(void *arg) {
  struct racer *r = arg;
  pthread_barrier_wait(&start_line);
  r->rc = muproc_register(contested, r->pid);
  return NULL;
}

static void registry_concurrent_register(void) {
  struct racer r[RACERS];
  pthread_t t[RACERS];
  muproc_pid_t found = 0;
  int i, winners = 0;

  init_ok();
  contested = ATOM("contested");
  CHECK_EQ_INT(pthread_barrier_init(&start_line, NULL, RACERS), 0);
  for (i = 0; i < RACERS; i++) {
    r[i].pid = created(0);
    t[i] = THREAD(race, &r[i]);
  }
  for (i = 0; i < RACERS; i++)
    JOIN(t[i]);
  pthread_barrier_destroy(&start_line);
  CHECK_OK(muproc_whereis(contested, &found));
  for (i = 0; i < RACERS; i++) {
    if (r[i].rc == 0) {
      winners++;
      CHECK_EQ_U64(found, r[i].pid);
    } else {
      CHECK_RC(r[i].rc, MUPROC_EEXIST);
    }
  }
  CHECK_EQ_INT(winners, 1);
  for (i = 0; i < RACERS; i++)
    exit_release(r[i].pid, a_normal);
  MUPROC_FINISH();
}

/* Registering names for a process while it exits: whatever the order,
 * no name may outlive the exit. */
enum { RACE_NAMES = 200 };
static muproc_atom_t race_names[RACE_NAMES];
struct registrar {
  muproc_pid_t pid;
  int ok, refused;
};

static void *register_many(void *arg) {
  struct registrar *r = arg;
  int i;
  for (i = 0; i < RACE_NAMES; i++) {
    int rc = muproc_register(race_names[i], r->pid);
    if (rc == 0) {
      r->ok++;
    } else {
      CHECK_RC(rc, MUPROC_ESRCH); /* the exit came first */
      r->refused++;
    }
  }
  return NULL;
}

static void registry_register_races_exit(void) {
  struct registrar r = {0, 0, 0};
  muproc_pid_t found = 0;
  pthread_t t;
  int i;

  init_ok();
  for (i = 0; i < RACE_NAMES; i++) {
    char name[32];
    snprintf(name, sizeof name, "race-%d", i);
    race_names[i] = ATOM(name);
  }
  r.pid = created(0);
  t = THREAD(register_many, &r);
  WAIT_UNTIL(muproc_stat(MUPROC_STAT_REGISTERED) > 0, 10);
  CHECK_OK(muproc_proc_exit(r.pid, MUPROC_T_ATOM, a_normal));
  JOIN(t);
  CHECK_EQ_INT(r.ok + r.refused, RACE_NAMES);
  CHECK(r.ok > 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_REGISTERED), 0);
  for (i = 0; i < RACE_NAMES; i++)
    CHECK_RC(muproc_whereis(race_names[i], &found), MUPROC_ENOENT);
  CHECK_OK(muproc_proc_release(r.pid));
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(registry_register_whereis_unregister),
    TAP_CASE(registry_dead_pid),
    TAP_CASE(registry_names_released_on_exit),
    TAP_CASE(registry_send_named),
    TAP_CASE(registry_concurrent_register),
    TAP_CASE(registry_register_races_exit),
};
TAP_MAIN(cases)
