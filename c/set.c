/* set.c - the small growable sets a process keeps its links, monitors
 * and aliases in.  Order does not matter, so removal swaps in the last element. */
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

int id_set_add(struct id_set *set, uint64_t id) {
  for (uint32_t i = 0; i < set->n; i++)
    if (set->ids[i] == id)
      return 1; /* already there */
  if (set->n == set->cap &&
      grow((void **)&set->ids, &set->cap, sizeof *set->ids) != 0)
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
  if (set->n == set->cap &&
      grow((void **)&set->entries, &set->cap, sizeof *set->entries) != 0)
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
