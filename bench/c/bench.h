/* bench.h - timing and reporting shared by the C benchmark programs.
 *
 * Every program times its loop REPS times in one process, after one
 * warm-up at a tenth of the size (not counted), and prints
 *   RESULT <bench> <variant> <median> <min> <max> <unit> n=<N> reps=<REPS>
 * on stdout, which bench/report.lisp collects. */
#ifndef MUPROC_BENCH_H
#define MUPROC_BENCH_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bench_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Print the RESULT line for the REPS figures in V (sorted in place). */
static inline void bench_report(const char *bench, const char *variant,
                                double *v, int reps, const char *unit,
                                long n) {
  qsort(v, (size_t)reps, sizeof *v, bench_cmp_double);
  double median = reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2;
  printf("RESULT %s %s %.6g %.6g %.6g %s n=%ld reps=%d\n", bench, variant,
         median, v[0], v[reps - 1], unit, n, reps);
  fflush(stdout);
}

/* A function timing one repetition of N operations; returns seconds. */
typedef double (*bench_rep_fn)(long n);

/* Warm up at N/10, then time REPS repetitions of N operations and
 * report them in UNIT: "Mmsg/s" (millions of operations per second) or
 * a "us/..." unit (microseconds per operation). */
static inline void bench_run(const char *bench, const char *variant,
                             bench_rep_fn fn, long n, int reps,
                             const char *unit) {
  int per_op = unit[0] == 'u';
  fn(n / 10 > 0 ? n / 10 : 1);
  double *v = malloc(sizeof(double) * (size_t)reps);
  for (int r = 0; r < reps; r++) {
    double s = fn(n);
    v[r] = per_op ? s * 1e6 / (double)n : (double)n / s / 1e6;
  }
  bench_report(bench, variant, v, reps, unit, n);
  free(v);
}

/* N and REPS from argv[2] and argv[3], with defaults. */
static inline void bench_args(int argc, char **argv, long *n, int *reps) {
  if (argc > 2)
    *n = atol(argv[2]);
  if (argc > 3)
    *reps = atoi(argv[3]);
  if (*n < 1 || *reps < 1) {
    fprintf(stderr, "%s: N and REPS must be positive\n", argv[0]);
    exit(2);
  }
}

#endif
