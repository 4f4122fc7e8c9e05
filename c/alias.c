/* alias.c - reply aliases: a way to reach a process that it can close.
 *
 * A caller that waits for a reply opens an alias and gives it to the
 * server; the reply is sent to (pid, alias) and delivered only while the
 * alias is open.  Delivery checks and pushes under the receiver's lock,
 * and closing takes the same lock, so once muproc_alias_remove returns no
 * reply through that alias can arrive anymore: a caller that gave up on
 * a call flushes what came before and never sees a late reply. */
#include "internal.h"

int muproc_alias_add(muproc_pid_t self, uint64_t *alias) {
  if (!alias)
    return MUPROC_EINVAL;
  struct proc *p = proc_lookup(self);
  if (!p)
    return MUPROC_ESRCH;
  uint64_t a = muproc_make_ref();
  pthread_mutex_lock(&p->lock);
  int rc = (proc_pid(p) == self && proc_alive(p)) ? id_set_add(&p->aliases, a)
                                                   : MUPROC_ESRCH;
  pthread_mutex_unlock(&p->lock);
  if (rc == 0)
    *alias = a;
  return rc;
}

int muproc_alias_remove(muproc_pid_t self, uint64_t alias) {
  struct proc *p = proc_lookup(self);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  bool removed = proc_pid(p) == self && id_set_remove(&p->aliases, alias);
  pthread_mutex_unlock(&p->lock);
  return removed ? 0 : MUPROC_ENOENT;
}

int muproc_send_alias(muproc_pid_t to, uint64_t alias, muproc_msg_t *msg) {
  if (!msg)
    return MUPROC_EINVAL;
  struct proc *p = proc_lookup(to);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int rc = MUPROC_ENOENT;
  if (proc_pid(p) == to) {
    bool open = false;
    for (uint32_t i = 0; i < p->aliases.n && !open; i++)
      open = p->aliases.ids[i] == alias;
    /* The receiver asked for this reply: its capacity doesn't apply. */
    if (open)
      rc = mailbox_deliver(to, msg, MUPROC_K_MESSAGE, true);
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}
