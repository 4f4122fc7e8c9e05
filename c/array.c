/* array.c - the one growable array: every list of items libmuproc grows
 * (a process's link, monitor and alias sets and its port names, the
 * timer heap, the queue of pokes) keeps ITEMS, N and CAP and calls
 * array_room before it appends. */
#include "internal.h"

#include <stdlib.h>

int array_room(void **items, uint32_t n, uint32_t *cap, size_t item_size,
               uint32_t first) {
  if (n < *cap)
    return 0;
  if (*cap > UINT32_MAX / 2)
    return MUPROC_ENOMEM;
  uint32_t new_cap = *cap ? *cap * 2 : first;
  void *grown = realloc(*items, (size_t)new_cap * item_size);
  if (!grown)
    return MUPROC_ENOMEM;
  *items = grown;
  *cap = new_cap;
  return 0;
}
