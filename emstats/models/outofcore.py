"""Models fitted to data that are read piece by piece: Parquet files and Dask collections.

Each builder here makes the model of the in-memory API on a
:class:`~emstats.em.sources.StreamedData`: a first pass over the pieces computes the
model's data constants (sums, cross-products, counts: additive, so the pass runs on the
executor like an E-step), a sample of the first rows gives the starting values where the
model needs rows for them (k-means++ for a mixture), and every E-step then reads (or, on
a cluster, finds persisted) one piece at a time.  Formulas are built per piece from one
design information fixed by a first pass (:func:`emstats.formula.incremental_design_info`:
categorical levels and stateful transforms see every piece).

The models are the in-memory classes with their data replaced: the same E-step, M-step
and Louis pieces, the same results.  What needs the rows themselves in memory
(predictions without new data, a bootstrap, simulated E-steps, an initial partition)
says so with a :class:`~emstats.exceptions.DataError`.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..components.gaussian_data import prepare_data
from ..em.executors import DaskExecutor, LocalExecutor
from ..em.sources import StreamedData, pieces_of
from ..em.stats import Stats, tree_sum
from ..exceptions import DataError
from ..formula import (
    build_design,
    check_frame,
    design_rows,
    incremental_design_info,
    pack_design,
    split_formula,
    split_two_part,
    unpack_design,
)
from .censored import IntervalRegression, Tobit, check_rows, tobit_bounds
from .gmm import GaussianMixture, map_log_responsibility_of
from .hmm import HiddenMarkovModel
from .mixreg import MixtureRegression, MixtureRegressionResults, constant_response, log_softmax
from .mvn import MVN, row_scores
from .zeroinfl import HurdleRegression, ZeroInflatedRegression

__all__ = ["as_executor", "gmm", "hmm", "hurdle", "intreg", "mixreg", "mvn", "tobit",
           "zeroinfl"]


def as_executor(executor):
    """An executor from ``None`` (this process), ``"local"``, a ``distributed.Client`` or
    an executor object.

    Parameters
    ----------
    executor : None, "local", distributed.Client or executor
        Where the passes over the data run.

    Returns
    -------
    executor
    """
    if executor is None or executor == "local":
        return LocalExecutor()
    if hasattr(executor, "map") and hasattr(executor, "chunks"):
        return executor
    if type(executor).__name__ == "Client":
        return DaskExecutor(executor)
    raise TypeError(f"executor must be None, 'local', a distributed.Client or an executor, "
                    f"got {executor!r}")


def _pieces(data, columns=None):
    pieces = pieces_of(data, columns)
    if pieces is None:
        raise TypeError("out-of-core data are a Parquet path, a glob pattern, a list of paths, "
                        f"a dask.dataframe or a dask.array; got {type(data).__name__}")
    return pieces


def _labelled(fn):
    """Run ``fn(raw, piece)``; a DataError names the piece (file and row group)."""
    def run(self, raw, piece, **kw):
        try:
            return fn(self, raw, piece, **kw)
        except DataError as err:
            raise DataError(f"{piece.label}: {err}") from None
    return run


def _frames(pieces):
    def make():
        return (p.load() for p in pieces)
    return make


class _Portable:
    """Pickled with its formula's design information packed (patsy's objects refuse
    pickling), so that Dask workers build the same design."""

    def __getstate__(self):
        d = self.__dict__.copy()
        if d.get("design_info") is not None:
            d["design_info"] = pack_design(d["design_info"])
        return d

    def __setstate__(self, state):
        if isinstance(state.get("design_info"), bytes):
            state["design_info"] = unpack_design(state["design_info"])
        self.__dict__.update(state)


# -- Gaussian mixtures ------------------------------------------------------------------

class _GaussianPieces(_Portable):
    """The rows of a Gaussian model from a piece: columns, a formula's design, or an
    array's rows; infinite values are an error, NaN an error or dropped."""

    def __init__(self, columns, design_info, missing):
        self.columns = None if columns is None else list(columns)
        self.design_info = design_info
        self.missing = missing

    def _fast(self, raw):
        """(X, XT) of a frame of float64 columns without missing or infinite values, with
        one copy (XT, the kernels' layout; X is its transpose, a view), else None."""
        if self.design_info is not None or not isinstance(raw, pd.DataFrame):
            return None
        frame = raw if self.columns is None else raw[self.columns]
        if len(frame) == 0 or not all(dt == np.float64 for dt in frame.dtypes):
            return None
        XT = np.ascontiguousarray(frame.to_numpy().T)
        if not np.isfinite(XT).all():
            return None              # the general path names the rows
        return XT.T, XT

    @_labelled
    def matrix(self, raw, piece, positions: bool = False):
        """(X, rows dropped), and with ``positions`` the rows kept (positions in ``raw``)."""
        fast = self._fast(raw)
        if fast is not None:
            return (fast[0], 0, np.arange(len(raw))) if positions else (fast[0], 0)
        if isinstance(raw, (pd.DataFrame, pd.Series)):
            if self.design_info is not None:
                obj = design_rows(self.design_info, raw)     # a row for every row
            else:
                obj = raw if self.columns is None else raw[self.columns]
        else:
            obj = np.asarray(raw)
        X, _, labels, n_drop, _ = prepare_data(obj, None, self.missing)
        if not positions:
            return X, n_drop
        pos = (obj.index.get_indexer(labels) if isinstance(obj, (pd.DataFrame, pd.Series))
               else np.asarray(labels))
        return X, n_drop, pos

    def __call__(self, raw, piece):
        keep = getattr(self, "keep_positions", False)
        fast = None if keep else self._fast(raw)
        if fast is not None:
            return {"X": fast[0], "XT": fast[1]}, None
        out = self.matrix(raw, piece, positions=keep)
        arrays = {"X": out[0], "XT": np.ascontiguousarray(out[0].T)}
        if keep:
            arrays["__pos"] = out[2]
        return arrays, None

    @staticmethod
    def unit_arrays(arrays, r0, r1):
        """The arrays of rows r0:r1 (``XT`` is the transpose of ``X``)."""
        out = {k: a[r0:r1] for k, a in arrays.items() if k != "XT"}
        out["XT"] = np.ascontiguousarray(out["X"].T)
        return out


class _GaussianScan:
    """First pass: rows, rows dropped, and the sums of x - c0 and (x - c0)(x - c0)'."""

    def __init__(self, rows: _GaussianPieces, c0):
        self.rows, self.c0 = rows, c0

    def __call__(self, raw, piece):
        X, n_drop = self.rows.matrix(raw, piece)
        e = X - self.c0
        return X.shape[0], n_drop, e.sum(axis=0), e.T @ e


# -- robust and clustered standard errors: the sandwich's meat by one more pass ------------------

class _ClusterSums:
    """Scores summed per cluster over some chunks; adding two concatenates them (the
    client sums each cluster's rows at the end, so a cluster may span pieces)."""

    def __init__(self, ids, sums):
        self.ids, self.sums = ids, sums

    def __add__(self, other):
        return _ClusterSums(np.concatenate([self.ids, other.ids]),
                            np.vstack([self.sums, other.sums]))

    def meat(self) -> tuple[np.ndarray, int]:
        """sum_g s_g s_g' and the number of clusters G."""
        codes, levels = pd.factorize(self.ids, sort=False)
        tot = np.zeros((len(levels), self.sums.shape[1]))
        np.add.at(tot, codes, self.sums)
        return tot.T @ tot, len(levels)


def _cluster_sums(ids, scores) -> _ClusterSums:
    codes, levels = pd.factorize(ids, sort=False)
    sums = np.zeros((len(levels), scores.shape[1]))
    np.add.at(sums, codes, scores)
    return _ClusterSums(np.asarray(levels, dtype=object), sums)


class _ClusterRows:
    """A model's piece preparation whose chunks also carry each row's cluster (the values
    of ``column`` in the rows kept)."""

    def __init__(self, prepare, column: str):
        self.prepare, self.column = prepare, column
        self.unit_arrays = getattr(prepare, "unit_arrays", None)

    def __call__(self, raw, piece):
        arrays, bounds = self.prepare(raw, piece)
        pos = arrays.pop("__pos")
        if not isinstance(raw, pd.DataFrame) or self.column not in raw.columns:
            raise DataError(f"{piece.label}: no column {self.column!r} (the clusters, "
                            "groups= of cov_type='cluster')")
        ids = raw[self.column].to_numpy()[pos]
        bad = pd.isna(ids)
        if bad.any():
            raise DataError(f"{piece.label}: the cluster column {self.column!r} has "
                            f"{int(bad.sum())} missing value(s) in the estimation rows")
        arrays["__cluster"] = ids
        return arrays, bounds


def _chunk_weights(model, chunk):
    """Frequency weight of each unit of the chunk, for the models whose in-memory sandwich
    uses them (``unit_weights``), else None."""
    from ..em.protocol import ChunkedModel

    own = getattr(type(model), "unit_weights", ChunkedModel.unit_weights)
    if own is ChunkedModel.unit_weights or "w" not in chunk.arrays:
        return None
    return np.asarray(chunk["w"])[chunk.unit_bounds[:-1]]


class _OutOfCoreSandwich:
    """``cov_type="robust"`` and ``"cluster"`` out of core: the meat of the sandwich,
    sum_u s_u s_u' / w_u or sum_g s_g s_g', from the units' scores by one more pass over
    the pieces (on the executor); with clusters (``groups=`` a column name of the data)
    each piece returns its clusters' summed scores, so a cluster may span pieces."""

    def chunk_meat(self, params, chunk) -> Stats:
        """sum_u s_u s_u' / w_u over the chunk's units and their number."""
        S = np.asarray(self.chunk_scores(params, chunk), dtype=float)
        w = _chunk_weights(self, chunk)
        if w is not None:
            meat = (S / np.where(w > 0, w, 1.0)[:, None]).T @ S
        else:
            meat = S.T @ S
        return Stats(meat=meat, n=float(S.shape[0]))

    def chunk_cluster_sums(self, params, chunk) -> _ClusterSums:
        """The chunk's units' scores summed by cluster."""
        S = np.asarray(self.chunk_scores(params, chunk), dtype=float)
        ids = chunk["__cluster"]
        b = chunk.unit_bounds
        per_unit = ids[b[:-1]]
        if per_unit.size != ids.size and not np.array_equal(np.repeat(per_unit, np.diff(b)),
                                                            ids):
            raise DataError("groups must be constant within each unit of the model (a "
                            "sequence, a group): a cluster holds whole units")
        return _cluster_sums(per_unit, S)

    def _clustered(self, column: str):
        """This model with pieces whose chunks carry the cluster column."""
        import copy
        import dataclasses

        from ..em.sources import ParquetPiece

        data = self.data
        rows = copy.copy(data.prepare)
        rows.keep_positions = True
        if isinstance(rows, _GaussianPieces) and rows.columns is None \
                and rows.design_info is None:
            rows.columns = [c for c in check_frame(data.pieces[0].load()).columns]
        pieces = [dataclasses.replace(p, columns=tuple(p.columns) + (column,))
                  if isinstance(p, ParquetPiece) and p.columns is not None
                  and column not in p.columns else p for p in data.pieces]
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.data = StreamedData(pieces, _ClusterRows(rows, column), data.piece_rows,
                                data.piece_units, executor=data.executor)
        return out

    def sandwich_meat(self, params, groups):
        """(meat, units, clusters) of the robust (``groups`` None) or clustered sandwich."""
        if groups is None:
            tot = _reduce_pass(self, "chunk_meat", params)
            return np.asarray(tot["meat"]), int(tot["n"]), int(tot["n"])
        if not isinstance(groups, str):
            raise DataError("out of core, groups= of cov_type='cluster' is a column name of "
                            "the data (the clusters are read with the rows), got "
                            f"{type(groups).__name__}")
        meat, n_groups = _reduce_pass(self._clustered(groups), "chunk_cluster_sums",
                                      params).meat()
        return meat, int(self.data.n_units), n_groups


class StreamedGaussianMixture(_OutOfCoreSandwich, GaussianMixture):
    """A :class:`~emstats.models.gmm.GaussianMixture` whose rows are read piece by piece
    (build it with :func:`gmm`).  Starting values come from a sample of the first rows
    (``sample_rows``); everything else is the in-memory model's."""

    X = property(lambda self: self.data["X"])
    XT = property(lambda self: self.data["XT"])

    def __init__(self, sample: GaussianMixture, data: StreamedData, centre, var, n_dropped):
        state = {k: v for k, v in sample.__dict__.items() if k not in ("X", "XT", "data")}
        self.__dict__.update(state)
        self._sample = sample
        self.data = data
        self.n = data.n_rows
        self.nobs = float(self.n)
        self.centre = np.asarray(centre, dtype=float)
        self._data_var = np.asarray(var, dtype=float)
        self._floor = 1e-10 * float(np.mean(self._data_var))
        self.row_labels = pd.RangeIndex(self.n)
        self.n_dropped = int(n_dropped)

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("_sample", None)      # the sample stays on the client (starts only)
        d["design_info"] = None     # for new data, on the client
        return d

    def initial_starts(self, init, n_init: int, rng: np.random.Generator):
        """Starts from the sample of the first rows (``init`` "kmeans++" or "random")."""
        if init is not None and not isinstance(init, str):
            raise DataError("an initial partition or responsibilities need the rows in memory; "
                            "out of core, use init='kmeans++', 'random' or start_params=")
        return self._sample.initial_starts(init, n_init, rng)

    def sample_stats(self, params, rng, size):
        raise DataError("simulated E-steps (method='mcem'/'stochastic') need the rows in "
                        "memory; out of core, use method='em', 'squarem' or 'newton'")

    def chunk_map_log_responsibility(self, params, chunk) -> Stats:
        """sum log r_i,MAP over the chunk's rows (ICL's classification term)."""
        out = self._chunk_pass(params, chunk, want_resp=True)
        if out is None:
            raise FloatingPointError("invalid parameters")
        return Stats(s=map_log_responsibility_of(out[5]))

    def map_log_responsibility(self, params) -> float:
        """ICL's classification term by one more pass over the pieces."""
        return float(_reduce_pass(self, "chunk_map_log_responsibility", params)["s"])


def _reduce_pass(model, name: str, params):
    """``getattr(model, name)(params, chunk)`` summed over the model's chunks, wherever
    they are (this process or a cluster)."""
    chunks = model.data.chunks()
    distributed = getattr(chunks, "map_reduce", None)
    if distributed is not None:
        return distributed(model, name, params)
    return tree_sum(getattr(model, name)(params, ch) for ch in chunks)


def gmm(data, k, covariance: str = "VVV", *, columns=None, formula: str | None = None,
        reg_covar: float = 0.0, missing: str = "raise", sample_rows: int = 100_000,
        executor=None) -> StreamedGaussianMixture:
    """A Gaussian mixture of data read piece by piece.

    Parameters
    ----------
    data : str, path, list of paths, dask.dataframe or dask.array
        Parquet file(s) (a path, a glob pattern such as ``"data/*.parquet"``, a
        directory, or a list), read row group by row group; or a dask collection,
        read partition by partition.
    k, covariance, reg_covar, missing :
        As for :class:`~emstats.models.gmm.GaussianMixture`.
    columns : list of str, optional
        The variables (default: every column).
    formula : str, optional
        A one-sided formula of numeric terms (``"~ x + np.log(y)"``) instead of
        ``columns``.
    sample_rows : int
        Rows read from the first pieces for the starting values (k-means++).
    executor : None, "local", distributed.Client or executor
        Where the passes run: this process, one piece at a time (default), or a Dask
        cluster (:class:`~emstats.em.executors.DaskExecutor`).

    Returns
    -------
    StreamedGaussianMixture
        Fit it with ``.fit()`` (the options of the in-memory model).

    Notes
    -----
    The first pass computes the number of rows, the column means (the centre of the
    E-step's natural statistics) and variances.  With ``sample_rows`` at least the
    number of rows, the starts are those of the in-memory model, and so is the fit.
    """
    ex = as_executor(executor)
    if columns is not None and formula is not None:
        raise ValueError("pass columns= or formula=, not both")
    read_cols = list(columns) if columns is not None else None
    pieces = _pieces(data, read_cols)
    design_info = None
    if formula is not None:
        lhs, _ = split_formula(formula if "~" in formula else "~" + formula)
        if lhs:
            raise DataError(f"use a one-sided formula ('~ x + y'), got {formula!r}")
        design_info = incremental_design_info(formula + " - 1", _frames(pieces))
        for fac, finfo in design_info.factor_infos.items():
            if finfo.type == "categorical":
                raise DataError(f"column {fac.name()!r} in the formula is not numeric: a "
                                "Gaussian mixture needs numeric columns")
    rows = _GaussianPieces(read_cols, design_info, missing)
    # the sample: the first pieces, in this process
    sample, got = [], 0
    for p in pieces:
        X, _ = rows.matrix(p.load(), p)
        sample.append(X)
        got += X.shape[0]
        if got >= sample_rows:
            break
    Xs = np.concatenate(sample)[:max(int(sample_rows), 1)]
    names = _names(pieces[0], read_cols, design_info, Xs.shape[1])
    frame = pd.DataFrame(Xs, columns=names)
    sample_model = GaussianMixture(frame, k, covariance, reg_covar=reg_covar)
    c0 = Xs.mean(axis=0)
    parts = ex.map(_GaussianScan(rows, c0), pieces)
    n = sum(p[0] for p in parts)
    n_drop = sum(p[1] for p in parts)
    s1 = sum(p[2] for p in parts)
    s2 = sum(p[3] for p in parts)
    mean = s1 / n
    centre = c0 + mean
    var = np.maximum(np.diag(s2) / n - mean**2, 0.0)
    const = np.sqrt(var) <= 1e-14 * np.maximum(np.abs(centre), 1e-300)
    if const.any():
        raise DataError("constant column(s) " + ", ".join(repr(names[j]) for j in
                        np.flatnonzero(const))
                        + ": a Gaussian mixture needs variation in every variable (drop them)")
    streamed = StreamedData(pieces, rows, [p[0] for p in parts], executor=ex)
    return StreamedGaussianMixture(sample_model, streamed, centre, var, n_drop)


def _names(piece, columns, design_info, d):
    if design_info is not None:
        return list(design_info.column_names)
    if columns is not None:
        return [str(c) for c in columns]
    raw = piece.load()
    if isinstance(raw, pd.DataFrame):
        return [str(c) for c in raw.columns]
    return [f"x{j}" for j in range(d)]


# -- Tobit and interval regression ------------------------------------------------------

class _CensoredPieces(_Portable):
    """The rows of a censored regression from a piece of a data frame."""

    def __init__(self, kind, formula, design_info, censor_left, censor_right, weights,
                 offset, beyond_limits, missing, centre=None):
        self.kind, self.formula, self.design_info = kind, formula, design_info
        self.censor_left, self.censor_right = censor_left, censor_right
        self.weights, self.offset = weights, offset
        self.beyond_limits, self.missing, self.centre = beyond_limits, missing, centre

    @_labelled
    def rows(self, raw, piece):
        limits = {"censor_left": self.censor_left, "censor_right": self.censor_right}
        per_row = {k: v for k, v in limits.items() if isinstance(v, str)}
        extras = {"weights": self.weights, "offset": self.offset, **per_row}
        design = build_design(self.formula, raw, n_response=1 if self.kind == "tobit" else 2,
                              missing=self.missing, design_info=self.design_info,
                              response_may_be_nan=self.kind == "intreg",
                              extras={k: v for k, v in extras.items() if v is not None})
        ex = design.extras
        labels = pd.RangeIndex(design.exog.shape[0])
        n_beyond = 0
        if self.kind == "tobit":
            limits.update({k: ex[k] for k in per_row})
            lo, hi, _, _, n_beyond = tobit_bounds(
                design.endog[:, 0], limits["censor_left"], limits["censor_right"], labels,
                design.endog_names[0], self.beyond_limits)
        else:
            lo, hi = design.endog[:, 0].copy(), design.endog[:, 1].copy()
            both = np.isnan(lo) & np.isnan(hi)
            if both.any():
                raise DataError(f"both bounds are missing in {int(both.sum())} row(s)")
            lo[np.isnan(lo)] = -np.inf
            hi[np.isnan(hi)] = np.inf
        w, off = check_rows(design.exog, lo, hi, ex.get("weights"), ex.get("offset"), labels)
        return design, lo, hi, w, off, n_beyond

    def __call__(self, raw, piece):
        design, lo, hi, w, off, _ = self.rows(raw, piece)
        X = design.exog
        arrays = {"X": X, "lo": lo, "hi": hi, "offset": off, "w": w,
                  "ref": off + X @ self.centre}
        if getattr(self, "keep_positions", False):
            arrays["__pos"] = raw.index.get_indexer(design.row_labels)
        return arrays, None


class _CensoredScan:
    """First pass: X'WX, X'W y~, sum w y~^2 (y~ the completed response less the offset),
    sum w, the counts of each kind of observation, which columns are constant 1, and the
    range of y~."""

    def __init__(self, rows: _CensoredPieces):
        self.rows = rows

    def __call__(self, raw, piece):
        design, lo, hi, w, off, n_beyond = self.rows.rows(raw, piece)
        X = design.exog
        y = np.where(np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi),
                     np.where(np.isfinite(lo), lo, hi)) - off
        exact = lo == hi
        counts = np.array([X.shape[0], design.n_dropped, n_beyond, exact.sum(),
                           ((lo == -np.inf) & np.isfinite(hi)).sum(),
                           (np.isfinite(lo) & (hi == np.inf)).sum(),
                           (np.isfinite(lo) & np.isfinite(hi) & ~exact).sum()], dtype=np.int64)
        return (counts, X.T @ (X * w[:, None]), X.T @ (w * y), float(w @ (y * y)),
                float(w.sum()), np.all(X == 1.0, axis=0),
                (design.endog_names, design.exog_names),
                (float(y.min()), float(y.max())) if y.size else (np.inf, -np.inf))


class _StreamedCensored(_OutOfCoreSandwich):
    """What a censored regression read piece by piece does differently: its constants
    come from the first pass, its rows are not in memory."""

    def _setup(self, data, parts, names, design_info, has_weights, has_offset, censoring):
        counts = sum(p[0] for p in parts)
        gram = sum(p[1] for p in parts)
        xty = sum(p[2] for p in parts)
        yty = sum(p[3] for p in parts)
        sum_w = sum(p[4] for p in parts)
        ones = np.logical_and.reduce([p[5] for p in parts])
        endog_names, exog_names = names
        n, p = int(counts[0]), gram.shape[0]
        self.exog_names = list(exog_names)
        self.param_names = list(exog_names) + ["Log(scale)"]
        self.k_exog = p
        self.row_labels = pd.RangeIndex(n)
        self.n_dropped = int(counts[1])
        self.n_beyond_limits = int(counts[2])
        self.n_exact, self.n_left, self.n_right, self.n_interval = map(int, counts[3:])
        if self.n_exact == 0 and self.n_interval == 0:
            raise DataError(
                f"all {n} observations are censored (none is observed exactly or within a "
                "bounded interval): the model is not identified")
        if self.n_exact == n and min(q[7][0] for q in parts) == max(q[7][1] for q in parts):
            raise DataError(
                f"the {n} exactly observed response(s) leave no residual variation (the "
                "response is constant): the scale is not identified and its estimate goes "
                "to zero")
        self.design_info = design_info
        self.censoring = censoring
        self.has_weights, self.has_offset = has_weights, has_offset
        self._n = n
        self._const = bool(ones.any())
        self._gram = gram
        self._check_rank(gram)
        self._gram_cho = sla.cho_factor(gram, lower=True)
        self._sum_w = float(sum_w)
        beta = sla.cho_solve(self._gram_cho, xty)
        s2 = (yty - float(beta @ xty)) / max(self._sum_w - p, 1.0)
        if not np.isfinite(s2) or s2 <= 0:
            s2 = max(yty / self._sum_w - float(np.sum(xty) / self._sum_w) ** 2, 0.0) or 1.0
        self._start = (beta, s2)
        self._centre = beta.copy()
        data.prepare.centre = self._centre
        self.data = data
        return endog_names

    def __getstate__(self):
        d = self.__dict__.copy()
        d["design_info"] = None     # for new data, on the client
        return d

    @property
    def nobs(self) -> float:
        return self._sum_w if self.has_weights else float(self._n)

    @property
    def df_model(self) -> float:
        return self.k_exog - int(self._const)

    @property
    def n_units(self) -> int:
        return self._n

    def _scale_to_zero(self, why: str) -> DataError:
        return DataError(
            f"the scale's estimate went to zero ({why}): the {self.n_exact} exactly observed "
            "response(s) leave no residual variation (the regressors fit them without "
            "error); the scale is not identified")

    def diagnose_failure(self, err):
        """The scale went to zero (the rows are not in memory to say more)."""
        return self._scale_to_zero(str(err)) if "non-positive scale" in str(err) else None

    def diagnose_estimate(self, params):
        """A scale below 1e-7 of the start's residual scale: gone to zero."""
        scale = self._split(params)[1]
        if scale < 1e-7 * np.sqrt(self._start[1]):
            return self._scale_to_zero(f"{scale:.3g}, against {np.sqrt(self._start[1]):.3g} "
                                       "at the least-squares start")
        return None

    def bootstrap_model(self, idx):
        raise DataError("a bootstrap needs the rows in memory; out of core, use "
                        "cov_type='louis'")

    def sample_stats(self, params, rng, size):
        raise DataError("simulated E-steps (method='mcem') need the rows in memory; out of "
                        "core, use method='em', 'squarem' or 'newton'")


class StreamedTobit(_StreamedCensored, Tobit):
    """A :class:`~emstats.models.censored.Tobit` model read piece by piece (see
    :func:`tobit`)."""

    endog = property(lambda self: self.data["endog"])

    def __init__(self, data, parts, design_info, has_weights, has_offset, censor_left,
                 censor_right):
        scalar = {k: v for k, v in (("left", censor_left), ("right", censor_right))
                  if not isinstance(v, str)}
        self.censor_left, self.censor_right = censor_left, censor_right
        censoring = {}
        if len(scalar) == 2:       # scalar limits: the results can predict with them
            censoring = {"left": -np.inf if censor_left is None else float(censor_left),
                         "right": np.inf if censor_right is None else float(censor_right)}
        names = self._setup(data, parts, parts[0][6], design_info, has_weights, has_offset,
                            censoring)
        self.endog_name = names[0]


class StreamedIntervalRegression(_StreamedCensored, IntervalRegression):
    """An :class:`~emstats.models.censored.IntervalRegression` read piece by piece (see
    :func:`intreg`)."""

    def __init__(self, data, parts, design_info, has_weights, has_offset):
        names = self._setup(data, parts, parts[0][6], design_info, has_weights, has_offset, {})
        self.endog_name = " + ".join(names)


def _censored(kind, formula, data, censor_left, censor_right, weights, offset,
              beyond_limits, missing, executor):
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}")
    for name, v in (("weights", weights), ("offset", offset)):
        if v is not None and not isinstance(v, str):
            raise DataError(f"out of core, {name}= must be a column name, got "
                            f"{type(v).__name__}")
    for name, v in (("censor_left", censor_left), ("censor_right", censor_right)):
        if v is not None and not isinstance(v, str) and not np.isscalar(v):
            raise DataError(f"out of core, {name} must be a number or a column name")
    ex = as_executor(executor)
    pieces = _pieces(data)
    design_info = incremental_design_info(formula, _frames(pieces))
    rows = _CensoredPieces(kind, formula, design_info, censor_left, censor_right, weights,
                           offset, beyond_limits, missing)
    parts = ex.map(_CensoredScan(rows), pieces)
    streamed = StreamedData(pieces, rows, [int(p[0][0]) for p in parts], executor=ex)
    if kind == "tobit":
        return StreamedTobit(streamed, parts, design_info, weights is not None,
                             offset is not None, censor_left, censor_right)
    return StreamedIntervalRegression(streamed, parts, design_info, weights is not None,
                                      offset is not None)


def tobit(formula: str, data, censor_left=0.0, censor_right=None, *, weights=None,
          offset=None, beyond_limits: str = "censor", missing: str = "drop",
          executor=None) -> StreamedTobit:
    """A Tobit model of data read piece by piece (see :func:`emstats.tobit`).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + C(g)"``; categorical levels are found in a first pass over all the
        pieces.
    data : str, path, list of paths or dask.dataframe
        Parquet file(s) read row group by row group, or a dask dataframe.
    censor_left, censor_right : float, str or None
        A limit for every row, a column name, or no censoring on that side.
    weights, offset : str, optional
        Column names.
    beyond_limits, missing :
        As for :func:`emstats.tobit`.
    executor : None, "local", distributed.Client or executor
        Where the passes run (see :func:`gmm`).

    Returns
    -------
    StreamedTobit
        The Tobit model; its first pass computed X'WX, the least-squares start and the
        counts, so ``fit()`` gives the in-memory fit's estimates and standard errors.
    """
    return _censored("tobit", formula, data, censor_left, censor_right, weights, offset,
                     beyond_limits, missing, executor)


def intreg(formula: str, data, *, weights=None, offset=None, missing: str = "drop",
           executor=None) -> StreamedIntervalRegression:
    """Interval regression (``"lower + upper ~ x"``) of data read piece by piece (see
    :func:`emstats.intreg` and :func:`tobit`).

    Parameters
    ----------
    formula, data, weights, offset, missing, executor :
        As in :func:`tobit`.

    Returns
    -------
    StreamedIntervalRegression
    """
    return _censored("intreg", formula, data, None, None, weights, offset, "censor", missing,
                     executor)


# -- hidden Markov models ---------------------------------------------------------------

class _SequencePieces:
    """The sequences of a piece: its rows of the observation columns, cut into runs of
    equal ``groups`` id (a sequence's rows must be contiguous and within one piece)."""

    def __init__(self, columns, groups, k, emission, covariance, xbar=None):
        self.columns, self.groups = list(columns), groups
        self.k, self.emission, self.covariance = k, emission, covariance
        self.xbar = xbar

    @_labelled
    def rows(self, raw, piece):
        if isinstance(raw, pd.DataFrame):
            missing = [c for c in self.columns + ([self.groups] if self.groups else [])
                       if c not in raw.columns]
            if missing:
                raise DataError(f"no column(s) {', '.join(map(repr, missing))}")
            values = raw[self.columns]
            ids = raw[self.groups].to_numpy() if self.groups else None
        else:
            if self.groups is not None:
                raise DataError("groups= needs a data frame (a column of sequence ids)")
            values, ids = pd.DataFrame(np.asarray(raw)), None
        n = len(values)
        if ids is None:
            lengths, run_ids = np.array([n], dtype=np.int64), np.array([piece.label], object)
        else:
            if pd.isna(pd.Series(ids)).any():
                raise DataError(f"groups column {self.groups!r} has missing values")
            new = np.concatenate([[True], ids[1:] != ids[:-1]])
            starts = np.flatnonzero(new)
            lengths = np.diff(np.concatenate([starts, [n]])).astype(np.int64)
            run_ids = ids[starts]
            dup = pd.Index(run_ids).duplicated()
            if dup.any():
                g = run_ids[np.flatnonzero(dup)[0]]
                rows = np.flatnonzero(ids == g)
                raise DataError(f"the rows of sequence {_plain(g)!r} ({self.groups}) are not "
                                f"contiguous (rows {', '.join(map(str, rows[:6]))}): sort the "
                                "data by sequence")
        model = HiddenMarkovModel(values, self.k, self.emission, covariance=self.covariance,
                                  lengths=lengths, var_names=[str(c) for c in values.columns],
                                  identify=False)
        return model, lengths, run_ids

    def __call__(self, raw, piece):
        m, lengths, _ = self.rows(raw, piece)
        if m.emission_name == "gaussian":       # centred at the whole data's means
            m._xbar = self.xbar
            m._Xk = np.ascontiguousarray(m.X - self.xbar)
        arrays = m._data_arrays()
        if getattr(self, "keep_positions", False):
            arrays["__pos"] = np.arange(m.T)
        return arrays, np.concatenate([[0], np.cumsum(lengths)])


def _plain(g):
    return g.item() if isinstance(g, np.generic) else g


class _SequenceScan:
    """First pass: rows, sequence lengths and ids, and sums of x - c0, (x - c0)^2."""

    def __init__(self, rows: _SequencePieces, c0):
        self.rows, self.c0 = rows, c0

    def __call__(self, raw, piece):
        m, lengths, run_ids = self.rows.rows(raw, piece)
        e = m.X - self.c0
        return lengths, run_ids, e.sum(axis=0), (e * e).sum(axis=0)


class StreamedHMM(_OutOfCoreSandwich, HiddenMarkovModel):
    """A :class:`~emstats.models.hmm.HiddenMarkovModel` whose sequences are read piece
    by piece (see :func:`hmm`)."""

    X = property(lambda self: self.data["X"])
    _Xk = property(lambda self: self.data["Xk"])
    codes = property(lambda self: self.data["codes"])

    def __init__(self, sample: HiddenMarkovModel, data: StreamedData, lengths, seq_names,
                 xbar, colvar):
        skip = ("X", "_Xk", "codes", "data", "_lgx", "_Xt")
        self.__dict__.update({k: v for k, v in sample.__dict__.items() if k not in skip})
        self._sample = sample
        self._Xt = np.empty((0, 0))  # no whole-data transpose: chunks transpose their own
        self._n_stats = sample._n_emission_stats()
        self.data = data
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.seq_start = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.n_seq = len(self.lengths)
        self.seq_names = list(seq_names)
        self.T = int(self.seq_start[-1])
        self.row_labels = self._stacked_labels = pd.RangeIndex(self.T)
        self._order = None
        if self.emission_name == "gaussian":
            self._xbar = np.asarray(xbar, dtype=float)
            self.var_floor = 1e-10 * np.where(colvar > 0, colvar, 1.0)
        if self.T < max(self.K, 2) or self.n_params > self.T * self.d:
            raise DataError(f"{self.T} observations cannot identify {self.n_params} "
                            f"parameters of a {self.K}-state hidden Markov model")

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("_sample", None)
        return d

    def _n_emission_stats(self) -> int:
        return self._n_stats

    def start_params(self, rng=None, attempt: int = 0):
        """The starts of the sample of the first sequences (``sample_rows``)."""
        return self._sample.start_params(rng, attempt)


def hmm(data, k: int, emission: str = "gaussian", *, columns, groups: str | None = None,
        covariance: str = "diag", sample_rows: int = 100_000, executor=None,
        **options) -> StreamedHMM:
    """A hidden Markov model of sequences read piece by piece.

    Parameters
    ----------
    data : str, path, list of paths or dask.dataframe
        Parquet file(s) read row group by row group, or a dask dataframe.
    k, emission, covariance :
        As for :class:`~emstats.models.hmm.HiddenMarkovModel` (Gaussian and Poisson
        emissions).
    columns : list of str
        The observation columns.
    groups : str, optional
        A column of sequence ids.  A sequence's rows must be contiguous and inside one
        piece (a row group or a partition): a sequence that straddles two pieces is a
        :class:`~emstats.exceptions.DataError` naming it and the pieces.  Without
        ``groups`` the data must be one piece, one sequence.
    sample_rows : int
        Rows of the first sequences used for the starting values.
    executor :
        Where the passes run (see :func:`gmm`).
    **options
        ``initial``, ``transitions``, ``boundary_tol``: as for the in-memory model.
    """
    if emission not in ("gaussian", "poisson", "normal"):
        raise ValueError(f"out of core, the emission is 'gaussian' or 'poisson', got "
                         f"{emission!r}")
    ex = as_executor(executor)
    cols = [columns] if isinstance(columns, str) else list(columns)
    pieces = _pieces(data, cols + ([groups] if groups else []))
    if groups is None and len(pieces) > 1:
        raise DataError(f"the data are in {len(pieces)} pieces: give groups= (a column of "
                        "sequence ids); a sequence may not span pieces")
    rows = _SequencePieces(cols, groups, k, emission, covariance)
    sample, lens, got = [], [], 0
    for p in pieces:
        m, lengths, _ = rows.rows(p.load(), p)
        sample.append(m.X)
        lens.append(lengths)
        got += m.X.shape[0]
        if got >= sample_rows:
            break
    Xs = np.concatenate(sample)
    sample_model = HiddenMarkovModel(pd.DataFrame(Xs, columns=cols), k, emission,
                                     covariance=covariance, lengths=np.concatenate(lens),
                                     var_names=cols, **options)
    c0 = Xs.mean(axis=0)
    parts = ex.map(_SequenceScan(rows, c0), pieces)
    # a sequence id in two pieces straddles them (or is not contiguous)
    offsets = np.cumsum([0] + [int(p[0].sum()) for p in parts])
    owner: dict = {}
    for i, part in enumerate(parts):
        for g in part[1]:
            j = owner.setdefault(g, i)
            if j != i:
                rows_j = np.concatenate([[0], np.cumsum(parts[j][0])])
                r = list(part[1]).index(g)
                rows_i = np.concatenate([[0], np.cumsum(part[0])])
                q = list(parts[j][1]).index(g)
                a = f"rows {offsets[j] + rows_j[q]}-{offsets[j] + rows_j[q + 1] - 1}"
                b = f"rows {offsets[i] + rows_i[r]}-{offsets[i] + rows_i[r + 1] - 1}"
                what = "straddles" if j == i - 1 else "is split between"
                raise DataError(f"sequence {_plain(g)!r} ({groups}) {what} {pieces[j].label}, "
                                f"{a}, and {pieces[i].label}, {b}: a sequence must lie within "
                                "one row group / partition (write the data with whole "
                                "sequences per row group)")
    lengths = np.concatenate([p[0] for p in parts])
    n = int(lengths.sum())
    mean = sum(p[2] for p in parts) / n
    colvar = np.maximum(sum(p[3] for p in parts) / n - mean**2, 0.0)
    rows.xbar = c0 + mean
    streamed = StreamedData(pieces, rows, [int(p[0].sum()) for p in parts],
                            [len(p[0]) for p in parts], executor=ex)
    names = [g for p in parts for g in p[1]]
    return StreamedHMM(sample_model, streamed, lengths, names, c0 + mean, colvar)


# -- zero-inflated and hurdle count regressions -------------------------------------------

class _CountPieces(_Portable):
    """The rows of a zero-inflated or hurdle regression from a piece of a data frame: the
    count design through one design information, the zero part's through another."""

    def __init__(self, count_formula, design_info, zero_info, dist, offset, weights,
                 missing, zero_offset=None):
        self.count_formula, self.design_info, self.zero_info = count_formula, design_info, \
            zero_info
        self.dist, self.offset, self.weights, self.missing = dist, offset, weights, missing
        self.zero_offset = zero_offset
        self.keep_positions = False

    def __getstate__(self):
        d = super().__getstate__()
        d["zero_info"] = pack_design(d["zero_info"])
        return d

    def __setstate__(self, state):
        state["zero_info"] = unpack_design(state["zero_info"])
        super().__setstate__(state)

    @_labelled
    def rows(self, raw, piece):
        from .zeroinfl import count_family

        frame = check_frame(raw)
        Z = design_rows(self.zero_info, frame)
        extras = {"__w": self.weights, "__off": self.offset, "__zoff": self.zero_offset,
                  "__zero": np.where(np.isnan(Z).any(axis=1), np.nan, 0.0)}
        des = build_design(self.count_formula, frame,
                           extras={k: v for k, v in extras.items() if v is not None},
                           missing=self.missing, design_info=self.design_info)
        pos = frame.index.get_indexer(des.row_labels)
        family = count_family(self.dist)
        y = family.check(np.asarray(des.endog[:, 0], dtype=float), None,
                         repr(des.endog_names[0]))
        n = y.size
        w = des.extras.get("__w")
        w = np.ones(n) if w is None else w
        if not np.all(np.isfinite(w) & (w >= 0)):
            raise DataError("weights must be non-negative and finite")
        off, zoff = des.extras.get("__off"), des.extras.get("__zoff")
        arrays = {"y": y, "X": des.exog, "Z": np.ascontiguousarray(Z[pos]),
                  "off": np.zeros(n) if off is None else off,
                  "zoff": np.zeros(n) if zoff is None else zoff, "w": w,
                  "c": family.log_const(y)}
        if self.keep_positions:
            arrays["__pos"] = pos
        return arrays, des

    def __call__(self, raw, piece):
        return self.rows(raw, piece)[0], None


class _CountScan:
    """First pass: rows, sum of weights, whether some (positive-weight) y is zero and some
    is not, rows dropped, the names."""

    def __init__(self, rows: _CountPieces):
        self.rows = rows

    def __call__(self, raw, piece):
        a, des = self.rows.rows(raw, piece)
        pos = a["w"] > 0
        return (a["y"].size, float(a["w"].sum()), bool(np.any((a["y"] == 0) & pos)),
                bool(np.any((a["y"] != 0) & pos)), des.n_dropped, des.endog_names[0])


class _StreamedCounts(_OutOfCoreSandwich):
    """A zero-inflated or hurdle regression whose rows are read piece by piece: the
    start (pscl's GLMs) from a sample of the first rows, everything else the
    in-memory model's."""

    def _setup(self, sample, data, parts):
        self.__dict__.update({k: v for k, v in sample.__dict__.items() if k != "data"})
        self._sample = sample
        self.data = data
        self.n_rows = int(sum(p[0] for p in parts))
        self.nobs = float(sum(p[1] for p in parts))
        self.n_dropped = int(sum(p[4] for p in parts))
        if not any(p[2] for p in parts):
            raise DataError(f"{self.endog_name} has no zeros: there is nothing to inflate "
                            "(fit a plain count regression)")
        if not any(p[3] for p in parts):
            raise DataError(f"{self.endog_name} is zero in every row: the count and zero "
                            "parts are not identified")

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("_sample", None)
        # the client's: the designs (patsy) and the parameter maps (whose labels close
        # over the sample model); the workers' E-steps need neither
        d["design_info"] = d["zero_info"] = d["spec"] = None
        return d

    def start_params(self) -> dict:
        """The in-memory model's start computed on the sample of the first rows."""
        return self._sample.start_params()

    def chunk_diverged(self, params, chunk) -> Stats:
        """Rows of the chunk where a linear predictor passes ``DIVERGED``."""
        beta, _, gamma, _ = self._split(params)
        a = chunk.arrays
        big = (np.abs(a["X"] @ beta + a["off"]) > self.DIVERGED) | (
            np.abs(a["Z"] @ gamma + a["zoff"]) > self.DIVERGED)
        return Stats(n=np.array([float(big.sum())]))

    def diagnose_estimate(self, params) -> DataError | None:
        """A diverged linear predictor (one more pass) on data whose sample of the first
        rows is separated: separation of all rows implies that of the sample, so a
        sample without it clears the data (a boundary estimate); the linear programmes
        need the rows in memory, so they run on the sample."""
        if float(_reduce_pass(self, "chunk_diverged", params)["n"][0]) == 0.0:
            return None
        err = self._sample.separation_error()
        if err is None:
            return None
        return DataError(f"{err} (the direction separates the {self._sample.n_rows} rows of "
                         f"the in-memory sample, and the fit of all {self.n_rows} rows "
                         "diverges)")


class StreamedZeroInflated(_StreamedCounts, ZeroInflatedRegression):
    """A :class:`~emstats.models.zeroinfl.ZeroInflatedRegression` read piece by piece
    (see :func:`zeroinfl`)."""

    def __init__(self, sample, data, parts):
        self._setup(sample, data, parts)


class StreamedHurdle(_StreamedCounts, HurdleRegression):
    """A :class:`~emstats.models.zeroinfl.HurdleRegression` read piece by piece (see
    :func:`hurdle`)."""

    def __init__(self, sample, data, parts):
        self._setup(sample, data, parts)


def _counts(cls, base, formula, data, dist, offset, weights, missing, sample_rows,
            executor, link="logit", zero_offset=None, zero_dist=None):
    from .zeroinfl import BinaryPart, count_family

    for name, v in (("weights", weights), ("offset", offset), ("zero_offset", zero_offset)):
        if v is not None and not isinstance(v, str):
            raise DataError(f"out of core, {name}= must be a column name, got "
                            f"{type(v).__name__}")
    count_family(dist)
    BinaryPart(link)
    ex = as_executor(executor)
    pieces = _pieces(data)
    count_f, zero_rhs = split_two_part(formula, pieces[0].load())
    info = incremental_design_info(count_f, _frames(pieces))
    zinfo = incremental_design_info("~ " + zero_rhs, _frames(pieces))
    rows = _CountPieces(count_f, info, zinfo, dist, offset, weights, missing, zero_offset)
    arrays, got = [], 0
    for p in pieces:
        a, des = rows.rows(p.load(), p)
        arrays.append(a)
        got += a["y"].size
        if got >= sample_rows:
            break
    cat = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}
    kw = {} if zero_dist is None else {"zero_dist": zero_dist}
    sample = base(cat["y"], cat["X"], cat["Z"], dist=dist, link=link, offset=cat["off"],
                  zero_offset=cat["zoff"], weights=cat["w"],
                  exog_names=list(info.column_names), zero_names=list(zinfo.column_names),
                  endog_name=des.endog_names[0], design_info=info, zero_info=zinfo,
                  offset_spec=offset, zero_offset_spec=zero_offset, **kw)
    parts = ex.map(_CountScan(rows), pieces)
    streamed = StreamedData(pieces, rows, [p[0] for p in parts], executor=ex)
    return cls(sample, streamed, parts)


def zeroinfl(formula: str, data, dist: str = "poisson", link: str = "logit", *,
             offset=None, zero_offset=None, weights=None, missing: str = "drop",
             sample_rows: int = 100_000, executor=None) -> StreamedZeroInflated:
    """A zero-inflated count regression of data read piece by piece (see
    :func:`emstats.zeroinfl`).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2 | z1"``; both parts' designs are fixed by a first pass.
    data : str, path, list of paths or dask.dataframe
        The pieces: Parquet files (row groups) or a dask dataframe's partitions.
    dist : {"poisson", "negbin", "geometric"}
        The count distribution.
    link : {"logit", "probit", "cloglog", "cauchit", "log"}
        Link of the inflation probability.
    offset, zero_offset, weights : str, optional
        Column names: the count part's offset, the zero part's offset, frequency weights.
    missing : {"drop", "raise"}
        Rows with a missing value in either part are dropped or an error.
    sample_rows : int
        Rows of the first pieces on which pscl's starting GLMs are fitted.
    executor : None, "local", distributed.Client or executor
        Where the passes run (see :func:`gmm`).

    Returns
    -------
    StreamedZeroInflated
    """
    return _counts(StreamedZeroInflated, ZeroInflatedRegression, formula, data, dist,
                   offset, weights, missing, sample_rows, executor, link, zero_offset)


def hurdle(formula: str, data, dist: str = "poisson", zero_dist: str = "binomial",
           link: str = "logit", *, offset=None, zero_offset=None, weights=None,
           missing: str = "drop", sample_rows: int = 100_000,
           executor=None) -> StreamedHurdle:
    """A hurdle count regression of data read piece by piece (see :func:`emstats.hurdle`
    and :func:`zeroinfl`).

    Parameters
    ----------
    formula, data, dist, link, offset, zero_offset, weights, missing, sample_rows, executor :
        As in :func:`zeroinfl` (``link`` is that of a binomial hurdle).
    zero_dist : {"binomial", "poisson", "negbin", "geometric"}
        Model of P(y > 0), as :func:`emstats.hurdle`.

    Returns
    -------
    StreamedHurdle
    """
    return _counts(StreamedHurdle, HurdleRegression, formula, data, dist, offset, weights,
                   missing, sample_rows, executor, link, zero_offset, zero_dist)


# -- mixtures of regressions ------------------------------------------------------------------

class _SpecSize:
    """What a worker's E-step needs of a parameter specification: its size."""

    def __init__(self, size: int):
        self.size = int(size)


class _MixregPieces(_Portable):
    """The rows of a mixture of regressions from a piece of a data frame: the designs
    through design information fixed by a first pass, and with ``groups`` the piece's
    rows sorted by group (a group's rows must lie within one piece)."""

    def __init__(self, formula, is_cbind, design_info, fixed_info, fixed_keep, conc_info,
                 family, k, weights, offset, trials, groups, missing):
        self.formula, self.is_cbind, self.design_info = formula, is_cbind, design_info
        self.fixed_info, self.fixed_keep, self.conc_info = fixed_info, fixed_keep, conc_info
        self.family, self.k = family, k
        self.weights, self.offset, self.trials = weights, offset, trials
        self.groups, self.missing = groups, missing
        self.keep_positions = False

    def __getstate__(self):
        d = super().__getstate__()
        for key in ("fixed_info", "conc_info"):
            if d[key] is not None:
                d[key] = pack_design(d[key])
        return d

    def __setstate__(self, state):
        for key in ("fixed_info", "conc_info"):
            if isinstance(state.get(key), bytes):
                state[key] = unpack_design(state[key])
        super().__setstate__(state)

    @_labelled
    def rows(self, raw, piece):
        frame = check_frame(raw)
        extras = {"__w": self.weights, "__off": self.offset, "__tr": self.trials}
        Zc = X2 = gv = None
        if self.conc_info is not None:
            Zc = design_rows(self.conc_info, frame)
            extras["__concomitant"] = np.where(np.isnan(Zc).any(axis=1), np.nan, 0.0)
        if self.fixed_info is not None:
            X2 = design_rows(self.fixed_info, frame)[:, self.fixed_keep]
            extras["__fixed"] = np.where(np.isnan(X2).any(axis=1), np.nan, 0.0)
        if self.groups is not None:
            if self.groups not in frame.columns:
                raise DataError(f"no column {self.groups!r} (groups=)")
            gv = frame[self.groups].to_numpy()
            extras["__g"] = np.where(pd.isna(gv), np.nan, 0.0)
        des = build_design(self.formula, frame, n_response=2 if self.is_cbind else 1,
                           extras={k: v for k, v in extras.items() if v is not None},
                           missing=self.missing, design_info=self.design_info)
        pos = frame.index.get_indexer(des.row_labels)
        y = des.endog[:, 0]
        if self.is_cbind:
            if np.any(des.endog < 0):
                raise DataError("cbind(successes, failures): counts must be non-negative")
            tr = des.endog[:, 0] + des.endog[:, 1]
        else:
            tr = des.extras.get("__tr")
        X, w, off = des.exog, des.extras.get("__w"), des.extras.get("__off")
        X2 = None if X2 is None else X2[pos]
        Zc = None if Zc is None else Zc[pos]
        ub, ids = None, None
        if gv is not None:
            codes, levels = pd.factorize(gv[pos], sort=True)
            order = np.argsort(codes, kind="stable")
            y, X, pos = y[order], X[order], pos[order]
            X2 = None if X2 is None else X2[order]
            Zc = None if Zc is None else Zc[order]
            w = None if w is None else w[order]
            off = None if off is None else off[order]
            tr = None if tr is None else tr[order]
            cs = codes[order]
            ub = np.concatenate([[0], np.flatnonzero(np.diff(cs)) + 1, [cs.size]])
            ids = np.asarray(levels)[cs[ub[:-1]]]
        m = MixtureRegression(y, X, self.k, family=self.family, Z=Zc, X2=X2, offset=off,
                              trials=tr, weights=w, unit_bounds=ub, check_size=False)
        arrays = dict(m.data.arrays)
        if self.keep_positions:
            arrays["__pos"] = pos
        return arrays, ub, ids, des

    def __call__(self, raw, piece):
        arrays, ub, _, _ = self.rows(raw, piece)
        return arrays, ub


class _MixregScan:
    """First pass: rows, units, sum of weights, sum of w x (for x-bar), the range of a
    one-column concomitant design, the group ids, rows dropped, the names, and the
    response's sums of w y and w y^2 and its range."""

    def __init__(self, rows: _MixregPieces):
        self.rows = rows

    def __call__(self, raw, piece):
        a, ub, ids, des = self.rows.rows(raw, piece)
        Z, w, y = a["Z"], a["w"], a["y"]
        n = y.size
        return (n, n if ub is None else ub.size - 1, float(w.sum()), w @ a["X"],
                (Z.shape[1], float(Z.min()), float(Z.max())), ids, des.n_dropped,
                des.endog_names[0], list(des.exog_names),
                (float(w @ y), float(w @ (y * y)), float(y.min()), float(y.max())))


class StreamedMixtureRegression(_OutOfCoreSandwich, MixtureRegression):
    """A :class:`~emstats.models.mixreg.MixtureRegression` whose rows are read piece by
    piece (see :func:`mixreg`): the starts from a sample of the first pieces, everything
    else the in-memory model's."""

    results_class = None     # set below

    def __init__(self, sample, data: StreamedData, parts):
        self.__dict__.update({k: v for k, v in sample.__dict__.items() if k != "data"})
        self._sample = sample
        self.data = data
        self.n_rows = int(sum(p[0] for p in parts))
        self.n_units_total = int(sum(p[1] for p in parts))
        sum_w = sum(p[2] for p in parts)
        self.nobs = float(sum_w)
        self.xbar = sum(p[3] for p in parts) / sum_w
        self.n_dropped = int(sum(p[6] for p in parts))
        q, zmin, zmax = parts[0][4][0], min(p[4][1] for p in parts), max(p[4][2] for p in parts)
        self.const_prior = q == 1 and zmin == zmax and zmin != 0
        self._z0 = zmin
        self.frame = self.row_order = None
        self._row_labels = pd.RangeIndex(self.n_rows)
        self._unit_labels = None
        if self.family.name == "gaussian":
            ymin, ymax = min(p[9][2] for p in parts), max(p[9][3] for p in parts)
            if ymin == ymax:
                raise constant_response(self.endog_name, ymin)
            ybar = sum(p[9][0] for p in parts) / sum_w
            var = max(sum(p[9][1] for p in parts) / sum_w - ybar * ybar, 0.0)
            self.var_floor = 1e-10 * (var if var > 0.0 else (ymax - ymin) ** 2 / 4.0)
        n_par = self.spec.size
        if self.k > self.n_units_total or n_par >= self.n_rows:
            raise DataError(f"k = {self.k} components with {n_par} parameters need more data: "
                            f"there are {self.n_units_total} "
                            f"{'groups' if self.grouped else 'rows'}")

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("_sample", None)
        # the client's: the designs (patsy) and the parameter maps (whose labels close over
        # the model); the workers' passes need the number of parameters only
        d["design_info"] = d["fixed_info"] = d["concomitant_info"] = None
        d["spec"] = _SpecSize(self.spec.size)
        return d

    def initial_starts(self, init, n_init: int, rng: np.random.Generator):
        """The in-memory model's starts on the sample of the first pieces (``sample_rows``;
        k-means or random partitions)."""
        if init is not None and not isinstance(init, str):
            raise DataError("initial labels need the rows in memory; out of core, use "
                            "init='kmeans', 'random' or start_params=")
        return self._sample.initial_starts(init, n_init, rng)

    def start_params(self) -> dict:
        return self._sample.start_params()

    def classify_stats(self, params):
        raise DataError("classification EM (method='cem') needs the rows in memory; out of "
                        "core, use method='em', 'squarem' or 'newton'")

    def sample_stats(self, params, rng, size):
        raise DataError("simulated E-steps (method='stochastic') need the rows in memory; "
                        "out of core, use method='em', 'squarem' or 'newton'")

    def posterior(self, params):
        raise DataError("the posteriors of every unit need the rows in memory; out of core, "
                        "use predict_proba(newdata) on the rows you want")

    def unit_weights(self):
        raise DataError("the rows of an out-of-core model are not in memory (asked for the "
                        "unit weights)")

    def chunk_unit_sums(self, params, chunk) -> Stats:
        """Per chunk: sum of unit weights, of w_u pi_u (the prior), of w_u log r_u,MAP
        (ICL) and of w_u sum_k r_uk log r_uk (the entropy)."""
        res = self._pass(self._full(params), chunk, 0, posteriors=True)
        r = res["r"]
        first = chunk.unit_bounds[:-1]
        w, Zu = chunk["w"][first], chunk["Z"][first]
        pi = np.exp(log_softmax(Zu @ self._full(params)["prior"].T))
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = np.where(r > 0, r * np.log(r), 0.0).sum(axis=1)
        lmap = np.log(np.maximum(r.max(axis=1), 1e-300))
        return Stats(w=w.sum(), pi=w @ pi, lmap=w @ lmap, ent=w @ ent)


class StreamedMixtureRegressionResults(MixtureRegressionResults):
    """Results of a mixture of regressions read piece by piece: the prior, the entropy
    and ICL by one more pass over the pieces (the posteriors of every unit are not kept)."""

    @cached_property
    def _unit_sums(self):
        return _reduce_pass(self.model, "chunk_unit_sums", self.raw_params)

    @property
    def prior(self) -> pd.Series:
        """Average mixing weight of each component over the units."""
        s = self._unit_sums
        return pd.Series(s["pi"] / s["w"], index=range(1, self.model.k + 1), name="prior")

    @property
    def entropy(self) -> float:
        """Classification entropy -sum_u w_u sum_k r_uk log r_uk."""
        return float(-self._unit_sums["ent"])

    @cached_property
    def icl(self) -> float:
        """ICL, BIC - 2 sum_u w_u log r_u,MAP(u), by one more pass."""
        return self.bic - 2.0 * float(self._unit_sums["lmap"])


StreamedMixtureRegression.results_class = StreamedMixtureRegressionResults


def _group_straddles(pieces, parts, groups):
    """A DataError naming the first group whose rows lie in two pieces, or None."""
    owner: dict = {}
    for i, part in enumerate(parts):
        for g in part[5]:
            j = owner.setdefault(g, i)
            if j != i:
                where = []
                for k in (j, i):
                    raw = check_frame(pieces[k].load())
                    rows = np.flatnonzero((raw[groups] == g).to_numpy())
                    shown = ", ".join(map(str, rows[:5])) + (", ..." if rows.size > 5 else "")
                    where.append(f"{pieces[k].label}, rows {shown}")
                return DataError(f"group {_plain(g)!r} ({groups}) has rows in {where[0]} and in "
                                 f"{where[1]}: a group's rows must lie within one row group / "
                                 "partition (write the data with whole groups per row group)")
    return None


def mixreg(formula: str, data, k: int, family: str = "gaussian", *, concomitant=None,
           groups=None, fixed=None, weights=None, offset=None, trials=None,
           missing: str = "drop", sample_rows: int = 100_000,
           executor=None) -> StreamedMixtureRegression:
    """A finite mixture of regressions of data read piece by piece (see
    :func:`emstats.mixreg`).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + C(g)"`` (``"cbind(s, f) ~ x"`` for the binomial); categorical levels
        and stateful transforms are learnt in a first pass over every piece.
    data : str, path, list of paths or dask.dataframe
        Parquet file(s) read row group by row group, or a dask dataframe.
    k : int
        Number of components.
    family : {"gaussian", "poisson", "binomial", "negbin"}
        The component distribution.
    concomitant, fixed : str, optional
        One-sided formulas of the prior model and of the coefficients shared by every
        component, as for :func:`emstats.mixreg`.
    groups : str, optional
        A column whose rows share one component.  A group's rows must lie within one
        piece (a row group or a partition; within it they need not be contiguous): a
        group with rows in two pieces is a :class:`~emstats.exceptions.DataError` naming
        it, both pieces and its rows there.
    weights, offset, trials : str, optional
        Column names (frequency weights constant within a group, an offset, binomial
        trials).
    missing : {"drop", "raise"}
        Rows with a missing value are dropped or an error.
    sample_rows : int
        Rows of the first pieces (whole pieces) from which the starts are computed; with
        ``sample_rows`` at least the number of rows they are the in-memory model's.
    executor : None, "local", distributed.Client or executor
        Where the passes run (see :func:`gmm`).

    Returns
    -------
    StreamedMixtureRegression
        Fit it with ``.fit()`` (the options of the in-memory model, except the
        simulated and classification schemes).
    """
    from ..components.glm import get_family
    from ..formula import cbind_response

    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}")
    for name, v in (("weights", weights), ("offset", offset), ("trials", trials),
                    ("groups", groups)):
        if v is not None and not isinstance(v, str):
            raise DataError(f"out of core, {name}= must be a column name, got "
                            f"{type(v).__name__}")
    fam = get_family(family)
    formula2, is_cbind = cbind_response(formula)
    if is_cbind and fam.name != "binomial":
        raise DataError("cbind(successes, failures) responses are for family='binomial'")
    ex = as_executor(executor)
    pieces = _pieces(data)
    info = incremental_design_info(formula2, _frames(pieces))
    fixed_info = conc_info = fixed_keep = None
    if fixed is not None:
        fixed_info = incremental_design_info(fixed, _frames(pieces))
        fixed_keep = [j for j, nm in enumerate(fixed_info.column_names) if nm != "Intercept"]
        clash = {fixed_info.column_names[j] for j in fixed_keep} & set(info.column_names)
        if clash:
            raise DataError(f"terms {sorted(clash)} are both in the formula and in fixed=")
    if concomitant is not None:
        conc_info = incremental_design_info(concomitant, _frames(pieces))
    rows = _MixregPieces(formula2, is_cbind, info, fixed_info, fixed_keep, conc_info,
                         fam.name, k, weights, offset, trials, groups, missing)
    parts = ex.map(_MixregScan(rows), pieces)
    if groups is not None:
        err = _group_straddles(pieces, parts, groups)
        if err is not None:
            raise err
    # the sample: whole pieces from the start, in this process
    got, arrays, bounds = 0, [], []
    for p in pieces:
        a, ub, _, _ = rows.rows(p.load(), p)
        n = a["y"].size
        arrays.append(a)
        bounds.append((np.arange(n + 1) if ub is None else ub) + got)
        got += n
        if got >= sample_rows:
            break
    cat = {key: np.concatenate([a[key] for a in arrays]) for key in arrays[0]}
    ub = np.concatenate([bounds[0]] + [b[1:] for b in bounds[1:]])
    fixed_names = ([fixed_info.column_names[j] for j in fixed_keep]
                   if fixed_info is not None else None)
    sample = MixtureRegression(
        cat["y"], cat["X"], k, family=fam, Z=cat["Z"] if conc_info is not None else None,
        X2=cat["X2"] if fixed_info is not None else None, offset=cat["off"],
        trials=cat["m"], weights=cat["w"], unit_bounds=ub if groups is not None else None,
        exog_names=parts[0][8], fixed_names=fixed_names,
        concomitant_names=list(conc_info.column_names) if conc_info is not None else None,
        endog_name=parts[0][7], design_info=info, fixed_info=fixed_info,
        concomitant_info=conc_info, groups=groups, check_size=False)
    sample._formula, sample._concomitant, sample._fixed = formula, concomitant, fixed
    sample._offset_spec, sample._trials_spec = offset, trials
    sample._fixed_keep = fixed_keep
    streamed = StreamedData(pieces, rows, [p[0] for p in parts], [p[1] for p in parts],
                            executor=ex)
    return StreamedMixtureRegression(sample, streamed, parts)


# -- the multivariate normal with missing values ----------------------------------------------

class _PatternScan:
    """One pass of the multivariate normal: per missingness pattern of a piece, its first
    row, count, and the sums and cross-products of the observed values about ``centre``."""

    def __init__(self, columns, missing, centre):
        self.columns, self.missing, self.centre = columns, missing, centre

    @_labelled
    def matrix(self, raw, piece, positions: bool = False):
        frame = raw[self.columns] if isinstance(raw, pd.DataFrame) and self.columns else raw
        X = (frame.to_numpy(dtype=float, na_value=np.nan) if isinstance(frame, pd.DataFrame)
             else np.asarray(frame, dtype=float))
        if np.isinf(X).any():
            raise DataError(f"infinite values in {int(np.isinf(X).any(axis=1).sum())} row(s)")
        nan = np.isnan(X)
        if self.missing == "raise" and nan.any():
            raise DataError("missing values; use missing='em' for maximum likelihood under MAR")
        keep = ~nan.all(axis=1) if self.missing == "em" else ~nan.any(axis=1)
        if positions:
            return X[keep], int((~keep).sum()), np.flatnonzero(keep)
        return X[keep], int((~keep).sum())

    def __call__(self, raw, piece):
        X, n_drop = self.matrix(raw, piece)
        obs = ~np.isnan(X)
        keys, first, inv = np.unique(obs, axis=0, return_index=True, return_inverse=True)
        out = {}
        for p, key in enumerate(keys):
            rows = np.flatnonzero(inv.ravel() == p)
            o = np.flatnonzero(key)
            e = X[np.ix_(rows, o)] - self.centre[o]
            s = np.zeros(X.shape[1])
            S = np.zeros((X.shape[1], X.shape[1]))
            s[o] = e.sum(axis=0)
            S[np.ix_(o, o)] = e.T @ e
            out[key.tobytes()] = (int(first[p]), rows.size, s, S, key)
        return out, X.shape[0], n_drop


class StreamedMVN(MVN):
    """An :class:`~emstats.models.mvn.MVN` whose rows were read piece by piece (see
    :func:`mvn`): EM runs on the patterns' sums, which one pass computed."""

    X = property(lambda self: _not_in_memory("X"))

    def __init__(self, names, missing, n_dropped, patterns, centre, cnt, s, S):
        self.names = names
        d = len(names)
        self.endog_name = names[0] if d == 1 else f"{names[0]}..{names[-1]} ({d} variables)"
        n = int(patterns.counts.sum())
        if n <= d:
            raise DataError(f"{n} usable row(s) for {d} variables: the covariance matrix "
                            "needs more rows than variables")
        self.row_labels = pd.RangeIndex(n)
        self.n_dropped = n_dropped
        self.missing = missing
        self._setup(patterns, centre, cnt, s, S)
        self._source = None       # (pieces, scan, executor): for the sandwich's pass

    def sandwich_meat(self, params, groups):
        """(meat, rows, clusters) of the robust or clustered sandwich by one more pass
        over the rows (the patterns' sums lose the rows' scores)."""
        import dataclasses

        from ..em.sources import ParquetPiece

        pieces, scan, ex = self._source
        if groups is not None and not isinstance(groups, str):
            raise DataError("out of core, groups= of cov_type='cluster' is a column name of "
                            f"the data, got {type(groups).__name__}")
        if groups is not None:
            pieces = [dataclasses.replace(p, columns=tuple(p.columns) + (groups,))
                      if isinstance(p, ParquetPiece) and p.columns is not None
                      and groups not in p.columns else p for p in pieces]
        parts = ex.map(_MVNScores(scan, params, self._J, groups), pieces)
        if groups is None:
            tot = tree_sum(parts)
            return np.asarray(tot["meat"]), int(tot["n"]), int(tot["n"])
        tot = parts[0]
        for q in parts[1:]:
            tot = tot + q
        meat, n_groups = tot.meat()
        return meat, int(self.patterns.counts.sum()), n_groups


def _mvn_row_scores(X, mu, sigma) -> np.ndarray:
    """Observed-data score of each row about (mu, Sigma), as
    :meth:`emstats.models.mvn.MVN.unit_scores` (before its Jacobian)."""
    keys, inv = np.unique(~np.isnan(X), axis=0, return_inverse=True)
    inv = inv.ravel()
    return row_scores(X, mu, sigma, ((np.flatnonzero(inv == p), o)
                                     for p, o in enumerate(keys)))


class _MVNScores:
    """A piece's robust meat (or, with a cluster column, its clusters' summed scores)."""

    def __init__(self, scan, params, J, column=None):
        self.scan, self.J, self.column = scan, J, column
        self.mu = np.asarray(params["mean"], dtype=float)
        self.sigma = np.asarray(params["cov"], dtype=float)

    def __call__(self, raw, piece):
        X, _, pos = self.scan.matrix(raw, piece, positions=True)
        S = _mvn_row_scores(X, self.mu, self.sigma) @ self.J
        if self.column is None:
            return Stats(meat=S.T @ S, n=float(S.shape[0]))
        if not isinstance(raw, pd.DataFrame) or self.column not in raw.columns:
            raise DataError(f"{piece.label}: no column {self.column!r} (the clusters, "
                            "groups= of cov_type='cluster')")
        ids = raw[self.column].to_numpy()[pos]
        if pd.isna(ids).any():
            raise DataError(f"{piece.label}: the cluster column {self.column!r} has "
                            f"{int(pd.isna(ids).sum())} missing value(s) in the estimation rows")
        return _cluster_sums(ids, S)


def _not_in_memory(name):
    raise DataError(f"the rows of an out-of-core model are not in memory (asked for {name!r})")


def mvn(data, *, columns=None, missing: str = "em", sample_rows: int = 20_000,
        executor=None) -> StreamedMVN:
    """The multivariate normal with values missing at random, from data read piece by
    piece (see :class:`~emstats.models.mvn.MVN`).

    One pass over the pieces (on the executor) reduces the rows to each missingness
    pattern's count, sums and cross-products; EM, Louis' standard errors and Little's
    MCAR test then run on those, in memory.  Imputation needs the rows and is not
    available out of core.

    Parameters
    ----------
    data : str, path, list of paths, dask.dataframe or dask.array
        The pieces: Parquet files (row groups) or a dask collection's partitions.
    columns : list of str, optional
        The variables (default: every column).
    missing : {"em", "drop", "raise"}
    sample_rows : int
        Rows of the first pieces whose observed means are the fixed centre of the sums.
    executor :
        Where the pass runs (see :func:`gmm`).
    """
    from ..components.gaussian_missing import Patterns

    if missing not in ("em", "drop", "raise"):
        raise ValueError(f"missing must be 'em', 'drop' or 'raise', got {missing!r}")
    ex = as_executor(executor)
    cols = None if columns is None else list(columns)
    pieces = _pieces(data, cols)
    scan = _PatternScan(cols, missing, None)
    sample, got = [], 0
    for p in pieces:
        X, _ = scan.matrix(p.load(), p)
        sample.append(X)
        got += X.shape[0]
        if got >= sample_rows:
            break
    Xs = np.concatenate(sample)
    with np.errstate(invalid="ignore"):
        centre = np.nanmean(Xs, axis=0)
    names = _names(pieces[0], cols, None, Xs.shape[1])
    empty = [names[j] for j in np.flatnonzero(np.isnan(centre))]
    if empty:
        raise DataError("column(s) with no observed value in the first rows: "
                        + ", ".join(empty) + " (raise sample_rows)")
    scan.centre = centre
    parts = ex.map(scan, pieces)
    merged: dict = {}
    offset = 0
    for pats, n_rows, _ in parts:
        for key, (first, cnt, s, S, obs) in pats.items():
            if key in merged:
                f0, c0, s0, S0, _ = merged[key]
                merged[key] = (f0, c0 + cnt, s0 + s, S0 + S, obs)
            else:
                merged[key] = (offset + first, cnt, s, S, obs)
        offset += n_rows
    vals = list(merged.values())
    obs = np.array([v[4] for v in vals])
    first = np.array([v[0] for v in vals])
    order = np.lexsort((first, -obs.sum(axis=1)))     # most complete first, then by row
    vals = [vals[i] for i in order]
    counts = np.array([v[1] for v in vals], dtype=np.int64)
    patterns = Patterns(obs[order].copy(), counts, np.empty(0, dtype=np.int64),
                        np.empty(0, dtype=np.int64),
                        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    model = StreamedMVN(names, missing, int(sum(p[2] for p in parts)), patterns, centre,
                        counts.astype(float), np.array([v[2] for v in vals]),
                        np.array([v[3] for v in vals]))
    model._source = (pieces, scan, ex)
    return model
