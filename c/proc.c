/* proc.c - the process table: creating processes, finding them by pid,
 * and their state.  How they end is exit.c's.
 *
 * Slots are preallocated, so a pid lookup is an index and a serial
 * compare.  The table is reserved zeroed (a zero stamp means "no
 * process") and a slot is first touched when first used, so a runtime
 * that runs a hundred muprocs doesn't pay for 65,536 of them.  Freed
 * slots wait in a queue and are reused oldest-first once REUSE_AFTER of
 * them have piled up, which keeps a dead pid's number out of circulation
 * for a while. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* initial-exec: the library is loaded at startup or by dlopen into an
 * image with static TLS to spare, and every send reads this. */
_Thread_local muproc_pid_t muproc_tls_self __attribute__((tls_model("initial-exec")));
_Thread_local _Atomic uint64_t *muproc_tls_sent_out
    __attribute__((tls_model("initial-exec")));

#define REUSE_AFTER 1024

static struct {
  struct proc *slots;
  void *memory; /* what calloc returned; SLOTS is aligned within it */
  uint32_t max;
  pthread_mutex_t lock;          /* the free queue and FRESH */
  uint32_t free_head, free_tail; /* slot index + 1; 0 = empty */
  uint32_t nfree;
  _Atomic uint32_t fresh; /* slots 1..FRESH have been used */
} table = {.lock = PTHREAD_MUTEX_INITIALIZER};

muproc_pid_t proc_pid(const struct proc *p) {
  uint32_t number = (uint32_t)(p - table.slots) + 1;
  return ((uint64_t)STAMP_SERIAL(atomic_load(&p->stamp)) << 32) | number;
}

static struct proc *slot_of(muproc_pid_t pid) {
  uint32_t number = MUPROC_PID_NUMBER(pid);
  if (!table.slots || number == 0 || number > table.max)
    return NULL;
  return &table.slots[number - 1];
}

struct proc *proc_lookup(muproc_pid_t pid) {
  struct proc *p = slot_of(pid);
  if (!p)
    return NULL;
  uint64_t stamp = atomic_load(&p->stamp);
  if (STAMP_SERIAL(stamp) != MUPROC_PID_SERIAL(pid) ||
      STAMP_STATE(stamp) == MUPROC_S_NOPROC)
    return NULL;
  return p;
}

static bool accepts(uint64_t stamp, muproc_pid_t pid) {
  int state = STAMP_STATE(stamp);
  return STAMP_SERIAL(stamp) == MUPROC_PID_SERIAL(pid) &&
         (state == MUPROC_S_CREATED || state == MUPROC_S_RUNNING);
}

struct proc *proc_send_begin(muproc_pid_t pid) {
  struct proc *p = slot_of(pid);
  if (!p)
    return NULL;
  /* Raise inflight before reading the stamp: an exit that flips the
   * stamp after this either is seen here or waits for us to finish. */
  atomic_fetch_add(&p->mbox.inflight, 1);
  if (!accepts(atomic_load(&p->stamp), pid)) {
    atomic_fetch_sub(&p->mbox.inflight, 1);
    return NULL;
  }
  return p;
}

void proc_send_end(struct proc *p) { atomic_fetch_sub(&p->mbox.inflight, 1); }

bool proc_alive_pid(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  return p && STAMP_SERIAL(atomic_load(&p->stamp)) == MUPROC_PID_SERIAL(pid) &&
         proc_alive(p);
}

bool proc_alive(const struct proc *p) {
  int state = STAMP_STATE(atomic_load(&p->stamp));
  return state == MUPROC_S_CREATED || state == MUPROC_S_RUNNING;
}

void proc_lock_pair(struct proc *a, struct proc *b) {
  if (b && b < a) {
    struct proc *t = a;
    a = b;
    b = t;
  }
  pthread_mutex_lock(&a->lock);
  if (b && b != a)
    pthread_mutex_lock(&b->lock);
}

void proc_unlock_pair(struct proc *a, struct proc *b) {
  if (b && b != a)
    pthread_mutex_unlock(&b->lock);
  pthread_mutex_unlock(&a->lock);
}

int proc_table_init(uint32_t max_procs) {
  /* calloc of this size maps fresh zero pages; they cost nothing until a
   * slot is used.  One line more, to align the slots to cache lines. */
  size_t size = (size_t)max_procs * sizeof *table.slots;
  table.memory = calloc(1, size + CACHE_LINE);
  if (!table.memory)
    return MUPROC_ENOMEM;
  uintptr_t at = ((uintptr_t)table.memory + CACHE_LINE - 1) &
                 ~(uintptr_t)(CACHE_LINE - 1);
  table.slots = (struct proc *)at;
  table.max = max_procs;
  table.free_head = table.free_tail = 0;
  table.nfree = 0;
  table.fresh = 0;
  return 0;
}

void proc_table_free(void) {
  for (uint32_t i = 0; i < table.fresh; i++) {
    struct proc *p = &table.slots[i];
    pthread_mutex_destroy(&p->lock);
    free(p->ports);
    free(p->links.entries);
    free(p->watchers.entries);
    free(p->watching.entries);
    free(p->aliases.ids);
  }
  free(table.memory);
  table.memory = NULL;
  table.slots = NULL;
  table.max = 0;
  table.fresh = 0;
}

/* Append INDEX to the free queue (AT_FRONT: to its head).  Table lock
 * held. */
static void free_queue_put(uint32_t index, bool at_front) {
  struct proc *p = &table.slots[index - 1];
  if (at_front) {
    p->next_free = table.free_head;
    table.free_head = index;
    if (!table.free_tail)
      table.free_tail = index;
  } else {
    p->next_free = 0;
    if (table.free_tail)
      table.slots[table.free_tail - 1].next_free = index;
    else
      table.free_head = index;
    table.free_tail = index;
  }
  table.nfree++;
}

/* A slot for a new process (index + 1), or 0 if the table is full. */
static uint32_t slot_take(void) {
  pthread_mutex_lock(&table.lock);
  uint32_t index = 0;
  if (table.nfree > 0 && (table.nfree >= REUSE_AFTER || table.fresh == table.max)) {
    index = table.free_head;
    table.free_head = table.slots[index - 1].next_free;
    if (!table.free_head)
      table.free_tail = 0;
    table.nfree--;
  } else if (table.fresh < table.max) {
    index = atomic_load_explicit(&table.fresh, memory_order_relaxed) + 1;
    atomic_store(&table.fresh, index);
    pthread_mutex_init(&table.slots[index - 1].lock, NULL);
  }
  pthread_mutex_unlock(&table.lock);
  return index;
}

void proc_slot_recycle(struct proc *p) {
  pthread_mutex_lock(&table.lock);
  free_queue_put((uint32_t)(p - table.slots) + 1, false);
  pthread_mutex_unlock(&table.lock);
}

int muproc_proc_create(muproc_atom_t name, int kind, uint32_t capacity,
                       muproc_pid_t *pid) {
  if (!atomic_load(&muproc_rt.initialized))
    return MUPROC_ENOTINIT;
  if ((kind != MUPROC_KIND_LISP && kind != MUPROC_KIND_C) || !pid)
    return MUPROC_EINVAL;
  _Atomic(muproc_pid_t) *name_slot = NULL;
  if (name && !(name_slot = atom_name_slot(name, NAME_PROC)))
    return MUPROC_EINVAL;

  uint32_t index = slot_take();
  if (!index)
    return MUPROC_EPROCLIM;
  struct proc *p = &table.slots[index - 1];

  uint32_t serial = STAMP_SERIAL(atomic_load(&p->stamp));
  muproc_pid_t new_pid = ((uint64_t)serial << 32) | index;
  if (name_slot) {
    muproc_pid_t expected = 0;
    if (!atomic_compare_exchange_strong(name_slot, &expected, new_pid)) {
      pthread_mutex_lock(&table.lock); /* give the slot back, at the front */
      free_queue_put(index, true);
      pthread_mutex_unlock(&table.lock);
      return MUPROC_EEXIST;
    }
  }
  p->kind = kind;
  p->name = name;
  p->nports = 0;
  p->reason_type = MUPROC_T_NIL;
  p->reason_value = 0;
  p->c_fn = NULL;
  p->c_arg = NULL;
  p->links.n = p->watchers.n = p->watching.n = p->aliases.n = 0;
  atomic_store(&p->trap_exits, 0);
  mailbox_init(&p->mbox, capacity);
  atomic_fetch_add(&muproc_rt.procs, 1);
  atomic_store(&p->stamp, STAMP(serial, MUPROC_S_CREATED));
  *pid = new_pid;
  return 0;
}

int muproc_proc_start(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  uint64_t expected = STAMP(MUPROC_PID_SERIAL(pid), MUPROC_S_CREATED);
  if (!atomic_compare_exchange_strong(
          &p->stamp, &expected, STAMP(MUPROC_PID_SERIAL(pid), MUPROC_S_RUNNING)))
    return MUPROC_ESTATE;
  muproc_tls_self = pid;
  observe_proc_started(p);
  return 0;
}

muproc_pid_t muproc_self(void) { return muproc_tls_self; }

int muproc_proc_state(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_S_NOPROC;
  int state = STAMP_STATE(atomic_load(&p->stamp));
  if (state == MUPROC_S_RUNNING && atomic_load(&p->mbox.waiting))
    return MUPROC_S_WAITING;
  return state;
}

muproc_atom_t muproc_proc_name(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  return p ? p->name : 0;
}

int muproc_proc_kind(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  return p ? p->kind : MUPROC_ESRCH;
}

int muproc_proc_exit_reason(muproc_pid_t pid, int *type, uint64_t *value) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  pthread_mutex_lock(&p->lock);
  int rc = MUPROC_ESTATE;
  if (STAMP_STATE(atomic_load(&p->stamp)) == MUPROC_S_EXITED) {
    if (type)
      *type = p->reason_type;
    if (value)
      *value = p->reason_value;
    rc = 0;
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int muproc_proc_find(muproc_atom_t name, muproc_pid_t *pid) {
  _Atomic(muproc_pid_t) *slot = atom_name_slot(name, NAME_PROC);
  muproc_pid_t found = slot ? atomic_load(slot) : 0;
  if (!found)
    return MUPROC_ENOENT;
  if (pid)
    *pid = found;
  return 0;
}

int64_t muproc_proc_list(muproc_pid_t *buf, size_t cap) {
  int64_t n = 0;
  uint32_t used = atomic_load(&table.fresh); /* the rest are unused */
  for (uint32_t i = 0; i < used; i++) {
    uint64_t stamp = atomic_load(&table.slots[i].stamp);
    int state = STAMP_STATE(stamp);
    if (state != MUPROC_S_CREATED && state != MUPROC_S_RUNNING)
      continue;
    if (buf && (size_t)n < cap)
      buf[n] = ((uint64_t)STAMP_SERIAL(stamp) << 32) | (i + 1);
    n++;
  }
  return n;
}
