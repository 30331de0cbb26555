"""Starting values shared by the mixture and hidden Markov models.

Every function draws from a :class:`numpy.random.Generator` passed by the caller
(so a seed fixes the start) and is vectorised over rows.

- :func:`kmeans_plusplus` - D^2 seeding (Arthur & Vassilvitskii 2007);
- :func:`lloyd` - Lloyd iterations from given centres (labels and centres);
- :func:`kmeans` - both, on optionally rescaled data;
- :func:`random_partition` - labels with every group non-empty;
- :func:`distinct_rows` - k distinct rows (e.g. as means);
- :func:`quantile_levels`, :func:`quantile_starts` - spread starts for 1-d data;
- :func:`random_responsibilities` - uniform-normalised or Dirichlet rows.
"""

from __future__ import annotations

import numpy as np

from .._config import requested_threads, threads_for_work
from .._kernels import kmeans_kernels

__all__ = ["distinct_rows", "kmeans", "kmeans_plusplus", "lloyd", "quantile_levels",
           "quantile_starts", "random_partition", "random_responsibilities"]

def kmeans_plusplus(Z: np.ndarray, k: int, rng: np.random.Generator, *,
                    scale: np.ndarray | None = None,
                    n_threads: int | None = None) -> np.ndarray:
    """Indices of ``k`` seed rows of ``Z`` by k-means++ (D^2) sampling.

    The first seed is uniform; each further seed is row i with probability
    proportional to its squared distance to the nearest seed so far (uniform
    again if every distance is zero).  The distances are one compiled pass over the rows
    per seed (memory: two vectors of n entries, no n x d temporary).

    Parameters
    ----------
    Z : ndarray, shape (n, d)
        Rows (standardise them first if the scales differ, or pass ``scale``).
    k : int
        Number of seeds.
    rng : numpy.random.Generator
        Source of the draws.
    scale : ndarray, shape (d,), optional
        Column scales: the seeding is that of ``Z / scale``, without forming it.
    n_threads : int, optional
        Threads of the distance passes (default: those of the fit running, one for small
        data).

    Returns
    -------
    ndarray of int, shape (k,)
    """
    Z = _rows(Z)
    n = Z.shape[0]
    nt = _threads(n_threads, n)
    sc = np.ones(Z.shape[1]) if scale is None else np.ascontiguousarray(scale, dtype=float)
    idx = np.empty(int(k), dtype=np.intp)
    idx[0] = rng.integers(n)
    d2 = np.empty(n)
    kmeans_kernels.sqdist_min(Z, np.ascontiguousarray(Z[idx[0]] / sc), sc, d2, 1, nt)
    for j in range(1, int(k)):
        tot = d2.sum()
        if tot <= 0:
            i = int(rng.integers(n))
        else:
            i = min(int(np.searchsorted(np.cumsum(d2), rng.random() * tot)), n - 1)
        idx[j] = i
        kmeans_kernels.sqdist_min(Z, np.ascontiguousarray(Z[i] / sc), sc, d2, 0, nt)
    return idx


def _rows(X) -> np.ndarray:
    """``X`` as a float64 2-d array, not copied when it already is one (any strides)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d array of rows, got shape {X.shape}")
    return X


def _threads(n_threads: int | None, n: int) -> int:
    """Threads for a pass over ``n`` rows: the argument, else the fit's (one for small n)."""
    return threads_for_work(n_threads if n_threads is not None else requested_threads(), n)


def _assign(X: np.ndarray, centers: np.ndarray, out: np.ndarray, n_threads: int):
    """Nearest-centre labels into ``out``; returns the groups' counts and sums."""
    C = np.asarray(centers, dtype=float)
    K, d = C.shape
    nch = kmeans_kernels.n_chunks(X.shape[0])
    counts = np.zeros((nch, K))
    sums = np.zeros((nch, K, d))
    kmeans_kernels.assign(X, np.ascontiguousarray(C.T), (C ** 2).sum(axis=1), out, counts,
                          sums, n_threads)
    return counts.sum(axis=0), sums.sum(axis=0)


def lloyd(X: np.ndarray, centers: np.ndarray, iters: int = 10, *,
          empty: str = "keep", n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means iterations from ``centers``.

    Up to ``iters + 1`` assignments of each row to its nearest centre, each but
    the last followed by moving the centres to their groups' means; stops early
    when the centres no longer move.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    centers : ndarray, shape (k, d)
    iters : int
        Maximum number of centre updates.
    empty : {"keep", "stop"}
        A centre whose group empties keeps its position (``"keep"``) or the
        iterations stop with the partition that has the empty group (``"stop"``;
        the caller decides what to do).
    n_threads : int, optional
        Threads of the passes over the rows (default: those of the fit running, one for
        small data).

    Returns
    -------
    labels : ndarray of int, shape (n,)
    centers : ndarray, shape (k, d)
        The centres after the last update (the means of ``labels``' groups,
        unless a group is empty).
    """
    if empty not in ("keep", "stop"):
        raise ValueError(f"empty must be 'keep' or 'stop', got {empty!r}")
    X = _rows(X)
    nt = _threads(n_threads, X.shape[0])
    centers = np.array(centers, dtype=float)
    lab = np.empty(X.shape[0], dtype=np.intp)
    for _ in range(int(iters) + 1):
        counts, sums = _assign(X, centers, lab, nt)
        if empty == "stop" and np.any(counts == 0):
            break
        full = counts > 0
        new = np.where(full[:, None], sums / np.maximum(counts, 1)[:, None], centers)
        if np.array_equal(new, centers):
            break
        centers = new
    return lab, centers


def kmeans(X: np.ndarray, k: int, rng: np.random.Generator, *, iters: int = 10,
           scale=None, space: str = "scaled",
           empty: str = "keep") -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding then Lloyd iterations.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    k : int
    rng : numpy.random.Generator
    iters : int
        Maximum number of Lloyd updates (see :func:`lloyd`).
    scale : array_like, shape (d,), optional
        Seeds are drawn in the coordinates X / scale (default: the data as given).
    space : {"scaled", "data"}
        Where the Lloyd iterations run: in X / scale (default) or in the data's
        own coordinates.
    empty : {"keep", "stop"}
        See :func:`lloyd`.

    Returns
    -------
    labels : ndarray of int, shape (n,)
    centers : ndarray, shape (k, d)
        In the coordinates of ``space``.
    """
    if space not in ("scaled", "data"):
        raise ValueError(f"space must be 'scaled' or 'data', got {space!r}")
    X = np.asarray(X, dtype=float)
    Z = X if scale is None else X / np.asarray(scale, dtype=float)
    seeds = Z[kmeans_plusplus(Z, k, rng)]
    if space == "data" and scale is not None:
        return lloyd(X, seeds * scale, iters, empty=empty)
    return lloyd(Z, seeds, iters, empty=empty)


def random_partition(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labels 0..k-1 for ``n >= k`` rows, uniform given that no group is empty
    (k distinct rows take one label each, the others are uniform)."""
    n, k = int(n), int(k)
    if k > n:
        raise ValueError(f"cannot split {n} rows into {k} non-empty groups")
    lab = rng.integers(k, size=n)
    lab[rng.choice(n, size=k, replace=False)] = np.arange(k)
    return lab


def distinct_rows(X: np.ndarray, k: int, rng: np.random.Generator, *,
                  max_unique: int = 200_000) -> np.ndarray:
    """``k`` distinct rows of ``X``, drawn without replacement among the distinct rows
    (among all rows when there are more than ``max_unique``)."""
    uniq = np.unique(X, axis=0) if X.shape[0] <= max_unique else X
    pick = rng.choice(uniq.shape[0], size=int(k), replace=False)
    return uniq[pick].copy()


def quantile_levels(k: int, rng: np.random.Generator | None = None, *, low: float = 0.05,
                    high: float = 0.95) -> np.ndarray:
    """Probability levels for ``k`` starts: evenly spaced (i / (k + 1)) without ``rng``,
    otherwise sorted uniform draws on (low, high)."""
    if rng is None:
        return (np.arange(int(k)) + 1.0) / (int(k) + 1.0)
    return np.sort(rng.uniform(low, high, size=int(k)))


def quantile_starts(x: np.ndarray, k: int, rng: np.random.Generator | None = None,
                    **kwargs) -> np.ndarray:
    """Quantiles of 1-d data at :func:`quantile_levels` (increasing)."""
    return np.quantile(np.asarray(x, dtype=float).ravel(), quantile_levels(k, rng, **kwargs))


def random_responsibilities(n: int, k: int, rng: np.random.Generator, *,
                            kind: str = "uniform", alpha=1.0) -> np.ndarray:
    """Random rows of responsibilities (n x k, rows summing to one).

    ``kind="uniform"``: independent uniforms normalised by their row sum (as
    scikit-learn's random start); ``"dirichlet"``: Dirichlet(alpha) rows.
    """
    if kind == "uniform":
        r = rng.uniform(size=(int(n), int(k)))
        return r / r.sum(axis=1, keepdims=True)
    if kind == "dirichlet":
        a = np.broadcast_to(np.asarray(alpha, dtype=float), (int(k),))
        return rng.dirichlet(a, size=int(n))
    raise ValueError(f"kind must be 'uniform' or 'dirichlet', got {kind!r}")
