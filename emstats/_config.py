"""Build and runtime configuration: OpenMP and thread counts."""

from __future__ import annotations

import os
import platform
import sys
from contextlib import contextmanager
from contextvars import ContextVar


def available_cores() -> int:
    """Cores this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(n_threads: int | None) -> int:
    """Threads for a kernel: the argument, else ``OMP_NUM_THREADS``, else all cores.

    A serial build always uses one thread.
    """
    from ._kernels._openmp import openmp_enabled

    if not openmp_enabled():
        return 1
    if n_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        if env:
            try:
                return max(1, int(env))
            except ValueError:
                pass
        return available_cores()
    if isinstance(n_threads, bool) or int(n_threads) != n_threads:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    n = int(n_threads)
    if n < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return n


#: default ceiling on the memory of an information matrix and its partial sums (bytes)
DEFAULT_MAX_INFO_BYTES = 2 * 2**30


def information_memory_limit() -> int:
    """Most bytes a model may allocate for its observed information (Louis' pieces).

    ``EMSTATS_MAX_INFO_BYTES`` if set, else the smaller of 2 GiB and a quarter of the
    physical memory.  A fit whose standard errors would need more skips them with a
    warning (``cov_type=None``); a Newton fit, which needs them at every step, stops
    with :class:`~emstats.exceptions.InformationTooLargeError`.
    """
    env = os.environ.get("EMSTATS_MAX_INFO_BYTES", "").strip()
    if env:
        try:
            return max(0, int(float(env)))
        except ValueError:
            pass
    limit = DEFAULT_MAX_INFO_BYTES
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = min(limit, phys // 4)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        pass
    return int(limit)


def show_config(file=None) -> dict:
    """Print and return how emstats was built and what it will use at run time.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default: standard output).

    Returns
    -------
    dict
        Keys ``version``, ``openmp``, ``default_threads``, ``cores``, ``python``,
        ``numpy``, ``scipy``, ``platform``.
    """
    import numpy
    import scipy

    from . import __version__
    from ._kernels._openmp import omp_max_threads, openmp_enabled

    info = {
        "version": __version__,
        "openmp": bool(openmp_enabled()),
        "omp_max_threads": int(omp_max_threads()),
        "default_threads": resolve_threads(None),
        "cores": available_cores(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }
    out = file or sys.stdout
    print(f"emstats {info['version']}", file=out)
    print(
        "  kernels: "
        + ("OpenMP (parallel)" if info["openmp"] else "serial (built without OpenMP)"),
        file=out,
    )
    for key in ("default_threads", "cores", "python", "numpy", "scipy", "platform"):
        print(f"  {key}: {info[key]}", file=out)
    return info


#: rows of work below which an extra thread costs more (start-up, spinning between parallel
#: regions, on a busy machine above all) than it saves.  A heuristic, not a tuned constant:
#: issue 16 measured a 601-row Tobit at 0.21 s on one thread and 1.7 s on two under load,
#: and the kernels' rows cost roughly 50-500 ns, so 20,000 rows are a few milliseconds
ROWS_PER_THREAD = 20_000


def threads_for_work(n_threads: int | None, n_rows: int) -> int:
    """Threads for a fit over ``n_rows`` rows: the user's number when given, otherwise the
    default (:func:`resolve_threads`) capped so that each thread gets at least
    ``ROWS_PER_THREAD`` rows -- small problems run on one thread."""
    if n_threads is not None:
        return resolve_threads(n_threads)
    return max(1, min(resolve_threads(None), int(n_rows) // ROWS_PER_THREAD))



#: the ``n_threads`` of the fit running in this context (None: the default), for the code a
#: fit calls that has no ``n_threads`` argument of its own (the k-means starts)
_fit_threads: ContextVar[int | None] = ContextVar("emstats_fit_threads", default=None)


@contextmanager
def fit_threads(n_threads: int | None):
    """Context manager: ``n_threads`` is the thread count asked for by the fit inside it
    (:func:`requested_threads`); contexts nest, and each Python thread has its own."""
    token = _fit_threads.set(n_threads)
    try:
        yield
    finally:
        _fit_threads.reset(token)


def requested_threads() -> int | None:
    """The ``n_threads`` of the fit running in this context, or None (the default)."""
    return _fit_threads.get()
