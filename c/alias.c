/* alias.c - reply aliases: a way to reach a process that it can close.
 *
 * A caller that waits for a reply opens an alias and gives it to the
 * server; the reply is sent to (pid, alias) and delivered only while the
 * alias is open.  Delivery checks and pushes under the receiver's lock,
 * and closing takes the same lock, so once muproc_alias_remove returns no
 * reply through that alias can arrive anymore: a caller that gave up on
 * a call flushes what came before and never sees a late reply. */
#include "internal.h"

/* A process keeps its open aliases in its ALIASES set as ENTRY(alias,
 * reply): the low bit says whether the alias closes itself when a
 * message is delivered through it. */
#define ENTRY(alias, reply) ((alias) << 1 | (uint64_t)(reply))
#define ENTRY_ALIAS(entry) ((entry) >> 1)
#define ENTRY_REPLY(entry) ((entry)&1)

/* The entry of ALIAS in P's set (P locked), or 0 if it is not open. */
static uint64_t entry_of(const struct proc *p, uint64_t alias) {
  for (uint32_t i = 0; i < p->aliases.n; i++)
    if (ENTRY_ALIAS(p->aliases.ids[i]) == alias)
      return p->aliases.ids[i];
  return 0;
}

static int alias_open(muproc_pid_t self, bool reply, uint64_t *alias) {
  if (!alias)
    return MUPROC_EINVAL;
  struct proc *p = proc_lookup(self);
  if (!p)
    return MUPROC_ESRCH;
  uint64_t a = muproc_make_ref();
  pthread_mutex_lock(&p->lock);
  int rc = (proc_pid(p) == self && proc_alive(p))
               ? id_set_add(&p->aliases, ENTRY(a, reply))
               : MUPROC_ESRCH;
  pthread_mutex_unlock(&p->lock);
  if (rc == 0)
    *alias = a;
  return rc;
}

int muproc_alias_add(muproc_pid_t self, uint64_t *alias) {
  return alias_open(self, false, alias);
}

int muproc_alias_add_reply(muproc_pid_t self, uint64_t *alias) {
  return alias_open(self, true, alias);
}

int muproc_alias_remove(muproc_pid_t self, uint64_t alias) {
  struct proc *p = proc_lookup(self);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  uint64_t entry = proc_pid(p) == self ? entry_of(p, alias) : 0;
  if (entry)
    id_set_remove(&p->aliases, entry);
  pthread_mutex_unlock(&p->lock);
  return entry ? 0 : MUPROC_ENOENT;
}

int muproc_send_alias(muproc_pid_t to, uint64_t alias, muproc_msg_t *msg) {
  if (!msg)
    return MUPROC_EINVAL;
  struct proc *p = proc_lookup(to);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int rc = MUPROC_ENOENT;
  uint64_t entry = proc_pid(p) == to ? entry_of(p, alias) : 0;
  if (entry) {
    /* The receiver asked for this reply: its capacity doesn't apply. */
    rc = mailbox_deliver(to, msg, MUPROC_K_MESSAGE, true);
    if (rc == 0 && ENTRY_REPLY(entry))
      id_set_remove(&p->aliases, entry);
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}
