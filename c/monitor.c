/* monitor.c - monitors: one-way, never kill, one notice each.
 *
 * The watcher's set is the authority on whether a monitor is still
 * armed: the exit of the target tells a watcher only if it can still
 * remove the reference from the watcher's set (under the watcher's lock),
 * and demonitor removes it from the same set.  So after demonitor
 * returns 0, no notice comes; if it returns ENOENT, the notice is
 * already queued. */
#include "internal.h"

#include <stdlib.h>

static void send_down(muproc_pid_t to, muproc_pid_t target, int reason_type,
                      uint64_t reason_value, uint64_t ref) {
  muproc_msg_t *msg = muproc_msg_new(3, 0);
  if (!msg)
    return;
  if (muproc_msg_put_pid(msg, atom_terminated, target) != 0 ||
      msg_put_term(msg, atom_reason, reason_type, reason_value) != 0 ||
      muproc_msg_put_ref(msg, atom_monitor, ref) != 0 ||
      mailbox_deliver(to, msg, MUPROC_K_MESSAGE, true) != 0)
    muproc_msg_free(msg);
}

int muproc_monitor(muproc_pid_t watcher, muproc_pid_t target, uint64_t *ref) {
  if (!watcher || !target || !ref)
    return MUPROC_EINVAL;
  struct proc *pw = proc_lookup(watcher);
  if (!pw)
    return MUPROC_ESRCH;
  struct proc *pt = proc_lookup(target);
  if (pt == pw && watcher != target)
    pt = NULL;
  uint64_t r = muproc_make_ref();
  proc_lock_pair(pw, pt == pw ? NULL : pt);
  int rc = 0;
  if (!proc_alive(pw) || proc_pid(pw) != watcher) {
    rc = MUPROC_ESRCH;
  } else if (!pt || !proc_alive(pt) || proc_pid(pt) != target) {
    send_down(watcher, target, MUPROC_T_ATOM, atom_noproc, r);
  } else if ((rc = ref_set_add(&pw->watching, r, target)) == 0) {
    if ((rc = ref_set_add(&pt->watchers, r, watcher)) == 0)
      atomic_fetch_add(&muproc_rt.monitors, 1);
    else
      ref_set_remove(&pw->watching, r, NULL);
  }
  proc_unlock_pair(pw, pt == pw ? NULL : pt);
  if (rc == 0)
    *ref = r;
  return rc;
}

/* Drop REF from TARGET's watchers, if still there. */
static void forget_watcher(muproc_pid_t target, uint64_t ref) {
  struct proc *pt = proc_lookup(target);
  if (!pt)
    return;
  pthread_mutex_lock(&pt->lock);
  if (proc_pid(pt) == target && ref_set_remove(&pt->watchers, ref, NULL))
    atomic_fetch_sub(&muproc_rt.monitors, 1);
  pthread_mutex_unlock(&pt->lock);
}

int muproc_demonitor(muproc_pid_t watcher, uint64_t ref) {
  struct proc *pw = proc_lookup(watcher);
  if (!pw)
    return MUPROC_ESRCH;
  muproc_pid_t target = 0;
  pthread_mutex_lock(&pw->lock);
  bool armed = proc_pid(pw) == watcher &&
               ref_set_remove(&pw->watching, ref, &target);
  pthread_mutex_unlock(&pw->lock);
  if (!armed)
    return MUPROC_ENOENT;
  forget_watcher(target, ref);
  return 0;
}

void monitor_tell_exit(const struct exit_notice *e) {
  /* The dead process's watchers: their monitors fire. */
  for (uint32_t i = 0; i < e->watchers.n; i++) {
    const struct ref_entry *w = &e->watchers.entries[i];
    struct proc *pw = proc_lookup(w->pid);
    if (!pw)
      continue;
    pthread_mutex_lock(&pw->lock);
    if (proc_pid(pw) == w->pid && ref_set_remove(&pw->watching, w->ref, NULL))
      send_down(w->pid, e->pid, e->reason_type, e->reason_value, w->ref);
    pthread_mutex_unlock(&pw->lock);
  }
  /* The monitors the dead process held on others: gone with it. */
  for (uint32_t i = 0; i < e->watching.n; i++)
    forget_watcher(e->watching.entries[i].pid, e->watching.entries[i].ref);
}
