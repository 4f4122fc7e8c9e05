/* runtime.c - the runtime's life cycle: init and shutdown, which bring
 * up and tear down every table in order. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

muproc_atom_t atom_from, atom_reason, atom_link, atom_terminated, atom_monitor,
    atom_noproc, atom_true, atom_normal;

static int intern_runtime_atoms(void) {
  static const struct {
    muproc_atom_t *atom;
    const char *name;
  } atoms[] = {{&atom_from, "from"},       {&atom_reason, "reason"},
               {&atom_link, "link"},       {&atom_terminated, "terminated"},
               {&atom_monitor, "monitor"}, {&atom_noproc, "noproc"},
               {&atom_true, "true"},       {&atom_normal, "normal"}};
  for (size_t i = 0; i < sizeof atoms / sizeof atoms[0]; i++) {
    int64_t a = muproc_atom(atoms[i].name, strlen(atoms[i].name));
    if (a < 0)
      return (int)a;
    *atoms[i].atom = (muproc_atom_t)a;
  }
  return 0;
}
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* SBCL maps 6 regions per thread and dies outright when mmap fails, so
 * the default cap keeps the image's mappings below vm.max_map_count with
 * room left for the heap and libraries. */
#define MAPS_PER_THREAD 6
#define MAPS_RESERVED 5000
static uint32_t default_thread_cap(void) {
  long max_maps = 65530;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f) {
    if (fscanf(f, "%ld", &max_maps) != 1)
      max_maps = 65530;
    fclose(f);
  }
  long cap = (max_maps - MAPS_RESERVED) / MAPS_PER_THREAD;
  if (cap < 16)
    cap = 16;
  if (cap > 100000)
    cap = 100000;
  return (uint32_t)cap;
}

int muproc_init(uint32_t max_procs, uint32_t max_threads) {
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&muproc_rt.initialized)) {
    pthread_mutex_unlock(&init_lock);
    return 1;
  }
  static uint32_t creations;
  uint32_t creation = (uint32_t)(muproc_now_ns() / 1000000) + ++creations;
  atomic_store(&muproc_rt.procs, 0);
  atomic_store(&muproc_rt.threads, 0);
  atomic_store(&muproc_rt.parked, 0);
  atomic_store(&muproc_rt.handles, 0);
  atomic_store(&muproc_rt.messages, 0);
  atomic_store(&muproc_rt.atoms, 0);
  atomic_store(&muproc_rt.registered, 0);
  atomic_store(&muproc_rt.timers, 0);
  atomic_store(&muproc_rt.links, 0);
  atomic_store(&muproc_rt.monitors, 0);
  atomic_store(&muproc_rt.key_indexes, 0);
  atomic_store(&muproc_rt.next_ref, 1);
  atomic_store(&muproc_rt.shutting_down, 0);
  muproc_rt.creation = creation;
  int rc = atom_table_init();
  if (rc == 0 && (rc = handle_table_init()) != 0)
    atom_table_free();
  if (rc == 0 && (rc = proc_table_init(max_procs ? max_procs : 65536)) != 0) {
    handle_table_free();
    atom_table_free();
  }
  if (rc == 0 &&
      (rc = worker_init(max_threads ? max_threads : default_thread_cap())) !=
          0) {
    proc_table_free();
    handle_table_free();
    atom_table_free();
  }
  if (rc == 0) {
    /* Atoms need the initialized flag; the rest can't fail halfway. */
    atomic_store(&muproc_rt.initialized, 1);
    if ((rc = intern_runtime_atoms()) == 0 && (rc = poke_init()) == 0 &&
        (rc = timer_init()) != 0)
      poke_free();
    if (rc != 0) {
      atomic_store(&muproc_rt.initialized, 0);
      proc_table_free();
      handle_table_free();
      atom_table_free();
    }
  }
  pthread_mutex_unlock(&init_lock);
  return rc;
}

int muproc_shutdown(void) {
  pthread_mutex_lock(&init_lock);
  if (!atomic_load(&muproc_rt.initialized)) {
    pthread_mutex_unlock(&init_lock);
    return MUPROC_ENOTINIT;
  }
  if (atomic_load(&muproc_rt.procs) > 0) {
    pthread_mutex_unlock(&init_lock);
    return MUPROC_EBUSY;
  }
  int rc = worker_shutdown();
  if (rc != 0) {
    pthread_mutex_unlock(&init_lock);
    return rc;
  }
  timer_shutdown();
  poke_shutdown();
  atomic_store(&muproc_rt.initialized, 0);
  poke_free();
  proc_table_free();
  handle_table_free();
  atom_table_free();
  msgpool_release();
  pthread_mutex_unlock(&init_lock);
  return 0;
}
