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
  /* The next free index while this one is on the free list.  Atomic: a
   * popper may read it just as another thread pops and reuses this
   * handle (its compare-and-swap then fails on the changed top). */
  _Atomic uint32_t next_free;
};

/* The free list is a lock-free stack, because every message that carries
 * a Lisp object makes a handle on the sending side and frees one on the
 * receiving side: under a mutex a caller and its server, on two CPUs,
 * collided often enough that the loser slept in the kernel (a futex
 * wait and wake-up, far dearer than the round trip itself) in the middle
 * of a round trip.  FREE_TOP holds the top index in its low half and a count
 * of pops in its high half, so a top that was popped and pushed back in
 * between (ABA) no longer compares equal.  The mutex is only for handing
 * out never-used indices, which happens until the table has grown to
 * the most handles ever alive at once. */
static struct {
  pthread_mutex_t grow_lock;
  _Atomic(struct handle *) chunks[MAX_CHUNKS];
  uint32_t used; /* indices 1..used have been handed out once */
  _Atomic uint64_t free_top;
} table = {.grow_lock = PTHREAD_MUTEX_INITIALIZER};

#define TOP_INDEX(top) ((uint32_t)(top))
#define TOP_POPS(top) ((top) >> 32)

static struct handle *handle_at(uint32_t index) {
  if (index == 0 || (index >> CHUNK_BITS) >= MAX_CHUNKS)
    return NULL;
  struct handle *chunk = atomic_load_explicit(
      &table.chunks[index >> CHUNK_BITS], memory_order_acquire);
  return chunk ? &chunk[index & (CHUNK_SIZE - 1)] : NULL;
}

int handle_table_init(void) {
  table.used = 0;
  atomic_store(&table.free_top, 0);
  return 0;
}

void handle_table_free(void) {
  for (int c = 0; c < MAX_CHUNKS; c++) {
    free(atomic_load(&table.chunks[c]));
    atomic_store(&table.chunks[c], NULL);
  }
}

/* A free index off the stack, or 0 if it is empty. */
static uint32_t pop_free(void) {
  uint64_t top = atomic_load(&table.free_top);
  while (TOP_INDEX(top)) {
    uint32_t next = atomic_load_explicit(
        &handle_at(TOP_INDEX(top))->next_free, memory_order_relaxed);
    uint64_t popped = ((TOP_POPS(top) + 1) << 32) | next;
    if (atomic_compare_exchange_weak(&table.free_top, &top, popped))
      return TOP_INDEX(top);
  }
  return 0;
}

static void push_free(uint32_t index) {
  struct handle *h = handle_at(index);
  uint64_t top = atomic_load(&table.free_top);
  do
    atomic_store_explicit(&h->next_free, TOP_INDEX(top), memory_order_relaxed);
  while (!atomic_compare_exchange_weak(
      &table.free_top, &top, (TOP_POPS(top) << 32) | index));
}

/* A never-used index, growing the table by a chunk when needed; 0 if
 * the table is full or out of memory. */
static uint32_t fresh_index(void) {
  pthread_mutex_lock(&table.grow_lock);
  uint32_t index = 0;
  if (table.used + 1 < MAX_CHUNKS * CHUNK_SIZE) {
    index = table.used + 1;
    if (!atomic_load(&table.chunks[index >> CHUNK_BITS])) {
      struct handle *chunk = calloc(CHUNK_SIZE, sizeof *chunk);
      if (chunk) {
        for (uint32_t i = 0; i < CHUNK_SIZE; i++)
          atomic_init(&chunk[i].generation, 1);
        atomic_store_explicit(&table.chunks[index >> CHUNK_BITS], chunk,
                              memory_order_release);
      } else {
        index = 0;
      }
    }
    if (index)
      table.used = index;
  }
  pthread_mutex_unlock(&table.grow_lock);
  return index;
}

int handle_new(uint64_t *out) {
  uint32_t index = pop_free();
  if (!index && !(index = fresh_index()))
    return MUPROC_ENOMEM;
  struct handle *h = handle_at(index);
  atomic_store(&h->refs, 1);
  *out = ((uint64_t)atomic_load(&h->generation) << 32) | index;
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
  /* Bump the generation before the index can be handed out again, so
   * muproc_handle_live(old) is false from now on. */
  atomic_fetch_add(&h->generation, 1);
  push_free(index);
  atomic_fetch_sub(&muproc_rt.handles, 1);
  return true;
}

int muproc_handle_live(uint64_t hv) {
  struct handle *h = handle_at(MUPROC_HANDLE_INDEX(hv));
  if (!h || (uint32_t)(hv >> 32) != atomic_load(&h->generation))
    return 0;
  return atomic_load(&h->refs) > 0;
}
