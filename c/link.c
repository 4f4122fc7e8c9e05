/* link.c - links: two-way, and any exit travels over them.
 *
 * Both ends are changed under both processes' locks, and an exit takes
 * its link set under its own lock, so a link racing an exit is either in
 * the set the exit tells (one notice) or sees the process dead (one
 * noproc notice): never silence, never two. */
#include "internal.h"

#include <stdlib.h>

void send_exit_signal(muproc_pid_t to, muproc_pid_t from, int reason_type,
                      uint64_t reason_value, bool link) {
  /* A trapping receiver gets an ordinary message, queued in order with
   * the rest; any other gets a signal that makes it exit. */
  bool trapped = muproc_proc_trap_exits(to) == 1;
  muproc_msg_t *msg = muproc_msg_new(3, 0);
  if (!msg)
    return;
  int rc = trapped
               ? muproc_msg_put_pid(msg, atom_terminated, from)
               : muproc_msg_put_pid(msg, atom_from, from);
  if (rc == 0)
    rc = msg_put_term(msg, atom_reason, reason_type, reason_value);
  if (rc == 0 && link)
    rc = muproc_msg_put_atom(msg, atom_link, atom_true);
  if (rc == 0)
    rc = mailbox_deliver(to, msg, trapped ? MUPROC_K_MESSAGE : MUPROC_K_EXIT,
                         true);
  if (rc != 0)
    muproc_msg_free(msg);
}

int muproc_send_exit(muproc_pid_t to, int type, uint64_t value) {
  if (!to || type < MUPROC_T_NIL || type > MUPROC_T_HANDLE ||
      type == MUPROC_T_DOUBLE || type == MUPROC_T_STRING ||
      type == MUPROC_T_BINARY ||
      (type == MUPROC_T_HANDLE && !muproc_handle_live(value)))
    return MUPROC_EINVAL;
  if (!proc_lookup(to) || muproc_proc_state(to) == MUPROC_S_EXITED)
    return MUPROC_ESRCH;
  send_exit_signal(to, muproc_tls_self, type, value, false);
  return 0;
}

int muproc_link(muproc_pid_t a, muproc_pid_t b) {
  if (!a || !b || a == b)
    return MUPROC_EINVAL;
  struct proc *pa = proc_lookup(a);
  if (!pa)
    return MUPROC_ESRCH;
  struct proc *pb = proc_lookup(b);
  if (pb == pa)
    pb = NULL; /* b is a stale pid of a's slot: it is dead */
  proc_lock_pair(pa, pb);
  int rc = 0;
  if (!proc_alive(pa) || proc_pid(pa) != a) {
    rc = MUPROC_ESRCH;
  } else if (!pb || !proc_alive(pb) || proc_pid(pb) != b) {
    send_exit_signal(a, b, MUPROC_T_ATOM, atom_noproc, true);
  } else {
    int added = id_set_add(&pa->links, b);
    if (added == 0) {
      if (id_set_add(&pb->links, a) == 0) {
        atomic_fetch_add(&muproc_rt.links, 2);
      } else {
        id_set_remove(&pa->links, b);
        rc = MUPROC_ENOMEM;
      }
    } else if (added < 0) {
      rc = added;
    }
  }
  proc_unlock_pair(pa, pb);
  return rc;
}

int muproc_unlink(muproc_pid_t a, muproc_pid_t b) {
  struct proc *pa = proc_lookup(a), *pb = proc_lookup(b);
  if (!pa || !pb || pa == pb)
    return 0;
  proc_lock_pair(pa, pb);
  if (proc_pid(pa) == a && proc_pid(pb) == b) {
    int removed = id_set_remove(&pa->links, b) + id_set_remove(&pb->links, a);
    atomic_fetch_sub(&muproc_rt.links, removed);
  }
  proc_unlock_pair(pa, pb);
  return 0;
}

int64_t muproc_links(muproc_pid_t pid, muproc_pid_t *buf, size_t cap) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int64_t n = proc_pid(p) == pid ? p->links.n : 0;
  for (int64_t i = 0; buf && i < n && (size_t)i < cap; i++)
    buf[i] = p->links.ids[i];
  pthread_mutex_unlock(&p->lock);
  return n;
}

void link_tell_exit(const struct exit_notice *e) {
  for (uint32_t i = 0; i < e->links.n; i++) {
    muproc_pid_t peer = e->links.ids[i];
    struct proc *q = proc_lookup(peer);
    if (!q)
      continue;
    pthread_mutex_lock(&q->lock);
    /* Only a link still present is told: an unlink that got here first
     * means no signal, as muproc_unlink promises. */
    if (proc_pid(q) == peer && id_set_remove(&q->links, e->pid)) {
      atomic_fetch_sub(&muproc_rt.links, 1);
      send_exit_signal(peer, e->pid, e->reason_type, e->reason_value, true);
    }
    pthread_mutex_unlock(&q->lock);
  }
}
