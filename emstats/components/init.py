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

__all__ = ["distinct_rows", "kmeans", "kmeans_plusplus", "lloyd", "quantile_levels",
           "quantile_starts", "random_partition", "random_responsibilities"]

#: rows per block of the distance computations
BLOCK = 65536


def kmeans_plusplus(Z: np.ndarray, k: int, rng: np.random.Generator, *,
                    scale: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``k`` seed rows of ``Z`` by k-means++ (D^2) sampling.

    The first seed is uniform; each further seed is row i with probability
    proportional to its squared distance to the nearest seed so far (uniform
    again if every distance is zero).  The distances are computed in blocks of rows
    (memory: a few vectors of n entries, no n x d temporary).

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

    Returns
    -------
    ndarray of int, shape (k,)
    """
    Z = np.asarray(Z, dtype=float)
    n = Z.shape[0]
    idx = np.empty(int(k), dtype=np.intp)
    idx[0] = rng.integers(n)
    d2 = _sqdist(Z, idx[0], scale, np.empty(n))
    new = np.empty(n)
    for j in range(1, int(k)):
        tot = d2.sum()
        if tot <= 0:
            i = int(rng.integers(n))
        else:
            i = min(int(np.searchsorted(np.cumsum(d2), rng.random() * tot)), n - 1)
        idx[j] = i
        np.minimum(d2, _sqdist(Z, i, scale, new), out=d2)
    return idx


def _sqdist(Z, i, scale, out):
    """Squared distances of the rows of ``Z / scale`` to its row ``i``, block by block
    (the same sums, row by row, as over the whole array)."""
    zi = Z[i] if scale is None else Z[i] / scale
    for s0 in range(0, Z.shape[0], BLOCK):
        Zb = Z[s0:s0 + BLOCK]
        if scale is not None:
            Zb = Zb / scale
        out[s0:s0 + BLOCK] = ((Zb - zi) ** 2).sum(axis=1)
    return out


def _assign(X: np.ndarray, centers: np.ndarray, out: np.ndarray) -> np.ndarray:
    cc = (centers ** 2).sum(axis=1)
    for s0 in range(0, X.shape[0], BLOCK):
        out[s0:s0 + BLOCK] = np.argmin(cc[None, :] - 2.0 * X[s0:s0 + BLOCK] @ centers.T,
                                       axis=1)
    return out


def lloyd(X: np.ndarray, centers: np.ndarray, iters: int = 10, *,
          empty: str = "keep") -> tuple[np.ndarray, np.ndarray]:
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

    Returns
    -------
    labels : ndarray of int, shape (n,)
    centers : ndarray, shape (k, d)
        The centres after the last update (the means of ``labels``' groups,
        unless a group is empty).
    """
    if empty not in ("keep", "stop"):
        raise ValueError(f"empty must be 'keep' or 'stop', got {empty!r}")
    X = np.asarray(X, dtype=float)
    centers = np.array(centers, dtype=float)
    k = centers.shape[0]
    lab = np.empty(X.shape[0], dtype=np.intp)
    for _ in range(int(iters) + 1):
        _assign(X, centers, lab)
        counts = np.bincount(lab, minlength=k)
        if empty == "stop" and np.any(counts == 0):
            break
        new = np.empty_like(centers)
        for j in range(X.shape[1]):
            s = np.bincount(lab, weights=X[:, j], minlength=k)
            new[:, j] = np.where(counts > 0, s / np.maximum(counts, 1), centers[:, j])
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
