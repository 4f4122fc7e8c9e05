/* atom.c - the thread-safe atom table.
 *
 * Atoms are dense ids into a chunked array, so a reader finds an atom's
 * name (and the name slots that make it a registry key) without a lock;
 * only interning takes the table lock.  Chunks are never moved, which is
 * what makes the lock-free reads safe while the table grows. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 1024 /* 1,048,576 atoms: Erlang's default limit */

struct atom {
  char *name;
  uint32_t len;
  uint32_t hash;
  _Atomic(muproc_pid_t) names[2]; /* NAME_PROC, NAME_PORT */
};

static struct {
  pthread_mutex_t lock;
  _Atomic(struct atom *) chunks[MAX_CHUNKS];
  _Atomic uint32_t count; /* atoms are 1..count */
  uint32_t *index;        /* open addressing: atom ids, 0 = empty */
  uint32_t index_size;    /* power of two */
} table = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint32_t hash_bytes(const char *s, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static struct atom *atom_at(muproc_atom_t id) {
  if (id == 0 || id > atomic_load_explicit(&table.count, memory_order_acquire))
    return NULL;
  uint32_t i = id - 1;
  struct atom *chunk = atomic_load_explicit(&table.chunks[i >> CHUNK_BITS],
                                            memory_order_acquire);
  return &chunk[i & (CHUNK_SIZE - 1)];
}

int atom_table_init(void) {
  table.index_size = 4096;
  table.index = calloc(table.index_size, sizeof *table.index);
  atomic_store(&table.count, 0);
  return table.index ? 0 : MUPROC_ENOMEM;
}

void atom_table_free(void) {
  uint32_t n = atomic_load(&table.count);
  for (uint32_t id = 1; id <= n; id++)
    free(atom_at(id)->name);
  for (int c = 0; c < MAX_CHUNKS; c++) {
    free(atomic_load(&table.chunks[c]));
    atomic_store(&table.chunks[c], NULL);
  }
  atomic_store(&table.count, 0);
  free(table.index);
  table.index = NULL;
}

static void index_insert(uint32_t *index, uint32_t size, uint32_t hash,
                         uint32_t id) {
  uint32_t i = hash & (size - 1);
  while (index[i])
    i = (i + 1) & (size - 1);
  index[i] = id;
}

static int index_grow(void) {
  uint32_t size = table.index_size * 2;
  uint32_t *index = calloc(size, sizeof *index);
  if (!index)
    return MUPROC_ENOMEM;
  for (uint32_t i = 0; i < table.index_size; i++)
    if (table.index[i])
      index_insert(index, size, atom_at(table.index[i])->hash, table.index[i]);
  free(table.index);
  table.index = index;
  table.index_size = size;
  return 0;
}

int64_t muproc_atom(const char *name, size_t len) {
  if (!atomic_load(&muproc_rt.initialized))
    return MUPROC_ENOTINIT;
  if (!name || len == 0 || len > MUPROC_ATOM_MAX_LEN)
    return MUPROC_EINVAL;
  uint32_t hash = hash_bytes(name, len);
  pthread_mutex_lock(&table.lock);
  for (uint32_t i = hash & (table.index_size - 1); table.index[i];
       i = (i + 1) & (table.index_size - 1)) {
    struct atom *a = atom_at(table.index[i]);
    if (a->hash == hash && a->len == len && memcmp(a->name, name, len) == 0) {
      pthread_mutex_unlock(&table.lock);
      return table.index[i];
    }
  }
  int64_t rc = MUPROC_ENOMEM;
  uint32_t n = atomic_load(&table.count);
  if (n >= MAX_CHUNKS * CHUNK_SIZE)
    goto out;
  if ((n + 1) * 2 > table.index_size && index_grow() != 0)
    goto out;
  struct atom *chunk = atomic_load(&table.chunks[n >> CHUNK_BITS]);
  if (!chunk) {
    chunk = calloc(CHUNK_SIZE, sizeof *chunk);
    if (!chunk)
      goto out;
    atomic_store_explicit(&table.chunks[n >> CHUNK_BITS], chunk,
                          memory_order_release);
  }
  struct atom *a = &chunk[n & (CHUNK_SIZE - 1)];
  a->name = malloc(len + 1);
  if (!a->name)
    goto out;
  memcpy(a->name, name, len);
  a->name[len] = '\0';
  a->len = (uint32_t)len;
  a->hash = hash;
  atomic_store(&a->names[NAME_PROC], 0);
  atomic_store(&a->names[NAME_PORT], 0);
  atomic_store_explicit(&table.count, n + 1, memory_order_release);
  index_insert(table.index, table.index_size, hash, n + 1);
  atomic_fetch_add(&muproc_rt.atoms, 1);
  rc = n + 1;
out:
  pthread_mutex_unlock(&table.lock);
  return rc;
}

const char *muproc_atom_name(muproc_atom_t atom, size_t *len) {
  struct atom *a = atom_at(atom);
  if (!a)
    return NULL;
  if (len)
    *len = a->len;
  return a->name;
}

_Atomic(muproc_pid_t) *atom_name_slot(muproc_atom_t atom, int which) {
  struct atom *a = atom_at(atom);
  return a ? &a->names[which] : NULL;
}
