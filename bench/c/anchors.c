/* anchors.c - raw C (pthreads) anchors for the muproc benchmarks.
 *
 *   anchors MODE [N [REPS]]
 *
 * MODE  bench/variant      what
 * condvar   ping-pong/c-condvar    round trip through two one-slot
 *                                  mailboxes (mutex + condvar)
 * futex     ping-pong/c-futex      same with an atomic word + futex, no spin
 * futexspin ping-pong/c-futexspin  same, spinning up to 4000 pauses first
 * queue     one-way/c-queue        N malloc'd messages {cmd, x} one way
 *                                  through a locked list; the consumer is
 *                                  signalled only when it sleeps, and pops
 *                                  one message per lock
 */
#include "bench.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STOP LONG_MIN

/* ---- mutex + condvar one-slot mailbox ------------------------------ */

struct slot {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int full;
  long value;
};

static void slot_init(struct slot *s) {
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  s->full = 0;
}

static void slot_put(struct slot *s, long v) {
  pthread_mutex_lock(&s->lock);
  while (s->full) /* never true in a ping-pong, kept for safety */
    pthread_cond_wait(&s->cond, &s->lock);
  s->value = v;
  s->full = 1;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

static long slot_get(struct slot *s) {
  pthread_mutex_lock(&s->lock);
  while (!s->full)
    pthread_cond_wait(&s->cond, &s->lock);
  long v = s->value;
  s->full = 0;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
  return v;
}

static struct slot to_pong, to_ping;

static void *condvar_pong(void *arg) {
  (void)arg;
  for (;;) {
    long v = slot_get(&to_pong);
    if (v == STOP)
      return NULL;
    slot_put(&to_ping, v + 1);
  }
}

static double condvar_rep(long n) {
  slot_init(&to_pong);
  slot_init(&to_ping);
  pthread_t t;
  pthread_create(&t, NULL, condvar_pong, NULL);
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    slot_put(&to_pong, i);
    if (slot_get(&to_ping) != i + 1)
      abort();
  }
  int64_t t1 = bench_now_ns();
  slot_put(&to_pong, STOP);
  pthread_join(t, NULL);
  return (double)(t1 - t0) / 1e9;
}

/* ---- atomic word + futex, with or without spinning ------------------ */

/* A word per direction: 0 empty, 1 full, 2 empty with a sleeper. */
static _Atomic int w_pong, w_ping;
static long v_pong, v_ping;
static int spin_limit;

static void futex_wait(_Atomic int *w, int expected) {
  syscall(SYS_futex, (int *)w, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void futex_wake(_Atomic int *w) {
  syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void word_put(_Atomic int *w, long *slot, long v) {
  *slot = v;
  if (spin_limit == 0) { /* plain: always wake (the "no spin" anchor) */
    atomic_store(w, 1);
    futex_wake(w);
  } else if (atomic_exchange(w, 1) == 2) {
    futex_wake(w);
  }
}

static long word_get(_Atomic int *w, long *slot) {
  if (spin_limit == 0) {
    while (atomic_load(w) != 1)
      futex_wait(w, 0);
  } else {
    for (int i = 0; i < spin_limit && atomic_load_explicit(w, memory_order_acquire) != 1; i++)
      bench_cpu_relax();
    int expected = 0;
    while (atomic_load(w) != 1) {
      if (atomic_compare_exchange_strong(w, &expected, 2) || expected == 2)
        futex_wait(w, 2);
      expected = 0;
    }
  }
  long v = *slot;
  atomic_store(w, 0);
  return v;
}

static void *futex_pong(void *arg) {
  (void)arg;
  for (;;) {
    long v = word_get(&w_pong, &v_pong);
    if (v == STOP)
      return NULL;
    word_put(&w_ping, &v_ping, v + 1);
  }
}

static double futex_rep(long n) {
  atomic_store(&w_pong, 0);
  atomic_store(&w_ping, 0);
  pthread_t t;
  pthread_create(&t, NULL, futex_pong, NULL);
  int64_t t0 = bench_now_ns();
  for (long i = 0; i < n; i++) {
    word_put(&w_pong, &v_pong, i);
    if (word_get(&w_ping, &v_ping) != i + 1)
      abort();
  }
  int64_t t1 = bench_now_ns();
  word_put(&w_pong, &v_pong, STOP);
  pthread_join(t, NULL);
  return (double)(t1 - t0) / 1e9;
}

/* ---- one-way locked queue ------------------------------------------ */

struct qmsg {
  struct qmsg *next;
  int cmd;
  long x;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct qmsg *head, *tail;
  int sleeping;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};

static long q_n;
static volatile long q_sum;

static void *queue_consumer(void *arg) {
  (void)arg;
  long sum = 0;
  for (long i = 0; i < q_n; i++) {
    pthread_mutex_lock(&q.lock);
    while (!q.head) {
      q.sleeping = 1;
      pthread_cond_wait(&q.cond, &q.lock);
      q.sleeping = 0;
    }
    struct qmsg *m = q.head;
    q.head = m->next;
    if (!q.head)
      q.tail = NULL;
    pthread_mutex_unlock(&q.lock);
    if (m->cmd == 1)
      sum += m->x * m->x;
    free(m);
  }
  q_sum = sum;
  return NULL;
}

static double queue_rep(long n) {
  q_n = n;
  pthread_t t;
  int64_t t0 = bench_now_ns();
  pthread_create(&t, NULL, queue_consumer, NULL);
  for (long i = 0; i < n; i++) {
    struct qmsg *m = malloc(sizeof *m);
    m->next = NULL;
    m->cmd = 1;
    m->x = i;
    pthread_mutex_lock(&q.lock);
    if (q.tail)
      q.tail->next = m;
    else
      q.head = m;
    q.tail = m;
    if (q.sleeping)
      pthread_cond_signal(&q.cond);
    pthread_mutex_unlock(&q.lock);
  }
  pthread_join(t, NULL);
  return (double)(bench_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s condvar|futex|futexspin|queue [N [REPS]]\n",
            argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  long n = 20000;
  int reps = 7;
  if (!strcmp(mode, "queue"))
    n = 1000000;
  if (!strcmp(mode, "futexspin"))
    n = 200000;
  bench_args(argc, argv, &n, &reps);
  if (!strcmp(mode, "condvar"))
    bench_run("ping-pong", "c-condvar", condvar_rep, n, reps, "us/rt");
  else if (!strcmp(mode, "futex")) {
    spin_limit = 0;
    bench_run("ping-pong", "c-futex", futex_rep, n, reps, "us/rt");
  } else if (!strcmp(mode, "futexspin")) {
    spin_limit = 4000;
    bench_run("ping-pong", "c-futexspin", futex_rep, n, reps, "us/rt");
  } else if (!strcmp(mode, "queue"))
    bench_run("one-way", "c-queue", queue_rep, n, reps, "Mmsg/s");
  else {
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], mode);
    return 2;
  }
  return 0;
}
