/* link.c - links: two-way, and any exit travels over them.
 *
 * Both ends are changed under both processes' locks, and an exit takes
 * its link set under its own lock, so a link racing an exit is either in
 * the set the exit tells (one notice) or sees the process dead (one
 * noproc notice): never silence, never two.  Each end holds the exit
 * signal its owner's exit owes the peer, reserved here: an exit never
 * needs memory to tell (exit.c). */
#include "internal.h"

#include <stdlib.h>

int muproc_link(muproc_pid_t a, muproc_pid_t b) {
  if (!a || !b || a == b)
    return MUPROC_EINVAL;
  struct proc *pa = proc_lookup(a);
  if (!pa)
    return MUPROC_ESRCH;
  struct proc *pb = proc_lookup(b);
  if (pb == pa)
    pb = NULL; /* b is a stale pid of a's slot: it is dead */
  /* Reserved outside the locks: a's exit signal to b, b's to a. */
  muproc_msg_t *a_to_b = exit_notice_reserve();
  muproc_msg_t *b_to_a = exit_notice_reserve();
  if (!a_to_b || !b_to_a) {
    muproc_msg_free(a_to_b);
    muproc_msg_free(b_to_a);
    return MUPROC_ENOMEM;
  }
  proc_lock_pair(pa, pb);
  int rc = 0;
  if (!proc_alive(pa) || proc_pid(pa) != a) {
    rc = MUPROC_ESRCH;
  } else if (!pb || !proc_alive(pb) || proc_pid(pb) != b) {
    exit_signal_send(a, b, MUPROC_T_ATOM, atom_noproc, true, b_to_a);
    b_to_a = NULL;
  } else if (!ref_set_has(&pa->links, b)) {
    if ((rc = ref_set_add(&pa->links, b, b, a_to_b)) == 0) {
      if ((rc = ref_set_add(&pb->links, a, a, b_to_a)) == 0) {
        atomic_fetch_add(&muproc_rt.links, 2);
        a_to_b = b_to_a = NULL;
      } else {
        ref_set_remove(&pa->links, b, NULL);
      }
    }
  }
  proc_unlock_pair(pa, pb);
  muproc_msg_free(a_to_b); /* not needed: already linked, or failed */
  muproc_msg_free(b_to_a);
  return rc;
}

int muproc_unlink(muproc_pid_t a, muproc_pid_t b) {
  struct proc *pa = proc_lookup(a), *pb = proc_lookup(b);
  if (!pa || !pb || pa == pb)
    return 0;
  struct ref_entry ea = {0}, eb = {0};
  proc_lock_pair(pa, pb);
  if (proc_pid(pa) == a && proc_pid(pb) == b) {
    int removed = ref_set_remove(&pa->links, b, &ea) +
                  ref_set_remove(&pb->links, a, &eb);
    atomic_fetch_sub(&muproc_rt.links, removed);
  }
  proc_unlock_pair(pa, pb);
  muproc_msg_free(ea.notice);
  muproc_msg_free(eb.notice);
  return 0;
}

int64_t muproc_links(muproc_pid_t pid, muproc_pid_t *buf, size_t cap) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int64_t n = proc_pid(p) == pid ? p->links.n : 0;
  for (int64_t i = 0; buf && i < n && (size_t)i < cap; i++)
    buf[i] = p->links.entries[i].pid;
  pthread_mutex_unlock(&p->lock);
  return n;
}
