/* set.c - the small growable sets a process keeps its links, monitors
 * and aliases in.  Order does not matter, so removal swaps in the last element. */
#include "internal.h"

int id_set_add(struct id_set *set, uint64_t id) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->ids[i] == id)
      return 1; /* already there */
  if (ARRAY_ROOM(set->ids, set->n, set->cap, 4) != 0)
    return MUPROC_ENOMEM;
  set->ids[set->n++] = id;
  return 0;
}

bool id_set_remove(struct id_set *set, uint64_t id) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->ids[i] == id) {
      set->ids[i] = set->ids[--set->n];
      return true;
    }
  return false;
}

int ref_set_add(struct ref_set *set, uint64_t ref, muproc_pid_t pid,
                muproc_msg_t *notice) {
  if (ARRAY_ROOM(set->entries, set->n, set->cap, 4) != 0)
    return MUPROC_ENOMEM;
  set->entries[set->n++] = (struct ref_entry){ref, pid, notice};
  return 0;
}

bool ref_set_has(const struct ref_set *set, uint64_t ref) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->entries[i].ref == ref)
      return true;
  return false;
}

bool ref_set_remove(struct ref_set *set, uint64_t ref, struct ref_entry *out) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->entries[i].ref == ref) {
      if (out)
        *out = set->entries[i];
      set->entries[i] = set->entries[--set->n];
      return true;
    }
  return false;
}
