"""The data a model is fitted to, as chunks.

A model's E-step is a pure function of (parameters, one chunk) returning additive
statistics (see :mod:`emstats.em.stats`).  A :class:`Chunk` is a set of named arrays
holding whole units -- rows for independent observations, whole sequences for an
HMM, whole groups for grouped data -- plus the number of threads its kernels may
use.  :class:`ArrayData` holds in-memory arrays and cuts them into chunks at unit
boundaries; a Dask partition or a Parquet row group becomes a chunk the same way,
without touching the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """Whole units of data: named arrays with one row per observation.

    Attributes
    ----------
    arrays : mapping of str to ndarray
        The chunk's rows of each array (C-contiguous views where possible).
    start, stop : int
        The chunk's rows in the whole data set.
    bounds : ndarray of int64 or None
        Offsets of the chunk's units within the chunk (``n_units + 1`` values; rows
        ``bounds[u]:bounds[u + 1]`` form unit ``u``), or None when every row is a unit.
    n_threads : int
        Threads the chunk's kernels may use (set by whoever runs the E-step).
    """

    arrays: Mapping[str, np.ndarray]
    start: int
    stop: int
    bounds: np.ndarray | None
    n_threads: int = 1

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def unit_bounds(self) -> np.ndarray:
        """Offsets of the units within the chunk (made on demand when every row is a
        unit: the chunk keeps no vector of ``n_rows + 1`` offsets)."""
        if self.bounds is None:
            return np.arange(self.n_rows + 1, dtype=np.int64)
        return self.bounds

    @property
    def n_rows(self) -> int:
        """Number of rows in the chunk."""
        return self.stop - self.start

    @property
    def n_units(self) -> int:
        """Number of independent units in the chunk."""
        return self.n_rows if self.bounds is None else len(self.bounds) - 1


#: rows of a block of per-row temporaries (:func:`row_blocks`)
ROW_BLOCK = 65536


def row_blocks(chunk, size: int = ROW_BLOCK):
    """The chunk itself if it has at most ``size`` rows, else its arrays in consecutive
    blocks of ``size`` rows (dicts of views): for models whose chunk pieces are sums over
    rows, so that per-row temporaries stay of a fixed size.  Blocks do not respect
    units: for models whose units are rows."""
    arrays = chunk.arrays if isinstance(chunk, Chunk) else chunk
    n = next(iter(arrays.values())).shape[0]
    if n <= size:
        yield chunk
        return
    for a in range(0, n, size):
        yield {k: v[a:a + size] for k, v in arrays.items()}


def map_row_blocks(fn, chunk, size: int = ROW_BLOCK) -> list:
    """``[fn(block) for block in row_blocks(chunk, size)]``, the blocks shared among the
    chunk's ``n_threads`` Python threads when it has several (numpy's ufuncs and BLAS
    release the GIL on blocks of this size), BLAS on one thread meanwhile (the threads
    are the parallelism).  The results come back in block order, so sums over them are
    the same for any number of threads; numpy's error state of the caller applies in
    every thread."""
    blocks = list(row_blocks(chunk, size))
    n_threads = int(getattr(chunk, "n_threads", 1) or 1)
    if n_threads <= 1 or len(blocks) <= 1:
        return [fn(b) for b in blocks]
    from .._blas import single_threaded_blas

    err = np.geterr()

    def run(block):
        with np.errstate(**err):
            return fn(block)

    with single_threaded_blas():
        return list(_pool(min(n_threads, len(blocks))).map(run, blocks))


_POOLS: dict = {}


def _pool(n: int):
    """A process-wide pool of ``n`` Python threads (made once per size)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = _POOLS.get(n)
    if pool is None:
        pool = _POOLS[n] = ThreadPoolExecutor(max_workers=n,
                                              thread_name_prefix="emstats-blocks")
    return pool


def _is_constant(v) -> bool:
    """Whether ``v`` is a broadcast constant (an ndarray whose strides are all zero, e.g.
    ``np.broadcast_to(0.0, n)``): kept as it is rather than copied to n rows."""
    return (isinstance(v, np.ndarray) and v.ndim > 0 and v.size > 1
            and all(st == 0 for st in v.strides))


@dataclass(frozen=True)
class ArrayData:
    """In-memory data: named arrays of equal length, optionally grouped into units.

    Parameters
    ----------
    arrays : mapping of str to array_like
        One row per observation in each (any trailing shape); made C-contiguous, except a
        broadcast constant (all strides zero, such as ``np.broadcast_to(0.0, n)``), which
        is kept as it is (read-only, no n-row copy) for the models that read it with NumPy.
    unit_bounds : array_like of int, optional
        Row offsets of the units (``0 = b_0 < b_1 < ... < b_m = n``) for units that
        must stay together (sequences, groups); default: every row is a unit.
    """

    arrays: Mapping[str, np.ndarray]
    unit_bounds: np.ndarray | None = None
    n_rows: int = field(init=False)

    def __post_init__(self):
        arrs = {k: v if _is_constant(v) else np.ascontiguousarray(v)
                for k, v in dict(self.arrays).items()}
        lengths = {k: v.shape[0] for k, v in arrs.items() if v.ndim > 0}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"arrays of different lengths: {lengths}")
        n = next(iter(lengths.values())) if lengths else 0
        object.__setattr__(self, "arrays", arrs)
        object.__setattr__(self, "n_rows", int(n))
        if self.unit_bounds is not None:
            b = np.asarray(self.unit_bounds, dtype=np.int64)
            if b.ndim != 1 or b[0] != 0 or b[-1] != n or np.any(np.diff(b) <= 0):
                raise ValueError("unit_bounds must increase strictly from 0 to the number "
                                 "of rows")
            object.__setattr__(self, "unit_bounds", b)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def n_units(self) -> int:
        """Number of independent units."""
        return self.n_rows if self.unit_bounds is None else len(self.unit_bounds) - 1

    def _bounds(self) -> np.ndarray:
        if self.unit_bounds is None:
            return np.arange(self.n_rows + 1, dtype=np.int64)
        return self.unit_bounds

    def chunks(self, n_chunks: int = 1, n_threads: int = 1) -> list[Chunk]:
        """Cut the data into at most ``n_chunks`` chunks of whole units, of about equal rows.

        The cut depends only on the data and ``n_chunks``: statistics reduced in chunk
        order are bitwise reproducible for any ``n_threads``.
        """
        rows = self.unit_bounds is None      # every row a unit: no vector of n + 1 offsets
        b = self.unit_bounds
        m = self.n_rows if rows else len(b) - 1
        k = max(1, min(int(n_chunks), m))
        # unit boundaries closest to equal shares of the rows
        targets = np.linspace(0, self.n_rows, k + 1)
        if rows:    # searchsorted(arange(n + 1), t, side="left") is ceil(t)
            cut = np.unique(np.ceil(targets[1:-1]).astype(np.int64))
        else:
            cut = np.unique(np.searchsorted(b, targets[1:-1], side="left"))
        cut = cut[(cut > 0) & (cut < m)]
        edges = np.concatenate([[0], cut, [m]])
        out = []
        for u0, u1 in zip(edges[:-1], edges[1:], strict=True):
            if rows:
                r0, r1 = int(u0), int(u1)
                ub = None
            else:
                r0, r1 = int(b[u0]), int(b[u1])
                ub = b[u0:u1 + 1] - r0
            out.append(Chunk({name: a[r0:r1] if a.ndim else a for name, a in self.arrays.items()},
                             r0, r1, ub, int(n_threads)))
        return out

    def unit_chunks(self, chunk: Chunk) -> list[Chunk]:
        """The units of ``chunk`` (a chunk of these data) as one-unit chunks, for
        per-unit quantities such as scores."""
        u0 = int(np.searchsorted(self._bounds(), chunk.start))
        return [self.take_units([u]).chunks(1, chunk.n_threads)[0]
                for u in range(u0, u0 + chunk.n_units)]

    def take_units(self, idx) -> ArrayData:
        """The data of units ``idx`` (with repetition), e.g. for a bootstrap resample."""
        idx = np.asarray(idx, dtype=np.int64)
        if self.unit_bounds is None:
            return ArrayData({k: v[idx] if v.ndim else v for k, v in self.arrays.items()})
        b = self.unit_bounds
        rows = np.concatenate([np.arange(b[i], b[i + 1]) for i in idx])
        sizes = b[idx + 1] - b[idx]
        return ArrayData({k: v[rows] if v.ndim else v for k, v in self.arrays.items()},
                         np.concatenate([[0], np.cumsum(sizes)]))
