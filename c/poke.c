/* poke.c - asking the Lisp side to interrupt a muproc's thread.
 *
 * C never calls Lisp.  A signal for a Lisp muproc that is not blocked in
 * muproc_recv would wait until that muproc next receives; instead its pid
 * is queued here and a Lisp thread blocked in muproc_poke_wait interrupts
 * it.  Until some thread has waited here, nothing is queued: a C program
 * without a Lisp side pays nothing and accumulates nothing. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static struct {
  pthread_mutex_t lock;
  muproc_pid_t *pids;
  uint32_t n, cap;
  _Atomic int seq; /* bumped on every poke: the futex word */
  _Atomic bool consumer;
  bool shutdown;
} pk = {.lock = PTHREAD_MUTEX_INITIALIZER};

int poke_init(void) {
  pk.n = 0;
  pk.shutdown = false;
  atomic_store(&pk.consumer, false);
  return 0;
}

void poke(muproc_pid_t pid) {
  if (!atomic_load(&pk.consumer))
    return;
  pthread_mutex_lock(&pk.lock);
  if (ARRAY_ROOM(pk.pids, pk.n, pk.cap, 64) != 0) {
    pthread_mutex_unlock(&pk.lock); /* the signal still waits */
    return;
  }
  pk.pids[pk.n++] = pid;
  atomic_fetch_add(&pk.seq, 1);
  pthread_mutex_unlock(&pk.lock);
  wake_word(&pk.seq, 1);
}

int64_t muproc_poke_wait(int64_t deadline, muproc_pid_t *buf, size_t cap) {
  if (!buf || cap == 0)
    return MUPROC_EINVAL;
  atomic_store(&pk.consumer, true);
  for (;;) {
    pthread_mutex_lock(&pk.lock);
    if (pk.shutdown) {
      pthread_mutex_unlock(&pk.lock);
      return MUPROC_ESHUTDOWN;
    }
    if (pk.n > 0) {
      size_t k = pk.n < cap ? pk.n : cap;
      memcpy(buf, pk.pids, k * sizeof *buf);
      memmove(pk.pids, pk.pids + k, (pk.n - k) * sizeof *pk.pids);
      pk.n -= k;
      pthread_mutex_unlock(&pk.lock);
      return (int64_t)k;
    }
    int seen = atomic_load(&pk.seq);
    pthread_mutex_unlock(&pk.lock);
    if (wait_on_word(&pk.seq, seen, deadline) == MUPROC_ETIMEDOUT)
      return MUPROC_ETIMEDOUT;
  }
}

void muproc_poke_stop(void) { poke_shutdown(); }

void poke_shutdown(void) {
  pthread_mutex_lock(&pk.lock);
  pk.shutdown = true;
  atomic_fetch_add(&pk.seq, 1);
  pthread_mutex_unlock(&pk.lock);
  wake_word(&pk.seq, 1 << 30);
}

void poke_free(void) {
  free(pk.pids);
  pk.pids = NULL;
  pk.n = pk.cap = 0;
}

void muproc_poke_request(muproc_pid_t pid) {
  if (proc_alive_pid(pid))
    poke(pid);
}
