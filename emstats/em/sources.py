"""Data that are read piece by piece: Parquet row groups and Dask partitions.

A model fitted out of core sees its data as a :class:`StreamedData`: an ordered list
of *pieces* (a row group of a Parquet file, a partition of a ``dask.dataframe`` or
``dask.array``), each turned into a :class:`~emstats.em.data.Chunk` of whole units by a
model-specific ``prepare`` function when an E-step needs it.  Only one piece is in
memory at a time in this process; on a Dask cluster the pieces live on the workers
(:mod:`emstats.em.executors`).

Reading needs ``pyarrow`` (Parquet) or ``dask`` (collections), imported only here and
only when such data are used: everything else in emstats works without them.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import DataError
from .data import Chunk


def need_module(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(f"out-of-core fits need {module.split('.')[0]}: "
                          'pip install "emstats[dask]"') from None


# -- pieces ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ParquetPiece:
    """One row group of one Parquet file, read with pyarrow."""

    path: str
    row_group: int
    n_rows: int
    columns: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.path} (row group {self.row_group})"

    def load(self):
        """The row group as a pandas DataFrame (only ``columns`` when set)."""
        pq = need_module("pyarrow.parquet")
        try:
            table = pq.ParquetFile(self.path).read_row_group(
                self.row_group, columns=list(self.columns) if self.columns else None)
        except Exception as err:  # noqa: BLE001 - arrow raises many kinds
            raise DataError(f"cannot read {self.label}: {_first_line(err)}") from None
        return table.to_pandas()


@dataclass(frozen=True)
class DaskPiece:
    """One partition of a dask collection (a ``dask.delayed`` object)."""

    delayed: Any
    index: int
    n_rows: int | None = None

    @property
    def label(self) -> str:
        return f"partition {self.index}"

    def load(self):
        """The partition computed in this process (a DataFrame or an ndarray)."""
        return self.delayed.compute(scheduler="sync")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def parquet_paths(spec) -> list[str]:
    """File paths from a path, a glob pattern, a directory or a list of them, in order."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[str] = []
    for item in items:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "*.parquet")))
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
        else:
            if not os.path.exists(item):
                raise DataError(f"Parquet file {item!r} does not exist")
            found = [item]
        if not found:
            raise DataError(f"no Parquet files match {item!r}")
        out.extend(found)
    return out


def parquet_pieces(spec, columns: Sequence[str] | None = None) -> list[ParquetPiece]:
    """The row groups of Parquet files, after checking that every file is readable and
    has the schema of the first (a :class:`DataError` naming the file otherwise)."""
    pq = need_module("pyarrow.parquet")
    paths = parquet_paths(spec)
    pieces: list[ParquetPiece] = []
    first = None
    cols = tuple(columns) if columns is not None else None
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
            schema = pf.schema_arrow
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{path} is not a readable Parquet file: {_first_line(err)}") from None
        if first is None:
            first = (path, schema)
            if cols is not None:
                missing = [c for c in cols if c not in schema.names]
                if missing:
                    raise DataError(f"{path} has no column(s) {', '.join(map(repr, missing))} "
                                    f"(columns: {', '.join(schema.names)})")
        else:
            ref_path, ref = first
            names = cols if cols is not None else tuple(ref.names)
            diffs = []
            for c in names:
                if c not in schema.names:
                    diffs.append(f"{c!r} is missing")
                elif not schema.field(c).type.equals(ref.field(c).type):
                    diffs.append(f"{c!r} is {schema.field(c).type}, not {ref.field(c).type}")
            if cols is None:
                diffs += [f"{c!r} is extra" for c in schema.names if c not in ref.names]
            if diffs:
                raise DataError(f"{path} does not have the schema of {ref_path}: "
                                + "; ".join(diffs))
        md = pf.metadata
        for g in range(md.num_row_groups):
            nr = md.row_group(g).num_rows
            if nr > 0:
                pieces.append(ParquetPiece(path, g, int(nr), cols))
    if not pieces:
        raise DataError(f"the Parquet file(s) {', '.join(paths)} hold no rows")
    return pieces


def is_dask_collection(obj) -> bool:
    """Whether ``obj`` is a dask array or dataframe (without importing dask)."""
    mod = type(obj).__module__ or ""
    return mod.startswith("dask") and hasattr(obj, "to_delayed")


def dask_pieces(obj) -> list[DaskPiece]:
    """The partitions of a ``dask.dataframe`` (or Series) or of a ``dask.array`` (rows
    split along the first axis only; the columns are rechunked into one block)."""
    if hasattr(obj, "divisions"):        # a dask dataframe or series
        parts = obj.to_delayed()
        return [DaskPiece(p, i) for i, p in enumerate(parts)]
    if obj.ndim == 1:
        obj = obj[:, None]
    if obj.ndim != 2:
        raise DataError(f"a dask array must be 2-dimensional (rows x variables), got "
                        f"{obj.ndim} dimensions")
    if len(obj.chunks[1]) > 1:
        obj = obj.rechunk({1: -1})
    grid = obj.to_delayed()
    return [DaskPiece(grid[i, 0], i, int(n)) for i, n in enumerate(obj.chunks[0])]


def pieces_of(data, columns: Sequence[str] | None = None) -> list | None:
    """The pieces of out-of-core data (Parquet path(s) or a dask collection), or None
    for in-memory data."""
    if isinstance(data, (str, os.PathLike)):
        return parquet_pieces(data, columns)
    if isinstance(data, (list, tuple)) and data and all(
            isinstance(x, (str, os.PathLike)) for x in data):
        return parquet_pieces(data, columns)
    if is_dask_collection(data):
        if columns is not None and hasattr(data, "columns"):
            data = data[list(columns)]
        return dask_pieces(data)
    return None


# -- the data of a model ----------------------------------------------------------------

class StreamedData:
    """A model's data as pieces prepared into chunks on demand.

    Parameters
    ----------
    pieces : list
        :class:`ParquetPiece` or :class:`DaskPiece` objects, in row order.
    prepare : callable
        ``prepare(raw, piece) -> (arrays, unit_bounds or None)``: the model's arrays of
        one piece (rows dropped for missing values already removed).  Must be picklable
        for a Dask cluster.
    n_rows : list of int
        Rows of each piece after ``prepare`` (from the model's first pass).
    n_units : list of int, optional
        Units of each piece (default: one per row).
    executor : optional
        Where the pieces are read and the E-steps run (default: this process, one piece
        at a time; see :mod:`emstats.em.executors`).
    """

    def __init__(self, pieces, prepare: Callable, n_rows, n_units=None, executor=None):
        from .executors import LocalExecutor

        self.pieces = list(pieces)
        self.prepare = prepare
        self.piece_rows = np.asarray(n_rows, dtype=np.int64)
        self.piece_units = (self.piece_rows.copy() if n_units is None
                            else np.asarray(n_units, dtype=np.int64))
        self.offsets = np.concatenate([[0], np.cumsum(self.piece_rows)])
        self.executor = executor if executor is not None else LocalExecutor()

    @property
    def n_rows(self) -> int:
        """Rows over all pieces."""
        return int(self.offsets[-1])

    @property
    def n_units(self) -> int:
        """Independent units over all pieces."""
        return int(self.piece_units.sum())

    def __getitem__(self, name):
        raise DataError(f"the data of an out-of-core model are not in memory (asked for "
                        f"{name!r}); pass new data explicitly")

    def chunk(self, i: int, n_threads: int = 1, raw=None) -> Chunk:
        """Piece ``i`` read (unless ``raw`` is given) and prepared as a chunk."""
        piece = self.pieces[i]
        arrays, bounds = self.prepare(piece.load() if raw is None else raw, piece)
        n = int(self.piece_rows[i])
        first = next((a for a in arrays.values() if np.ndim(a) > 0), None)
        if first is not None and first.shape[0] != n:
            raise DataError(f"{piece.label} changed since it was first read: {first.shape[0]} "
                            f"rows instead of {n}")
        if bounds is None:
            bounds = np.arange(n + 1, dtype=np.int64)
        r0 = int(self.offsets[i])
        return Chunk(arrays, r0, r0 + n, np.asarray(bounds, dtype=np.int64), int(n_threads))

    def unit_chunks(self, chunk: Chunk) -> list[Chunk]:
        """The units of ``chunk`` as one-unit chunks (for per-unit scores); the arrays
        are cut along their rows, or by ``prepare.unit_arrays(arrays, r0, r1)`` when the
        model's pieces have arrays of another layout."""
        cut = getattr(self.prepare, "unit_arrays", None)
        b = chunk.unit_bounds
        out = []
        for u in range(chunk.n_units):
            r0, r1 = int(b[u]), int(b[u + 1])
            arrays = (cut(chunk.arrays, r0, r1) if cut is not None else
                      {k: a[r0:r1] if np.ndim(a) else a for k, a in chunk.arrays.items()})
            out.append(Chunk(arrays, chunk.start + r0, chunk.start + r1,
                             np.array([0, r1 - r0], dtype=np.int64), chunk.n_threads))
        return out

    def block_pieces(self, n_blocks: int) -> list[np.ndarray]:
        """The pieces cut into at most ``n_blocks`` contiguous blocks of about equal rows
        (the rule of :meth:`~emstats.em.data.ArrayData.chunks`, at piece boundaries)."""
        m = len(self.pieces)
        k = max(1, min(int(n_blocks), m))
        targets = np.linspace(0, self.n_rows, k + 1)
        cut = np.unique(np.searchsorted(self.offsets, targets[1:-1], side="left"))
        cut = cut[(cut > 0) & (cut < m)]
        edges = np.concatenate([[0], cut, [m]])
        return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def blocks(self, n_blocks: int, n_threads: int = 1) -> list:
        """Blocks of pieces for incremental EM: each has ``map_reduce(model, name, params)``,
        the sum of ``getattr(model, name)(params, chunk)`` over its pieces, run where the
        executor runs passes."""
        make = getattr(self.executor, "blocks", None)
        groups = self.block_pieces(n_blocks)
        if make is not None:
            return make(self, groups, n_threads)
        return [LocalBlock(self, idx, n_threads) for idx in groups]

    def chunks(self, n_chunks: int = 1, n_threads: int = 1):
        """One chunk per piece (``n_chunks`` is ignored: the pieces are the chunks),
        produced lazily by the executor."""
        return self.executor.chunks(self, n_threads)

    def __getstate__(self):
        # what a worker needs to prepare pieces; never the executor (a client)
        d = self.__dict__.copy()
        d["executor"] = None
        d["pieces"] = [DaskPiece(None, p.index, p.n_rows) if isinstance(p, DaskPiece) else p
                       for p in self.pieces]
        return d

    def __setstate__(self, state):
        from .executors import LocalExecutor

        self.__dict__.update(state)
        if self.executor is None:
            self.executor = LocalExecutor()


class LocalChunks(Sequence):
    """The chunks of a :class:`StreamedData`, each read when it is used (so a pass over
    them holds one piece in memory)."""

    def __init__(self, data: StreamedData, n_threads: int):
        self.data = data
        self.n_threads = int(n_threads)

    def __len__(self) -> int:
        return len(self.data.pieces)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.data.chunk(i, self.n_threads)

    def __iter__(self):
        for i in range(len(self)):
            yield self.data.chunk(i, self.n_threads)


class LocalBlock:
    """Pieces ``index`` of a :class:`StreamedData`, read one at a time when used."""

    def __init__(self, data: StreamedData, index, n_threads: int = 1):
        self.data, self.index, self.n_threads = data, np.asarray(index), int(n_threads)

    def map_reduce(self, model, name: str, params):
        """``getattr(model, name)(params, chunk)`` summed over the block's pieces (pairwise,
        in piece order)."""
        from .executors import combine, pairwise_reduce

        parts = [getattr(model, name)(params, self.data.chunk(int(i), self.n_threads))
                 for i in self.index]
        return pairwise_reduce(parts, combine)
