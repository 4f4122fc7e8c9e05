/* test-atom.c - the atom table: interning, names, limits, concurrency. */
#include "tap.h"

static void atom_intern_same_and_different(void) {
  char copy[] = "hello";
  int64_t before, hello;

  CHECK_OK(muproc_init(0, 0));
  before = muproc_stat(MUPROC_STAT_ATOMS);
  CHECK(before >= 0);
  hello = muproc_atom("hello", 5);
  CHECK(hello > 0 && hello <= UINT32_MAX);
  /* Same bytes from another buffer: same atom, no new entry. */
  CHECK_EQ_INT(muproc_atom(copy, 5), hello);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_ATOMS), before + 1);
  /* Different bytes, including prefixes and extensions: different atoms. */
  CHECK(muproc_atom("hellO", 5) != hello);
  CHECK(muproc_atom("hell", 4) != hello);
  CHECK(muproc_atom("hello!", 6) != hello);
  CHECK(muproc_atom("hello!", 5) == hello); /* only LEN bytes count */
  CHECK(muproc_atom("hell", 4) != muproc_atom("hellO", 5));
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_ATOMS), before + 4);
  MUPROC_FINISH();
}

static void atom_name_roundtrip(void) {
  static const char nul_inside[] = {'a', '\0', 'b'};
  char all_bytes[255];
  const char *name;
  size_t len = 0, i;
  int64_t a, b, c;

  CHECK_OK(muproc_init(0, 0));
  a = muproc_atom("area-server", 11);
  CHECK(a > 0);
  name = muproc_atom_name((muproc_atom_t)a, &len);
  CHECK(name != NULL);
  CHECK_EQ_INT(len, 11);
  CHECK(strcmp(name, "area-server") == 0); /* NUL-terminated */
  CHECK(muproc_atom_name((muproc_atom_t)a, NULL) == name);

  /* An atom names a byte string: an embedded NUL is part of it. */
  b = muproc_atom(nul_inside, 3);
  CHECK(b > 0);
  CHECK(b != muproc_atom("a", 1));
  name = muproc_atom_name((muproc_atom_t)b, &len);
  CHECK(name != NULL);
  CHECK_EQ_INT(len, 3);
  CHECK_MEM_EQ(name, nul_inside, 3);
  CHECK_EQ_INT(name[3], '\0');

  for (i = 0; i < sizeof all_bytes; i++)
    all_bytes[i] = (char)(i + 1);
  c = muproc_atom(all_bytes, sizeof all_bytes);
  CHECK(c > 0);
  name = muproc_atom_name((muproc_atom_t)c, &len);
  CHECK(name != NULL);
  CHECK_EQ_INT(len, 255);
  CHECK_MEM_EQ(name, all_bytes, 255);

  /* Unknown atoms have no name. */
  CHECK(muproc_atom_name(0, &len) == NULL);
  CHECK(muproc_atom_name(0x7ffffff0u, &len) == NULL);
  MUPROC_FINISH();
}

static void atom_length_limits(void) {
  char buf[257];
  int64_t before, a255;

  CHECK_OK(muproc_init(0, 0));
  memset(buf, 'x', sizeof buf);
  before = muproc_stat(MUPROC_STAT_ATOMS);
  CHECK_RC(muproc_atom(buf, 0), MUPROC_EINVAL);
  CHECK_RC(muproc_atom(buf, 256), MUPROC_EINVAL);
  CHECK_RC(muproc_atom(buf, 257), MUPROC_EINVAL);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_ATOMS), before); /* nothing interned */
  a255 = muproc_atom(buf, MUPROC_ATOM_MAX_LEN);
  CHECK(a255 > 0);
  CHECK(muproc_atom(buf, 1) > 0);
  CHECK(muproc_atom(buf, 1) != a255);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_ATOMS), before + 2);
  MUPROC_FINISH();
}

/* Four threads intern the same 1000 names, each in its own order, all
 * starting together: every thread must see the same id for a name. */
enum { NTHREADS = 4, NNAMES = 1000 };
static int64_t ids[NTHREADS][NNAMES];
static pthread_barrier_t start_line;

static void atom_name_of(int i, char *buf, size_t n) {
  snprintf(buf, n, "concurrent-atom-%d", i);
}

static void *intern_all(void *arg) {
  int t = (int)(intptr_t)arg, k;
  pthread_barrier_wait(&start_line);
  for (k = 0; k < NNAMES; k++) {
    /* Even threads go forward, odd ones backward, offset by the thread. */
    int i = (t % 2 ? NNAMES - 1 - k : k);
    char name[64];
    i = (i + t * (NNAMES / NTHREADS)) % NNAMES;
    atom_name_of(i, name, sizeof name);
    ids[t][i] = muproc_atom(name, strlen(name));
  }
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void atom_concurrent_intern(void) {
  pthread_t th[NTHREADS];
  int64_t before, sorted[NNAMES];
  int t, i;

  CHECK_OK(muproc_init(0, 0));
  before = muproc_stat(MUPROC_STAT_ATOMS);
  CHECK_EQ_INT(pthread_barrier_init(&start_line, NULL, NTHREADS), 0);
  for (t = 0; t < NTHREADS; t++)
    th[t] = THREAD(intern_all, (void *)(intptr_t)t);
  for (t = 0; t < NTHREADS; t++)
    JOIN(th[t]);
  pthread_barrier_destroy(&start_line);

  for (i = 0; i < NNAMES; i++) {
    char name[64];
    const char *got;
    size_t len;
    CHECK(ids[0][i] > 0);
    for (t = 1; t < NTHREADS; t++)
      CHECK_EQ_INT(ids[t][i], ids[0][i]);
    atom_name_of(i, name, sizeof name);
    got = muproc_atom_name((muproc_atom_t)ids[0][i], &len);
    CHECK(got != NULL);
    CHECK_EQ_INT(len, strlen(name));
    CHECK(strcmp(got, name) == 0);
  }
  memcpy(sorted, ids[0], sizeof sorted);
  qsort(sorted, NNAMES, sizeof sorted[0], cmp_i64);
  for (i = 1; i < NNAMES; i++)
    CHECK(sorted[i] != sorted[i - 1]);
  CHECK_EQ_INT(muproc_stat(MUPROC_STAT_ATOMS), before + NNAMES);
  MUPROC_FINISH();
}

static const struct tap_case cases[] = {
    TAP_CASE(atom_intern_same_and_different),
    TAP_CASE(atom_name_roundtrip),
    TAP_CASE(atom_length_limits),
    TAP_CASE(atom_concurrent_intern),
};
TAP_MAIN(cases)
