"""One BLAS thread while the OpenMP kernels run.

The Gaussian-mixture and HMM kernels call BLAS (``scipy.linalg.cython_blas.dgemm``) on small
blocks from inside their ``prange`` loops.  A BLAS that is itself multithreaded (OpenBLAS
with its own pthreads pool, MKL, BLIS) then starts its threads from every one of ours: on a
2-core machine the GMM E-step with d = 16, k = 8 went from 0.17 s to 3.2 s on one OpenMP
thread and to 7.8 s on two (``benchmarks/bench_gmm.py`` measures it).  The kernels therefore
run inside :func:`single_threaded_blas`, which sets every loaded BLAS to one thread through
`threadpoolctl <https://github.com/joblib/threadpoolctl>`_ and restores the previous counts
afterwards.

The guard nests and is shared by Python threads (a counter under a lock): the first entrant
sets one thread, the last one out restores, so concurrent fits never restore each other's
limit in the middle of a kernel.  Entering costs about 15 microseconds.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved: list = []
_libs: list | None = None


def _blas_controllers() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded now (found once: the kernels
    import ``scipy.linalg``, so scipy's BLAS is loaded before the first kernel runs)."""
    global _libs
    if _libs is None:
        import scipy.linalg  # noqa: F401 - load the BLAS that cython_blas calls
        from threadpoolctl import ThreadpoolController

        _libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _libs


@contextmanager
def single_threaded_blas():
    """Context manager: every loaded BLAS library runs on one thread inside it.

    Used around each compiled kernel that calls BLAS from its parallel loop; nested or
    concurrent uses share one limit.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            saved = []
            for lib in _blas_controllers():
                n = lib.get_num_threads()
                if n is not None and n != 1:
                    lib.set_num_threads(1)
                    saved.append((lib, n))
            _saved = saved
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for lib, n in _saved:
                    lib.set_num_threads(n)
                _saved = []


def blas_threads() -> list[int]:
    """Thread counts of the loaded BLAS libraries (for tests and diagnostics)."""
    return [lib.get_num_threads() for lib in _blas_controllers()]
