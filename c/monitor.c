/* monitor.c - monitors: one-way, never kill, one notice each.
 *
 * The watcher's set is the authority on whether a monitor is still
 * armed: the exit of the target tells a watcher only if it can still
 * remove the reference from the watcher's set (under the watcher's lock),
 * and demonitor removes it from the same set.  So after demonitor
 * returns 0, no notice comes; if it returns ENOENT, the notice is
 * already queued.  The target's entry holds the DOWN notice, reserved
 * here: an exit never needs memory to tell (exit.c). */
#include "internal.h"

#include <stdlib.h>

int muproc_monitor(muproc_pid_t watcher, muproc_pid_t target, uint64_t *ref) {
  if (!watcher || !target || !ref)
    return MUPROC_EINVAL;
  struct proc *pw = proc_lookup(watcher);
  if (!pw)
    return MUPROC_ESRCH;
  struct proc *pt = proc_lookup(target);
  if (pt == pw && watcher != target)
    pt = NULL;
  muproc_msg_t *notice = exit_notice_reserve();
  if (!notice)
    return MUPROC_ENOMEM;
  uint64_t r = muproc_make_ref();
  proc_lock_pair(pw, pt == pw ? NULL : pt);
  int rc = 0;
  if (!proc_alive(pw) || proc_pid(pw) != watcher) {
    rc = MUPROC_ESRCH;
  } else if (!pt || !proc_alive(pt) || proc_pid(pt) != target) {
    down_notice_send(watcher, target, MUPROC_T_ATOM, atom_noproc, r, notice);
    notice = NULL;
  } else if ((rc = ref_set_add(&pw->watching, r, target, NULL)) == 0) {
    if ((rc = ref_set_add(&pt->watchers, r, watcher, notice)) == 0) {
      atomic_fetch_add(&muproc_rt.monitors, 1);
      notice = NULL;
    } else {
      ref_set_remove(&pw->watching, r, NULL);
    }
  }
  proc_unlock_pair(pw, pt == pw ? NULL : pt);
  muproc_msg_free(notice); /* not needed: failed */
  if (rc == 0)
    *ref = r;
  return rc;
}

void monitor_forget(muproc_pid_t target, uint64_t ref) {
  struct proc *pt = proc_lookup(target);
  if (!pt)
    return;
  struct ref_entry e = {0};
  pthread_mutex_lock(&pt->lock);
  if (proc_pid(pt) == target && ref_set_remove(&pt->watchers, ref, &e))
    atomic_fetch_sub(&muproc_rt.monitors, 1);
  pthread_mutex_unlock(&pt->lock);
  muproc_msg_free(e.notice);
}

int muproc_demonitor(muproc_pid_t watcher, uint64_t ref) {
  struct proc *pw = proc_lookup(watcher);
  if (!pw)
    return MUPROC_ESRCH;
  struct ref_entry e;
  pthread_mutex_lock(&pw->lock);
  bool armed = proc_pid(pw) == watcher && ref_set_remove(&pw->watching, ref, &e);
  pthread_mutex_unlock(&pw->lock);
  if (!armed)
    return MUPROC_ENOENT;
  monitor_forget(e.pid, ref);
  return 0;
}
