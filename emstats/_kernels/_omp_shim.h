/* Access to the OpenMP runtime that compiles with or without OpenMP. */
#ifndef EMSTATS_OMP_SHIM_H
#define EMSTATS_OMP_SHIM_H
#ifdef _OPENMP
#include <omp.h>
static int emstats_openmp_enabled(void) { return 1; }
static int emstats_omp_max_threads(void) { return omp_get_max_threads(); }
#else
static int emstats_openmp_enabled(void) { return 0; }
static int emstats_omp_max_threads(void) { return 1; }
#endif
#endif
