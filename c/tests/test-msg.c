/* test-msg.c - mumsgs: building, reading, growth, Lisp-object handles. */
#include <float.h>

#include "tap.h"

/* The atoms k0, k1, ... k(N-1) into KEYS. */
static void number_keys(muproc_atom_t *keys, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "k%u", i);
    keys[i] = ATOM(name);
  }
}

static void msg_every_type_roundtrip(void) {
  static const char bin[] = {'a', '\0', 'b', (char)0xff};
  const char *utf8 = "h\xc3\xa9llo"; /* "héllo" */
  muproc_atom_t k[11], value_atom;
  muproc_pid_t pid = ((muproc_pid_t)7 << 32) | 3;
  uint64_t ref;
  muproc_msg_t *m;
  const char *bytes;
  size_t len;
  uint32_t i;

  CHECK_OK(muproc_init(0, 0));
  number_keys(k, 11);
  value_atom = ATOM("square");
  ref = muproc_make_ref();
  /* Tiny hints: the message must grow for the data below. */
  m = muproc_msg_new(1, 1);
  CHECK(m != NULL);
  CHECK_EQ_INT(muproc_msg_size(m), 0);
  CHECK_OK(muproc_msg_put_nil(m, k[0]));
  CHECK_OK(muproc_msg_put_int(m, k[1], INT64_MIN));
  CHECK_OK(muproc_msg_put_int(m, k[2], INT64_MAX));
  CHECK_OK(muproc_msg_put_double(m, k[3], -2.5e300));
  CHECK_OK(muproc_msg_put_atom(m, k[4], value_atom));
  CHECK_OK(muproc_msg_put_string(m, k[5], utf8, strlen(utf8)));
  CHECK_OK(muproc_msg_put_binary(m, k[6], bin, sizeof bin));
  CHECK_OK(muproc_msg_put_pid(m, k[7], pid));
  CHECK_OK(muproc_msg_put_ref(m, k[8], ref));
  CHECK_OK(muproc_msg_put_double(m, k[9], DBL_MIN));
  /* NULL with length 0 is a valid empty binary. */
  CHECK_OK(muproc_msg_put_binary(m, k[10], NULL, 0));
  CHECK_EQ_INT(muproc_msg_size(m), 11);

  for (i = 0; i < 11; i++) /* keys in insertion order */
    CHECK_EQ_INT(muproc_msg_key(m, i), k[i]);
  CHECK_EQ_INT(muproc_msg_type(m, 0), MUPROC_T_NIL);
  CHECK_EQ_INT(muproc_msg_type(m, 1), MUPROC_T_INT);
  CHECK_EQ_INT(muproc_msg_int(m, 1), INT64_MIN);
  CHECK_EQ_INT(muproc_msg_type(m, 2), MUPROC_T_INT);
  CHECK_EQ_INT(muproc_msg_int(m, 2), INT64_MAX);
  CHECK_EQ_INT(muproc_msg_type(m, 3), MUPROC_T_DOUBLE);
  CHECK(muproc_msg_double(m, 3) == -2.5e300);
  CHECK_EQ_INT(muproc_msg_type(m, 4), MUPROC_T_ATOM);
  CHECK_EQ_INT(muproc_msg_atom(m, 4), value_atom);

  CHECK_EQ_INT(muproc_msg_type(m, 5), MUPROC_T_STRING);
  bytes = muproc_msg_bytes(m, 5, &len);
  CHECK(bytes != NULL && bytes != utf8); /* copied */
  CHECK_EQ_INT(len, strlen(utf8));
  CHECK(strcmp(bytes, utf8) == 0); /* followed by a NUL */

  CHECK_EQ_INT(muproc_msg_type(m, 6), MUPROC_T_BINARY);
  bytes = muproc_msg_bytes(m, 6, &len);
  CHECK(bytes != NULL);
  CHECK_EQ_INT(len, sizeof bin);
  CHECK_MEM_EQ(bytes, bin, sizeof bin);
  CHECK_EQ_INT(bytes[len], '\0');

  CHECK_EQ_INT(muproc_msg_type(m, 7), MUPROC_T_PID);
  CHECK_EQ_U64(muproc_msg_pid(m, 7), pid);
  CHECK_EQ_INT(muproc_msg_type(m, 8), MUPROC_T_REF);
  CHECK_EQ_U64(muproc_msg_ref(m, 8), ref);
  CHECK(muproc_msg_double(m, 9) == DBL_MIN);

  CHECK_EQ_INT(muproc_msg_type(m, 10), MUPROC_T_BINARY);
  len = 99;
  bytes = muproc_msg_bytes(m, 10, &len);
  CHECK_EQ_INT(len, 0);
  CHECK(bytes != NULL && bytes[0] == '\0'); /* "followed by a NUL" */

  /* A message being built has no sender and is an ordinary message. */
  CHECK_EQ_U64(muproc_msg_sender(m), 0);
  CHECK_EQ_INT(muproc_msg_kind(m), MUPROC_K_MESSAGE);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

static void msg_wrong_type_and_range(void) {
  muproc_atom_t ki, ks, kp;
  muproc_msg_t *m, *empty;
  size_t len;

  CHECK_OK(muproc_init(0, 0));
  ki = ATOM("i"); ks = ATOM("s"); kp = ATOM("p");
  m = muproc_msg_new(4, 16);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_int(m, ki, 42));
  CHECK_OK(muproc_msg_put_string(m, ks, "text", 4));
  CHECK_OK(muproc_msg_put_pid(m, kp, 77));

  /* Every getter on the int pair except muproc_msg_int reads 0 / NULL,
   * although the stored 64 bits are not 0. */
  CHECK(muproc_msg_double(m, 0) == 0.0);
  CHECK_EQ_INT(muproc_msg_atom(m, 0), 0);
  CHECK(muproc_msg_bytes(m, 0, &len) == NULL);
  CHECK_EQ_U64(muproc_msg_pid(m, 0), 0);
  CHECK_EQ_U64(muproc_msg_ref(m, 0), 0);
  CHECK_EQ_U64(muproc_msg_handle(m, 0), 0);
  CHECK_EQ_INT(muproc_msg_int(m, 1), 0);   /* string */
  CHECK_EQ_INT(muproc_msg_int(m, 2), 0);   /* pid */
  CHECK_EQ_U64(muproc_msg_ref(m, 2), 0);   /* pid is not a ref */
  CHECK(muproc_msg_bytes(m, 2, NULL) == NULL);

  /* Out of range. */
  CHECK_RC(muproc_msg_type(m, 3), MUPROC_ERANGE);
  CHECK_RC(muproc_msg_type(m, UINT32_MAX), MUPROC_ERANGE);
  CHECK_EQ_INT(muproc_msg_key(m, 3), 0);
  CHECK_EQ_INT(muproc_msg_int(m, 3), 0);
  CHECK(muproc_msg_bytes(m, 3, &len) == NULL);
  CHECK_EQ_U64(muproc_msg_pid(m, 3), 0);

  empty = muproc_msg_new(0, 0);
  CHECK(empty != NULL);
  CHECK_EQ_INT(muproc_msg_size(empty), 0);
  CHECK_RC(muproc_msg_type(empty, 0), MUPROC_ERANGE);
  CHECK_RC(muproc_msg_find(empty, ki), MUPROC_ENOENT);
  muproc_msg_free(empty);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

static void msg_find_first_of_duplicates(void) {
  muproc_atom_t a, b, c;
  muproc_msg_t *m;

  CHECK_OK(muproc_init(0, 0));
  a = ATOM("a"); b = ATOM("b"); c = ATOM("c");
  m = muproc_msg_new(0, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_int(m, b, 1));
  CHECK_OK(muproc_msg_put_int(m, a, 2));
  CHECK_OK(muproc_msg_put_int(m, b, 3));
  CHECK_OK(muproc_msg_put_atom(m, a, c));
  CHECK_EQ_INT(muproc_msg_size(m), 4);
  CHECK_EQ_INT(muproc_msg_key(m, 0), b);
  CHECK_EQ_INT(muproc_msg_key(m, 1), a);
  CHECK_EQ_INT(muproc_msg_key(m, 2), b);
  CHECK_EQ_INT(muproc_msg_key(m, 3), a);
  CHECK_EQ_INT(muproc_msg_find(m, b), 0);
  CHECK_EQ_INT(muproc_msg_find(m, a), 1);
  CHECK_EQ_INT(muproc_msg_int(m, muproc_msg_find(m, a)), 2);
  CHECK_RC(muproc_msg_find(m, c), MUPROC_ENOENT);
  CHECK_RC(muproc_msg_find(m, 0), MUPROC_ENOENT);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

static void msg_put_errors(void) {
  muproc_atom_t k;
  muproc_msg_t *m;
  uint64_t h = 12345;

  CHECK_OK(muproc_init(0, 0));
  k = ATOM("k");
  m = muproc_msg_new(2, 2);
  CHECK(m != NULL);
  CHECK_RC(muproc_msg_put_nil(m, 0), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_int(m, 0, 1), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_double(m, 0, 1.0), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_atom(m, 0, k), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_string(m, 0, "x", 1), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_binary(m, 0, "x", 1), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_pid(m, 0, 1), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_ref(m, 0, 1), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_new_handle(m, 0, &h), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_string(m, k, NULL, 3), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_put_binary(m, k, NULL, 1), MUPROC_EINVAL);
  /* Failed puts leave nothing behind: no pair, no handle. */
  CHECK_EQ_INT(muproc_msg_size(m), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  CHECK_OK(muproc_msg_put_string(m, k, NULL, 0));
  CHECK_EQ_INT(muproc_msg_type(m, 0), MUPROC_T_STRING);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

/* Far past both hints: 3000 pairs, strings up to 300 bytes, one 1 MiB
 * binary; everything reads back. */
static void msg_growth(void) {
  enum { N = 3000, BIG = 1 << 20 };
  muproc_atom_t ki, ks, kb;
  char *big = malloc(BIG), str[301];
  muproc_msg_t *m;
  const char *bytes;
  size_t len;
  int i, j;

  CHECK_OK(muproc_init(0, 0));
  ki = ATOM("i"); ks = ATOM("s"); kb = ATOM("big");
  CHECK(big != NULL);
  for (i = 0; i < BIG; i++)
    big[i] = (char)(i * 7);
  m = muproc_msg_new(1, 4);
  CHECK(m != NULL);
  for (i = 0; i < N; i++) {
    if (i % 2 == 0) {
      CHECK_OK(muproc_msg_put_int(m, ki, i));
    } else {
      int n = i % 301;
      for (j = 0; j < n; j++)
        str[j] = (char)('a' + (i + j) % 26);
      CHECK_OK(muproc_msg_put_string(m, ks, str, (size_t)n));
    }
    if (i == N / 2)
      CHECK_OK(muproc_msg_put_binary(m, kb, big, BIG));
  }
  CHECK_EQ_INT(muproc_msg_size(m), N + 1);
  for (i = 0; i < N; i++) {
    uint32_t at = (uint32_t)(i <= N / 2 ? i : i + 1);
    if (i % 2 == 0) {
      CHECK_EQ_INT(muproc_msg_key(m, at), ki);
      CHECK_EQ_INT(muproc_msg_int(m, at), i);
    } else {
      int n = i % 301;
      CHECK_EQ_INT(muproc_msg_key(m, at), ks);
      bytes = muproc_msg_bytes(m, at, &len);
      CHECK(bytes != NULL);
      CHECK_EQ_INT(len, n);
      for (j = 0; j < n; j++)
        CHECK_EQ_INT(bytes[j], 'a' + (i + j) % 26);
      CHECK_EQ_INT(bytes[n], '\0');
    }
  }
  bytes = muproc_msg_bytes(m, N / 2 + 1, &len);
  CHECK_EQ_INT(muproc_msg_find(m, kb), N / 2 + 1);
  CHECK(bytes != NULL);
  CHECK_EQ_INT(len, BIG);
  CHECK_MEM_EQ(bytes, big, BIG);
  muproc_msg_free(m);
  free(big);
  MUPROC_FINISH();
}

static void msg_handles_live_until_free(void) {
  muproc_atom_t k;
  muproc_msg_t *m;
  uint64_t h[3];
  int i;

  CHECK_OK(muproc_init(0, 0));
  k = ATOM("obj");
  CHECK_EQ_INT(muproc_handle_live(0), 0);
  CHECK_EQ_INT(muproc_handle_live(((uint64_t)5 << 32) | 4242), 0);
  m = muproc_msg_new(3, 0);
  CHECK(m != NULL);
  for (i = 0; i < 3; i++) {
    CHECK_OK(muproc_msg_put_new_handle(m, k, &h[i]));
    CHECK_EQ_INT(muproc_handle_live(h[i]), 1);
    CHECK_EQ_INT(muproc_msg_type(m, (uint32_t)i), MUPROC_T_HANDLE);
    CHECK_EQ_U64(muproc_msg_handle(m, (uint32_t)i), h[i]);
  }
  /* Distinct slots in the caller's table. */
  CHECK(MUPROC_HANDLE_INDEX(h[0]) != MUPROC_HANDLE_INDEX(h[1]));
  CHECK(MUPROC_HANDLE_INDEX(h[0]) != MUPROC_HANDLE_INDEX(h[2]));
  CHECK(MUPROC_HANDLE_INDEX(h[1]) != MUPROC_HANDLE_INDEX(h[2]));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 3);
  muproc_msg_free(m);
  for (i = 0; i < 3; i++)
    CHECK_EQ_INT(muproc_handle_live(h[i]), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  MUPROC_FINISH();
}

/* Once a handle is dead its index may be reused, but the old value must
 * never become live again: the generation tells them apart.  Keep new
 * handles alive until one lands on the old index (it must, eventually:
 * the slot is free). */
static void msg_handle_generation(void) {
  enum { LIMIT = 1 << 18 };
  muproc_atom_t k;
  muproc_msg_t *m, *hold;
  uint64_t old, h = 0;
  int n;

  CHECK_OK(muproc_init(0, 0));
  k = ATOM("obj");
  m = muproc_msg_new(1, 0);
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_put_new_handle(m, k, &old));
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(old), 0);

  hold = muproc_msg_new(16, 0);
  CHECK(hold != NULL);
  for (n = 0; n < LIMIT; n++) {
    CHECK_OK(muproc_msg_put_new_handle(hold, k, &h));
    CHECK(h != old);
    if (MUPROC_HANDLE_INDEX(h) == MUPROC_HANDLE_INDEX(old))
      break;
  }
  if (n == LIMIT)
    tap_fail(__FILE__, __LINE__, "index %u of a dead handle not reused "
             "after %d new handles",
             MUPROC_HANDLE_INDEX(old), LIMIT);
  CHECK(h >> 32 != old >> 32); /* another generation */
  CHECK_EQ_INT(muproc_handle_live(h), 1);
  CHECK_EQ_INT(muproc_handle_live(old), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), n + 1);
  muproc_msg_free(hold);
  CHECK_EQ_INT(muproc_handle_live(h), 0);
  CHECK_EQ_INT(muproc_handle_live(old), 0);
  MUPROC_FINISH();
}

/* Handles come from a lock-free free list that every sending and
 * receiving thread pops and pushes at once.  Four threads take and give
 * back handles in small batches; an owner table (one flag per index)
 * catches an index handed out twice while live, and a handle must read
 * live exactly while it is held and dead once released. */
#define CONC_THREADS 4
#define CONC_ROUNDS 20000
#define CONC_BATCH 6
#define CONC_MAX_INDEX (1 << 16)
static _Atomic int conc_owner[CONC_MAX_INDEX];

static void *conc_handles(void *arg) {
  int me = (int)(intptr_t)arg;
  uint64_t h[CONC_BATCH];
  for (int round = 0; round < CONC_ROUNDS; round++) {
    int n = 1 + (round + me) % CONC_BATCH;
    for (int i = 0; i < n; i++) {
      CHECK_OK(muproc_handle_new(&h[i]));
      uint32_t index = MUPROC_HANDLE_INDEX(h[i]);
      CHECK(index > 0 && index < CONC_MAX_INDEX);
      int unowned = 0;
      if (!atomic_compare_exchange_strong(&conc_owner[index], &unowned, me))
        tap_fail(__FILE__, __LINE__, "index %u handed to thread %d while "
                 "thread %d holds it", index, me, unowned);
    }
    for (int i = 0; i < n; i++) {
      CHECK_EQ_INT(muproc_handle_live(h[i]), 1);
      atomic_store(&conc_owner[MUPROC_HANDLE_INDEX(h[i])], 0);
      CHECK_EQ_INT(muproc_handle_release(h[i]), 1);
      CHECK_EQ_INT(muproc_handle_live(h[i]), 0);
    }
  }
  return NULL;
}

static void msg_handles_concurrent(void) {
  pthread_t t[CONC_THREADS];
  CHECK_OK(muproc_init(0, 0));
  for (int i = 0; i < CONC_THREADS; i++)
    t[i] = THREAD(conc_handles, (void *)(intptr_t)(i + 1));
  for (int i = 0; i < CONC_THREADS; i++)
    JOIN(t[i]);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);
  MUPROC_FINISH();
}

static void msg_stat_counts_allocations(void) {
  muproc_msg_t *m[3];
  int64_t base;
  int i;

  CHECK_OK(muproc_init(0, 0));
  base = muproc_stat(MUPROC_STAT_MESSAGES);
  CHECK_EQ_INT(base, 0);
  for (i = 0; i < 3; i++) {
    m[i] = muproc_msg_new(2, 8);
    CHECK(m[i] != NULL);
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), i + 1);
  }
  CHECK_OK(muproc_msg_put_int(m[0], ATOM("x"), 1)); /* growth is no alloc */
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 3);
  muproc_msg_free(m[1]);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 2);
  muproc_msg_free(m[0]);
  muproc_msg_free(m[2]);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  MUPROC_FINISH();
}

/* Messages are usually allocated by one thread and freed by another, and
 * their memory is recycled through per-thread caches (msgpool.c).  Each
 * round, a fresh thread builds a batch of every size class and beyond,
 * and another fresh thread checks each message and frees it; both threads
 * exit with blocks in their caches.  Every message must read back intact
 * (a recycled block is a clean message) and nothing may be lost: the
 * leak check and valgrind see all of it returned at shutdown. */
#define POOL_BATCH 1000
struct pool_round {
  muproc_msg_t *msgs[POOL_BATCH];
  muproc_atom_t key;
  int round;
};

static uint32_t pool_pairs(int i) { return (uint32_t)(1 + i % 70); }

static void *pool_build(void *arg) {
  struct pool_round *r = arg;
  char text[64];
  for (int i = 0; i < POOL_BATCH; i++) {
    uint32_t npairs = pool_pairs(i);
    snprintf(text, sizeof text, "r%d-m%d", r->round, i);
    muproc_msg_t *m = muproc_msg_new(npairs, strlen(text) + 1);
    CHECK(m != NULL);
    CHECK_EQ_INT(muproc_msg_size(m), 0);
    for (uint32_t k = 0; k + 1 < npairs; k++)
      CHECK_OK(muproc_msg_put_int(m, r->key, (int64_t)r->round * 100000 + i));
    CHECK_OK(muproc_msg_put_string(m, r->key, text, strlen(text)));
    r->msgs[i] = m;
  }
  return NULL;
}

static void *pool_check_and_free(void *arg) {
  struct pool_round *r = arg;
  char text[64];
  for (int i = 0; i < POOL_BATCH; i++) {
    muproc_msg_t *m = r->msgs[i];
    uint32_t npairs = pool_pairs(i);
    size_t len;
    CHECK_EQ_INT(muproc_msg_size(m), npairs);
    for (uint32_t k = 0; k + 1 < npairs; k++)
      CHECK_EQ_INT(muproc_msg_int(m, k), (int64_t)r->round * 100000 + i);
    snprintf(text, sizeof text, "r%d-m%d", r->round, i);
    const char *bytes = muproc_msg_bytes(m, npairs - 1, &len);
    CHECK(bytes != NULL && len == strlen(text) && strcmp(bytes, text) == 0);
    muproc_msg_free(m);
  }
  return NULL;
}

static void msg_pool_cross_thread(void) {
  static struct pool_round r;
  CHECK_OK(muproc_init(0, 0));
  r.key = ATOM("n");
  for (r.round = 0; r.round < 20; r.round++) {
    JOIN(THREAD(pool_build, &r));
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), POOL_BATCH);
    JOIN(THREAD(pool_check_and_free, &r));
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  }
  /* And the calling thread's own cache, used both ways. */
  pool_build(&r);
  pool_check_and_free(&r);
  MUPROC_FINISH();
}

/* The view shows the very pairs the getters read, plus sender and kind,
 * and follows the message when it grows out of its inline storage. */
static void msg_view_matches_getters(void) {
  muproc_atom_t ki, kd, ks, ka;
  muproc_msg_t *m;
  muproc_msg_view_t view;
  const char *bytes;
  size_t len;

  CHECK_OK(muproc_init(0, 0));
  ki = ATOM("i"); kd = ATOM("d"); ks = ATOM("s"); ka = ATOM("a");
  m = muproc_msg_new(1, 1); /* tiny: the puts below make it grow */
  CHECK(m != NULL);
  CHECK_OK(muproc_msg_view(m, &view));
  CHECK_EQ_INT(view.npairs, 0);
  CHECK_OK(muproc_msg_put_int(m, ki, -7));
  CHECK_OK(muproc_msg_put_double(m, kd, 0.5));
  CHECK_OK(muproc_msg_put_string(m, ks, "text", 4));
  CHECK_OK(muproc_msg_put_atom(m, ka, ks));
  CHECK_OK(muproc_msg_view(m, &view));
  CHECK_EQ_INT(view.npairs, 4);
  CHECK_EQ_U64(view.sender, 0);
  CHECK_EQ_INT(view.kind, MUPROC_K_MESSAGE);
  for (uint32_t i = 0; i < 4; i++) {
    CHECK_EQ_INT(view.pairs[i].key, muproc_msg_key(m, i));
    CHECK_EQ_INT(view.pairs[i].type, muproc_msg_type(m, i));
  }
  CHECK_EQ_INT(view.pairs[0].v.i, -7);
  CHECK(view.pairs[1].v.d == 0.5);
  bytes = muproc_msg_bytes(m, 2, &len);
  CHECK(view.bytes + view.pairs[2].v.bytes.off == bytes);
  CHECK_EQ_INT(view.pairs[2].v.bytes.len, 4);
  CHECK_MEM_EQ(view.bytes + view.pairs[2].v.bytes.off, "text", 5);
  CHECK_EQ_U64(view.pairs[3].v.u, ks);

  CHECK_RC(muproc_msg_view(NULL, &view), MUPROC_EINVAL);
  CHECK_RC(muproc_msg_view(m, NULL), MUPROC_EINVAL);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

/* One call builds what msg_new plus one put per pair would: every type,
 * strings copied from the caller's byte buffer, a new handle per HANDLE
 * pair written back for the caller's table. */
static void msg_new_pairs_every_type(void) {
  static const char buf[] = "h\xc3\xa9llo" "\x00\xff";
  muproc_atom_t k[9];
  muproc_pair_t p[9];
  muproc_msg_t *m = NULL;
  const char *bytes;
  size_t len;
  uint64_t ref = muproc_make_ref();
  uint32_t i;

  CHECK_OK(muproc_init(0, 0));
  number_keys(k, 9);
  memset(p, 0, sizeof p);
  for (i = 0; i < 9; i++)
    p[i].key = k[i];
  p[0].type = MUPROC_T_NIL;
  p[0].v.u = 99; /* ignored: NIL has no value */
  p[1].type = MUPROC_T_INT; p[1].v.i = INT64_MIN;
  p[2].type = MUPROC_T_DOUBLE; p[2].v.d = -2.5e300;
  p[3].type = MUPROC_T_ATOM; p[3].v.u = k[0];
  p[4].type = MUPROC_T_STRING; p[4].v.bytes.off = 0; p[4].v.bytes.len = 6;
  p[5].type = MUPROC_T_BINARY; p[5].v.bytes.off = 6; p[5].v.bytes.len = 2;
  p[6].type = MUPROC_T_PID; p[6].v.u = ((muproc_pid_t)7 << 32) | 3;
  p[7].type = MUPROC_T_REF; p[7].v.u = ref;
  p[8].type = MUPROC_T_HANDLE; p[8].v.u = 0;
  CHECK_OK(muproc_msg_new_pairs(p, 9, buf, 8, &m));
  CHECK(m != NULL);
  CHECK_EQ_INT(muproc_msg_size(m), 9);
  for (i = 0; i < 9; i++) {
    CHECK_EQ_INT(muproc_msg_key(m, i), k[i]);
    CHECK_EQ_INT(muproc_msg_type(m, i), (int)p[i].type);
  }
  CHECK_EQ_INT(muproc_msg_int(m, 1), INT64_MIN);
  CHECK(muproc_msg_double(m, 2) == -2.5e300);
  CHECK_EQ_INT(muproc_msg_atom(m, 3), k[0]);
  bytes = muproc_msg_bytes(m, 4, &len);
  CHECK(bytes != NULL && bytes != buf); /* copied */
  CHECK_EQ_INT(len, 6);
  CHECK(strcmp(bytes, "h\xc3\xa9llo") == 0); /* followed by a NUL */
  bytes = muproc_msg_bytes(m, 5, &len);
  CHECK_EQ_INT(len, 2);
  CHECK_MEM_EQ(bytes, "\x00\xff", 3);
  CHECK_EQ_U64(muproc_msg_pid(m, 6), p[6].v.u);
  CHECK_EQ_U64(muproc_msg_ref(m, 7), ref);
  CHECK(p[8].v.u != 0); /* the new handle, written back */
  CHECK_EQ_U64(muproc_msg_handle(m, 8), p[8].v.u);
  CHECK_EQ_INT(muproc_handle_live(p[8].v.u), 1);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 1);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_handle_live(p[8].v.u), 0);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);

  /* No pairs at all is an empty message. */
  m = NULL;
  CHECK_OK(muproc_msg_new_pairs(NULL, 0, NULL, 0, &m));
  CHECK(m != NULL);
  CHECK_EQ_INT(muproc_msg_size(m), 0);
  muproc_msg_free(m);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);
  MUPROC_FINISH();
}

/* Every refusal leaves nothing allocated (no message, no handle) and
 * *OUT untouched, even when a HANDLE pair comes before the bad one. */
static void msg_new_pairs_errors(void) {
  muproc_atom_t k;
  muproc_pair_t p[2];
  muproc_msg_t *m, *untouched = (muproc_msg_t *)&k;
  static const char buf[4] = "abc";

  CHECK_OK(muproc_init(0, 0));
  k = ATOM("k");
  memset(p, 0, sizeof p);
  p[0].key = k; p[0].type = MUPROC_T_HANDLE;
  p[1].key = k; p[1].type = MUPROC_T_INT;
#define REFUSED(want, ...)                                                     \
  do {                                                                         \
    m = untouched;                                                             \
    CHECK_RC(muproc_msg_new_pairs(__VA_ARGS__), want);                         \
    CHECK(m == untouched);                                                     \
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_MESSAGES), 0);                        \
    CHECK_EQ_INT(muproc_stat(MUPROC_STAT_HANDLES), 0);                         \
  } while (0)
  REFUSED(MUPROC_EINVAL, p, 2, NULL, 0, NULL);  /* no OUT */
  REFUSED(MUPROC_EINVAL, NULL, 2, NULL, 0, &m); /* no pairs */
  p[1].key = 0;
  REFUSED(MUPROC_EINVAL, p, 2, NULL, 0, &m);    /* key 0 */
  p[1].key = k;
  p[1].type = MUPROC_T_ATOM; p[1].v.u = 0;
  REFUSED(MUPROC_EINVAL, p, 2, NULL, 0, &m);    /* atom 0 */
  p[1].type = 42;
  REFUSED(MUPROC_EINVAL, p, 2, NULL, 0, &m);    /* unknown type */
  p[1].type = MUPROC_T_STRING; p[1].v.bytes.off = 2; p[1].v.bytes.len = 3;
  REFUSED(MUPROC_EINVAL, p, 2, buf, 4, &m);     /* past the end */
  p[1].v.bytes.off = 5; p[1].v.bytes.len = 0;
  REFUSED(MUPROC_EINVAL, p, 2, buf, 4, &m);     /* offset past the end */
  p[1].v.bytes.off = 0; p[1].v.bytes.len = 1;
  REFUSED(MUPROC_EINVAL, p, 2, NULL, 4, &m);    /* bytes from nowhere */
#undef REFUSED
  /* The same pairs with a valid string go through. */
  p[1].v.bytes.off = 1; p[1].v.bytes.len = 3;
  CHECK_OK(muproc_msg_new_pairs(p, 2, buf, 4, &m));
  CHECK(m != untouched);
  CHECK_EQ_INT(muproc_msg_size(m), 2);
  muproc_msg_free(m);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(msg_every_type_roundtrip),
    TAP_CASE(msg_wrong_type_and_range),
    TAP_CASE(msg_find_first_of_duplicates),
    TAP_CASE(msg_put_errors),
    TAP_CASE(msg_growth),
    TAP_CASE(msg_handles_live_until_free),
    TAP_CASE_TIMEOUT(msg_handle_generation, 60),
    TAP_CASE_TIMEOUT(msg_handles_concurrent, 120),
    TAP_CASE(msg_stat_counts_allocations),
    TAP_CASE_TIMEOUT(msg_pool_cross_thread, 120),
    TAP_CASE(msg_view_matches_getters),
    TAP_CASE(msg_new_pairs_every_type),
    TAP_CASE(msg_new_pairs_errors),
};
TAP_MAIN(cases)
