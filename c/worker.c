/* worker.c - the threads that run muprocs.
 *
 * Creating a thread costs tens of microseconds here (hundreds for SBCL
 * with many threads alive), so a finished worker parks and is handed the
 * next muproc: spawn becomes a queue hand-off.  Lisp workers are Lisp
 * threads that park in C (C never calls Lisp: the Lisp side owns the loop);
 * C workers are pthreads owned by this file.  One cap bounds both, because
 * SBCL dies outright when it can't map a new thread. */
#include "internal.h"

#include <stdlib.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* What a parked worker is told instead of a pid. */
#define TOLD_SHUTDOWN ((muproc_pid_t)0)
#define TOLD_RETIRE ((muproc_pid_t)-1)

/* A parked worker's state word.  Only a SLEEPING worker costs its waker
 * a syscall. */
enum { PARK_AWAKE, PARK_SLEEPING, PARK_HANDED };

/* A parked worker waits on its own record, on its own stack.  It is
 * handed over (pid written, state set to HANDED) under the pool lock, and
 * woken, when asleep, after the lock is dropped: woken under the lock it
 * would only block on it.  So the wake-up may reach the record's address
 * after its worker has left park() and reused the stack, which is
 * harmless: every futex wait re-checks its word after waking. */
struct parked {
  struct parked *next;
  muproc_pid_t pid;
  _Atomic int state;
};

struct pool {
  struct parked *parked; /* most recently parked first: warm caches */
  int64_t nparked;
};

/* C worker threads are joined at shutdown. */
struct c_thread {
  struct c_thread *next;
  pthread_t thread;
  muproc_pid_t first;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed; /* threads exiting, C muprocs finishing */
  uint32_t cap;
  int64_t threads;    /* reserved or running worker threads */
  int64_t c_running;  /* C muprocs not yet released */
  struct pool lisp, c;
  struct c_thread *c_threads;
  bool shutting_down;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

int worker_init(uint32_t cap) {
  w.cap = cap;
  w.threads = 0;
  w.c_running = 0;
  w.lisp.parked = w.c.parked = NULL;
  w.lisp.nparked = w.c.nparked = 0;
  w.c_threads = NULL;
  w.shutting_down = false;
  return 0;
}

uint32_t muproc_thread_cap(void) { return w.cap; }

int64_t muproc_set_thread_cap(uint32_t cap) {
  if (cap == 0)
    return MUPROC_EINVAL;
  pthread_mutex_lock(&w.lock);
  int64_t old = w.cap;
  w.cap = cap;
  pthread_mutex_unlock(&w.lock);
  return old;
}

/* Linux 6.16 gave each process a private futex hash table sized for
 * min(threads, CPUs): 16 buckets on this 2-CPU machine, whatever the
 * number of threads.  With thousands of workers blocked in futex waits
 * every wake-up walks a chain of hundreds of waiters under the bucket
 * lock; an SBCL GC wakes every thread twice (measured: 365 -> 290 ms per
 * GC with 5,000 muprocs alive).  So once the pool is large, the process
 * goes back to the kernel's global table, sized for the machine: what
 * earlier kernels always did.  Best effort; nothing to do elsewhere. */
#define FUTEX_HASH_GLOBAL_AT 256
#ifndef PR_FUTEX_HASH
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#endif

static void use_global_futex_hash(void) {
#ifdef __linux__
  static bool done; /* under w.lock */
  if (!done) {
    done = true;
    prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, 0, 0, 0);
  }
#endif
}

static void set_threads(int64_t delta) { /* under w.lock */
  w.threads += delta;
  atomic_store(&muproc_rt.threads, w.threads);
  if (w.threads >= FUTEX_HASH_GLOBAL_AT)
    use_global_futex_hash();
}

/* Hand WHAT to parked record REC, already unlinked.  Under w.lock.
 * Returns the address to wake once the lock is dropped, or NULL. */
static _Atomic int *hand(struct parked *rec, muproc_pid_t what) {
  rec->pid = what;
  if (atomic_exchange(&rec->state, PARK_HANDED) == PARK_SLEEPING)
    return &rec->state;
  return NULL;
}

/* Hand PID to a parked worker of POOL, or reserve a thread slot.
 * Under w.lock; *WAKE is set as by hand(). */
static int offer(struct pool *pool, muproc_pid_t pid, _Atomic int **wake) {
  *wake = NULL;
  if (w.shutting_down)
    return MUPROC_ESHUTDOWN;
  struct parked *rec = pool->parked;
  if (rec) {
    pool->parked = rec->next;
    pool->nparked--;
    atomic_fetch_sub(&muproc_rt.parked, 1);
    *wake = hand(rec, pid);
    return 0;
  }
  if (w.threads >= w.cap)
    return MUPROC_ETHREADS;
  set_threads(+1);
  return MUPROC_WORKER_NEEDED;
}

static int handed_over(struct parked *rec, muproc_pid_t *pid) {
  if (rec->pid == TOLD_SHUTDOWN)
    return MUPROC_ESHUTDOWN;
  if (rec->pid == TOLD_RETIRE)
    return MUPROC_ETIMEDOUT;
  *pid = rec->pid;
  return 0;
}

static int park(struct pool *pool, int64_t deadline, muproc_pid_t *pid) {
  struct parked rec = {.next = NULL, .pid = 0};
  atomic_init(&rec.state, PARK_AWAKE);
  pthread_mutex_lock(&w.lock);
  if (w.shutting_down) {
    pthread_mutex_unlock(&w.lock);
    return MUPROC_ESHUTDOWN;
  }
  rec.next = pool->parked;
  pool->parked = &rec;
  pool->nparked++;
  atomic_fetch_add(&muproc_rt.parked, 1);
  pthread_mutex_unlock(&w.lock);

  /* No spinning first: measured, a parked worker spinning (even only the
   * latest, for 20 us) took a CPU from the spawner on this 2-CPU machine
   * and made spawns slower, not faster. */
  int expected = PARK_AWAKE;
  if (atomic_compare_exchange_strong(&rec.state, &expected, PARK_SLEEPING)) {
    int rc = 0;
    while (atomic_load(&rec.state) == PARK_SLEEPING && rc == 0)
      rc = wait_on_word(&rec.state, PARK_SLEEPING, deadline);
  }
  /* Handed over: no lock needed, the record is already unlinked. */
  if (atomic_load(&rec.state) == PARK_HANDED)
    return handed_over(&rec, pid);

  pthread_mutex_lock(&w.lock);
  if (atomic_load(&rec.state) == PARK_HANDED) { /* a hand-over wins over a timeout */
    pthread_mutex_unlock(&w.lock);
    return handed_over(&rec, pid);
  }
  for (struct parked **pp = &pool->parked; *pp; pp = &(*pp)->next)
    if (*pp == &rec) {
      *pp = rec.next;
      break;
    }
  pool->nparked--;
  atomic_fetch_sub(&muproc_rt.parked, 1);
  pthread_mutex_unlock(&w.lock);
  return MUPROC_ETIMEDOUT;
}

/* Tell the parked workers of POOL beyond the KEEP most recent ones WHAT,
 * waking them here: under the lock, since a worker whose wait timed out
 * must find itself either handed something or still in the list.
 * Returns how many. */
static int64_t dismiss(struct pool *pool, uint32_t keep, muproc_pid_t what) {
  struct parked **pp = &pool->parked;
  for (uint32_t i = 0; *pp && i < keep; i++)
    pp = &(*pp)->next;
  int64_t n = 0;
  for (struct parked *rec = *pp, *next; rec; rec = next, n++) {
    next = rec->next; /* REC's worker may leave once handed WHAT */
    _Atomic int *word = hand(rec, what);
    if (word)
      wake_word(word, 1);
  }
  *pp = NULL;
  pool->nparked -= n;
  atomic_fetch_sub(&muproc_rt.parked, n);
  return n;
}

/* ---- Lisp workers ------------------------------------------------- */

int muproc_worker_offer(muproc_pid_t pid) {
  if (!atomic_load(&muproc_rt.initialized))
    return MUPROC_ENOTINIT;
  _Atomic int *wake;
  pthread_mutex_lock(&w.lock);
  int rc = offer(&w.lisp, pid, &wake);
  pthread_mutex_unlock(&w.lock);
  if (wake)
    wake_word(wake, 1);
  return rc;
}

static void thread_gone(void) {
  pthread_mutex_lock(&w.lock);
  set_threads(-1);
  pthread_cond_broadcast(&w.changed);
  pthread_mutex_unlock(&w.lock);
}

void muproc_worker_unreserve(void) { thread_gone(); }
void muproc_worker_exit(void) { thread_gone(); }

int muproc_worker_park(int64_t deadline, muproc_pid_t *pid) {
  if (!pid)
    return MUPROC_EINVAL;
  return park(&w.lisp, deadline, pid);
}

int64_t muproc_worker_trim(uint32_t keep) {
  pthread_mutex_lock(&w.lock);
  int64_t n = dismiss(&w.lisp, keep, TOLD_RETIRE);
  pthread_mutex_unlock(&w.lock);
  return n;
}

/* ---- C workers ----------------------------------------------------- */

/* Idle C workers stay parked until shutdown: C programs are few and
 * their threads cheap, and joining them keeps exits clean under
 * valgrind and the sanitizers. */
static void run_c_muproc(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  /* A process exited while it waited for a worker never runs. */
  if (muproc_proc_start(pid) == 0) {
    p->c_fn(p->c_arg);
    muproc_proc_exit(pid, MUPROC_T_ATOM, atom_normal);
  }
  muproc_proc_release(pid);
  pthread_mutex_lock(&w.lock);
  w.c_running--;
  pthread_cond_broadcast(&w.changed);
  pthread_mutex_unlock(&w.lock);
}

static void *c_worker_main(void *arg) {
  struct c_thread *self = arg;
  muproc_pid_t pid = self->first;
  do
    run_c_muproc(pid);
  while (park(&w.c, MUPROC_FOREVER, &pid) == 0);
  return NULL;
}

int muproc_spawn_c(muproc_atom_t name, muproc_fn_t fn, void *arg,
                   uint32_t capacity, muproc_pid_t *pid) {
  if (!fn || !pid)
    return MUPROC_EINVAL;
  muproc_pid_t new_pid;
  int rc = muproc_proc_create(name, MUPROC_KIND_C, capacity, &new_pid);
  if (rc)
    return rc;
  struct proc *p = proc_lookup(new_pid);
  p->c_fn = fn;
  p->c_arg = arg;
  _Atomic int *wake;
  pthread_mutex_lock(&w.lock);
  w.c_running++;
  rc = offer(&w.c, new_pid, &wake);
  if (rc == MUPROC_WORKER_NEEDED) {
    struct c_thread *t = malloc(sizeof *t);
    rc = MUPROC_ENOMEM;
    if (t) {
      t->first = new_pid;
      if (pthread_create(&t->thread, NULL, c_worker_main, t) == 0) {
        t->next = w.c_threads;
        w.c_threads = t;
        rc = 0;
      } else {
        free(t);
        rc = MUPROC_ETHREADS;
      }
    }
    if (rc)
      set_threads(-1);
  }
  if (rc)
    w.c_running--;
  pthread_mutex_unlock(&w.lock);
  if (wake)
    wake_word(wake, 1);
  if (rc) {
    muproc_proc_exit(new_pid, MUPROC_T_NIL, 0);
    muproc_proc_release(new_pid);
    return rc;
  }
  *pid = new_pid;
  return 0;
}

int muproc_wait_c_idle(int64_t deadline) {
  pthread_mutex_lock(&w.lock);
  int rc = 0;
  while (w.c_running > 0 && rc == 0) {
    if (deadline == MUPROC_FOREVER) {
      pthread_cond_wait(&w.changed, &w.lock);
    } else {
      /* The condvar uses CLOCK_REALTIME; re-derive from the monotonic
       * deadline on every round so clock jumps can't stretch it. */
      int64_t left = deadline - muproc_now_ns();
      if (left <= 0) {
        rc = MUPROC_ETIMEDOUT;
        break;
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + left;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&w.changed, &w.lock, &ts);
    }
  }
  pthread_mutex_unlock(&w.lock);
  return rc;
}

/* ---- shutdown ----------------------------------------------------- */

int worker_shutdown(void) {
  pthread_mutex_lock(&w.lock);
  w.shutting_down = true;
  dismiss(&w.lisp, 0, TOLD_SHUTDOWN);
  dismiss(&w.c, 0, TOLD_SHUTDOWN);
  struct c_thread *threads = w.c_threads;
  w.c_threads = NULL;
  pthread_mutex_unlock(&w.lock);
  int64_t joined = 0;
  for (struct c_thread *t = threads, *next; t; t = next) {
    next = t->next;
    pthread_join(t->thread, NULL);
    free(t);
    joined++;
  }
  pthread_mutex_lock(&w.lock);
  set_threads(-joined);
  /* Lisp workers leave by muproc_worker_exit once they see ESHUTDOWN. */
  while (w.threads > 0)
    pthread_cond_wait(&w.changed, &w.lock);
  pthread_mutex_unlock(&w.lock);
  return 0;
}

