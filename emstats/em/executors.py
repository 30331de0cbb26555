"""Where the E-step runs: in this process, or on the workers of a Dask cluster.

An executor maps a function over the pieces of a
:class:`~emstats.em.sources.StreamedData` and hands the model's
:class:`~emstats.em.problem.Problem` its chunks.  :class:`LocalExecutor` reads one piece
at a time in this process.  :class:`DaskExecutor` keeps the prepared chunks on the
workers (persisted when they fit in the cluster's memory, re-read from their source at
every pass otherwise); each E-step sends the (small) parameters to the workers, every
partition returns its additive statistics and log-likelihood, they are summed pairwise
on the cluster in the order of :func:`~emstats.em.stats.tree_sum`, and only the total
comes back to the client, where the M-step runs.  The engine's schemes (EM, SQUAREM,
Louis-Newton) drive these passes unchanged, and Louis' standard errors are one more
such pass.
"""

from __future__ import annotations

import uuid
import weakref

import numpy as np

from ..exceptions import DataError
from .sources import DaskPiece, LocalChunks, StreamedData, need_module


class DistributedError(RuntimeError):
    """The cluster failed during a pass (workers lost beyond what it could recompute).

    Attributes
    ----------
    last_params : object or None
        The parameters of the last pass that completed: pass them as
        ``start_params=`` to resume the fit.
    """

    def __init__(self, message: str, last_params=None):
        super().__init__(message)
        self.last_params = last_params


def combine(a, b):
    """Sum of two per-chunk results: ``(Stats or None, loglik)`` pairs or ``Stats``."""
    if isinstance(a, tuple):
        sa, sb = a[0], b[0]
        return (None if sa is None or sb is None else sa + sb), a[1] + b[1]
    return a + b


def pairwise_reduce(level, add):
    """Reduce ``level`` pairwise in the order of :func:`~emstats.em.stats.tree_sum`."""
    level = list(level)
    while len(level) > 1:
        nxt = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class LocalExecutor:
    """Pieces read and E-steps run in this process, one piece at a time."""

    def map(self, fn, pieces):
        """``[fn(piece.load(), piece) for piece in pieces]``."""
        return [fn(p.load(), p) for p in pieces]

    def chunks(self, data: StreamedData, n_threads: int):
        return LocalChunks(data, n_threads)


# -- functions run on the workers (module level: picklable by reference) -----------------

def _load(piece):
    return piece.load()


def _apply(fn, raw, piece):
    return fn(raw, piece)


def _make_chunk(data, i, raw):
    return data.chunk(i, 1, raw=raw)


def _call(model, name, params, chunk):
    return getattr(model, name)(params, chunk)


def _nbytes(chunk) -> int:
    return int(sum(np.asarray(a).nbytes for a in chunk.arrays.values()))


class DaskExecutor:
    """E-steps on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client, optional
        The cluster's client.  Default: one from ``scheduler`` (an address such as
        ``"tcp://host:8786"``), or else a ``LocalCluster`` of ``n_workers`` workers.
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:8786"``) to connect to.
    n_workers : int, optional
        Workers of the local cluster made when neither ``client`` nor ``scheduler`` is
        given (default 2); one thread each.
    processes : bool
        Whether that local cluster's workers are processes (default) or threads.
    persist : bool, optional
        Keep the prepared chunks in the workers' memory (True), re-read them from the
        source at every pass (False), or decide by size (default: persist when the
        chunks take less than half the cluster's memory limit).
    timeout : float, optional
        Seconds a pass may take before it is abandoned with a :class:`DistributedError`
        (default: no limit).  A worker lost during a pass is replaced by the cluster and
        its chunks recomputed, so the fit continues with the same result; a cluster left
        without workers would wait for them forever without a timeout.

    Notes
    -----
    A pass that fails raises :class:`DistributedError`; its ``last_params`` are the
    parameters of the last pass that completed, a valid ``start_params=`` to resume.
    """

    def __init__(self, client=None, *, scheduler: str | None = None, n_workers: int | None = None,
                 processes: bool = True, persist: bool | None = None,
                 timeout: float | None = None):
        distributed = need_module("distributed")
        self._own = None
        if client is None:
            if scheduler is not None:
                client = distributed.Client(scheduler)
            else:
                cluster = distributed.LocalCluster(
                    n_workers=int(n_workers or 2), threads_per_worker=1, processes=processes,
                    dashboard_address=":0")
                client = distributed.Client(cluster)
                self._own = cluster
        self.client = client
        self.persist = persist
        self.timeout = timeout
        self.last_params = None
        self._chunks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def close(self) -> None:
        """Close the client and the local cluster this executor made (if it made one)."""
        if self._own is not None:
            self.client.close()
            self._own.close()
            self._own = None

    def __getstate__(self):
        raise TypeError("a DaskExecutor stays on the client")

    def _raw(self, piece):
        delayed = need_module("dask").delayed
        if isinstance(piece, DaskPiece):
            return piece.delayed
        return delayed(_load, pure=True)(piece)

    def _compute(self, obj, what: str):
        distributed = need_module("distributed")
        futures = None
        try:
            futures = self.client.compute(obj)
            distributed.wait(futures, timeout=self.timeout)
            return self.client.gather(futures)
        except (distributed.scheduler.KilledWorker, distributed.client.FutureCancelledError,
                distributed.comm.core.CommClosedError, TimeoutError) as err:
            if futures is not None:
                self.client.cancel(futures)
            why = (f"not finished within timeout={self.timeout} s (no workers left?)"
                   if isinstance(err, TimeoutError) else
                   f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            raise DistributedError(
                f"the Dask cluster failed during {what} ({why}); the parameters of the last "
                "completed pass are in .last_params: pass them as start_params= to resume",
                self.last_params) from err

    def map(self, fn, pieces):
        """``[fn(raw, piece) ...]`` computed on the workers, in the order of ``pieces``."""
        delayed = need_module("dask").delayed
        tasks = [delayed(_apply, pure=True)(fn, self._raw(p), _stub(p)) for p in pieces]
        return list(self._compute(tasks, "the first pass over the data"))

    def chunks(self, data: StreamedData, n_threads: int):
        """The data's chunks on the cluster, prepared (and persisted) once per data set:
        later fits of the same model reuse them."""
        got = self._chunks.get(data)
        if got is None:
            got = self._chunks[data] = DaskChunks(self, data)
        return got

    def blocks(self, data: StreamedData, groups, n_threads: int):
        """Blocks of the data's chunks on the cluster (incremental EM), ``groups`` the
        piece indices of each."""
        chunks = self.chunks(data, n_threads)
        return [chunks.block(idx) for idx in groups]

    def cluster_memory(self) -> float:
        """Sum of the workers' memory limits in bytes (inf when unlimited)."""
        workers = self.client.scheduler_info().get("workers", {}).values()
        lim = [w.get("memory_limit") or 0 for w in workers]
        return float("inf") if not lim or min(lim) == 0 else float(sum(lim))


def _stub(piece):
    """A piece without its dask graph (what a worker needs for labels and sizes)."""
    if isinstance(piece, DaskPiece):
        return DaskPiece(None, piece.index, piece.n_rows)
    return piece


class DaskChunks:
    """The chunks of a :class:`StreamedData` on a Dask cluster, for one fit."""

    def __init__(self, executor: DaskExecutor, data: StreamedData):
        dask = need_module("dask")
        self.executor = executor       # no reference to data: the executor's cache is
        light = StreamedData([_stub(p) for p in data.pieces], data.prepare, data.piece_rows,
                             data.piece_units)
        light.executor = None          # keyed weakly by it
        self._light = dask.delayed(light, pure=False, traverse=False)
        tasks = [dask.delayed(_make_chunk, pure=True)(self._light, i, executor._raw(p))
                 for i, p in enumerate(data.pieces)]
        persist = executor.persist
        if persist is None:
            first = data.chunk(0)
            need = _nbytes(first) * data.n_rows / max(first.n_rows, 1)
            persist = need < 0.5 * executor.cluster_memory()
        self.persisted = bool(persist)
        self._tasks = executor.client.persist(tasks) if persist else tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self):
        raise DataError("the chunks of a Dask fit live on the workers; the E-step reaches "
                        "them through map_reduce")

    def map_reduce(self, model, name: str, params):
        """``getattr(model, name)(params, chunk)`` on every chunk, summed pairwise on the
        cluster (:func:`combine`); the total."""
        return _map_reduce(self.executor, self._tasks, model, name, params)

    def block(self, index) -> DaskBlock:
        """The chunks ``index`` as a block (incremental EM)."""
        return DaskBlock(self.executor, [self._tasks[int(i)] for i in index])


class DaskBlock:
    """Some chunks of a :class:`DaskChunks` (a block of incremental EM)."""

    def __init__(self, executor: DaskExecutor, tasks):
        self.executor, self._tasks = executor, tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def map_reduce(self, model, name: str, params):
        """As :meth:`DaskChunks.map_reduce`, over the block's chunks."""
        return _map_reduce(self.executor, self._tasks, model, name, params)


def _map_reduce(executor: DaskExecutor, tasks, model, name: str, params):
    dask = need_module("dask")
    m = dask.delayed(model, pure=False, traverse=False,
                     name=f"emstats-model-{uuid.uuid4().hex}")
    p = dask.delayed(params, pure=False, traverse=False,
                     name=f"emstats-params-{uuid.uuid4().hex}")
    parts = [dask.delayed(_call, pure=True)(m, name, p, c) for c in tasks]
    root = pairwise_reduce(parts, lambda a, b: dask.delayed(combine, pure=True)(a, b))
    out = executor._compute(root, f"a pass of {name}")
    executor.last_params = params
    return out
