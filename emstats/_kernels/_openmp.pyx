"""What the compiled kernels were built with (OpenMP or serial)."""

cdef extern from "_omp_shim.h":
    int emstats_openmp_enabled() noexcept nogil
    int emstats_omp_max_threads() noexcept nogil


def openmp_enabled():
    """Return True when the kernels were compiled with OpenMP."""
    return bool(emstats_openmp_enabled())


def omp_max_threads():
    """Return the OpenMP runtime's default team size (1 for a serial build)."""
    return int(emstats_omp_max_threads())
