/* exit.c - how a process ends, and what its end tells the others.
 *
 * An exit (muproc_proc_exit) marks the process EXITED under its lock,
 * frees its names, and takes its links and monitors out of it, so that a
 * link or monitor made from then on sees it dead (link.c, monitor.c).
 * Then it tells, outside its own lock: every linked process gets an exit
 * signal, every watcher its DOWN notice.  Each was reserved as a message
 * when the link or monitor was made, so telling never fails for want of
 * memory: an exit is never lost.
 *
 * An exit signal is a signal until its receiver takes it in: it travels
 * among the messages, in arrival order, and the receiver sorts it out
 * before it looks at any message (mailbox.c).  Only then is it decided
 * whether it is trapped (exit_signal_on_receipt), as Erlang decides when
 * the receiving process handles the signal: a process that turns trapping
 * on after a signal was sent, but before it handled it, gets the ordinary
 * message, in the signal's place among the messages, instead of exiting.
 *
 * Release (muproc_proc_release) ends it all: the mailbox is freed and the
 * slot goes back to the table. */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>

/* ---- notices ------------------------------------------------------- */

/* Pairs of a notice: who ended, why, and over what (a link or monitor). */
#define NOTICE_PAIRS 3

muproc_msg_t *exit_notice_reserve(void) {
  return muproc_msg_new(NOTICE_PAIRS, 0);
}

/* Fill empty notice M with  KEY: PID  reason: <term>.  M has room for
 * NOTICE_PAIRS pairs, so nothing is allocated; a handle reason is held
 * by the exiting process (or the sender) and so can be retained. */
static void notice_fill(muproc_msg_t *m, muproc_atom_t key, muproc_pid_t pid,
                        int reason_type, uint64_t reason_value) {
  muproc_msg_put_pid(m, key, pid);
  msg_put_term(m, atom_reason, reason_type, reason_value);
}

int exit_signal_send(muproc_pid_t to, muproc_pid_t from, int reason_type,
                     uint64_t reason_value, bool link, muproc_msg_t *reserved) {
  muproc_msg_t *m = reserved ? reserved : exit_notice_reserve();
  if (!m)
    return MUPROC_ENOMEM;
  notice_fill(m, atom_from, from, reason_type, reason_value);
  if (link)
    muproc_msg_put_atom(m, atom_link, atom_true);
  int rc = mailbox_deliver(to, m, MUPROC_K_EXIT, true);
  if (rc != 0)
    muproc_msg_free(m);
  return rc;
}

void down_notice_send(muproc_pid_t to, muproc_pid_t target, int reason_type,
                      uint64_t reason_value, uint64_t ref,
                      muproc_msg_t *reserved) {
  notice_fill(reserved, atom_terminated, target, reason_type, reason_value);
  muproc_msg_put_ref(reserved, atom_monitor, ref);
  if (mailbox_deliver(to, reserved, MUPROC_K_MESSAGE, true) != 0)
    muproc_msg_free(reserved);
}

bool exit_signal_on_receipt(struct proc *p, muproc_msg_t *sig) {
  if (sig->kind != MUPROC_K_EXIT || !atomic_load(&p->trap_exits))
    return false;
  /* The signal's  from: <pid>  becomes the message's  terminated: <pid>;
   * the rest is the same. */
  for (uint32_t i = 0; i < sig->npairs; i++)
    if (sig->pairs[i].key == atom_from) {
      sig->pairs[i].key = atom_terminated;
      break;
    }
  sig->kind = MUPROC_K_MESSAGE;
  return true;
}

/* ---- trapping ------------------------------------------------------ */

int muproc_proc_set_trap_exits(muproc_pid_t pid, int on) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  return atomic_exchange(&p->trap_exits, on ? 1 : 0);
}

int muproc_proc_trap_exits(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  return p ? atomic_load(&p->trap_exits) : MUPROC_ESRCH;
}

/* ---- exit signals sent by hand ------------------------------------- */

static bool reason_type_ok(int type) {
  return type == MUPROC_T_NIL || type == MUPROC_T_INT ||
         type == MUPROC_T_ATOM || type == MUPROC_T_PID ||
         type == MUPROC_T_REF || type == MUPROC_T_HANDLE;
}

int muproc_send_exit(muproc_pid_t to, int type, uint64_t value) {
  if (!to || !reason_type_ok(type) ||
      (type == MUPROC_T_HANDLE && !muproc_handle_live(value)))
    return MUPROC_EINVAL;
  if (!proc_lookup(to) || muproc_proc_state(to) == MUPROC_S_EXITED)
    return MUPROC_ESRCH;
  int rc = exit_signal_send(to, muproc_tls_self, type, value, false, NULL);
  return rc == MUPROC_ENOMEM ? rc : 0;
}

/* ---- exit ------------------------------------------------------------ */

/* What an exit owes, taken from the process under its lock and told
 * after. */
struct exit_debts {
  muproc_pid_t pid;
  int reason_type;
  uint64_t reason_value;
  struct ref_set links;    /* (peer, peer, exit signal to the peer) */
  struct ref_set watchers; /* (ref, watcher, DOWN notice) */
  struct ref_set watching; /* (ref, target) */
};

/* Each linked peer whose end of the link is still there gets its exit
 * signal: an unlink that got there first means no signal, as
 * muproc_unlink promises. */
static void tell_links(const struct exit_debts *d) {
  for (uint32_t i = 0; i < d->links.n; i++) {
    const struct ref_entry *l = &d->links.entries[i];
    struct proc *q = proc_lookup(l->pid);
    struct ref_entry peer_end = {0};
    muproc_msg_t *signal = l->notice;
    if (q) {
      pthread_mutex_lock(&q->lock);
      if (proc_pid(q) == l->pid && ref_set_remove(&q->links, d->pid, &peer_end)) {
        atomic_fetch_sub(&muproc_rt.links, 1);
        exit_signal_send(l->pid, d->pid, d->reason_type, d->reason_value,
                         true, signal);
        signal = NULL;
      }
      pthread_mutex_unlock(&q->lock);
    }
    muproc_msg_free(signal);
    muproc_msg_free(peer_end.notice); /* what the peer's exit owed us */
  }
}

/* Each watcher whose monitor is still armed gets its DOWN notice; the
 * monitors the process held on others go with it. */
static void tell_watchers(const struct exit_debts *d) {
  for (uint32_t i = 0; i < d->watchers.n; i++) {
    const struct ref_entry *w = &d->watchers.entries[i];
    struct proc *pw = proc_lookup(w->pid);
    muproc_msg_t *down = w->notice;
    if (pw) {
      pthread_mutex_lock(&pw->lock);
      if (proc_pid(pw) == w->pid && ref_set_remove(&pw->watching, w->ref, NULL)) {
        down_notice_send(w->pid, d->pid, d->reason_type, d->reason_value,
                         w->ref, down);
        down = NULL;
      }
      pthread_mutex_unlock(&pw->lock);
    }
    muproc_msg_free(down);
  }
  for (uint32_t i = 0; i < d->watching.n; i++)
    monitor_forget(d->watching.entries[i].pid, d->watching.entries[i].ref);
}

int muproc_proc_exit(muproc_pid_t pid, int type, uint64_t value) {
  if (!reason_type_ok(type) ||
      (type == MUPROC_T_HANDLE && !muproc_handle_live(value)))
    return MUPROC_EINVAL;
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  /* A compare-and-swap: muproc_proc_start moves CREATED to RUNNING
   * without the lock, and a start that wins must make this an exit of a
   * running process (refused unless it is our own), never one that
   * started anyway. */
  uint64_t stamp = atomic_load(&p->stamp);
  for (;;) {
    int state = STAMP_STATE(stamp);
    if (state != MUPROC_S_CREATED && state != MUPROC_S_RUNNING) {
      pthread_mutex_unlock(&p->lock);
      return MUPROC_ESRCH;
    }
    if (state == MUPROC_S_RUNNING && muproc_tls_self != pid) {
      pthread_mutex_unlock(&p->lock);
      return MUPROC_EPERM;
    }
    if (atomic_compare_exchange_strong(
            &p->stamp, &stamp, STAMP(STAMP_SERIAL(stamp), MUPROC_S_EXITED)))
      break;
  }
  /* From here no sender starts a push; wait out the ones in progress so
   * that "exited" really means "no message will land anymore". */
  while (atomic_load(&p->mbox.inflight) != 0)
    sched_yield();
  if (type == MUPROC_T_HANDLE && !handle_retain(value)) {
    type = MUPROC_T_ATOM; /* checked up front; lost only to a racing free */
    value = atom_noproc;
  }
  p->reason_type = type;
  p->reason_value = value;
  /* Names are free again before anyone hears of the exit. */
  if (p->name) {
    muproc_pid_t expected = pid;
    atomic_compare_exchange_strong(atom_name_slot(p->name, NAME_PROC),
                                   &expected, 0);
  }
  registry_release_all(p);
  /* Take what must be told, so that links and monitors changed from now
   * on see the process dead; tell it after unlocking. */
  struct exit_debts d = {.pid = pid,
                         .reason_type = type,
                         .reason_value = value,
                         .links = p->links,
                         .watchers = p->watchers,
                         .watching = p->watching};
  p->links = (struct ref_set){0};
  p->watchers = (struct ref_set){0};
  p->watching = (struct ref_set){0};
  atomic_fetch_sub(&muproc_rt.links, d.links.n);
  atomic_fetch_sub(&muproc_rt.monitors, d.watchers.n);
  p->aliases.n = 0; /* replies to a dead process go nowhere */
  pthread_mutex_unlock(&p->lock);
  timer_cancel_for(pid);
  tell_links(&d);
  tell_watchers(&d);
  free(d.links.entries);
  free(d.watchers.entries);
  free(d.watching.entries);
  return 0;
}

/* ---- release ------------------------------------------------------- */

int muproc_proc_release(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  /* The exit marks the process EXITED under this lock and finishes its
   * writes (reason, names) before unlocking: wait for them, so the slot
   * is never freed under an exit still in progress. */
  pthread_mutex_lock(&p->lock);
  uint64_t stamp = atomic_load(&p->stamp);
  uint32_t serial = STAMP_SERIAL(stamp);
  uint64_t expected = stamp;
  if (serial != MUPROC_PID_SERIAL(pid) ||
      STAMP_STATE(stamp) != MUPROC_S_EXITED ||
      !atomic_compare_exchange_strong(&p->stamp, &expected,
                                      STAMP(serial + 1, MUPROC_S_NOPROC))) {
    pthread_mutex_unlock(&p->lock);
    return MUPROC_ESTATE;
  }
  pthread_mutex_unlock(&p->lock);
  mailbox_discard(&p->mbox);
  if (p->reason_type == MUPROC_T_HANDLE)
    handle_release(p->reason_value);
  p->reason_type = MUPROC_T_NIL;
  if (muproc_tls_self == pid) {
    muproc_tls_self = 0;
    muproc_tls_sent_out = NULL;
  }
  proc_slot_recycle(p);
  atomic_fetch_sub(&muproc_rt.procs, 1);
  return 0;
}
