/* timer.c - the timer thread and its heap of deadlines.
 *
 * One thread sleeps until the earliest deadline (CLOCK_MONOTONIC) and
 * delivers what is due.  It delivers while holding the heap lock, so a
 * cancel either finds the timer pending (and it never fires again) or
 * finds it gone: a repeating timer can't slip back in after a cancel.
 *
 * A timer message that is never delivered (its destination or owner
 * exited, or a bounded inport was full) may carry handles whose Lisp
 * objects the Lisp side keeps in its own table until it learns the
 * handles are dead.  Such messages are not freed here but kept on a
 * list the Lisp side empties (muproc_timer_reap), freeing them itself. */
#include "internal.h"

#include <stdlib.h>

struct timer {
  uint64_t id;
  int64_t when, repeat;
  muproc_pid_t to, owner;
  int kind; /* MUPROC_K_MESSAGE for send-after, MUPROC_K_TIMER */
  muproc_msg_t *msg;
  size_t index;        /* in the heap */
  struct timer *next; /* on the dropped list */
};

static struct {
  pthread_mutex_t lock;
  struct timer **heap;
  uint32_t n, cap;
  _Atomic int seq; /* futex word: bumped when the earliest deadline moves */
  bool stop;
  pthread_t thread;
  bool running;
  /* Undelivered timers whose messages carry handles, newest first. */
  struct timer *dropped;
  _Atomic size_t ndropped;
} tm = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void swap(size_t i, size_t j) {
  struct timer *t = tm.heap[i];
  tm.heap[i] = tm.heap[j];
  tm.heap[j] = t;
  tm.heap[i]->index = i;
  tm.heap[j]->index = j;
}

static void sift_up(size_t i) {
  while (i > 0 && tm.heap[(i - 1) / 2]->when > tm.heap[i]->when) {
    swap(i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void sift_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < tm.n && tm.heap[l]->when < tm.heap[m]->when)
      m = l;
    if (r < tm.n && tm.heap[r]->when < tm.heap[m]->when)
      m = r;
    if (m == i)
      return;
    swap(i, m);
    i = m;
  }
}

static int heap_push(struct timer *t) {
  if (ARRAY_ROOM(tm.heap, tm.n, tm.cap, 64) != 0)
    return MUPROC_ENOMEM;
  t->index = tm.n;
  tm.heap[tm.n++] = t;
  sift_up(t->index);
  atomic_fetch_add(&muproc_rt.timers, 1);
  return 0;
}

static void heap_remove(struct timer *t) {
  size_t i = t->index;
  tm.n--;
  if (i != tm.n) {
    tm.heap[i] = tm.heap[tm.n];
    tm.heap[i]->index = i;
    sift_down(i);
    sift_up(i);
  }
  atomic_fetch_sub(&muproc_rt.timers, 1);
}

static void timer_free(struct timer *t) {
  muproc_msg_free(t->msg);
  free(t);
}

static bool carries_handles(const muproc_msg_t *m) {
  for (uint32_t i = 0; m && i < m->npairs; i++)
    if (m->pairs[i].type == MUPROC_T_HANDLE)
      return true;
  return false;
}

/* T is done without having delivered its message: free it, or keep it
 * for muproc_timer_reap if its message carries handles.  Lock held. */
static void timer_retire(struct timer *t) {
  if (!carries_handles(t->msg)) {
    timer_free(t);
    return;
  }
  t->next = tm.dropped;
  tm.dropped = t;
  atomic_fetch_add(&tm.ndropped, 1);
}

/* Deliver what T is due to send; true if it stays armed. */
static bool fire(struct timer *t) {
  if (t->kind == MUPROC_K_MESSAGE) {
    /* A bounded inport that is full refuses it as it refuses any send:
     * the message is dropped and nothing queued is lost. */
    if (mailbox_deliver(t->to, t->msg, MUPROC_K_MESSAGE, false) == 0)
      t->msg = NULL;
    return false;
  }
  muproc_msg_t *copy = t->repeat > 0 ? msg_clone(t->msg) : t->msg;
  int rc = copy ? mailbox_deliver(t->to, copy, MUPROC_K_TIMER, true)
                : MUPROC_ENOMEM;
  if (rc == 0 && copy == t->msg)
    t->msg = NULL;
  else if (rc != 0 && copy && copy != t->msg)
    muproc_msg_free(copy);
  /* A destination gone for good ends a repeating timer too. */
  return t->repeat > 0 && rc != MUPROC_ESRCH;
}

static void *timer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&tm.lock);
  while (!tm.stop) {
    int64_t now = muproc_now_ns();
    while (tm.n > 0 && tm.heap[0]->when <= now) {
      struct timer *t = tm.heap[0];
      heap_remove(t);
      if (fire(t)) {
        t->when += t->repeat;
        if (t->when < now) /* fell behind: don't fire a burst */
          t->when = now + t->repeat;
        if (heap_push(t) != 0)
          timer_retire(t);
      } else {
        timer_retire(t); /* its message is NULL once delivered */
      }
    }
    int64_t deadline = tm.n > 0 ? tm.heap[0]->when : MUPROC_FOREVER;
    int seen = atomic_load(&tm.seq);
    pthread_mutex_unlock(&tm.lock);
    wait_on_word(&tm.seq, seen, deadline);
    pthread_mutex_lock(&tm.lock);
  }
  pthread_mutex_unlock(&tm.lock);
  return NULL;
}

int timer_init(void) {
  tm.n = 0;
  tm.stop = false;
  tm.running = pthread_create(&tm.thread, NULL, timer_main, NULL) == 0;
  return tm.running ? 0 : MUPROC_ENOMEM;
}

static void wake_timer_thread(void) {
  atomic_fetch_add(&tm.seq, 1);
  wake_word(&tm.seq, 1);
}

void timer_shutdown(void) {
  pthread_mutex_lock(&tm.lock);
  tm.stop = true;
  pthread_mutex_unlock(&tm.lock);
  wake_timer_thread();
  if (tm.running)
    pthread_join(tm.thread, NULL);
  tm.running = false;
  while (tm.n > 0) {
    struct timer *t = tm.heap[0];
    heap_remove(t);
    timer_free(t);
  }
  while (tm.dropped) {
    struct timer *t = tm.dropped;
    tm.dropped = t->next;
    timer_free(t);
  }
  atomic_store(&tm.ndropped, 0);
  free(tm.heap);
  tm.heap = NULL;
  tm.cap = 0;
}

static int add_timer(muproc_pid_t to, int64_t when, int64_t repeat, int kind,
                     muproc_msg_t *msg, uint64_t *id) {
  if (!to || !msg || !id || repeat < 0)
    return MUPROC_EINVAL;
  struct timer *t = malloc(sizeof *t);
  if (!t)
    return MUPROC_ENOMEM;
  *t = (struct timer){.id = muproc_make_ref(),
                      .when = when,
                      .repeat = repeat,
                      .to = to,
                      .owner = muproc_tls_self,
                      .kind = kind,
                      .msg = msg};
  uint64_t new_id = t->id; /* T may fire and be freed once unlocked */
  pthread_mutex_lock(&tm.lock);
  /* Push, then look: an exit marks TO exited, then looks at the timer
   * count (timer_cancel_for).  With both in this order (sequentially
   * consistent), either we see TO dead here and take the timer back, or
   * its exit sees the timer and cancels it. */
  int rc = heap_push(t);
  if (rc == 0 && !proc_alive_pid(to)) {
    heap_remove(t);
    rc = MUPROC_ESRCH;
  }
  bool earliest = rc == 0 && t->index == 0;
  pthread_mutex_unlock(&tm.lock);
  if (rc != 0) {
    free(t);
    return rc;
  }
  if (earliest)
    wake_timer_thread();
  *id = new_id;
  return 0;
}

int muproc_timer_send_after(muproc_pid_t to, int64_t when, muproc_msg_t *msg,
                            uint64_t *id) {
  return add_timer(to, when, 0, MUPROC_K_MESSAGE, msg, id);
}

int muproc_timer_signal(muproc_pid_t to, int64_t when, int64_t repeat,
                        muproc_msg_t *payload, uint64_t *id) {
  return add_timer(to, when, repeat, MUPROC_K_TIMER, payload, id);
}

int muproc_timer_cancel(uint64_t id) {
  pthread_mutex_lock(&tm.lock);
  for (size_t i = 0; i < tm.n; i++)
    if (tm.heap[i]->id == id) {
      struct timer *t = tm.heap[i];
      heap_remove(t);
      pthread_mutex_unlock(&tm.lock);
      timer_free(t);
      return 0;
    }
  pthread_mutex_unlock(&tm.lock);
  return MUPROC_ENOENT;
}

void timer_cancel_for(muproc_pid_t pid) {
  if (atomic_load(&muproc_rt.timers) == 0)
    return; /* the common case: every exit passes here */
  pthread_mutex_lock(&tm.lock);
  /* Scan from the end: removing slot I only moves the last element into
   * it (and sifts it), which the backward scan has already visited or
   * revisits below; restart the scan after each removal to stay simple. */
  bool removed;
  do {
    removed = false;
    for (size_t i = tm.n; i-- > 0;) {
      struct timer *t = tm.heap[i];
      if (t->owner == pid || t->to == pid) {
        heap_remove(t);
        timer_retire(t);
        removed = true;
        break;
      }
    }
  } while (removed);
  pthread_mutex_unlock(&tm.lock);
}

muproc_msg_t *muproc_timer_reap(void) {
  if (atomic_load(&tm.ndropped) == 0)
    return NULL; /* the common case: every Lisp exit asks */
  pthread_mutex_lock(&tm.lock);
  struct timer *t = tm.dropped;
  if (t) {
    tm.dropped = t->next;
    atomic_fetch_sub(&tm.ndropped, 1);
  }
  pthread_mutex_unlock(&tm.lock);
  if (!t)
    return NULL;
  muproc_msg_t *msg = t->msg;
  free(t);
  return msg;
}
