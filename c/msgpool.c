/* msgpool.c - where message memory comes from: per-thread caches of
 * fixed-size blocks, refilled from and drained to a shared depot in
 * batches.
 *
 * A message is usually allocated by its sender and freed by its receiver,
 * on another thread.  malloc handles that pattern badly (the freed chunk
 * goes back to the sender's arena through a lock, and a queue that fills
 * up grows the heap with sysmalloc); here a send and a receive each touch
 * only their own thread's cache, and the two threads meet in the depot
 * once every BATCH messages, under a mutex.
 *
 * Blocks come in a few size classes; larger messages use malloc.  The
 * depot keeps at most DEPOT_BYTES per class and gives the rest back to
 * malloc, so a burst of queued messages doesn't pin its memory
 * forever. */
#include "internal.h"

#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* A cached block is poisoned: a use after free still trips ASan. */
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define BATCH 64
/* The depot keeps up to this many bytes of each class: enough for a
 * queue of 32,768 small messages to be recycled without malloc. */
#define DEPOT_BYTES ((size_t)4 << 20)
/* Block sizes: a 1-3 pair message fits the first (the header is ~80
 * bytes), a short string or a dozen pairs the last. */
static const size_t class_size[MSGPOOL_CLASSES] = {128, 256, 512, 1024};

/* A free block is a link in two lists: NEXT chains the blocks of a batch
 * (or of a thread's cache), NEXT_BATCH the batches in the depot. */
struct free_block {
  struct free_block *next;
  struct free_block *next_batch;
};

/* A thread's cache per class, after Bonwick's magazines: LOADED holds
 * 0..BATCH blocks, PREVIOUS a full batch or nothing.  Allocation pops
 * from LOADED and swaps in PREVIOUS when it runs dry; a free that finds
 * LOADED full retires PREVIOUS to the depot.  Either way no list is ever
 * walked, and a thread that alternates allocating and freeing around a
 * batch boundary doesn't trip over the depot each time. */
struct cache {
  struct free_block *loaded;
  uint32_t n;
  struct free_block *previous;
};

static _Thread_local struct cache caches[MSGPOOL_CLASSES]
    __attribute__((tls_model("initial-exec")));
/* Set once per thread, so that its destructor returns the caches. */
static _Thread_local bool registered __attribute__((tls_model("initial-exec")));

static struct {
  pthread_mutex_t lock;
  struct free_block *batches[MSGPOOL_CLASSES];
  uint32_t nbatches[MSGPOOL_CLASSES];
} depot = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void free_chain(struct free_block *b, size_t size) {
  while (b) {
    struct free_block *next = b->next;
    UNPOISON(b, size);
    free(b);
    b = next;
  }
}

/* Hand a chain of N blocks to the depot as one batch, or back to malloc
 * if the depot is full. */
static void depot_put(int cls, struct free_block *chain, uint32_t n) {
  if (!chain)
    return;
  pthread_mutex_lock(&depot.lock);
  if (n == BATCH &&
      depot.nbatches[cls] < DEPOT_BYTES / (BATCH * class_size[cls])) {
    chain->next_batch = depot.batches[cls];
    depot.batches[cls] = chain;
    depot.nbatches[cls]++;
    chain = NULL;
  }
  pthread_mutex_unlock(&depot.lock);
  free_chain(chain, class_size[cls]);
}

static struct free_block *depot_take(int cls) {
  pthread_mutex_lock(&depot.lock);
  struct free_block *batch = depot.batches[cls];
  if (batch) {
    depot.batches[cls] = batch->next_batch;
    depot.nbatches[cls]--;
  }
  pthread_mutex_unlock(&depot.lock);
  return batch;
}

/* A thread that exits gives its cached blocks back: full batches to the
 * depot, a partial one to malloc. */
static void release_caches(void *unused) {
  (void)unused;
  for (int cls = 0; cls < MSGPOOL_CLASSES; cls++) {
    struct cache *c = &caches[cls];
    depot_put(cls, c->previous, BATCH);
    depot_put(cls, c->loaded, c->n);
    *c = (struct cache){NULL, 0, NULL};
  }
  registered = false;
}

static void make_exit_key(void) { pthread_key_create(&exit_key, release_caches); }

/* Called before a thread's cache first holds a block. */
static void register_thread(void) {
  pthread_once(&exit_key_once, make_exit_key);
  pthread_setspecific(exit_key, &registered);
  registered = true;
}

static int class_of(size_t size) {
  for (int cls = 0; cls < MSGPOOL_CLASSES; cls++)
    if (size <= class_size[cls])
      return cls;
  return MSGPOOL_MALLOC;
}

void *msgpool_alloc(size_t size, uint8_t *cls_out) {
  int cls = class_of(size);
  *cls_out = (uint8_t)cls;
  if (cls == MSGPOOL_MALLOC)
    return malloc(size);
  struct cache *c = &caches[cls];
  if (c->n == 0) {
    if (!registered)
      register_thread();
    struct free_block *batch = c->previous;
    c->previous = NULL;
    if (!batch)
      batch = depot_take(cls);
    if (!batch)
      return malloc(class_size[cls]);
    c->loaded = batch;
    c->n = BATCH;
  }
  struct free_block *b = c->loaded;
  c->loaded = b->next;
  c->n--;
  UNPOISON(b, class_size[cls]);
  return b;
}

void msgpool_free(void *block, uint8_t cls) {
  if (cls == MSGPOOL_MALLOC) {
    free(block);
    return;
  }
  if (!registered)
    register_thread();
  struct cache *c = &caches[cls];
  if (c->n == BATCH) {
    depot_put(cls, c->previous, BATCH);
    c->previous = c->loaded;
    c->loaded = NULL;
    c->n = 0;
  }
  struct free_block *b = block;
  /* The link word stays addressable; the rest is poisoned until reuse. */
  POISON((char *)b + sizeof *b, class_size[cls] - sizeof *b);
  b->next = c->loaded;
  c->loaded = b;
  c->n++;
}

void msgpool_release(void) {
  release_caches(NULL);
  for (int cls = 0; cls < MSGPOOL_CLASSES; cls++) {
    pthread_mutex_lock(&depot.lock);
    struct free_block *batch = depot.batches[cls];
    depot.batches[cls] = NULL;
    depot.nbatches[cls] = 0;
    pthread_mutex_unlock(&depot.lock);
    while (batch) {
      struct free_block *next = batch->next_batch;
      free_chain(batch, class_size[cls]);
      batch = next;
    }
  }
}
