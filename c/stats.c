/* stats.c - the runtime's shared state and counters: what muproc_stat
 * reports, and the source of fresh references. */
#include "internal.h"

struct runtime muproc_rt;

int64_t muproc_stat(int what) {
  switch (what) {
  case MUPROC_STAT_PROCS: return atomic_load(&muproc_rt.procs);
  case MUPROC_STAT_THREADS: return atomic_load(&muproc_rt.threads);
  case MUPROC_STAT_PARKED: return atomic_load(&muproc_rt.parked);
  case MUPROC_STAT_HANDLES: return atomic_load(&muproc_rt.handles);
  case MUPROC_STAT_MESSAGES: return atomic_load(&muproc_rt.messages);
  case MUPROC_STAT_ATOMS: return atomic_load(&muproc_rt.atoms);
  case MUPROC_STAT_REGISTERED: return atomic_load(&muproc_rt.registered);
  case MUPROC_STAT_TIMERS: return atomic_load(&muproc_rt.timers);
  case MUPROC_STAT_LINKS: return atomic_load(&muproc_rt.links);
  case MUPROC_STAT_MONITORS: return atomic_load(&muproc_rt.monitors);
  case MUPROC_STAT_KEY_INDEXES: return atomic_load(&muproc_rt.key_indexes);
  default: return MUPROC_EINVAL;
  }
}

uint32_t muproc_creation(void) { return muproc_rt.creation; }

uint64_t muproc_make_ref(void) {
  return atomic_fetch_add(&muproc_rt.next_ref, 1);
}
