/* observe.c - what observers read about a process from any thread:
 * message totals, monitors, the CPU time of its thread.  Nothing here
 * costs the observed process more than a store when it starts. */
#include "internal.h"

void observe_proc_started(struct proc *p) {
  /* No syscall: the clock id is computed from the thread's id.  Reading
   * it (a syscall) is left to the observer. */
  p->has_cpu_clock = pthread_getcpuclockid(pthread_self(), &p->cpu_clock) == 0;
  muproc_tls_sent_out = &p->mbox.sent_out;
}

int muproc_mbox_totals(muproc_pid_t pid, int64_t *arrived, int64_t *taken,
                       int64_t *sent) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  /* TAKEN first, as muproc_mbox_count: it never exceeds ARRIVED. */
  int64_t t = atomic_load(&p->mbox.taken);
  int64_t a = atomic_load(&p->mbox.sent);
  int64_t s = (int64_t)atomic_load_explicit(&p->mbox.sent_out, memory_order_relaxed);
  if (proc_pid(p) != pid)
    return MUPROC_ESRCH;
  if (arrived)
    *arrived = a;
  if (taken)
    *taken = t;
  if (sent)
    *sent = s;
  return 0;
}

int64_t muproc_monitors(muproc_pid_t pid, int watchers, muproc_pid_t *buf,
                        size_t cap) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  const struct ref_set *set = watchers ? &p->watchers : &p->watching;
  int64_t n = proc_pid(p) == pid ? set->n : 0;
  for (int64_t i = 0; buf && i < n && (size_t)i < cap; i++)
    buf[i] = set->entries[i].pid;
  pthread_mutex_unlock(&p->lock);
  return n;
}

int64_t muproc_proc_cpu_ns(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  int state = STAMP_STATE(atomic_load(&p->stamp));
  /* Set by muproc_proc_start, before the state leaves CREATED. */
  if (state != MUPROC_S_RUNNING && state != MUPROC_S_WAITING)
    return MUPROC_ESTATE;
  clockid_t clock = p->cpu_clock;
  if (!p->has_cpu_clock || proc_pid(p) != pid)
    return MUPROC_ESTATE;
  struct timespec ts;
  /* A thread clock of a thread that has ended fails (EINVAL): the
   * kernel checks it belongs to this process's threads. */
  if (clock_gettime(clock, &ts) != 0)
    return MUPROC_ESTATE;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
