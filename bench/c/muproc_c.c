/* muproc_c.c - libmuproc's C API between two C muprocs (muproc_spawn_c).
 *
 *   muproc_c pingpong [N [REPS]]   ping-pong-c/muproc-c: round trip of a
 *                                  1-key mumsg {ping: i} -> {pong: i+1}
 *   muproc_c oneway [N [REPS]]     one-way-c/muproc-c: N mumsgs
 *                                  {cmd: square, x: i} one sender -> one
 *                                  receiver, timed until the receiver
 *                                  has taken the last one
 *
 * Both muprocs are C functions on C worker threads; main only spawns them
 * and waits (muproc_wait_c_idle).  Each message is allocated, filled,
 * sent, received (muproc_recv + muproc_recv_take) and freed, as a C
 * muproc would. */
#include "bench.h"

#include "muproc.h"

#include <string.h>

#define STOP INT64_MIN

static muproc_atom_t a_ping, a_pong, a_cmd, a_square, a_x, a_done;
static long n_ops;
static int n_reps;
static double *figures;

static muproc_atom_t atom(const char *s) {
  int64_t a = muproc_atom(s, strlen(s));
  if (a <= 0)
    abort();
  return (muproc_atom_t)a;
}

static void check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "muproc_c: %s: %s\n", what, muproc_strerror(rc));
    exit(1);
  }
}

/* Receive the oldest message, taken out of the mailbox. */
static muproc_msg_t *receive(muproc_pid_t self) {
  muproc_msg_t *m;
  int rc = muproc_recv(self, NULL, NULL, MUPROC_FOREVER, &m);
  if (rc == MUPROC_SIGNALLED) {
    fprintf(stderr, "muproc_c: unexpected signal\n");
    exit(1);
  }
  check(rc, "muproc_recv");
  check(muproc_recv_take(self, m), "muproc_recv_take");
  return m;
}

static void send_int(muproc_pid_t to, muproc_atom_t key, int64_t v) {
  muproc_msg_t *m = muproc_msg_new(1, 0);
  if (!m)
    abort();
  check(muproc_msg_put_int(m, key, v), "muproc_msg_put_int");
  check(muproc_send(to, m), "muproc_send");
}

static int64_t int_of(muproc_msg_t *m, muproc_atom_t key) {
  int i = muproc_msg_find(m, key);
  check(i, "muproc_msg_find");
  return muproc_msg_int(m, (uint32_t)i);
}

/* ---- ping-pong ----------------------------------------------------- */

static void pong(void *arg) {
  (void)arg;
  muproc_pid_t self = muproc_self();
  for (;;) {
    muproc_msg_t *m = receive(self);
    int64_t v = int_of(m, a_ping);
    muproc_pid_t from = muproc_msg_sender(m);
    muproc_msg_free(m);
    if (v == STOP)
      return;
    send_int(from, a_pong, v + 1);
  }
}

static double ping_round(muproc_pid_t self, muproc_pid_t peer, long n) {
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    send_int(peer, a_ping, i);
    muproc_msg_t *m = receive(self);
    if (int_of(m, a_pong) != i + 1)
      abort();
    muproc_msg_free(m);
  }
  return (double)(bench_now_ns() - t0) / 1e9;
}

static void ping(void *arg) {
  muproc_pid_t peer = *(muproc_pid_t *)arg, self = muproc_self();
  ping_round(self, peer, n_ops / 10 > 0 ? n_ops / 10 : 1);
  for (int r = 0; r < n_reps; r++)
    figures[r] = ping_round(self, peer, n_ops) * 1e6 / (double)n_ops;
  send_int(peer, a_ping, STOP);
}

/* ---- one-way ------------------------------------------------------- */

static void oneway_receiver(void *arg) {
  (void)arg;
  muproc_pid_t self = muproc_self();
  for (int r = 0; r <= n_reps; r++) {
    long n = r == 0 ? (n_ops / 10 > 0 ? n_ops / 10 : 1) : n_ops;
    int64_t sum = 0;
    muproc_pid_t from = 0;
    for (long i = 0; i < n; i++) {
      muproc_msg_t *m = receive(self);
      from = muproc_msg_sender(m);
      int c = muproc_msg_find(m, a_cmd);
      if (c >= 0 && muproc_msg_atom(m, (uint32_t)c) == a_square) {
        int64_t x = int_of(m, a_x);
        sum += x * x;
      }
      muproc_msg_free(m);
    }
    send_int(from, a_done, sum);
  }
}

static double oneway_round(muproc_pid_t self, muproc_pid_t peer, long n) {
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    muproc_msg_t *m = muproc_msg_new(2, 0);
    if (!m)
      abort();
    check(muproc_msg_put_atom(m, a_cmd, a_square), "muproc_msg_put_atom");
    check(muproc_msg_put_int(m, a_x, i), "muproc_msg_put_int");
    check(muproc_send(peer, m), "muproc_send");
  }
  muproc_msg_t *m = receive(self);
  int_of(m, a_done);
  muproc_msg_free(m);
  return (double)(bench_now_ns() - t0) / 1e9;
}

static void oneway_sender(void *arg) {
  muproc_pid_t peer = *(muproc_pid_t *)arg, self = muproc_self();
  oneway_round(self, peer, n_ops / 10 > 0 ? n_ops / 10 : 1);
  for (int r = 0; r < n_reps; r++)
    figures[r] = (double)n_ops / oneway_round(self, peer, n_ops) / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s pingpong|oneway [N [REPS]]\n", argv[0]);
    return 2;
  }
  int is_ping = !strcmp(argv[1], "pingpong");
  if (!is_ping && strcmp(argv[1], "oneway")) {
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
    return 2;
  }
  n_ops = is_ping ? 20000 : 1000000;
  n_reps = 5;
  bench_args(argc, argv, &n_ops, &n_reps);
  figures = calloc((size_t)n_reps, sizeof *figures);
  check(muproc_init(0, 0), "muproc_init");
  a_ping = atom("ping");
  a_pong = atom("pong");
  a_cmd = atom("cmd");
  a_square = atom("square");
  a_x = atom("x");
  a_done = atom("done");

  static muproc_pid_t first, second;
  if (is_ping) {
    check(muproc_spawn_c(0, pong, NULL, 0, &first), "muproc_spawn_c");
    check(muproc_spawn_c(0, ping, &first, 0, &second), "muproc_spawn_c");
  } else {
    check(muproc_spawn_c(0, oneway_receiver, NULL, 0, &first),
          "muproc_spawn_c");
    check(muproc_spawn_c(0, oneway_sender, &first, 0, &second),
          "muproc_spawn_c");
  }
  check(muproc_wait_c_idle(MUPROC_FOREVER), "muproc_wait_c_idle");
  bench_report(is_ping ? "ping-pong-c" : "one-way-c", "muproc-c", figures,
               n_reps, is_ping ? "us/rt" : "Mmsg/s", n_ops);
  check(muproc_shutdown(), "muproc_shutdown");
  return 0;
}
