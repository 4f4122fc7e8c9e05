/* set.c - the small growable sets a process keeps its links and monitors
 * in.  Order does not matter, so removal swaps in the last element. */
#include "internal.h"

#include <stdlib.h>

static int grow(void **items, uint32_t *cap, size_t size) {
  uint32_t new_cap = *cap ? *cap * 2 : 4;
  void *p = realloc(*items, new_cap * size);
  if (!p)
    return MUPROC_ENOMEM;
  *items = p;
  *cap = new_cap;
  return 0;
}

int pid_set_add(struct pid_set *set, muproc_pid_t pid) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->pids[i] == pid)
      return 1; /* already there */
  if (set->n == set->cap &&
      grow((void **)&set->pids, &set->cap, sizeof *set->pids) != 0)
    return MUPROC_ENOMEM;
  set->pids[set->n++] = pid;
  return 0;
}

bool pid_set_remove(struct pid_set *set, muproc_pid_t pid) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->pids[i] == pid) {
      set->pids[i] = set->pids[--set->n];
      return true;
    }
  return false;
}

int ref_set_add(struct ref_set *set, uint64_t ref, muproc_pid_t pid) {
  if (set->n == set->cap &&
      grow((void **)&set->entries, &set->cap, sizeof *set->entries) != 0)
    return MUPROC_ENOMEM;
  set->entries[set->n++] = (struct ref_entry){ref, pid};
  return 0;
}

bool ref_set_remove(struct ref_set *set, uint64_t ref, muproc_pid_t *pid) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->entries[i].ref == ref) {
      if (pid)
        *pid = set->entries[i].pid;
      set->entries[i] = set->entries[--set->n];
      return true;
    }
  return false;
}
