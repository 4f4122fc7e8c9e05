/* keyindex.c - a receiver's index of its queued messages by key.
 *
 * A selective receive names the keys a message must have.  Scanning the
 * queue for them costs a few nanoseconds per message skipped, and a
 * server that leaves thousands of messages queued while it waits for one
 * reply pays that on every receive (Erlang's receive does too).  Once
 * filtered scans have skipped enough to pay for it (see find in
 * mailbox.c), mailbox.c builds this index: for every key, the queued
 * messages that have it, oldest first.
 * A filtered receive then walks only the chain of the set's rarest key,
 * so a reply carrying a key the backlog lacks is found in O(1) however
 * long the queue is.  The index costs a few hash lookups per arriving
 * message while it exists; mailbox.c drops it when the queue is short
 * again.
 *
 * Everything here belongs to the receiver's thread.  Node arrays come
 * from msgpool.c, like the messages themselves. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* One per pair of an indexed message: a link in its key's chain. */
struct key_node {
  muproc_msg_t *msg;
  struct key_node *next, *prev;
  struct key_chain *chain;
};

struct key_chain {
  muproc_atom_t key; /* 0: free slot */
  uint32_t n;
  struct key_node *head, *tail;
};

static uint32_t slot_of(muproc_atom_t key, uint32_t cap) {
  return (key * 2654435761u) & (cap - 1); /* Knuth's multiplicative hash */
}

static struct key_chain *lookup(const struct key_index *ix, muproc_atom_t key) {
  for (uint32_t i = slot_of(key, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
    struct key_chain *c = &ix->chains[i];
    if (c->key == key)
      return c;
    if (c->key == 0)
      return NULL;
  }
}

/* Double the table; chains move, so their nodes' back pointers do too. */
static bool grow(struct key_index *ix) {
  uint32_t cap = ix->cap * 2;
  struct key_chain *chains = calloc(cap, sizeof *chains);
  if (!chains)
    return false;
  for (uint32_t i = 0; i < ix->cap; i++) {
    struct key_chain *old = &ix->chains[i];
    if (old->key == 0)
      continue;
    uint32_t j = slot_of(old->key, cap);
    while (chains[j].key != 0)
      j = (j + 1) & (cap - 1);
    chains[j] = *old;
    for (struct key_node *n = old->head; n; n = n->next)
      n->chain = &chains[j];
  }
  free(ix->chains);
  ix->chains = chains;
  ix->cap = cap;
  return true;
}

static struct key_chain *chain_for(struct key_index *ix, muproc_atom_t key) {
  struct key_chain *c = lookup(ix, key);
  if (c)
    return c;
  if (2 * (ix->used + 1) > ix->cap && !grow(ix))
    return NULL;
  uint32_t i = slot_of(key, ix->cap);
  while (ix->chains[i].key != 0)
    i = (i + 1) & (ix->cap - 1);
  ix->used++;
  ix->chains[i].key = key;
  return &ix->chains[i];
}

bool key_index_on(const struct key_index *ix) { return ix->chains != NULL; }

/* Index M at the end of its keys' chains.  Messages arrive in sequence
 * order, so appending keeps every chain oldest first.  On allocation
 * failure the whole index is given up (see key_index_add's caller). */
static bool add(struct key_index *ix, muproc_msg_t *m) {
  if (m->npairs == 0)
    return true;
  uint8_t cls;
  struct key_node *nodes = msgpool_alloc(m->npairs * sizeof *nodes, &cls);
  if (!nodes)
    return false;
  for (uint32_t i = 0; i < m->npairs; i++) {
    struct key_chain *c = chain_for(ix, m->pairs[i].key);
    if (!c) {
      for (uint32_t j = 0; j < i; j++) { /* undo */
        struct key_chain *cj = nodes[j].chain;
        cj->tail = nodes[j].prev;
        if (cj->tail)
          cj->tail->next = NULL;
        else
          cj->head = NULL;
        cj->n--;
      }
      msgpool_free(nodes, cls);
      return false;
    }
    struct key_node *n = &nodes[i];
    n->msg = m;
    n->chain = c;
    n->next = NULL;
    n->prev = c->tail;
    if (c->tail)
      c->tail->next = n;
    else
      c->head = n;
    c->tail = n;
    c->n++;
  }
  m->index_nodes = nodes;
  m->index_nodes_class = cls;
  return true;
}

void key_index_remove(struct key_index *ix, muproc_msg_t *m) {
  (void)ix;
  struct key_node *nodes = m->index_nodes;
  if (!nodes)
    return;
  for (uint32_t i = 0; i < m->npairs; i++) {
    struct key_node *n = &nodes[i];
    struct key_chain *c = n->chain;
    if (n->prev)
      n->prev->next = n->next;
    else
      c->head = n->next;
    if (n->next)
      n->next->prev = n->prev;
    else
      c->tail = n->prev;
    c->n--;
  }
  msgpool_free(nodes, m->index_nodes_class);
  m->index_nodes = NULL;
}

void key_index_drop(struct key_index *ix, struct msg_list *queue) {
  if (!key_index_on(ix))
    return;
  for (muproc_msg_t *m = queue->head; m; m = m->next)
    if (m->index_nodes) {
      msgpool_free(m->index_nodes, m->index_nodes_class);
      m->index_nodes = NULL;
    }
  free(ix->chains);
  ix->chains = NULL;
  ix->cap = ix->used = 0;
  atomic_fetch_sub(&muproc_rt.key_indexes, 1);
}

bool key_index_add(struct key_index *ix, struct msg_list *queue,
                   muproc_msg_t *m) {
  if (add(ix, m))
    return true;
  key_index_drop(ix, queue); /* out of memory: fall back to scanning */
  return false;
}

bool key_index_build(struct key_index *ix, struct msg_list *queue) {
  ix->cap = 64;
  ix->used = 0;
  ix->chains = calloc(ix->cap, sizeof *ix->chains);
  if (!ix->chains)
    return false;
  atomic_fetch_add(&muproc_rt.key_indexes, 1); /* on: a drop takes it back */
  for (muproc_msg_t *m = queue->head; m; m = m->next)
    if (!key_index_add(ix, queue, m))
      return false;
  return true;
}

muproc_msg_t *key_index_find(const struct key_index *ix,
                             const struct msg_list *queue,
                             const muproc_msg_t *after,
                             const uint32_t *filter) {
  uint64_t after_seq = after ? after->seq : 0;
  muproc_msg_t *best = NULL;
  const uint32_t *set = filter + 1;
  for (uint32_t s = 0; s < filter[0]; s++, set += 1 + FILTER_SET_LEN(set[0])) {
    uint32_t len = FILTER_SET_LEN(set[0]);
    const uint32_t *keys = set + 1;
    if (len == 0) { /* any message will do: the next one */
      muproc_msg_t *next = after ? after->next : queue->head;
      if (next && (!best || next->seq < best->seq))
        best = next;
      continue;
    }
    /* Walk the shortest chain among the set's keys; a key with no chain
     * means no queued message can match this set. */
    const struct key_chain *shortest = NULL;
    for (uint32_t k = 0; k < len; k++) {
      const struct key_chain *c = lookup(ix, keys[k]);
      if (!c || c->n == 0) {
        shortest = NULL;
        break;
      }
      if (!shortest || c->n < shortest->n)
        shortest = c;
    }
    if (!shortest)
      continue;
    for (const struct key_node *n = shortest->head; n; n = n->next) {
      if (best && n->msg->seq >= best->seq)
        break; /* chains are oldest first: nothing better further on */
      if (n->msg->seq > after_seq && msg_has_keys(n->msg, keys, len)) {
        best = n->msg;
        break;
      }
    }
  }
  return best;
}
