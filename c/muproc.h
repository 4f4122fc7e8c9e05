/*
 * muproc.h - public interface of libmuproc, the C runtime core of muproc.
 *
 * libmuproc gives Erlang-style processes ("muprocs") that share nothing but
 * messages ("mumsgs": ordered lists of atom keys and term values).  It is a
 * library on its own: a C program can spawn C-function muprocs and exchange
 * mumsgs with Lisp muprocs running in the same image.  The Common Lisp side
 * (lisp/) drives it through CFFI and never needs to know a struct layout.
 *
 * Conventions
 *  - Every function that can fail returns an int: 0 (or a documented
 *    non-negative value) on success, a negative MUPROC_E* code on failure.
 *    muproc_strerror() and muproc_err_name() describe a code.
 *  - Handles are opaque.  Process ids, atoms, references and Lisp-object
 *    handles are plain integers, so a garbage-collected caller can keep them.
 *  - C never calls back into a caller's language.  Callers block inside C
 *    (receive, worker parking) and every wake-up reason arrives through the
 *    process's mailbox, so a blocked call always returns.
 *  - Thread safety: every function may be called from any thread unless its
 *    comment says "receiver only" (the thread currently running the muproc
 *    that owns the mailbox).
 *  - Times are nanoseconds of CLOCK_MONOTONIC, see muproc_now_ns().
 */
#ifndef MUPROC_H
#define MUPROC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MUPROC_BUILDING) && defined(__GNUC__)
#define MUPROC_API __attribute__((visibility("default")))
#else
#define MUPROC_API
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

#define MUPROC_VERSION_MAJOR 0
#define MUPROC_VERSION_MINOR 3
#define MUPROC_VERSION_PATCH 0
#define MUPROC_VERSION_HEX                                                     \
  ((MUPROC_VERSION_MAJOR << 16) | (MUPROC_VERSION_MINOR << 8) |                \
   MUPROC_VERSION_PATCH)

/* The version of the library actually loaded, as MUPROC_VERSION_HEX.
 * A caller compiled against another major version must refuse it. */
MUPROC_API unsigned muproc_version(void);
/* "MAJOR.MINOR.PATCH" of the loaded library; static storage. */
MUPROC_API const char *muproc_version_string(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

enum {
  MUPROC_OK = 0,
  MUPROC_EINVAL = -1,     /* an argument is invalid (named in the doc) */
  MUPROC_ENOMEM = -2,     /* out of memory or a fixed table is full */
  MUPROC_ESRCH = -3,      /* no such process, or it has exited */
  MUPROC_EEXIST = -4,     /* a name is already taken */
  MUPROC_ENOENT = -5,     /* a name is not registered / key not present */
  MUPROC_ETIMEDOUT = -6,  /* the deadline passed */
  MUPROC_EFULL = -7,      /* the receiver's bounded mailbox is full */
  MUPROC_ETHREADS = -8,   /* the cap on runtime threads is reached */
  MUPROC_EPROCLIM = -9,   /* the process table is full */
  MUPROC_ENOTINIT = -10,  /* muproc_init() has not been called */
  MUPROC_EBUSY = -11,     /* shutdown while processes are alive */
  MUPROC_EPERM = -12,     /* caller is not the receiver of that mailbox */
  MUPROC_ETYPE = -13,     /* a value is not of the type asked for */
  MUPROC_ERANGE = -14,    /* an index is out of range */
  MUPROC_ESHUTDOWN = -15, /* the runtime is shutting down */
  MUPROC_ESTATE = -16     /* the process is not in a state that allows it */
};

/* Human-readable description of a code ("no such process"); static. */
MUPROC_API const char *muproc_strerror(int code);
/* Symbolic name of a code ("MUPROC_ESRCH"); static. */
MUPROC_API const char *muproc_err_name(int code);

/* ------------------------------------------------------------------ */
/* Runtime                                                             */
/* ------------------------------------------------------------------ */

/* Initialise the runtime.  MAX_PROCS bounds the process table (0: 65536),
 * MAX_THREADS bounds the threads that run muprocs, Lisp workers and C
 * workers together (0: derived from vm.max_map_count, see
 * muproc_thread_cap()).  Returns 0, or 1 if the runtime was already
 * initialised (the arguments are then ignored), or MUPROC_ENOMEM. */
MUPROC_API int muproc_init(uint32_t max_procs, uint32_t max_threads);

/* Tear the runtime down: parked C workers are joined, parked Lisp workers
 * are told to retire (muproc_worker_park returns MUPROC_ESHUTDOWN) and
 * waited for until each has called muproc_worker_exit, then the tables are
 * freed.  Blocks until then.  Returns MUPROC_EBUSY (and does nothing) while
 * any process is not yet released, MUPROC_ENOTINIT if not initialised. */
MUPROC_API int muproc_shutdown(void);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
MUPROC_API int64_t muproc_now_ns(void);

/* Deadline values for blocking calls: absolute muproc_now_ns() times, or */
#define MUPROC_FOREVER ((int64_t)-1) /* block without a deadline */
#define MUPROC_NOWAIT ((int64_t)0)   /* never block */

/* The current cap on runtime threads, and a way to lower or raise it.
 * muproc_set_thread_cap returns the previous cap, or MUPROC_EINVAL for 0. */
MUPROC_API uint32_t muproc_thread_cap(void);
MUPROC_API int64_t muproc_set_thread_cap(uint32_t cap);

/* Counters for introspection and leak checks. */
enum {
  MUPROC_STAT_PROCS = 0,      /* processes not yet released */
  MUPROC_STAT_THREADS = 1,    /* runtime threads alive (Lisp + C workers) */
  MUPROC_STAT_PARKED = 2,     /* workers parked, waiting for a muproc */
  MUPROC_STAT_HANDLES = 3,    /* live Lisp-object handles */
  MUPROC_STAT_MESSAGES = 4,   /* mumsgs allocated and not yet freed */
  MUPROC_STAT_ATOMS = 5,      /* atoms in the atom table */
  MUPROC_STAT_REGISTERED = 6, /* registered port names */
  MUPROC_STAT_TIMERS = 7,     /* pending timers */
  MUPROC_STAT_LINKS = 8,      /* link ends (two per link) */
  MUPROC_STAT_MONITORS = 9,   /* monitors not yet fired or removed */
  MUPROC_STAT_KEY_INDEXES = 10 /* mailboxes whose queue is indexed by key */
};
/* Value of counter WHAT, or MUPROC_EINVAL. */
MUPROC_API int64_t muproc_stat(int what);

/* ------------------------------------------------------------------ */
/* Atoms                                                               */
/* ------------------------------------------------------------------ */

/* An atom is a positive 32-bit id naming an interned byte string of at
 * most 255 bytes (Erlang's limit).  Atoms are never freed. */
typedef uint32_t muproc_atom_t;
#define MUPROC_ATOM_MAX_LEN 255

/* Intern NAME[0..LEN): returns the atom (> 0), or MUPROC_EINVAL for an
 * empty or too long name, or MUPROC_ENOMEM. */
MUPROC_API int64_t muproc_atom(const char *name, size_t len);
/* The bytes of ATOM, NUL-terminated, with their length in *LEN (LEN may
 * be NULL); NULL for an unknown atom.  The storage lives as long as the
 * runtime. */
MUPROC_API const char *muproc_atom_name(muproc_atom_t atom, size_t *len);

/* ------------------------------------------------------------------ */
/* Process ids and references                                          */
/* ------------------------------------------------------------------ */

/* A process id is Erlang-shaped: a node (always the local node for now),
 * a NUMBER (the slot in the process table), a SERIAL (how many times that
 * slot was reused) and the runtime's CREATION.  Locally it is the 64-bit
 * value (SERIAL << 32) | NUMBER; 0 is "no process". */
typedef uint64_t muproc_pid_t;
#define MUPROC_PID_NUMBER(pid) ((uint32_t)((pid)&0xffffffffu))
#define MUPROC_PID_SERIAL(pid) ((uint32_t)((pid) >> 32))

/* The creation of this runtime: changes on every muproc_init(). */
MUPROC_API uint32_t muproc_creation(void);

/* A fresh reference, unique within this runtime (never 0). */
MUPROC_API uint64_t muproc_make_ref(void);

/* ------------------------------------------------------------------ */
/* Lisp-object handles                                                 */
/* ------------------------------------------------------------------ */

/* A handle names an object of the caller's language that C must not hold
 * (a garbage collector may move it).  The caller keeps the object in its
 * own table at index MUPROC_HANDLE_INDEX(h); C keeps a reference count.
 * A handle value is (GENERATION << 32) | INDEX: the generation changes each
 * time an index is reused, so a stale handle is never live again. */
#define MUPROC_HANDLE_INDEX(h) ((uint32_t)((h)&0xffffffffu))

/* Is handle H still referenced by some message (1) or not (0)?  A caller
 * clears its table slot for H once this returns 0 after freeing the last
 * message that carried it. */
MUPROC_API int muproc_handle_live(uint64_t h);

/* A new handle outside any message, with one reference owned by the
 * caller (for an exit reason, say).  Stores it in *H; MUPROC_ENOMEM when
 * the table is full, MUPROC_EINVAL for a NULL H. */
MUPROC_API int muproc_handle_new(uint64_t *h);
/* Drop one reference the caller owns.  Returns 1 if that was the last
 * one (the caller then clears its table slot), 0 if others remain,
 * MUPROC_EINVAL for a handle that is not live. */
MUPROC_API int muproc_handle_release(uint64_t h);

/* ------------------------------------------------------------------ */
/* Messages (mumsgs)                                                   */
/* ------------------------------------------------------------------ */

/* A mumsg: an ordered list of (key atom, value term) pairs, a sender, a
 * kind.  Keys may repeat (the first one wins in muproc_msg_find). */
typedef struct muproc_msg_s muproc_msg_t;

/* Value types of a term. */
enum {
  MUPROC_T_NIL = 0,    /* the empty list / Lisp NIL */
  MUPROC_T_INT = 1,    /* signed 64-bit integer */
  MUPROC_T_DOUBLE = 2, /* IEEE double */
  MUPROC_T_ATOM = 3,   /* an atom (a keyword on the Lisp side) */
  MUPROC_T_STRING = 4, /* UTF-8 text */
  MUPROC_T_BINARY = 5, /* raw bytes */
  MUPROC_T_PID = 6,    /* a process id */
  MUPROC_T_REF = 7,    /* a reference from muproc_make_ref() */
  MUPROC_T_HANDLE = 8  /* a Lisp object passed by reference */
};

/* Message kinds.  Ordinary messages travel in the mailbox; the others are
 * signals and travel in the priority lane (see muproc_signal_send). */
enum {
  MUPROC_K_MESSAGE = 0,  /* an ordinary mumsg */
  MUPROC_K_EXIT = 1,     /* an exit signal (trappable) */
  MUPROC_K_KILL = 2,     /* an untrappable kill */
  MUPROC_K_TIMER = 3,    /* a timer firing */
  MUPROC_K_INTERRUPT = 4 /* run something at a safe point */
};

/* Allocate an empty mumsg with room for NPAIRS pairs and NBYTES bytes of
 * string/binary data (both are hints: the message grows as needed).
 * The caller owns it until a successful send.  NULL on out of memory. */
MUPROC_API muproc_msg_t *muproc_msg_new(uint32_t npairs, size_t nbytes);

/* Free a message the caller owns, releasing the handles it carries. */
MUPROC_API void muproc_msg_free(muproc_msg_t *msg);

/* Free a message as muproc_msg_free does, and write to DEAD (room for CAP)
 * the handles whose last reference this dropped, so the holder of the
 * objects can forget them without asking about each.  Returns how many
 * died (more than CAP: the rest were not written). */
MUPROC_API size_t muproc_msg_release(muproc_msg_t *msg, uint64_t *dead,
                                     size_t cap);

/* For tests of running out of memory only: from now on, let N more
 * message allocations (muproc_msg_new and everything built on it, the
 * runtime's own notices included) succeed and fail every one after, as
 * if memory were exhausted; N < 0 (the default) lifts the limit.
 * Process-wide, any thread.  Returns the previous limit (-1: none). */
MUPROC_API int64_t muproc_testing_msg_alloc_limit(int64_t n);

/* Append a pair.  Each returns 0, MUPROC_EINVAL (KEY is 0, or a NULL
 * pointer with a non-zero length) or MUPROC_ENOMEM.  String and binary
 * bytes are copied into the message's own storage. */
MUPROC_API int muproc_msg_put_nil(muproc_msg_t *msg, muproc_atom_t key);
MUPROC_API int muproc_msg_put_int(muproc_msg_t *msg, muproc_atom_t key,
                                  int64_t value);
MUPROC_API int muproc_msg_put_double(muproc_msg_t *msg, muproc_atom_t key,
                                     double value);
MUPROC_API int muproc_msg_put_atom(muproc_msg_t *msg, muproc_atom_t key,
                                   muproc_atom_t value);
MUPROC_API int muproc_msg_put_string(muproc_msg_t *msg, muproc_atom_t key,
                                     const char *bytes, size_t len);
MUPROC_API int muproc_msg_put_binary(muproc_msg_t *msg, muproc_atom_t key,
                                     const void *bytes, size_t len);
MUPROC_API int muproc_msg_put_pid(muproc_msg_t *msg, muproc_atom_t key,
                                  muproc_pid_t value);
MUPROC_API int muproc_msg_put_ref(muproc_msg_t *msg, muproc_atom_t key,
                                  uint64_t value);
/* Append a pair whose value is a NEW handle, owned by the message (one
 * reference).  On success stores the handle in *HANDLE and returns 0; the
 * caller then puts its object into its table at MUPROC_HANDLE_INDEX.
 * MUPROC_ENOMEM when the handle table is full. */
MUPROC_API int muproc_msg_put_new_handle(muproc_msg_t *msg, muproc_atom_t key,
                                         uint64_t *handle);

/* Reading.  I is a pair index, 0 <= I < muproc_msg_size(MSG).  A getter
 * called on a pair of another type, or out of range, returns 0 / NULL
 * (use muproc_msg_type first). */
MUPROC_API uint32_t muproc_msg_size(const muproc_msg_t *msg);
MUPROC_API muproc_atom_t muproc_msg_key(const muproc_msg_t *msg, uint32_t i);
/* MUPROC_T_* of pair I, or MUPROC_ERANGE. */
MUPROC_API int muproc_msg_type(const muproc_msg_t *msg, uint32_t i);
MUPROC_API int64_t muproc_msg_int(const muproc_msg_t *msg, uint32_t i);
MUPROC_API double muproc_msg_double(const muproc_msg_t *msg, uint32_t i);
MUPROC_API muproc_atom_t muproc_msg_atom(const muproc_msg_t *msg, uint32_t i);
/* Bytes of a STRING or BINARY pair; the length goes to *LEN.  The bytes
 * live as long as the message and are followed by a NUL. */
MUPROC_API const char *muproc_msg_bytes(const muproc_msg_t *msg, uint32_t i,
                                        size_t *len);
MUPROC_API muproc_pid_t muproc_msg_pid(const muproc_msg_t *msg, uint32_t i);
MUPROC_API uint64_t muproc_msg_ref(const muproc_msg_t *msg, uint32_t i);
MUPROC_API uint64_t muproc_msg_handle(const muproc_msg_t *msg, uint32_t i);
/* Index of the first pair with KEY, or MUPROC_ENOENT. */
MUPROC_API int muproc_msg_find(const muproc_msg_t *msg, muproc_atom_t key);
/* Sender of a received message (0 when sent from outside any muproc). */
MUPROC_API muproc_pid_t muproc_msg_sender(const muproc_msg_t *msg);
/* MUPROC_K_* of a message. */
MUPROC_API int muproc_msg_kind(const muproc_msg_t *msg);

/* Bulk access, for bindings that read and write memory directly instead
 * of making one call per pair (the Lisp side does).  A pair, exactly as a
 * message stores it: 16 bytes, key at offset 0, type at 4, value at 8.
 * This layout is part of the ABI. */
typedef struct muproc_pair {
  muproc_atom_t key; /* never 0 */
  uint32_t type;     /* MUPROC_T_* */
  union {
    int64_t i;  /* MUPROC_T_INT */
    double d;   /* MUPROC_T_DOUBLE */
    uint64_t u; /* the atom id, pid, ref or handle; 0 for MUPROC_T_NIL */
    struct {
      uint32_t off; /* STRING, BINARY: the bytes start at OFF in the */
      uint32_t len; /* byte area, LEN long (and are followed by a NUL) */
    } bytes;
  } v;
} muproc_pair_t;

/* What muproc_msg_view reports about a message.  Layout (part of the
 * ABI, 40 bytes): pairs at offset 0, bytes at 8, sender at 16, npairs at
 * 24, kind at 28, sent_ns at 32. */
typedef struct muproc_msg_view {
  const muproc_pair_t *pairs; /* NPAIRS pairs, in order */
  const char *bytes;          /* the byte area STRING/BINARY pairs index */
  muproc_pid_t sender;        /* as muproc_msg_sender */
  uint32_t npairs;            /* as muproc_msg_size */
  int32_t kind;               /* as muproc_msg_kind */
  int64_t sent_ns;            /* when it was sent (muproc_now_ns); 0 if
                               * never sent */
} muproc_msg_view_t;

/* Fill *VIEW with MSG's pairs, byte area, sender and kind, all in one
 * call.  The pointers stay valid while the caller may read MSG (until it
 * is freed, sent, or taken by another receive) and while MSG is not
 * added to; the pairs must not be written through them.  Returns 0, or
 * MUPROC_EINVAL for a NULL MSG or VIEW.  Any thread that may read MSG. */
MUPROC_API int muproc_msg_view(const muproc_msg_t *msg,
                               muproc_msg_view_t *view);

/* A new message holding the NPAIRS pairs of PAIRS, in order, made in one
 * call (the same as muproc_msg_new and one put per pair).  STRING and
 * BINARY pairs name their bytes by offset and length in BYTES (NBYTES
 * long); they are copied.  For each MUPROC_T_HANDLE pair a NEW handle is
 * made, owned by the message as with muproc_msg_put_new_handle, and
 * written back into that pair's v.u: the caller then stores its objects
 * under those handles before sending.  Other values are taken as they
 * are.  On success stores the message (owned by the caller) in *OUT and
 * returns 0.  Returns MUPROC_EINVAL (NULL OUT, NULL PAIRS with NPAIRS >
 * 0, a key 0, an atom 0, an unknown type, bytes outside BYTES) or
 * MUPROC_ENOMEM (no memory, too many pairs, handle table full); then
 * nothing was allocated, *OUT is unchanged and the v.u of HANDLE pairs
 * is unspecified.  Any thread; does not block. */
MUPROC_API int muproc_msg_new_pairs(muproc_pair_t *pairs, uint32_t npairs,
                                    const void *bytes, size_t nbytes,
                                    muproc_msg_t **out);

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

enum {
  MUPROC_KIND_LISP = 0, /* run by a Lisp worker thread */
  MUPROC_KIND_C = 1     /* a C function run by a C worker thread */
};

/* Process states as reported by muproc_proc_state. */
enum {
  MUPROC_S_NOPROC = 0,  /* no such process (never existed or released) */
  MUPROC_S_CREATED = 1, /* created, not yet started by a worker */
  MUPROC_S_RUNNING = 2, /* running */
  MUPROC_S_WAITING = 3, /* blocked in muproc_recv */
  MUPROC_S_EXITED = 4   /* exited, not yet released */
};

/* Create a process (it does not run yet).  NAME is an atom unique among
 * processes not yet exited, or 0 for none.  KIND is MUPROC_KIND_*.
 * CAPACITY bounds its mailbox (0: unbounded).  Stores the pid in *PID.
 * Errors: MUPROC_EEXIST (name taken), MUPROC_EPROCLIM, MUPROC_EINVAL,
 * MUPROC_ENOTINIT.  Lisp workers start it with muproc_proc_start. */
MUPROC_API int muproc_proc_create(muproc_atom_t name, int kind,
                                  uint32_t capacity, muproc_pid_t *pid);

/* Bind the calling thread to PID and mark it running: from now on the
 * calling thread is PID's receiver, and messages it sends carry PID as
 * sender.  Errors: MUPROC_ESRCH, MUPROC_ESTATE (not CREATED). */
MUPROC_API int muproc_proc_start(muproc_pid_t pid);

/* Exit PID with a reason (a term given as TYPE and a 64-bit VALUE: an
 * atom, integer, pid, ref, handle or nil).  Atomically: the process stops
 * accepting messages (senders get MUPROC_ESRCH), its name and registered
 * port names are released, its state becomes EXITED.  Messages still
 * queued stay for the receiver to drain (muproc_recv with MUPROC_NOWAIT).
 * A HANDLE reason gains a reference, held until release.
 * Receiver only, or any thread for a process in state CREATED.
 * Errors: MUPROC_ESRCH (not alive), MUPROC_EINVAL (bad type). */
MUPROC_API int muproc_proc_exit(muproc_pid_t pid, int type, uint64_t value);

/* Free the slot of an EXITED process: remaining messages are freed (their
 * handles released) and the pid becomes MUPROC_S_NOPROC.  Unbinds the
 * calling thread if it was bound to PID.
 * Errors: MUPROC_ESRCH, MUPROC_ESTATE (not exited). */
MUPROC_API int muproc_proc_release(muproc_pid_t pid);

/* The process bound to the calling thread, or 0. */
MUPROC_API muproc_pid_t muproc_self(void);

/* MUPROC_S_* of PID (MUPROC_S_NOPROC for an unknown or released pid). */
MUPROC_API int muproc_proc_state(muproc_pid_t pid);
/* Name atom of PID (0: none or no such process). */
MUPROC_API muproc_atom_t muproc_proc_name(muproc_pid_t pid);
/* MUPROC_KIND_* of PID, or MUPROC_ESRCH. */
MUPROC_API int muproc_proc_kind(muproc_pid_t pid);
/* Exit reason of an EXITED process: *TYPE and *VALUE.  MUPROC_ESTATE if
 * it has not exited, MUPROC_ESRCH if unknown. */
MUPROC_API int muproc_proc_exit_reason(muproc_pid_t pid, int *type,
                                       uint64_t *value);
/* Pid of the live (not exited) process named NAME, or MUPROC_ENOENT. */
MUPROC_API int muproc_proc_find(muproc_atom_t name, muproc_pid_t *pid);
/* Store up to CAP pids of processes not yet exited in BUF, oldest slot
 * first; returns how many exist (may exceed CAP). */
MUPROC_API int64_t muproc_proc_list(muproc_pid_t *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* Registered port names                                               */
/* ------------------------------------------------------------------ */

/* Register NAME for PID (a process may hold several names).
 * Errors: MUPROC_EEXIST (taken), MUPROC_ESRCH (PID not alive),
 * MUPROC_EINVAL (NAME is 0). */
MUPROC_API int muproc_register(muproc_atom_t name, muproc_pid_t pid);
/* Release NAME.  Errors: MUPROC_ENOENT. */
MUPROC_API int muproc_unregister(muproc_atom_t name);
/* Pid registered as NAME, or MUPROC_ENOENT. */
MUPROC_API int muproc_whereis(muproc_atom_t name, muproc_pid_t *pid);
/* Store up to CAP names registered by PID in BUF; returns the count. */
MUPROC_API int64_t muproc_registered_names(muproc_pid_t pid,
                                           muproc_atom_t *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* Sending and receiving                                               */
/* ------------------------------------------------------------------ */

/* Send MSG (kind MUPROC_K_MESSAGE) to TO.  The sender recorded is
 * muproc_self().  On success (0) the mailbox owns MSG; on failure the
 * caller still owns it.  Never blocks; wakes the receiver only if it is
 * waiting.  Errors: MUPROC_ESRCH (TO is not alive), MUPROC_EFULL (TO's
 * mailbox has reached its capacity: nothing queued is dropped, the caller
 * decides), MUPROC_EINVAL. */
MUPROC_API int muproc_send(muproc_pid_t to, muproc_msg_t *msg);
/* Same, to the process registered as port NAME.  Errors as muproc_send,
 * plus MUPROC_ENOENT when NAME is not registered. */
MUPROC_API int muproc_send_named(muproc_atom_t name, muproc_msg_t *msg);

/* Send MSG as a signal of KIND (MUPROC_K_EXIT, _KILL, _TIMER, _INTERRUPT)
 * through TO's priority lane: never subject to capacity, seen by the
 * receiver before any ordinary message, and wakes a waiting receiver.
 * Ownership as muproc_send.  Errors: MUPROC_ESRCH, MUPROC_EINVAL. */
MUPROC_API int muproc_signal_send(muproc_pid_t to, int kind,
                                  muproc_msg_t *msg);

/* A receive filter: which messages may match a receive.  It is an array
 * of uint32: { NSETS, LEN1, key..., LEN2, key..., ... }; a message passes
 * when it holds every key of at least one set.  A set of length 0 accepts
 * every message; a NULL filter too.  A length word may carry
 * MUPROC_FILTER_FINAL: a message whose first passing set is final matches
 * outright (a clause without a guard), and muproc_recv_next may take it. */
#define MUPROC_FILTER_FINAL 0x80000000u

/* Receiver only.  Find the first ordinary message queued after AFTER
 * (NULL: from the oldest) that passes FILTER, waiting until DEADLINE
 * (MUPROC_FOREVER, MUPROC_NOWAIT or a muproc_now_ns() time) for one to
 * arrive.  Returns:
 *   0                with *OUT = that message, still queued: it stays valid
 *                    until the receiver takes it; AFTER must be a message
 *                    still queued in this mailbox;
 *   MUPROC_SIGNALLED with *OUT = the oldest pending signal, already removed
 *                    from the priority lane and owned by the caller;
 *   MUPROC_ETIMEDOUT, MUPROC_EPERM (caller is not SELF's receiver),
 *   MUPROC_ESRCH. */
#define MUPROC_SIGNALLED 1
MUPROC_API int muproc_recv(muproc_pid_t self, muproc_msg_t *after,
                           const uint32_t *filter, int64_t deadline,
                           muproc_msg_t **out);

/* Receiver only.  Take the oldest pending signal without looking at
 * ordinary messages, waiting until DEADLINE: MUPROC_SIGNALLED with *OUT
 * owned by the caller, or MUPROC_ETIMEDOUT, MUPROC_EPERM, MUPROC_ESRCH.
 * For a safe point that must act on exits and kills only. */
MUPROC_API int muproc_recv_signal(muproc_pid_t self, int64_t deadline,
                                  muproc_msg_t **out);

/* Receiver only.  Remove MSG (returned by muproc_recv) from the mailbox;
 * the caller owns it afterwards.  Errors: MUPROC_EPERM, MUPROC_EINVAL (MSG
 * is not queued in this mailbox: taken already, or a stale pointer). */
MUPROC_API int muproc_recv_take(muproc_pid_t self, muproc_msg_t *msg);

/* Selective receive with the scan position kept by the mailbox (its
 * receive mark, as Erlang's receive markers), so that the caller never
 * holds a pointer into the queue across code that may change it.
 *
 * The mark is the newest message this receive has examined.  Taking or
 * removing the marked message moves the mark to its predecessor, so
 * whatever happens to the queue between two calls (a nested receive, a
 * discard), the next call resumes at the first message not yet examined
 * and never looks at a freed one. */
#define MUPROC_RECV_RESTART 1 /* forget the mark: start at the oldest */
#define MUPROC_RECV_TAKE 2    /* take a match of a final set (see filter) */
#define MUPROC_TAKEN 2

/* Receiver only.  Find the first ordinary message after the mark (with
 * MUPROC_RECV_RESTART: the oldest) that passes FILTER, waiting until
 * DEADLINE; the mark moves to it.  *SET receives the index of the first
 * set it passes (0 for a NULL filter); VIEW, if not NULL, is filled as by
 * muproc_msg_view (for a signal too).  Returns:
 *   0                *OUT = the message, still queued (take it with
 *                    muproc_recv_take_mark);
 *   MUPROC_TAKEN     with MUPROC_RECV_TAKE, when that first set is final:
 *                    *OUT = the message, removed and owned by the caller;
 *   MUPROC_SIGNALLED *OUT = the oldest pending signal, owned by the caller
 *                    (signals are seen before any ordinary message);
 *   MUPROC_ETIMEDOUT, MUPROC_EPERM, MUPROC_ESRCH, MUPROC_EINVAL. */
MUPROC_API int muproc_recv_next(muproc_pid_t self, int flags,
                                const uint32_t *filter, int64_t deadline,
                                muproc_msg_t **out, muproc_msg_view_t *view,
                                int32_t *set);

/* Receiver only.  Take the marked message, unless a signal is pending:
 * a match is committed only when no signal waits, so a receiver that
 * acts on signals before it takes never loses a message to an exit or a
 * timeout between the take and the code that handles the message.
 *   0                *OUT = the message, removed and owned by the caller;
 *   MUPROC_SIGNALLED *OUT = the oldest signal (owned by the caller); the
 *                    message stays queued and marked;
 *   MUPROC_ESTATE    nothing is marked (the marked message was taken or
 *                    discarded since): receive again;
 *   MUPROC_EPERM, MUPROC_ESRCH, MUPROC_EINVAL. */
MUPROC_API int muproc_recv_take_mark(muproc_pid_t self, muproc_msg_t **out);

/* Ask for the Lisp side to interrupt PID so that it looks at its priority
 * lane (as a signal to a busy Lisp muproc does by itself).  For a
 * receiver that left signals pending while it could not act on them. */
MUPROC_API void muproc_poke_request(muproc_pid_t pid);

/* Ordinary messages queued for PID (taken ones excluded), or
 * MUPROC_ESRCH.  A send counts its message just before queueing it;
 * a receive, even with MUPROC_NOWAIT, finds every message counted. */
MUPROC_API int64_t muproc_mbox_count(muproc_pid_t pid);
/* Signals pending in PID's priority lane, or MUPROC_ESRCH. */
MUPROC_API int64_t muproc_mbox_signal_count(muproc_pid_t pid);
/* Capacity of PID's mailbox (0: unbounded), or MUPROC_ESRCH. */
MUPROC_API int64_t muproc_mbox_capacity(muproc_pid_t pid);

/* Observing (any thread).  Totals since PID was created: ARRIVED
 * ordinary messages put in its mailbox, TAKEN of them removed by its
 * receiver (so ARRIVED - TAKEN is muproc_mbox_count), SENT ordinary
 * messages it sent itself.  Any pointer may be NULL.  0 or MUPROC_ESRCH
 * (released). */
MUPROC_API int muproc_mbox_totals(muproc_pid_t pid, int64_t *arrived,
                                  int64_t *taken, int64_t *sent);
/* Receiver only.  Fill *VIEW with the INDEX-th (0: the oldest) ordinary
 * message queued for SELF, without taking it and without moving the
 * receive mark; what senders pushed is moved into the queue first.  The
 * view is valid until the receiver next receives.  0, MUPROC_ENOENT
 * (fewer messages), MUPROC_EPERM, MUPROC_EINVAL, MUPROC_ESRCH. */
MUPROC_API int muproc_mbox_peek(muproc_pid_t self, uint64_t index,
                                muproc_msg_view_t *view);
/* CPU time in ns of the thread running PID (a worker thread: what it
 * used for earlier processes included), MUPROC_ESTATE if PID is not
 * running or waiting, or MUPROC_ESRCH.  Costs the caller a syscall. */
MUPROC_API int64_t muproc_proc_cpu_ns(muproc_pid_t pid);

/* ------------------------------------------------------------------ */
/* Links, monitors and exit notices                                    */
/* ------------------------------------------------------------------ */

/* When a process exits (muproc_proc_exit) the runtime, atomically with
 * link and monitor changes, tells
 *  - every linked process, with an exit signal (MUPROC_K_EXIT, priority
 *    lane) holding the pairs  from: <pid>  reason: <term>  link: true;
 *    links are two-way and ANY exit propagates, normal ones included;
 *  - every monitoring process, with an ordinary message (never refused
 *    for capacity) holding  terminated: <pid>  reason: <term>
 *    monitor: <ref>.
 * The message that carries each notice is reserved when the link or
 * monitor is made, so an exit never fails to tell for want of memory.
 * Whether an exit signal is trapped is decided by its receiver when it
 * takes the signal in (its next muproc_recv or muproc_recv_signal), not
 * when it is sent: if the receiver traps exits
 * (muproc_proc_set_trap_exits) at that moment, the signal becomes an
 * ordinary message (never refused for capacity) holding  terminated:
 * <pid>  reason: <term>, plus link: true when it came over a link, in its
 * place of arrival among the messages; else it is returned as a signal,
 * before any message.  Until then it counts in muproc_mbox_signal_count,
 * not muproc_mbox_count.  The untrappable MUPROC_K_KILL signal is never
 * converted.
 * Linking or monitoring a process that is not alive gives at once the
 * same notice with reason atom 'noproc'.  Each link or monitor produces
 * exactly one notice, or none once removed. */

/* Link A and B (no-op if already linked).  If B is not alive, A gets an
 * exit signal with reason noproc at once and 0 is returned.  Errors:
 * MUPROC_ESRCH (A not alive), MUPROC_EINVAL (A == B or 0),
 * MUPROC_ENOMEM (no memory to reserve the notices: nothing was done). */
MUPROC_API int muproc_link(muproc_pid_t a, muproc_pid_t b);
/* Remove the link between A and B: once this returns, no exit signal
 * from that link is sent anymore.  0 even if they were not linked. */
MUPROC_API int muproc_unlink(muproc_pid_t a, muproc_pid_t b);
/* Store up to CAP pids linked to PID in BUF; returns the count or
 * MUPROC_ESRCH. */
MUPROC_API int64_t muproc_links(muproc_pid_t pid, muproc_pid_t *buf,
                                size_t cap);

/* Make WATCHER monitor TARGET; the reference goes to *REF.  If TARGET is
 * not alive, WATCHER gets the notice with reason noproc at once.
 * Errors: MUPROC_ESRCH (WATCHER not alive), MUPROC_EINVAL, MUPROC_ENOMEM
 * (no memory to reserve the notice: nothing was done). */
MUPROC_API int muproc_monitor(muproc_pid_t watcher, muproc_pid_t target,
                              uint64_t *ref);
/* Remove WATCHER's monitor REF.  Returns 0 if it was removed before it
 * fired (no notice will come), MUPROC_ENOENT if it already fired (its
 * notice is queued or consumed) or is unknown. */
MUPROC_API int muproc_demonitor(muproc_pid_t watcher, uint64_t ref);
/* Store in BUF (up to CAP) the processes PID monitors (WATCHERS 0) or
 * that monitor PID (WATCHERS 1), one per monitor; returns how many there
 * are, or MUPROC_ESRCH.  Any thread. */
MUPROC_API int64_t muproc_monitors(muproc_pid_t pid, int watchers,
                                   muproc_pid_t *buf, size_t cap);

/* Send TO the exit signal  from: <self>  reason: <term>  from
 * muproc_self() with a reason term (TYPE and VALUE as for
 * muproc_proc_exit; a handle gains a reference); if TO traps exits when
 * it takes the signal, it gets the ordinary message  terminated: <self>
 * reason: <term>  instead (see above).  Errors: MUPROC_ESRCH (TO not
 * alive), MUPROC_EINVAL, MUPROC_ENOMEM (nothing sent). */
MUPROC_API int muproc_send_exit(muproc_pid_t to, int type, uint64_t value);

/* Record whether PID traps exits; returns the previous setting (0/1) or
 * MUPROC_ESRCH.  Applies to every exit signal PID has not yet taken from
 * its priority lane, those already sent included. */
MUPROC_API int muproc_proc_set_trap_exits(muproc_pid_t pid, int on);
/* 1 if PID traps exits, 0 if not, MUPROC_ESRCH. */
MUPROC_API int muproc_proc_trap_exits(muproc_pid_t pid);

/* Pokes.  A Lisp muproc busy in Lisp code (or sleeping) does not see its
 * priority lane until it receives, and C never calls Lisp; so when a
 * signal goes to a Lisp muproc that is not blocked in muproc_recv, its
 * pid is queued here, and a Lisp thread waiting in muproc_poke_wait
 * interrupts the muproc's thread.  Stores up to CAP pids in BUF and
 * returns how many, waiting until DEADLINE for at least one
 * (MUPROC_ETIMEDOUT) or until muproc_shutdown (MUPROC_ESHUTDOWN). */
MUPROC_API int64_t muproc_poke_wait(int64_t deadline, muproc_pid_t *buf,
                                    size_t cap);
/* Make every muproc_poke_wait, now and later, return MUPROC_ESHUTDOWN
 * (for a Lisp image about to exit: its poke thread must not stay blocked
 * in C). */
MUPROC_API void muproc_poke_stop(void);

/* ------------------------------------------------------------------ */
/* Reply aliases                                                       */
/* ------------------------------------------------------------------ */

/* An alias is a reference through which a process can be sent replies
 * only while it keeps the alias open: a caller opens one per request and
 * closes it when it stops waiting, so a late reply is dropped instead of
 * landing in its mailbox (OTP's alias).  Replies through an alias are not
 * subject to capacity.  Aliases close when the process exits. */

/* Open an alias for SELF (any thread may call this, but only SELF should
 * use it); stores it in *ALIAS.  Errors: MUPROC_EINVAL (no ALIAS),
 * MUPROC_ESRCH, MUPROC_ENOMEM. */
MUPROC_API int muproc_alias_add(muproc_pid_t self, uint64_t *alias);
/* The same for a reply alias: it closes itself as it delivers a message
 * (OTP's alias([reply])), so a caller that got its one reply has nothing
 * left to close. */
MUPROC_API int muproc_alias_add_reply(muproc_pid_t self, uint64_t *alias);
/* Close ALIAS.  Once this returns nothing more arrives through it.
 * Errors: MUPROC_ENOENT (not open: never opened, closed, or a reply
 * alias that has delivered), MUPROC_ESRCH. */
MUPROC_API int muproc_alias_remove(muproc_pid_t self, uint64_t alias);
/* Send MSG to TO through ALIAS: delivered (0, ownership passes) only if
 * TO has ALIAS open; MUPROC_ENOENT if not (the caller keeps MSG),
 * MUPROC_ESRCH if TO is not alive. */
MUPROC_API int muproc_send_alias(muproc_pid_t to, uint64_t alias,
                                 muproc_msg_t *msg);

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

/* One timer thread serves a heap of deadlines (CLOCK_MONOTONIC).  A
 * timer belongs to the process that made it (muproc_self(), or none) and
 * is cancelled when that process, or its destination, exits.  Timer ids
 * are never 0. */

/* Send MSG (ownership passes to the timer) to TO at time WHEN (a
 * muproc_now_ns() value).  Errors: MUPROC_EINVAL, MUPROC_ENOMEM,
 * MUPROC_ESRCH (TO is not alive; the caller keeps MSG). */
MUPROC_API int muproc_timer_send_after(muproc_pid_t to, int64_t when,
                                       muproc_msg_t *msg, uint64_t *id);
/* Deliver a MUPROC_K_TIMER signal carrying a copy of PAYLOAD (owned by
 * the timer) to TO at WHEN, then every REPEAT nanoseconds if REPEAT > 0.
 * Errors: MUPROC_EINVAL, MUPROC_ENOMEM, MUPROC_ESRCH (TO is not alive). */
MUPROC_API int muproc_timer_signal(muproc_pid_t to, int64_t when,
                                   int64_t repeat, muproc_msg_t *payload,
                                   uint64_t *id);
/* Cancel timer ID: 0 if it was pending (it will not fire again),
 * MUPROC_ENOENT if it already fired (one-shot) or is unknown. */
MUPROC_API int muproc_timer_cancel(uint64_t id);
/* A send-after to a full bounded inport is dropped, as any send to it is
 * refused.  A timer message that is never delivered (dropped, or its
 * destination or owner exited) and carries handles is kept until this
 * returns it, one per call, to be freed by the caller (who learns that
 * its handles may be dead); NULL when none is left.  muproc_timer_cancel
 * frees the message at once instead: its caller knows its handles. */
MUPROC_API muproc_msg_t *muproc_timer_reap(void);

/* ------------------------------------------------------------------ */
/* Workers: threads that run muprocs                                   */
/* ------------------------------------------------------------------ */

/* Lisp workers.  A Lisp spawn creates a process and offers it:
 *   muproc_worker_offer(pid) hands PID to a parked Lisp worker and
 *   returns 0, or returns MUPROC_WORKER_NEEDED after reserving a thread
 *   slot: the caller then starts a new thread that runs PID first, or
 *   calls muproc_worker_unreserve() if it cannot.  MUPROC_ETHREADS when
 *   no worker is parked and the thread cap is reached (nothing reserved).
 * A worker thread runs its process, releases it, then parks:
 *   muproc_worker_park(deadline, &pid) blocks until it is handed a pid
 *   (0), its idle DEADLINE passes (MUPROC_ETIMEDOUT: the worker is no
 *   longer parked and should end) or the runtime shuts down
 *   (MUPROC_ESHUTDOWN).  A worker that ends calls muproc_worker_exit(),
 *   which frees its thread slot. */
#define MUPROC_WORKER_NEEDED 1
MUPROC_API int muproc_worker_offer(muproc_pid_t pid);
MUPROC_API void muproc_worker_unreserve(void);
MUPROC_API int muproc_worker_park(int64_t deadline, muproc_pid_t *pid);
MUPROC_API void muproc_worker_exit(void);
/* Tell parked Lisp workers beyond the KEEP most recently parked to end:
 * their muproc_worker_park returns MUPROC_ETIMEDOUT.  Returns how many
 * were told. */
MUPROC_API int64_t muproc_worker_trim(uint32_t keep);

/* C muprocs.  FN(ARG) runs in a new process on a C worker thread (parked
 * C workers are reused); when FN returns the process exits with reason
 * 'normal' and is released.  NAME and CAPACITY as muproc_proc_create.
 * Errors: those of muproc_proc_create, MUPROC_ETHREADS. */
typedef void (*muproc_fn_t)(void *arg);
MUPROC_API int muproc_spawn_c(muproc_atom_t name, muproc_fn_t fn, void *arg,
                              uint32_t capacity, muproc_pid_t *pid);

/* Block until no C muproc is running (all returned and released) or the
 * DEADLINE passes (MUPROC_ETIMEDOUT).  For C programs that spawn and
 * then wait for their muprocs. */
MUPROC_API int muproc_wait_c_idle(int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif /* MUPROC_H */
