"""Data preparation shared by the Gaussian models (mixtures, variational mixtures).

Names here are used across modules (:mod:`emstats.models.gmm`,
:mod:`emstats.models.vbgmm`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..em.data import ArrayData, Chunk
from ..exceptions import DataError, describe_rows
from ..formula import capture_env, data_frame, numeric_matrix

__all__ = ["GaussianRows", "IncompleteGaussianRows", "prepare_data", "sym"]


def sym(a: np.ndarray) -> np.ndarray:
    """The symmetric part (a + a') / 2 of a matrix or a stack of matrices (last two axes)."""
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def prepare_data(spec, data, missing: str):
    """Numeric rows for a Gaussian model from an array, a DataFrame or a formula.

    Parameters
    ----------
    spec : str, array_like, DataFrame or Series
        A one-sided formula (``"~ x + y"``, evaluated in ``data`` and the
        environment of the caller's caller) or the data themselves.
    data : DataFrame or dict, optional
        The data of a formula (None otherwise).
    missing : {"raise", "drop", "em"}
        Rows with NaN raise a :class:`~emstats.exceptions.DataError` or are dropped;
        ``"em"`` keeps them (the model integrates the missing values out) and drops only
        the rows with no observed value, after checking that no column is entirely
        missing.

    Returns
    -------
    X : ndarray, shape (n, d)
        C-contiguous rows.
    names : list of str
        Column names.
    labels : pandas.Index
        Labels of the rows kept.
    n_dropped : int
        Rows dropped for missing values (with ``"em"``: rows with every value missing).
    design_info : emstats.formula.Terms or None
        The formula's terms (to build new data), None without a formula.
    """
    if missing not in ("raise", "drop", "em"):
        raise ValueError(f"missing must be 'raise', 'drop' or 'em', got {missing!r}")
    design_info = None
    if isinstance(spec, str):
        if data is None:
            raise DataError("a formula needs data=: gmm('~ x + y', data=frame, k=...)")
        frame = data_frame(data)
        mat, design_info = numeric_matrix(spec, frame, eval_env=capture_env(2))
        names = list(mat.columns)
        X = mat.to_numpy(dtype=float)
        labels = frame.index
    else:
        if data is not None:
            raise TypeError("pass the data either positionally or as data=, not both")
        obj = spec
        if isinstance(obj, pd.Series):
            obj = obj.to_frame()
        if isinstance(obj, pd.DataFrame):
            for c in obj.columns:
                col = obj[c]
                if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                    raise DataError(f"column {c!r} is not numeric (dtype {col.dtype})")
            names = [str(c) for c in obj.columns]
            X = obj.to_numpy(dtype=float, na_value=np.nan)
            labels = obj.index
        else:
            try:
                # no copy of a float64 array: a read-only view (the caller's data are never
                # written to; rows are copied only where they are dropped or reordered)
                X = np.asarray(obj, dtype=float)
            except (TypeError, ValueError):
                raise DataError("data must be numeric (an array, a DataFrame or a formula "
                                "with data=)") from None
            if X.ndim == 1:
                X = X[:, None]
            if X.ndim != 2:
                raise DataError(f"data must be 2-dimensional (rows x variables), got shape "
                                f"{X.shape}")
            names = [f"x{j}" for j in range(X.shape[1])]
            labels = pd.RangeIndex(X.shape[0])
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"no data (shape {X.shape})")
    inf = np.isinf(X).any(axis=1)
    if inf.any():
        raise DataError(f"infinite values in rows {describe_rows(labels, inf)}")
    n_drop = 0
    if missing == "em":
        isnan = np.isnan(X)
        empty = [names[j] for j in np.flatnonzero(isnan.all(axis=0))]
        if empty:
            raise DataError("column(s) entirely missing: " + ", ".join(map(repr, empty))
                            + " (drop them)")
        keep = ~isnan.all(axis=1)
        n_drop = int((~keep).sum())
        if n_drop:
            X, labels = X[keep], labels[keep]
        return _read_only(X), names, labels, n_drop, design_info
    nan = np.isnan(X).any(axis=1)
    if nan.any():
        cols = [names[j] for j in np.flatnonzero(np.isnan(X).any(axis=0))]
        if missing == "raise":
            raise DataError(
                f"missing values (NaN) in {int(nan.sum())} row(s) "
                f"(rows {describe_rows(labels, nan)}; "
                f"columns {', '.join(map(repr, cols))}); use missing='drop' to drop them"
            )
        X = X[~nan]
        labels = labels[~nan]
        n_drop = int(nan.sum())
        if X.shape[0] == 0:
            raise DataError("no complete rows: every row has a missing value")
    return _read_only(X), names, labels, n_drop, design_info


def _read_only(X):
    """C-contiguous rows that cannot be written to: the array itself if it already is
    C-contiguous (a read-only view, so the caller's array may stay writeable), else a
    C-contiguous copy."""
    X = np.ascontiguousarray(X).view()
    X.flags.writeable = False
    return X


class GaussianRows(ArrayData):
    """Rows ``X`` (n x d) of a Gaussian model, whose chunks also carry their transpose
    ``XT`` (d x rows, C-contiguous), the layout the mixture kernels read.

    The transpose of the whole data is made once (attribute ``XT``); a chunk of part of
    the rows gets its own when the chunks are cut (once per fit).
    """

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "XT", np.ascontiguousarray(self.arrays["X"].T))

    def chunks(self, n_chunks: int = 1, n_threads: int = 1) -> list[Chunk]:
        out = []
        for c in super().chunks(n_chunks, n_threads):
            whole = c.start == 0 and c.stop == self.n_rows
            xt = self.XT if whole else np.ascontiguousarray(c["X"].T)
            out.append(Chunk({**c.arrays, "XT": xt}, c.start, c.stop, c.bounds,
                             c.n_threads))
        return out

    def take_units(self, idx) -> GaussianRows:
        return GaussianRows({"X": self.arrays["X"][np.asarray(idx, dtype=np.int64)]})


class IncompleteGaussianRows(ArrayData):
    """Rows with missing values (NaN), for the Gaussian models that integrate them out.

    Arrays ``X`` (n x d: the complete rows first, then the incomplete rows grouped by
    pattern) and ``pat`` (the pattern of each row: -1 for a complete row, else an index
    into ``observed``, so ``pat`` is sorted).  A chunk also carries ``XT``, the transpose
    of its complete rows (d x rows, C-contiguous), the layout of the mixture kernels; the
    incomplete rows of a chunk are its rows from ``searchsorted(pat, 0)`` on.
    """

    def __post_init__(self):
        super().__post_init__()
        nc = int(np.searchsorted(self.arrays["pat"], 0))
        object.__setattr__(self, "XT", np.ascontiguousarray(self.arrays["X"][:nc].T))

    def chunks(self, n_chunks: int = 1, n_threads: int = 1) -> list[Chunk]:
        out = []
        for c in super().chunks(n_chunks, n_threads):
            nc = int(np.searchsorted(c["pat"], 0))
            whole = c.start == 0 and nc == self.XT.shape[1]
            xt = self.XT if whole else np.ascontiguousarray(c["X"][:nc].T)
            out.append(Chunk({**c.arrays, "XT": xt}, c.start, c.stop, c.bounds,
                             c.n_threads))
        return out
