/* clock.c - the monotonic clock, and the futex waits every blocking call
 * is built on.  Depends on nothing else in libmuproc. */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t muproc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int wait_on_word(_Atomic int *word, int expected, int64_t deadline) {
  struct timespec ts, *tsp = NULL;
  if (deadline != MUPROC_FOREVER) {
    if (muproc_now_ns() >= deadline)
      return MUPROC_ETIMEDOUT;
    ts.tv_sec = deadline / 1000000000;
    ts.tv_nsec = deadline % 1000000000;
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
   * spurious wake-up never stretches the total wait. */
  long r = syscall(SYS_futex, (int *)word, FUTEX_WAIT_BITSET_PRIVATE,
                   expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
  if (r == -1 && errno == ETIMEDOUT)
    return MUPROC_ETIMEDOUT;
  return 0;
}

void wake_word(_Atomic int *word, int count) {
  syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
