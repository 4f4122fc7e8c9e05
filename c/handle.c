/* handle.c - reference-counted handles for Lisp objects.
 *
 * C never holds a Lisp object; it holds a handle whose index the Lisp
 * side uses in its own table.  The count lets one object travel in
 * several messages (an exit reason sent over many links); the
 * generation in the handle's high bits makes a stale handle dead for
 * good once its index is reused. */
#include "internal.h"

#include <stdlib.h>

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 4096 /* 16M handles alive at once */

struct handle {
  _Atomic uint32_t refs;
  _Atomic uint32_t generation;
  uint32_t next_free;
};

static struct {
  pthread_mutex_t lock; /* allocation and the free list */
  _Atomic(struct handle *) chunks[MAX_CHUNKS];
  uint32_t used;      /* indices 1..used have been handed out once */
  uint32_t free_head; /* 0: empty */
} table = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct handle *handle_at(uint32_t index) {
  if (index == 0 || (index >> CHUNK_BITS) >= MAX_CHUNKS)
    return NULL;
  struct handle *chunk = atomic_load_explicit(
      &table.chunks[index >> CHUNK_BITS], memory_order_acquire);
  return chunk ? &chunk[index & (CHUNK_SIZE - 1)] : NULL;
}

int handle_table_init(void) {
  table.used = 0;
  table.free_head = 0;
  return 0;
}

void handle_table_free(void) {
  for (int c = 0; c < MAX_CHUNKS; c++) {
    free(atomic_load(&table.chunks[c]));
    atomic_store(&table.chunks[c], NULL);
  }
}

int handle_new(uint64_t *out) {
  pthread_mutex_lock(&table.lock);
  uint32_t index = table.free_head;
  struct handle *h;
  if (index) {
    h = handle_at(index);
    table.free_head = h->next_free;
  } else {
    if (table.used + 1 >= MAX_CHUNKS * CHUNK_SIZE) {
      pthread_mutex_unlock(&table.lock);
      return MUPROC_ENOMEM;
    }
    index = ++table.used;
    if (!atomic_load(&table.chunks[index >> CHUNK_BITS])) {
      struct handle *chunk = calloc(CHUNK_SIZE, sizeof *chunk);
      if (!chunk) {
        table.used--;
        pthread_mutex_unlock(&table.lock);
        return MUPROC_ENOMEM;
      }
      for (uint32_t i = 0; i < CHUNK_SIZE; i++)
        atomic_init(&chunk[i].generation, 1);
      atomic_store_explicit(&table.chunks[index >> CHUNK_BITS], chunk,
                            memory_order_release);
    }
    h = handle_at(index);
  }
  atomic_store(&h->refs, 1);
  *out = ((uint64_t)atomic_load(&h->generation) << 32) | index;
  pthread_mutex_unlock(&table.lock);
  atomic_fetch_add(&muproc_rt.handles, 1);
  return 0;
}

bool handle_retain(uint64_t hv) {
  /* Only a live handle can gain a reference: its holder keeps it live
   * while we add ours, so the check can't race with its reuse. */
  if (!muproc_handle_live(hv))
    return false;
  atomic_fetch_add(&handle_at(MUPROC_HANDLE_INDEX(hv))->refs, 1);
  return true;
}

int muproc_handle_new(uint64_t *h) {
  if (!h)
    return MUPROC_EINVAL;
  if (!atomic_load(&muproc_rt.initialized))
    return MUPROC_ENOTINIT;
  return handle_new(h);
}

int muproc_handle_release(uint64_t h) {
  if (!muproc_handle_live(h))
    return MUPROC_EINVAL;
  return handle_release(h) ? 1 : 0;
}

bool handle_release(uint64_t hv) {
  uint32_t index = MUPROC_HANDLE_INDEX(hv);
  struct handle *h = handle_at(index);
  if (!h || atomic_fetch_sub(&h->refs, 1) != 1)
    return false;
  pthread_mutex_lock(&table.lock);
  /* Bump the generation before the index can be handed out again, so
   * muproc_handle_live(old) is false from now on. */
  atomic_fetch_add(&h->generation, 1);
  h->next_free = table.free_head;
  table.free_head = index;
  pthread_mutex_unlock(&table.lock);
  atomic_fetch_sub(&muproc_rt.handles, 1);
  return true;
}

int muproc_handle_live(uint64_t hv) {
  struct handle *h = handle_at(MUPROC_HANDLE_INDEX(hv));
  if (!h || (uint32_t)(hv >> 32) != atomic_load(&h->generation))
    return 0;
  return atomic_load(&h->refs) > 0;
}
