/* msg.c - building and reading mumsgs.
 *
 * A message is one allocation when its size is known up front (the Lisp
 * side always knows it): header, pairs and byte area together, from
 * msgpool.c's per-thread caches.  Only a builder that outgrows its hints
 * pays for separate arrays. */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS (1u << 20)
#define MAX_BYTES ((size_t)1 << 31)

/* How many more messages may be allocated (negative: no limit), for the
 * tests of what out of memory does: see muproc_testing_msg_alloc_limit. */
static _Atomic int64_t alloc_limit = -1;

int64_t muproc_testing_msg_alloc_limit(int64_t n) {
  return atomic_exchange(&alloc_limit, n < 0 ? -1 : n);
}

static bool alloc_allowed(void) {
  int64_t left = atomic_load_explicit(&alloc_limit, memory_order_relaxed);
  while (left >= 0) {
    if (left == 0)
      return false;
    if (atomic_compare_exchange_weak(&alloc_limit, &left, left - 1))
      return true;
  }
  return true;
}

muproc_msg_t *muproc_msg_new(uint32_t npairs, size_t nbytes) {
  if (npairs > MAX_PAIRS || nbytes > MAX_BYTES || !alloc_allowed())
    return NULL;
  uint8_t cls;
  muproc_msg_t *m =
      msgpool_alloc(sizeof *m + npairs * sizeof(struct pair) + nbytes, &cls);
  if (!m)
    return NULL;
  m->pool_class = cls;
  m->next = m->prev = NULL;
  m->sender = 0;
  m->kind = MUPROC_K_MESSAGE;
  m->npairs = 0;
  m->cap_pairs = npairs;
  m->pairs = m->storage;
  m->bytes = (char *)(m->storage + npairs);
  m->nbytes = 0;
  m->cap_bytes = (uint32_t)nbytes;
  m->heap_pairs = m->heap_bytes = false;
  m->queued = false;
  m->seq = 0;
  m->sent_ns = 0;
  m->index_nodes = NULL;
  atomic_fetch_add_explicit(&muproc_rt.messages, 1, memory_order_relaxed);
  return m;
}

size_t muproc_msg_release(muproc_msg_t *m, uint64_t *dead, size_t cap) {
  if (!m)
    return 0;
  size_t ndead = 0;
  for (uint32_t i = 0; i < m->npairs; i++)
    if (m->pairs[i].type == MUPROC_T_HANDLE &&
        handle_release(m->pairs[i].v.u)) {
      if (ndead < cap)
        dead[ndead] = m->pairs[i].v.u;
      ndead++;
    }
  /* A stale pointer to a freed message must fail loudly, not find a
   * plausible queue link (see msg_poison). */
  msg_poison(m);
  if (m->heap_pairs)
    free(m->pairs);
  if (m->heap_bytes)
    free(m->bytes);
  msgpool_free(m, m->pool_class);
  atomic_fetch_sub_explicit(&muproc_rt.messages, 1, memory_order_relaxed);
  return ndead;
}

void muproc_msg_free(muproc_msg_t *m) { muproc_msg_release(m, NULL, 0); }

static struct pair *append_pair(muproc_msg_t *m, muproc_atom_t key,
                                uint32_t type) {
  if (key == 0 || !m)
    return NULL;
  if (m->npairs == m->cap_pairs) {
    uint32_t cap = m->cap_pairs ? m->cap_pairs * 2 : 4;
    if (cap > MAX_PAIRS)
      return NULL;
    struct pair *pairs = malloc(cap * sizeof *pairs);
    if (!pairs)
      return NULL;
    memcpy(pairs, m->pairs, m->npairs * sizeof *pairs);
    if (m->heap_pairs)
      free(m->pairs);
    m->pairs = pairs;
    m->cap_pairs = cap;
    m->heap_pairs = true;
  }
  struct pair *p = &m->pairs[m->npairs++];
  p->key = key;
  p->type = type;
  p->v.u = 0;
  return p;
}

/* Each put reports a missing key or message as EINVAL and a failed
 * allocation as ENOMEM; append_pair can't tell them apart by itself. */
#define PUT(m, key, type)                                                     \
  struct pair *p = append_pair(m, key, type);                                 \
  if (!p)                                                                     \
    return (key == 0 || !m) ? MUPROC_EINVAL : MUPROC_ENOMEM

int muproc_msg_put_nil(muproc_msg_t *m, muproc_atom_t key) {
  PUT(m, key, MUPROC_T_NIL);
  (void)p;
  return 0;
}

int muproc_msg_put_int(muproc_msg_t *m, muproc_atom_t key, int64_t value) {
  PUT(m, key, MUPROC_T_INT);
  p->v.i = value;
  return 0;
}

int muproc_msg_put_double(muproc_msg_t *m, muproc_atom_t key, double value) {
  PUT(m, key, MUPROC_T_DOUBLE);
  p->v.d = value;
  return 0;
}

int muproc_msg_put_atom(muproc_msg_t *m, muproc_atom_t key,
                        muproc_atom_t value) {
  if (value == 0)
    return MUPROC_EINVAL;
  PUT(m, key, MUPROC_T_ATOM);
  p->v.u = value;
  return 0;
}

int muproc_msg_put_pid(muproc_msg_t *m, muproc_atom_t key,
                       muproc_pid_t value) {
  PUT(m, key, MUPROC_T_PID);
  p->v.u = value;
  return 0;
}

int muproc_msg_put_ref(muproc_msg_t *m, muproc_atom_t key, uint64_t value) {
  PUT(m, key, MUPROC_T_REF);
  p->v.u = value;
  return 0;
}

/* Copy LEN bytes plus a NUL into the byte area; returns the offset or
 * -1 on allocation failure. */
static int64_t store_bytes(muproc_msg_t *m, const void *bytes, size_t len) {
  size_t need = m->nbytes + len + 1;
  if (need > MAX_BYTES)
    return -1;
  if (need > m->cap_bytes) {
    size_t cap = m->cap_bytes ? (size_t)m->cap_bytes * 2 : 64;
    while (cap < need)
      cap *= 2;
    if (cap > MAX_BYTES)
      cap = MAX_BYTES; /* NEED fits: it was checked above */
    char *area = malloc(cap);
    if (!area)
      return -1;
    memcpy(area, m->bytes, m->nbytes);
    if (m->heap_bytes)
      free(m->bytes);
    m->bytes = area;
    m->cap_bytes = (uint32_t)cap;
    m->heap_bytes = true;
  }
  int64_t off = (int64_t)m->nbytes;
  if (len)
    memcpy(m->bytes + off, bytes, len);
  m->bytes[off + len] = '\0';
  m->nbytes = (uint32_t)need;
  return off;
}

static int put_bytes(muproc_msg_t *m, muproc_atom_t key, uint32_t type,
                     const void *bytes, size_t len) {
  if (!bytes && len)
    return MUPROC_EINVAL;
  if (len > UINT32_MAX)
    return MUPROC_ENOMEM;
  PUT(m, key, type);
  int64_t off = store_bytes(m, bytes, len);
  if (off < 0) {
    m->npairs--;
    return MUPROC_ENOMEM;
  }
  p->v.bytes.off = (uint32_t)off;
  p->v.bytes.len = (uint32_t)len;
  return 0;
}

int muproc_msg_put_string(muproc_msg_t *m, muproc_atom_t key,
                          const char *bytes, size_t len) {
  return put_bytes(m, key, MUPROC_T_STRING, bytes, len);
}

int muproc_msg_put_binary(muproc_msg_t *m, muproc_atom_t key,
                          const void *bytes, size_t len) {
  return put_bytes(m, key, MUPROC_T_BINARY, bytes, len);
}

int muproc_msg_put_new_handle(muproc_msg_t *m, muproc_atom_t key,
                              uint64_t *handle) {
  if (!handle)
    return MUPROC_EINVAL;
  PUT(m, key, MUPROC_T_HANDLE);
  int rc = handle_new(&p->v.u);
  if (rc != 0) {
    m->npairs--;
    return rc;
  }
  *handle = p->v.u;
  return 0;
}

uint32_t muproc_msg_size(const muproc_msg_t *m) { return m ? m->npairs : 0; }

static const struct pair *pair_at(const muproc_msg_t *m, uint32_t i,
                                  uint32_t type) {
  if (!m || i >= m->npairs || m->pairs[i].type != type)
    return NULL;
  return &m->pairs[i];
}

muproc_atom_t muproc_msg_key(const muproc_msg_t *m, uint32_t i) {
  return (m && i < m->npairs) ? m->pairs[i].key : 0;
}

int muproc_msg_type(const muproc_msg_t *m, uint32_t i) {
  return (m && i < m->npairs) ? (int)m->pairs[i].type : MUPROC_ERANGE;
}

int64_t muproc_msg_int(const muproc_msg_t *m, uint32_t i) {
  const struct pair *p = pair_at(m, i, MUPROC_T_INT);
  return p ? p->v.i : 0;
}

double muproc_msg_double(const muproc_msg_t *m, uint32_t i) {
  const struct pair *p = pair_at(m, i, MUPROC_T_DOUBLE);
  return p ? p->v.d : 0.0;
}

muproc_atom_t muproc_msg_atom(const muproc_msg_t *m, uint32_t i) {
  const struct pair *p = pair_at(m, i, MUPROC_T_ATOM);
  return p ? (muproc_atom_t)p->v.u : 0;
}

const char *muproc_msg_bytes(const muproc_msg_t *m, uint32_t i, size_t *len) {
  const struct pair *p = pair_at(m, i, MUPROC_T_STRING);
  if (!p)
    p = pair_at(m, i, MUPROC_T_BINARY);
  if (!p)
    return NULL;
  if (len)
    *len = p->v.bytes.len;
  return m->bytes + p->v.bytes.off;
}

muproc_pid_t muproc_msg_pid(const muproc_msg_t *m, uint32_t i) {
  const struct pair *p = pair_at(m, i, MUPROC_T_PID);
  return p ? p->v.u : 0;
}

uint64_t muproc_msg_ref(const muproc_msg_t *m, uint32_t i) {
  const struct pair *p = pair_at(m, i, MUPROC_T_REF);
  return p ? p->v.u : 0;
}

uint64_t muproc_msg_handle(const muproc_msg_t *m, uint32_t i) {
  const struct pair *p = pair_at(m, i, MUPROC_T_HANDLE);
  return p ? p->v.u : 0;
}

bool msg_has_keys(const muproc_msg_t *m, const uint32_t *keys, uint32_t len) {
  for (uint32_t k = 0; k < len; k++) {
    bool found = false;
    for (uint32_t i = 0; !found && i < m->npairs; i++)
      found = m->pairs[i].key == keys[k];
    if (!found)
      return false;
  }
  return true;
}

int muproc_msg_find(const muproc_msg_t *m, muproc_atom_t key) {
  if (m)
    for (uint32_t i = 0; i < m->npairs; i++)
      if (m->pairs[i].key == key)
        return (int)i;
  return MUPROC_ENOENT;
}

muproc_pid_t muproc_msg_sender(const muproc_msg_t *m) {
  return m ? m->sender : 0;
}

int muproc_msg_kind(const muproc_msg_t *m) {
  return m ? (int)m->kind : MUPROC_EINVAL;
}

int msg_put_term(muproc_msg_t *m, muproc_atom_t key, int type,
                 uint64_t value) {
  switch (type) {
  case MUPROC_T_NIL: return muproc_msg_put_nil(m, key);
  case MUPROC_T_INT: return muproc_msg_put_int(m, key, (int64_t)value);
  case MUPROC_T_ATOM: return muproc_msg_put_atom(m, key, (muproc_atom_t)value);
  case MUPROC_T_PID: return muproc_msg_put_pid(m, key, value);
  case MUPROC_T_REF: return muproc_msg_put_ref(m, key, value);
  case MUPROC_T_HANDLE: {
    if (!handle_retain(value))
      return MUPROC_EINVAL;
    PUT(m, key, MUPROC_T_HANDLE);
    p->v.u = value;
    return 0;
  }
  default: return MUPROC_EINVAL;
  }
}

muproc_msg_t *msg_clone(const muproc_msg_t *m) {
  muproc_msg_t *c = muproc_msg_new(m->npairs, m->nbytes);
  if (!c)
    return NULL;
  memcpy(c->pairs, m->pairs, m->npairs * sizeof *m->pairs);
  memcpy(c->bytes, m->bytes, m->nbytes);
  c->npairs = m->npairs;
  c->nbytes = m->nbytes;
  for (uint32_t i = 0; i < c->npairs; i++)
    if (c->pairs[i].type == MUPROC_T_HANDLE)
      handle_retain(c->pairs[i].v.u);
  c->sender = m->sender;
  c->kind = m->kind;
  return c;
}

/* ---- bulk access ------------------------------------------------- */

/* The view hands out the stored pair array as muproc_pair_t, and
 * muproc_msg_new_pairs copies values union to union: the public type and
 * the stored one must stay the same bytes. */
_Static_assert(sizeof(muproc_pair_t) == 16, "muproc_pair_t is 16 bytes");
_Static_assert(sizeof(struct pair) == sizeof(muproc_pair_t) &&
                   offsetof(struct pair, key) == offsetof(muproc_pair_t, key) &&
                   offsetof(struct pair, type) ==
                       offsetof(muproc_pair_t, type) &&
                   offsetof(struct pair, v) == offsetof(muproc_pair_t, v) &&
                   offsetof(struct pair, v.bytes.len) ==
                       offsetof(muproc_pair_t, v.bytes.len),
               "struct pair and muproc_pair_t have the same layout");
_Static_assert(offsetof(muproc_msg_view_t, bytes) == 8 &&
                   offsetof(muproc_msg_view_t, sender) == 16 &&
                   offsetof(muproc_msg_view_t, npairs) == 24 &&
                   offsetof(muproc_msg_view_t, kind) == 28 &&
                   offsetof(muproc_msg_view_t, sent_ns) == 32 &&
                   sizeof(muproc_msg_view_t) == 40,
               "muproc_msg_view_t has its documented layout");

int muproc_msg_view(const muproc_msg_t *m, muproc_msg_view_t *view) {
  if (!m || !view)
    return MUPROC_EINVAL;
  view->pairs = (const muproc_pair_t *)m->pairs;
  view->bytes = m->bytes;
  view->sender = m->sender;
  view->npairs = m->npairs;
  view->kind = (int32_t)m->kind;
  view->sent_ns = m->sent_ns;
  return 0;
}

/* Check PAIRS before anything is allocated, so that a failure leaves
 * nothing behind; returns the byte area the strings need, or an error. */
static int64_t check_pairs(const muproc_pair_t *pairs, uint32_t npairs,
                           const void *bytes, size_t nbytes) {
  size_t need = 0;
  for (uint32_t i = 0; i < npairs; i++) {
    const muproc_pair_t *p = &pairs[i];
    if (p->key == 0)
      return MUPROC_EINVAL;
    switch (p->type) {
    case MUPROC_T_NIL:
    case MUPROC_T_INT:
    case MUPROC_T_DOUBLE:
    case MUPROC_T_PID:
    case MUPROC_T_REF:
    case MUPROC_T_HANDLE:
      break;
    case MUPROC_T_ATOM:
      if (p->v.u == 0)
        return MUPROC_EINVAL;
      break;
    case MUPROC_T_STRING:
    case MUPROC_T_BINARY:
      if (p->v.bytes.off > nbytes || p->v.bytes.len > nbytes - p->v.bytes.off ||
          (!bytes && p->v.bytes.len))
        return MUPROC_EINVAL;
      need += (size_t)p->v.bytes.len + 1; /* each is followed by a NUL */
      if (need > MAX_BYTES)
        return MUPROC_ENOMEM;
      break;
    default:
      return MUPROC_EINVAL;
    }
  }
  return (int64_t)need;
}

int muproc_msg_new_pairs(muproc_pair_t *pairs, uint32_t npairs,
                         const void *bytes, size_t nbytes,
                         muproc_msg_t **out) {
  if (!out || (!pairs && npairs))
    return MUPROC_EINVAL;
  if (npairs > MAX_PAIRS)
    return MUPROC_ENOMEM;
  int64_t need = check_pairs(pairs, npairs, bytes, nbytes);
  if (need < 0)
    return (int)need;
  muproc_msg_t *m = muproc_msg_new(npairs, (size_t)need);
  if (!m)
    return MUPROC_ENOMEM;
  for (uint32_t i = 0; i < npairs; i++) {
    muproc_pair_t *p = &pairs[i];
    int rc = 0;
    if (p->type == MUPROC_T_STRING || p->type == MUPROC_T_BINARY) {
      const char *start = p->v.bytes.len ? (const char *)bytes + p->v.bytes.off
                                         : NULL;
      rc = put_bytes(m, p->key, p->type, start, p->v.bytes.len);
    } else if (p->type == MUPROC_T_HANDLE) {
      rc = muproc_msg_put_new_handle(m, p->key, &p->v.u);
    } else {
      /* Sized up front: append_pair can't fail here. */
      struct pair *q = append_pair(m, p->key, p->type);
      if (p->type != MUPROC_T_NIL)
        memcpy(&q->v, &p->v, sizeof q->v);
    }
    if (rc != 0) {
      muproc_msg_free(m); /* releases the handles made so far */
      return rc;
    }
  }
  *out = m;
  return 0;
}
