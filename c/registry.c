/* registry.c - registered port names.
 *
 * The atom table holds each name's owner, so whereis is one atomic load;
 * the owning process keeps the list of its names under its own lock, which
 * is also the lock its exit takes: a name can't be registered for a
 * process that is exiting, and is free again the moment it has exited. */
#include "internal.h"

static int remember_port(struct proc *p, muproc_atom_t name) {
  if (ARRAY_ROOM(p->ports, p->nports, p->cap_ports, 4) != 0)
    return MUPROC_ENOMEM;
  p->ports[p->nports++] = name;
  return 0;
}

static void forget_port(struct proc *p, muproc_atom_t name) {
  for (uint32_t i = 0; i < p->nports; i++)
    if (p->ports[i] == name) {
      p->ports[i] = p->ports[--p->nports];
      return;
    }
}

int muproc_register(muproc_atom_t name, muproc_pid_t pid) {
  _Atomic(muproc_pid_t) *slot = name ? atom_name_slot(name, NAME_PORT) : NULL;
  if (!slot)
    return MUPROC_EINVAL;
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int rc = MUPROC_ESRCH;
  int state = STAMP_STATE(atomic_load(&p->stamp));
  if (proc_pid(p) == pid &&
      (state == MUPROC_S_CREATED || state == MUPROC_S_RUNNING)) {
    muproc_pid_t expected = 0;
    if (!atomic_compare_exchange_strong(slot, &expected, pid))
      rc = MUPROC_EEXIST;
    else if ((rc = remember_port(p, name)) != 0)
      atomic_store(slot, 0);
    else
      atomic_fetch_add(&muproc_rt.registered, 1);
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int muproc_unregister(muproc_atom_t name) {
  _Atomic(muproc_pid_t) *slot = name ? atom_name_slot(name, NAME_PORT) : NULL;
  if (!slot)
    return MUPROC_ENOENT;
  for (;;) {
    muproc_pid_t owner = atomic_load(slot);
    if (!owner)
      return MUPROC_ENOENT;
    struct proc *p = proc_lookup(owner);
    if (!p)
      continue; /* the owner's exit is clearing the slot right now */
    pthread_mutex_lock(&p->lock);
    bool still_owner = atomic_load(slot) == owner;
    if (still_owner) {
      atomic_store(slot, 0);
      forget_port(p, name);
      atomic_fetch_sub(&muproc_rt.registered, 1);
    }
    pthread_mutex_unlock(&p->lock);
    if (still_owner)
      return 0;
  }
}

int muproc_whereis(muproc_atom_t name, muproc_pid_t *pid) {
  _Atomic(muproc_pid_t) *slot = name ? atom_name_slot(name, NAME_PORT) : NULL;
  muproc_pid_t owner = slot ? atomic_load(slot) : 0;
  if (!owner)
    return MUPROC_ENOENT;
  if (pid)
    *pid = owner;
  return 0;
}

int64_t muproc_registered_names(muproc_pid_t pid, muproc_atom_t *buf,
                                size_t cap) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int64_t n = proc_pid(p) == pid ? p->nports : 0;
  for (uint32_t i = 0; buf && i < n && i < cap; i++)
    buf[i] = p->ports[i];
  pthread_mutex_unlock(&p->lock);
  return n;
}

void registry_release_all(struct proc *p) {
  for (uint32_t i = 0; i < p->nports; i++)
    atomic_store(atom_name_slot(p->ports[i], NAME_PORT), 0);
  atomic_fetch_sub(&muproc_rt.registered, p->nports);
  p->nports = 0;
}

int muproc_send_named(muproc_atom_t name, muproc_msg_t *msg) {
  muproc_pid_t pid;
  int rc = muproc_whereis(name, &pid);
  return rc ? rc : muproc_send(pid, msg);
}
