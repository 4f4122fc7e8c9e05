/*
 * internal.h - shared between libmuproc's source files, never installed.
 *
 * One concept per file: atom.c (atom table, which also holds the name
 * registries), handle.c (Lisp-object handles), msg.c (mumsgs), msgpool.c
 * (their memory), proc.c (the process table), exit.c (how a process
 * ends: exit, release, exit signals and the notices an exit owes),
 * link.c and monitor.c (making and removing links and monitors),
 * registry.c (registered port names), mailbox.c (send, receive, priority
 * lane), keyindex.c (queued messages by key, for selective receive),
 * worker.c (threads that run muprocs), runtime.c (init and shutdown),
 * array.c (the growable array every growing list uses),
 * stats.c (the runtime's counters), clock.c (the clock and the futex
 * waits every blocking call is built on), error.c, version.c.
 */
#ifndef MUPROC_INTERNAL_H
#define MUPROC_INTERNAL_H

#include "muproc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* ---- messages ---------------------------------------------------- */

/* A pair is 16 bytes: key, type, and an 8-byte value.  Strings and
 * binaries live in the message's byte area at OFF, LEN bytes long. */
struct pair {
  muproc_atom_t key;
  uint32_t type;
  union {
    int64_t i;
    double d;
    uint64_t u; /* atom, pid, ref, handle */
    struct {
      uint32_t off;
      uint32_t len;
    } bytes;
  } v;
};

/* Message memory (msgpool.c): blocks of a few size classes cached per
 * thread; CLS records where the block came from, for msgpool_free. */
#define MSGPOOL_CLASSES 4
#define MSGPOOL_MALLOC 0xff
void *msgpool_alloc(size_t size, uint8_t *cls);
void msgpool_free(void *block, uint8_t cls);
/* Free the depot and the calling thread's caches (runtime shutdown). */
void msgpool_release(void);

struct key_node;
struct muproc_msg_s {
  struct muproc_msg_s *next; /* inbox stack link, then queue link */
  struct muproc_msg_s *prev; /* queue link (receiver-owned list) */
  muproc_pid_t sender;
  uint32_t kind;
  uint32_t npairs, cap_pairs;
  uint32_t nbytes, cap_bytes;
  struct pair *pairs; /* points into inline storage until it grows */
  char *bytes;        /* likewise */
  uint64_t seq;       /* arrival order in the receiver's queue */
  int64_t sent_ns;    /* when it was sent (muproc_now_ns) */
  struct key_node *index_nodes; /* keyindex.c, while indexed */
  muproc_pid_t queued_in;       /* the receiver whose queue holds it */
  bool heap_pairs, heap_bytes; /* grown out of the inline storage */
  bool queued;                 /* in a receiver's list (take checks it) */
  uint8_t pool_class;          /* msgpool.c */
  uint8_t index_nodes_class;
  /* Inline storage follows: cap_pairs pairs, then cap_bytes bytes, so
   * a message whose size is known up front is a single allocation. */
  struct pair storage[];
};

/* What the queue links of a message hold once it left a queue, and the
 * whole header once it is freed: a stale pointer followed by mistake
 * faults at once instead of walking into another mailbox's queue. */
#define MSG_POISON ((muproc_msg_t *)(uintptr_t)0xdead5a1ed0000000ull)
static inline void msg_poison(muproc_msg_t *m) {
  m->next = m->prev = MSG_POISON;
  m->queued = false;
  m->queued_in = 0;
}

/* The number of keys of a receive filter set, from its length word. */
#define FILTER_SET_LEN(word) ((word) & ~MUPROC_FILTER_FINAL)

/* Does M have each of the LEN KEYS? */
bool msg_has_keys(const muproc_msg_t *m, const uint32_t *keys, uint32_t len);

/* ---- key index (keyindex.c) ---------------------------------------- */

/* A receiver's queued messages by key, built when selective receives
 * skip many messages.  CHAINS is NULL while there is no index. */
struct key_chain;
struct key_index {
  struct key_chain *chains;
  uint32_t cap, used;
};
struct msg_list;
bool key_index_on(const struct key_index *ix);
/* Index every message of QUEUE; false (and no index) if out of memory. */
bool key_index_build(struct key_index *ix, struct msg_list *queue);
/* Index M, just appended to QUEUE; out of memory drops the index. */
bool key_index_add(struct key_index *ix, struct msg_list *queue,
                   muproc_msg_t *m);
/* Forget M, about to leave the queue. */
void key_index_remove(struct key_index *ix, muproc_msg_t *m);
/* Give up the index. */
void key_index_drop(struct key_index *ix, struct msg_list *queue);
/* The oldest queued message after AFTER (NULL: from the start) that
 * passes FILTER, as mailbox.c's scan would find it. */
muproc_msg_t *key_index_find(const struct key_index *ix,
                             const struct msg_list *queue,
                             const muproc_msg_t *after,
                             const uint32_t *filter);

/* ---- mailbox ----------------------------------------------------- */

/* A list owned by the receiver: doubly linked for O(1) removal of a
 * message taken from the middle by a selective receive. */
struct msg_list {
  muproc_msg_t *head, *tail;
};

/* Fields written by different threads live on different cache lines, so
 * that a steady stream of messages moves as few lines between CPUs as
 * possible: senders write only the inbox line, the receiver mostly its
 * own line, and each reads the other's only when it has to. */
#define CACHE_LINE 64
#define OWN_LINE _Alignas(CACHE_LINE)

struct mailbox {
  /* Senders push onto these lock-free LIFO stacks; the receiver takes a
   * whole stack at once and appends it, reversed, to its own list.
   * SENT counts ordinary messages ever pushed, TAKEN those the receiver
   * removed: the difference is the count, and neither side writes the
   * other's counter. */
  OWN_LINE _Atomic(muproc_msg_t *) inbox;
  _Atomic int64_t sent;
  /* Senders between their stamp check and their push (proc.c); exit
   * waits for this to drop to 0 so no message lands after the process
   * exited.  On this line because every send writes it too. */
  _Atomic uint32_t inflight;
  /* Sleeping: the receiver sets WAITING, re-checks the stacks, then
   * sleeps on WAKE; a sender that sees WAITING sets WAKE and wakes it.
   * Senders never make a syscall while the receiver is not asleep.
   * Written only around a sleep, so senders read WAITING from their
   * cache. */
  OWN_LINE _Atomic int waiting;
  _Atomic int wake;
  /* Signals are rare: the receiver checks this line on every receive,
   * and it stays in its cache.  CAPACITY (0: unbounded) never changes. */
  OWN_LINE _Atomic(muproc_msg_t *) signal_inbox;
  _Atomic int64_t nsignals;
  uint32_t capacity;
  /* The receiver's own. */
  OWN_LINE struct msg_list queue;
  /* The receive mark: the newest message of QUEUE the current receive
   * has examined (NULL: none).  Whoever unlinks it moves it back. */
  muproc_msg_t *mark;
  bool mark_is_match; /* the mark is the match muproc_recv_next returned */
  struct msg_list signals;
  _Atomic int64_t taken;
  uint64_t last_seq; /* of the newest message moved into QUEUE: also how
                        * many have been moved */
  struct key_index index;
  uint64_t scan_skipped; /* by filtered scans since the index was built
                          * or dropped (see find in mailbox.c) */
  int32_t spin_ns, sleeps_without_spin; /* see spin_for_mail */
  /* Ordinary messages this process sent (written by its own thread
   * only, through muproc_tls_sent_out; read by observers). */
  _Atomic uint64_t sent_out;
};

void mailbox_init(struct mailbox *mb, uint32_t capacity);
/* Free every queued message and signal (receiver gone). */
void mailbox_discard(struct mailbox *mb);
/* Push onto the ordinary or the signal stack and wake the receiver. */
void mailbox_push(struct mailbox *mb, muproc_msg_t *msg, bool signal);

/* ---- the growable array (array.c) -------------------------------------- */

/* Make room for one more item in the array *ITEMS of N items of
 * ITEM_SIZE bytes, CAP allocated: doubles CAP (the first time, to FIRST)
 * when it is full.  0, or MUPROC_ENOMEM with the array unchanged. */
int array_room(void **items, uint32_t n, uint32_t *cap, size_t item_size,
               uint32_t first);
#define ARRAY_ROOM(items, n, cap, first)                                      \
  array_room((void **)&(items), (n), &(cap), sizeof *(items), (first))

/* ---- processes --------------------------------------------------- */

/* Small growable sets, owned by one process and guarded by its lock. */
struct id_set { /* alias references */
  uint64_t *ids;
  uint32_t n, cap;
};
/* A link or monitor end: REF is the monitor's reference (for a link, the
 * peer's pid), PID the process at the other end.  NOTICE, when not NULL,
 * is the message reserved when the link or monitor was made, which the
 * owner's exit fills and delivers (exit.c), so that telling an exit never
 * needs memory; whoever removes the entry otherwise frees it. */
struct ref_entry {
  uint64_t ref;
  muproc_pid_t pid;
  muproc_msg_t *notice;
};
struct ref_set {
  struct ref_entry *entries;
  uint32_t n, cap;
};
int id_set_add(struct id_set *set, uint64_t id);
bool id_set_remove(struct id_set *set, uint64_t id);
int ref_set_add(struct ref_set *set, uint64_t ref, muproc_pid_t pid,
                muproc_msg_t *notice);
bool ref_set_has(const struct ref_set *set, uint64_t ref);
/* Remove REF; its entry goes to *OUT if OUT is not NULL.  False if
 * absent. */
bool ref_set_remove(struct ref_set *set, uint64_t ref, struct ref_entry *out);

/* The stamp packs the slot's serial and state so that a sender reads
 * both in one atomic load: a slot can't be seen alive under a stale
 * serial. */
#define STAMP(serial, state) (((uint64_t)(serial) << 32) | (uint32_t)(state))
#define STAMP_SERIAL(s) ((uint32_t)((s) >> 32))
#define STAMP_STATE(s) ((int)((s)&0xffffffffu))

struct proc {
  /* Read by every send and receive, written at state changes only. */
  OWN_LINE _Atomic uint64_t stamp;
  int kind;
  _Atomic int trap_exits;
  muproc_fn_t c_fn; /* C muprocs only */
  void *c_arg;
  uint32_t next_free;
  OWN_LINE pthread_mutex_t lock; /* exits, names, reason */
  muproc_atom_t name;
  muproc_atom_t *ports; /* registered port names, under lock */
  uint32_t nports, cap_ports;
  int reason_type;
  uint64_t reason_value;
  /* Links and monitors, under lock (see link.c and monitor.c).  A link
   * end's entry holds the exit signal this process's exit owes the peer;
   * a watchers entry, the DOWN notice it owes the watcher. */
  struct ref_set links;    /* (peer, peer) */
  struct ref_set watchers; /* who monitors me: (ref, watcher) */
  struct ref_set watching; /* whom I monitor: (ref, target) */
  struct id_set aliases;   /* active reply aliases (alias.c) */
  struct mailbox mbox;
  /* The CPU clock of the thread running the process, set when it
   * starts: observers read it (observe.c) with no cost to the process. */
  clockid_t cpu_clock;
  bool has_cpu_clock;
};

/* The live-or-exited process for PID, or NULL. */
struct proc *proc_lookup(muproc_pid_t pid);
/* Begin a send to PID: returns the process with its inflight count
 * raised if it accepts messages, else NULL.  Pair with proc_send_end. */
struct proc *proc_send_begin(muproc_pid_t pid);
void proc_send_end(struct proc *p);
muproc_pid_t proc_pid(const struct proc *p);
int proc_table_init(uint32_t max_procs);
void proc_table_free(void);
/* Release a process's ports under its lock (called by exit). */
void registry_release_all(struct proc *p);
/* Lock two processes in slot order (deadlock-free); B may be NULL. */
void proc_lock_pair(struct proc *a, struct proc *b);
void proc_unlock_pair(struct proc *a, struct proc *b);
bool proc_alive(const struct proc *p);
bool proc_alive_pid(muproc_pid_t pid);

/* P starts on the calling thread: note what observers read (observe.c). */
void observe_proc_started(struct proc *p);

/* Give P's slot back to the table (exit.c, once P is released). */
void proc_slot_recycle(struct proc *p);

/* ---- exits (exit.c) -------------------------------------------------- */

/* A message with room for a notice (three pairs, no bytes), to be kept
 * until an exit fills it; NULL when out of memory. */
muproc_msg_t *exit_notice_reserve(void);
/* Send TO the exit signal  from: FROM  reason: <term>  [link: true], in
 * RESERVED (from exit_notice_reserve; consumed whatever happens), or in
 * a new message if RESERVED is NULL.  0, MUPROC_ESRCH (TO gone: nothing
 * sent) or MUPROC_ENOMEM. */
int exit_signal_send(muproc_pid_t to, muproc_pid_t from, int reason_type,
                     uint64_t reason_value, bool link, muproc_msg_t *reserved);
/* Send TO the DOWN notice  terminated: TARGET  reason: <term>
 * monitor: REF, in RESERVED (consumed). */
void down_notice_send(muproc_pid_t to, muproc_pid_t target, int reason_type,
                      uint64_t reason_value, uint64_t ref,
                      muproc_msg_t *reserved);
/* Called by the receiver of P for each exit signal SIG it takes in
 * (mailbox.c): if P traps exits now, SIG becomes, in place, the ordinary
 * message  terminated: <pid>  reason: <term>  [link: true], and true is
 * returned.  Never allocates. */
bool exit_signal_on_receipt(struct proc *p, muproc_msg_t *sig);
/* Drop TARGET's watcher entry REF, if still there, freeing its notice
 * (monitor.c). */
void monitor_forget(muproc_pid_t target, uint64_t ref);

/* Deliver MSG as KIND to TO; FORCED bypasses capacity (runtime notices
 * are never refused).  Ownership as muproc_send. */
int mailbox_deliver(muproc_pid_t to, muproc_msg_t *msg, int kind, bool forced);
/* Append a term given as TYPE/VALUE (as exit reasons are stored),
 * retaining a handle. */
int msg_put_term(muproc_msg_t *msg, muproc_atom_t key, int type,
                 uint64_t value);
/* A copy of MSG (handles retained). */
muproc_msg_t *msg_clone(const muproc_msg_t *msg);

/* ---- pokes (poke.c) -------------------------------------------------- */
int poke_init(void);
void poke_shutdown(void);
void poke_free(void);
void poke(muproc_pid_t pid);

/* ---- timers (timer.c) ------------------------------------------------ */
int timer_init(void);
void timer_shutdown(void);
/* Cancel every timer owned by, or aimed at, PID. */
void timer_cancel_for(muproc_pid_t pid);

/* Atoms the runtime itself uses, interned at init. */
extern muproc_atom_t atom_from, atom_reason, atom_link, atom_terminated,
    atom_monitor, atom_noproc, atom_true, atom_normal;

extern _Thread_local muproc_pid_t muproc_tls_self
    __attribute__((tls_model("initial-exec")));
/* The SENT_OUT counter of muproc_tls_self's mailbox, or NULL. */
extern _Thread_local _Atomic uint64_t *muproc_tls_sent_out
    __attribute__((tls_model("initial-exec")));

/* ---- atoms and the name slots they carry --------------------------- */

/* Each atom can name one live process (its muproc name) and one
 * registered port; both slots hold a pid or 0 and live in the atom
 * table, so lookups are a single atomic load. */
enum { NAME_PROC = 0, NAME_PORT = 1 };
_Atomic(muproc_pid_t) *atom_name_slot(muproc_atom_t atom, int which);
int atom_table_init(void);
void atom_table_free(void);

/* ---- handles ----------------------------------------------------- */

int handle_table_init(void);
void handle_table_free(void);
int handle_new(uint64_t *out);
/* Add a reference to a live handle; false if it is not live. */
bool handle_retain(uint64_t h);
/* Drop a reference; true if it was the last. */
bool handle_release(uint64_t h);

/* ---- workers ----------------------------------------------------- */

int worker_init(uint32_t thread_cap);
/* Wake parked workers for shutdown and join C workers; returns
 * MUPROC_EBUSY if worker threads are still running. */
int worker_shutdown(void);

/* ---- the runtime's shared state and counters (stats.c) ------------ */

struct runtime {
  _Atomic int initialized;
  _Atomic int shutting_down;
  uint32_t creation;
  _Atomic int64_t procs;
  _Atomic int64_t threads;
  _Atomic int64_t parked;
  _Atomic int64_t handles;
  _Atomic int64_t messages;
  _Atomic int64_t atoms;
  _Atomic int64_t registered;
  _Atomic int64_t timers;
  _Atomic int64_t links;
  _Atomic int64_t monitors;
  _Atomic int64_t key_indexes;
  _Atomic uint64_t next_ref;
};
extern struct runtime muproc_rt;

/* ---- clock (clock.c) ------------------------------------------------ */

/* Deadline waits on a 32-bit word (futex): returns 0 when woken or the
 * word differs from EXPECTED, MUPROC_ETIMEDOUT when DEADLINE passed. */
int wait_on_word(_Atomic int *word, int expected, int64_t deadline);
void wake_word(_Atomic int *word, int count);

#endif /* MUPROC_INTERNAL_H */
