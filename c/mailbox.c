/* mailbox.c - sending, selective receive and the priority lane.
 *
 * Many senders, one receiver.  A sender pushes onto a lock-free stack
 * (one compare-and-swap) and makes a syscall only when the receiver is
 * asleep.  The receiver moves whole stacks into its own doubly linked
 * queue and walks it with a cursor: a receive that wakes up examines only
 * what arrived after the last message it rejected, never the whole
 * mailbox again. */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* Spinning before sleeping: see spin_for_mail. */
/* The budget must outlast a wake-up of a sleeping partner (bench/README
 * gives the figures): a shorter spin never catches a reply from one that
 * slept, and both sides would sleep forever after. */
#define SPIN_MAX_NS 50000
#define SPIN_MIN_NS 300
#define SPIN_PROBE 32
/* The key index (keyindex.c) costs about four scan steps per queued
 * message to build (both are mostly cache misses; bench/README has the
 * figures), so it is built only once filtered scans have paid for
 * it: when they have skipped, together, INDEX_PAYBACK times as many
 * messages as are queued (and this scan at least INDEX_AFTER).  A lone
 * receive behind a backlog scans it, as Erlang's does; a receiver that
 * keeps skipping the same backlog spends at most about twice what it
 * would have with the index built at once (ski rental), and then finds
 * its messages in O(1).  The index is dropped, and the count restarted,
 * when a take leaves fewer than INDEX_OFF queued: the gap keeps a queue
 * hovering near one threshold from building and dropping it over and
 * over. */
#define INDEX_AFTER 256
#define INDEX_PAYBACK 4
#define INDEX_OFF 64

void mailbox_init(struct mailbox *mb, uint32_t capacity) {
  atomic_store(&mb->inbox, NULL);
  atomic_store(&mb->signal_inbox, NULL);
  mb->queue.head = mb->queue.tail = NULL;
  mb->signals.head = mb->signals.tail = NULL;
  atomic_store(&mb->sent, 0);
  atomic_store(&mb->taken, 0);
  atomic_store(&mb->nsignals, 0);
  atomic_store(&mb->sent_out, 0);
  mb->capacity = capacity;
  atomic_store(&mb->waiting, 0);
  atomic_store(&mb->wake, 0);
  mb->spin_ns = SPIN_MAX_NS;
  mb->sleeps_without_spin = 0;
  mb->last_seq = 0;
  mb->index = (struct key_index){NULL, 0, 0};
  mb->scan_skipped = 0;
  mb->mark = NULL;
  mb->mark_is_match = false;
}

static void free_chain(muproc_msg_t *m) {
  while (m) {
    muproc_msg_t *next = m->next;
    muproc_msg_free(m);
    m = next;
  }
}

void mailbox_discard(struct mailbox *mb) {
  key_index_drop(&mb->index, &mb->queue);
  free_chain(atomic_exchange(&mb->inbox, NULL));
  free_chain(atomic_exchange(&mb->signal_inbox, NULL));
  free_chain(mb->queue.head);
  free_chain(mb->signals.head);
  mb->queue.head = mb->queue.tail = NULL;
  mb->signals.head = mb->signals.tail = NULL;
  mb->mark = NULL;
  mb->mark_is_match = false;
  atomic_store(&mb->sent, 0);
  atomic_store(&mb->taken, 0);
  atomic_store(&mb->nsignals, 0);
}

void mailbox_push(struct mailbox *mb, muproc_msg_t *msg, bool signal) {
  _Atomic(muproc_msg_t *) *stack = signal ? &mb->signal_inbox : &mb->inbox;
  muproc_msg_t *head = atomic_load_explicit(stack, memory_order_relaxed);
  do
    msg->next = head;
  while (!atomic_compare_exchange_weak_explicit(
      stack, &head, msg, memory_order_seq_cst, memory_order_relaxed));
  /* Pairs with the receiver's store to WAITING and re-check of the
   * stacks (both seq_cst): either it sees our message or we see it
   * waiting.  Only the first sender to flip WAKE pays for the syscall. */
  if (atomic_load(&mb->waiting) && atomic_exchange(&mb->wake, 1) == 0)
    wake_word(&mb->wake, 1);
}

/* Move a sender stack into a receiver list, oldest first.  Returns the
 * first message moved, or NULL.  SEQ, if given, numbers them. */
static muproc_msg_t *drain(_Atomic(muproc_msg_t *) *stack,
                           struct msg_list *list, uint64_t *seq,
                           muproc_pid_t receiver) {
  muproc_msg_t *m = atomic_exchange(stack, NULL);
  if (!m)
    return NULL;
  muproc_msg_t *first = NULL;
  while (m) { /* reverse the LIFO chain */
    muproc_msg_t *next = m->next;
    m->next = first;
    first = m;
    m = next;
  }
  for (m = first; m; m = m->next) {
    m->queued = true;
    m->queued_in = receiver;
    if (seq)
      m->seq = ++*seq;
    m->prev = list->tail;
    if (list->tail)
      list->tail->next = m;
    else
      list->head = m;
    list->tail = m;
  }
  return first;
}

static void unlink_msg(struct msg_list *list, muproc_msg_t *m) {
  if (m->prev)
    m->prev->next = m->next;
  else
    list->head = m->next;
  if (m->next)
    m->next->prev = m->prev;
  else
    list->tail = m->prev;
  msg_poison(m);
}

/* Unlink M from the receiver's queue, moving the receive mark back if M
 * holds it: everything before M has been examined as much as M had. */
static void queue_unlink(struct mailbox *mb, muproc_msg_t *m) {
  if (mb->mark == m) {
    mb->mark = m->prev;
    mb->mark_is_match = false;
  }
  unlink_msg(&mb->queue, m);
}

int mailbox_deliver(muproc_pid_t to, muproc_msg_t *msg, int kind,
                    bool forced) {
  if (!msg)
    return MUPROC_EINVAL;
  struct proc *p = proc_send_begin(to);
  if (!p)
    return MUPROC_ESRCH;
  struct mailbox *mb = &p->mbox;
  bool signal = kind != MUPROC_K_MESSAGE;
  /* An exit signal travels with the messages, so that one the receiver
   * traps keeps its place among them (see drain_inbox); it counts as a
   * signal until the receiver has it. */
  bool lane = signal && kind != MUPROC_K_EXIT;
  bool reserve = !signal && mb->capacity && !forced;
  if (reserve) {
    /* Reserve a place first: a full mailbox refuses the newcomer and
     * keeps everything already queued.  A compare-and-swap, so the count
     * never shows more than the capacity, even for an instant. */
    int64_t sent = atomic_load(&mb->sent);
    do {
      if (sent - atomic_load(&mb->taken) >= (int64_t)mb->capacity) {
        proc_send_end(p);
        return MUPROC_EFULL;
      }
    } while (!atomic_compare_exchange_weak(&mb->sent, &sent, sent + 1));
  } else if (!signal) {
    /* Counted before the push, so that a receiver that has the message
     * also sees it counted; a receive that doesn't wait lets a push it
     * sees counted finish (sleep_for_mail). */
    atomic_fetch_add(&mb->sent, 1);
  }
  msg->sender = muproc_tls_self;
  msg->kind = (uint32_t)kind;
  msg->sent_ns = muproc_now_ns();
  if (!signal && muproc_tls_sent_out) /* only its own thread writes it */
    atomic_store_explicit(muproc_tls_sent_out,
                          atomic_load_explicit(muproc_tls_sent_out,
                                               memory_order_relaxed) + 1,
                          memory_order_relaxed);
  msg->prev = NULL;
  /* Counted before the push: a receiver that drains a signal sees it
   * counted (drain_inbox relies on it). */
  if (signal)
    atomic_fetch_add(&mb->nsignals, 1);
  mailbox_push(mb, msg, lane);
  /* A Lisp receiver that isn't blocked here would not look at its
   * priority lane until it receives: have it interrupted. */
  if (signal && p->kind == MUPROC_KIND_LISP && !atomic_load(&mb->waiting))
    poke(to);
  proc_send_end(p);
  return 0;
}

int muproc_send(muproc_pid_t to, muproc_msg_t *msg) {
  return mailbox_deliver(to, msg, MUPROC_K_MESSAGE, false);
}

int muproc_signal_send(muproc_pid_t to, int kind, muproc_msg_t *msg) {
  if (kind < MUPROC_K_EXIT || kind > MUPROC_K_INTERRUPT)
    return MUPROC_EINVAL;
  return mailbox_deliver(to, msg, kind, false);
}

/* The first set of FILTER that M passes (its index in *INDEX), or NULL
 * when it passes none.  A NULL filter passes everything, as set 0. */
static const uint32_t *first_set(const muproc_msg_t *m, const uint32_t *filter,
                                 int32_t *index) {
  static const uint32_t any = 0;
  *index = 0;
  if (!filter)
    return &any;
  const uint32_t *set = filter + 1;
  for (uint32_t s = 0; s < filter[0]; s++, set += 1 + FILTER_SET_LEN(set[0]))
    if (msg_has_keys(m, set + 1, FILTER_SET_LEN(set[0]))) {
      *index = (int32_t)s;
      return set;
    }
  return NULL;
}

static bool passes(const muproc_msg_t *m, const uint32_t *filter) {
  int32_t index;
  return first_set(m, filter, &index) != NULL;
}

/* The receiver's own process, or NULL (and the code in *RC) if the
 * caller is not it or, unless ARGS_OK, its arguments are invalid. */
static struct proc *receiver(muproc_pid_t self, bool args_ok, int *rc) {
  struct proc *p = proc_lookup(self);
  if (!p)
    *rc = MUPROC_ESRCH;
  else if (muproc_tls_self != self)
    *rc = MUPROC_EPERM, p = NULL;
  else if (!args_ok)
    *rc = MUPROC_EINVAL, p = NULL;
  return p;
}

static bool drain_inbox(struct proc *p);

/* The oldest pending signal, unlinked, or NULL.  Receiver only.  Exit
 * signals wait among the messages: with any signal pending, those are
 * drained too (drain_inbox sorts them out). */
static muproc_msg_t *pop_signal(struct proc *p) {
  struct mailbox *mb = &p->mbox;
  if (!mb->signals.head &&
      atomic_load_explicit(&mb->nsignals, memory_order_relaxed) == 0)
    return NULL;
  drain_inbox(p);
  drain(&mb->signal_inbox, &mb->signals, NULL, 0);
  muproc_msg_t *sig = mb->signals.head;
  if (sig) {
    unlink_msg(&mb->signals, sig);
    atomic_fetch_sub(&mb->nsignals, 1);
  }
  return sig;
}

static inline void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Sequentially consistent loads: sleep_for_mail's store to WAITING and
 * this check must not be reordered (a Dekker pair with mailbox_push). */
static bool mail_arrived(struct mailbox *mb) {
  return atomic_load(&mb->inbox) || atomic_load(&mb->signal_inbox);
}

/* The CPUs this process may run on: its main thread's affinity mask
 * (taskset, a container's cpuset), not the machine's count, and not the
 * mask of whichever thread asks first, which may be pinned alone. */
static long usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(getpid(), sizeof set, &set) == 0)
    return CPU_COUNT(&set);
  return sysconf(_SC_NPROCESSORS_ONLN);
}

/* A sleep and its wake-up cost two syscalls and a CPU wake-up, many
 * times a message hand-off; a reply from a muproc on the other CPU often
 * comes sooner.  So spin a little first, but only while it pays: never when
 * the process may use only one CPU (spinning there only delays the
 * sender; the mask is read once, by the first receive that would spin),
 * and per mailbox the budget doubles after a spin that caught mail and
 * halves after one that didn't, down to none (probed again every
 * SPIN_PROBE sleeps) for a receiver whose mail comes rarely or from an
 * overloaded machine. */
static bool spin_for_mail(struct mailbox *mb, int64_t deadline) {
  static _Atomic long cpus; /* same value whoever computes it first */
  long n = atomic_load_explicit(&cpus, memory_order_relaxed);
  if (n == 0)
    atomic_store_explicit(&cpus, n = usable_cpus(), memory_order_relaxed);
  if (n < 2)
    return false;
  if (mb->spin_ns < SPIN_MIN_NS) {
    if (++mb->sleeps_without_spin < SPIN_PROBE)
      return false;
    mb->sleeps_without_spin = 0;
    mb->spin_ns = SPIN_MAX_NS; /* a probe must be able to succeed */
  }
  int64_t end = muproc_now_ns() + mb->spin_ns;
  if (deadline != MUPROC_FOREVER && deadline < end)
    end = deadline;
  do {
    for (int i = 0; i < 64; i++) {
      if (mail_arrived(mb)) {
        mb->spin_ns = mb->spin_ns * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : mb->spin_ns * 2;
        return true;
      }
      pause_cpu();
    }
  } while (muproc_now_ns() < end);
  mb->spin_ns /= 2;
  return false;
}

/* Sleep until a sender may have pushed something, or DEADLINE.  The
 * receiver announces itself in WAITING and re-checks the stacks before
 * sleeping, so a push can't slip between the check and the sleep. */
static int sleep_for_mail(struct mailbox *mb, int64_t deadline) {
  if (deadline == MUPROC_NOWAIT) {
    /* A sender between counting its message and pushing it: the count
     * already promises the message, so wait the few instructions (or,
     * if the sender was preempted, its next time slice) for it. */
    if (atomic_load(&mb->sent) == (int64_t)mb->last_seq)
      return MUPROC_ETIMEDOUT;
    for (int i = 0; !mail_arrived(mb); i++)
      if (i < 1000)
        pause_cpu();
      else
        sched_yield();
    return 0;
  }
  if (spin_for_mail(mb, deadline))
    return 0;
  atomic_store(&mb->wake, 0);
  atomic_store(&mb->waiting, 1);
  int rc = mail_arrived(mb) ? 0 : wait_on_word(&mb->wake, 0, deadline);
  atomic_store(&mb->waiting, 0);
  if (rc == MUPROC_ETIMEDOUT && mail_arrived(mb))
    rc = 0; /* arrived just in time: look at it */
  return rc;
}

/* An exit signal just moved into the queue with the messages: if P traps
 * exits now, it becomes a message right there (exit.c), else it leaves
 * the queue for the signal list.  Either way it was moved as a message
 * (SENT, and TAKEN if it left), so the counts stay those of messages. */
static void receive_exit_signal(struct proc *p, muproc_msg_t *m) {
  struct mailbox *mb = &p->mbox;
  atomic_fetch_add(&mb->sent, 1);
  if (exit_signal_on_receipt(p, m)) {
    atomic_fetch_sub(&mb->nsignals, 1);
    return;
  }
  queue_unlink(mb, m);
  atomic_store_explicit(
      &mb->taken, atomic_load_explicit(&mb->taken, memory_order_relaxed) + 1,
      memory_order_release);
  m->next = NULL;
  m->prev = mb->signals.tail;
  if (mb->signals.tail)
    mb->signals.tail->next = m;
  else
    mb->signals.head = m;
  mb->signals.tail = m;
}

/* Move what senders pushed into the queue; true if there was any.  Exit
 * signals among it are sorted out first: no signal was pending (and a
 * sender counts one before pushing it), no exit signal among it. */
static bool drain_inbox(struct proc *p) {
  struct mailbox *mb = &p->mbox;
  muproc_msg_t *first = drain(&mb->inbox, &mb->queue, &mb->last_seq, proc_pid(p));
  if (!first)
    return false;
  if (atomic_load_explicit(&mb->nsignals, memory_order_relaxed) > 0) {
    muproc_msg_t *kept = NULL;
    for (muproc_msg_t *m = first, *next; m; m = next) {
      next = m->next;
      if (m->kind == MUPROC_K_EXIT)
        receive_exit_signal(p, m);
      if (m->kind != MUPROC_K_EXIT && !kept)
        kept = m;
    }
    if (!(first = kept))
      return true;
  }
  if (key_index_on(&mb->index))
    for (muproc_msg_t *m = first; m; m = m->next)
      if (!key_index_add(&mb->index, &mb->queue, m))
        break;
  return true;
}

/* Messages in the receiver's queue (moved there, not yet taken). */
static uint64_t queued(const struct mailbox *mb) {
  return mb->last_seq -
         (uint64_t)atomic_load_explicit(&mb->taken, memory_order_relaxed);
}

/* How many messages a filtered scan may skip before it builds the index:
 * what is left of the payback, but at least INDEX_AFTER. */
static uint64_t index_build_at(const struct mailbox *mb) {
  uint64_t payback = INDEX_PAYBACK * queued(mb);
  uint64_t left = payback > mb->scan_skipped ? payback - mb->scan_skipped : 0;
  return left < INDEX_AFTER ? INDEX_AFTER : left;
}

/* The first message after LAST passing FILTER, or NULL.  With an index,
 * a lookup; else a scan, which builds the index when it skips many. */
static muproc_msg_t *find(struct mailbox *mb, muproc_msg_t *last,
                          const uint32_t *filter) {
  if (filter && key_index_on(&mb->index))
    return key_index_find(&mb->index, &mb->queue, last, filter);
  uint64_t build_at = filter ? index_build_at(mb) : UINT64_MAX;
  uint64_t skipped = 0;
  muproc_msg_t *m = last ? last->next : mb->queue.head;
  for (; m && !passes(m, filter); m = m->next)
    if (++skipped == build_at && key_index_build(&mb->index, &mb->queue)) {
      mb->scan_skipped = 0;
      return key_index_find(&mb->index, &mb->queue, m, filter);
    }
  if (filter)
    mb->scan_skipped += skipped;
  return m;
}

/* Remove M, queued here, from the queue: the receiver owns it now. */
static void take(struct mailbox *mb, muproc_msg_t *m) {
  if (key_index_on(&mb->index))
    key_index_remove(&mb->index, m);
  /* Only the receiver's own fields: SENT's line belongs to the senders. */
  if ((key_index_on(&mb->index) || mb->scan_skipped) &&
      queued(mb) <= INDEX_OFF) {
    key_index_drop(&mb->index, &mb->queue);
    mb->scan_skipped = 0;
  }
  queue_unlink(mb, m);
  /* Only the receiver writes TAKEN: no read-modify-write needed. */
  atomic_store_explicit(
      &mb->taken,
      atomic_load_explicit(&mb->taken, memory_order_relaxed) + 1,
      memory_order_release);
}

static void fill_view(const muproc_msg_t *m, muproc_msg_view_t *view) {
  if (view)
    muproc_msg_view(m, view);
}

/* The receive loop: the oldest signal first; then (unless SIGNALS_ONLY)
 * the first message after the mark passing FILTER; else move what
 * senders pushed into the queue and look again; else sleep.  Ordinary
 * mail is moved aside in signals-only mode too, so that it doesn't wake
 * us again and again.  Signals-only mode leaves the mark alone. */
static int receive(struct proc *p, bool signals_only, int flags, const uint32_t *filter, int64_t deadline,
                   muproc_msg_t **out, muproc_msg_view_t *view,
                   int32_t *set) {
  struct mailbox *mb = &p->mbox;
  int rc;
  if (!signals_only) {
    mb->mark_is_match = false;
    if (flags & MUPROC_RECV_RESTART)
      mb->mark = NULL;
  }
  for (;;) {
    muproc_msg_t *sig = pop_signal(p);
    if (sig) {
      *out = sig;
      fill_view(sig, view);
      return MUPROC_SIGNALLED;
    }
    if (!signals_only) {
      muproc_msg_t *m = find(mb, mb->mark, filter);
      if (m) {
        int32_t index;
        const uint32_t *s = first_set(m, filter, &index);
        if (set)
          *set = index;
        *out = m;
        fill_view(m, view);
        if ((flags & MUPROC_RECV_TAKE) && (*s & MUPROC_FILTER_FINAL)) {
          take(mb, m);
          return MUPROC_TAKEN;
        }
        mb->mark = m;
        mb->mark_is_match = true;
        return 0;
      }
      /* Everything queued has been examined. */
      if (mb->queue.tail)
        mb->mark = mb->queue.tail;
    }
    if (drain_inbox(p))
      continue;
    if ((rc = sleep_for_mail(mb, deadline)) != 0)
      return rc;
  }
}

/* Is M queued in SELF's mailbox?  A pointer to a message taken or freed
 * since reads as not queued (msg_poison). */
static bool queued_here(const muproc_msg_t *m, muproc_pid_t self) {
  return m && m->kind == MUPROC_K_MESSAGE && m->queued && m->queued_in == self;
}

int muproc_recv_signal(muproc_pid_t self, int64_t deadline,
                       muproc_msg_t **out) {
  int rc;
  struct proc *p = receiver(self, out != NULL, &rc);
  return p ? receive(p, true, 0, NULL, deadline, out, NULL, NULL) : rc;
}

int muproc_recv(muproc_pid_t self, muproc_msg_t *after,
                const uint32_t *filter, int64_t deadline,
                muproc_msg_t **out) {
  int rc;
  struct proc *p =
      receiver(self, out && (!after || queued_here(after, self)), &rc);
  if (!p)
    return rc;
  /* The caller's cursor becomes the mark; resuming after it is what a
   * mark means. */
  p->mbox.mark = after;
  return receive(p, false, 0, filter, deadline, out, NULL, NULL);
}

int muproc_recv_next(muproc_pid_t self, int flags, const uint32_t *filter,
                     int64_t deadline, muproc_msg_t **out,
                     muproc_msg_view_t *view, int32_t *set) {
  int rc;
  bool flags_ok = !(flags & ~(MUPROC_RECV_RESTART | MUPROC_RECV_TAKE));
  struct proc *p = receiver(self, out && flags_ok, &rc);
  return p ? receive(p, false, flags, filter, deadline, out, view, set) : rc;
}

int muproc_recv_take_mark(muproc_pid_t self, muproc_msg_t **out) {
  int rc;
  struct proc *p = receiver(self, out != NULL, &rc);
  if (!p)
    return rc;
  struct mailbox *mb = &p->mbox;
  muproc_msg_t *sig = pop_signal(p);
  if (sig) {
    *out = sig;
    return MUPROC_SIGNALLED;
  }
  if (!mb->mark_is_match)
    return MUPROC_ESTATE;
  muproc_msg_t *m = mb->mark;
  take(mb, m);
  *out = m;
  return 0;
}

int muproc_recv_take(muproc_pid_t self, muproc_msg_t *msg) {
  int rc;
  struct proc *p = receiver(self, queued_here(msg, self), &rc);
  if (!p)
    return rc;
  take(&p->mbox, msg);
  return 0;
}

int64_t muproc_mbox_count(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  /* TAKEN first: it never exceeds SENT read after it. */
  int64_t taken = atomic_load(&p->mbox.taken);
  return atomic_load(&p->mbox.sent) - taken;
}

int64_t muproc_mbox_signal_count(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  if (!p)
    return MUPROC_ESRCH;
  int64_t count = atomic_load(&p->mbox.nsignals); /* see muproc_mbox_count */
  return count > 0 ? count : 0;
}

int64_t muproc_mbox_capacity(muproc_pid_t pid) {
  struct proc *p = proc_lookup(pid);
  return p ? (int64_t)p->mbox.capacity : MUPROC_ESRCH;
}

int muproc_mbox_peek(muproc_pid_t self, uint64_t index,
                     muproc_msg_view_t *view) {
  int rc;
  struct proc *p = receiver(self, view != NULL, &rc);
  if (!p)
    return rc;
  /* What senders pushed counts as queued (muproc_mbox_count): show it. */
  drain_inbox(p);
  muproc_msg_t *m = p->mbox.queue.head;
  for (uint64_t i = 0; m && i < index; i++)
    m = m->next;
  if (!m)
    return MUPROC_ENOENT;
  muproc_msg_view(m, view);
  return 0;
}
