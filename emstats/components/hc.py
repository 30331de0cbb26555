"""Model-based hierarchical agglomeration: mclust's default start of a Gaussian mixture.

Fraley (1998) merges, from singletons, the pair of clusters whose union loses the least
classification likelihood under a Gaussian model; cutting the tree at k clusters gives
the initial partition of a k-component mixture.  This module follows mclust's defaults
(``Mclust``: ``hc(data, modelName = "VVV", use = "SVD")``, then ``hclass``):

- the data are standardised and rotated to their principal axes, each axis divided by
  the square root of its singular value (:func:`svd_transform`, mclust's
  ``hcUse = "SVD"``);
- the unconstrained (VVV) criterion, regularised so that clusters of at most p rows
  have a finite cost (:func:`agglomerate`; the kernel and the exact criterion are in
  :mod:`emstats._kernels.hc_kernels`);
- above ``SUBSET`` rows, the tree is grown on a random subsample of that many rows
  (mclust's ``mclust.options("subset")``; the M-step of the start then uses the
  subsample's rows only, and EM continues on all rows);
- for one variable, mclust uses quantile classes instead (:func:`quantile_classes`).

The cost matrix of the agglomeration is n x n doubles (32 MB at n = 2000), hence the
subsample.

References
----------
Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical clustering.
SIAM Journal on Scientific Computing 20, 270-281.

Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5: clustering,
classification and density estimation using Gaussian finite mixture models. The R
Journal 8, 289-317.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernels import hc_kernels

__all__ = ["SUBSET", "HCTree", "agglomerate", "hc_labels", "hc_start", "quantile_classes",
           "svd_transform"]

#: rows above which the tree is grown on a random subsample of this size (mclust's
#: default ``mclust.options("subset")``)
SUBSET = 2000


def svd_transform(X: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"``: the standardised data (column means 0, standard
    deviations 1 with divisor n - 1) times V diag(s)^(-1/2), where U diag(s) V' is their
    singular value decomposition.  Columns with zero variance are dropped (as mclust's
    ``dropCols``), and so are directions with a zero singular value."""
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0, ddof=1)
    keep = np.isfinite(sd) & (sd > 0)
    Xs = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    _, s, Vt = np.linalg.svd(Xs, full_matrices=False)
    pos = s > s.max(initial=0.0) * 1e-12
    return np.ascontiguousarray(Xs @ Vt[pos].T / np.sqrt(s[pos]))


@dataclass(frozen=True)
class HCTree:
    """The merges of an agglomeration of ``n`` rows.

    Attributes
    ----------
    pairs : ndarray of int, shape (n - 1, 2)
        ``pairs[s] = (i, j)``, i < j: at step s the cluster represented by row j joins
        the one represented by row i (a cluster is represented by its smallest row).
    costs : ndarray, shape (n - 1,)
        The cost of each merge (the loss of the criterion).
    """

    pairs: np.ndarray
    costs: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows agglomerated."""
        return self.pairs.shape[0] + 1

    def partition(self, k: int) -> np.ndarray:
        """Labels 0..k-1 of the rows when ``k`` clusters remain, numbered in the order of
        their first row (as mclust's ``hclass``, which is 1-based)."""
        n, k = self.n, int(k)
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and {n}, got {k}")
        parent = np.arange(n)
        for i, j in self.pairs[:n - k]:
            parent[j] = i
        # every merge points a representative at a smaller one: resolve in row order
        root = parent.copy()
        for r in range(n):
            root[r] = root[root[r]]
        _, first, codes = np.unique(root, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.intp)
        rank[np.argsort(first)] = np.arange(len(first))
        return rank[codes]


def agglomerate(Z: np.ndarray, alpha: float = 1.0, beta: float = 1.0) -> HCTree:
    """Model-based agglomeration of the rows of ``Z`` under the VVV criterion (mclust's
    ``hcVVV`` with its defaults ``alpha = 1``, ``beta = 1``), from singletons.

    Parameters
    ----------
    Z : ndarray, shape (n, p)
        The rows (mclust transforms them first: :func:`svd_transform`).
    alpha, beta : float
        The regularisation of the criterion: a cluster's term uses
        beta (tr W + alpha') with alpha' = alpha times the data's mean variance per
        coordinate (divisor n), as mclust.

    Returns
    -------
    HCTree
    """
    Z = np.ascontiguousarray(Z, dtype=float)
    if Z.ndim != 2:
        raise ValueError("Z must be a 2-d array")
    n, p = Z.shape
    if n < 1 or p < 1:
        raise ValueError("Z needs at least one row and one column")
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z has non-finite values")
    a = float(alpha) * float(((Z - Z.mean(axis=0)) ** 2).sum()) / (n * p)
    a = max(a, np.finfo(float).eps)
    pairs = np.zeros((max(n - 1, 0), 2), dtype=np.int_)
    costs = np.zeros(max(n - 1, 0))
    hc_kernels.hc_vvv(Z, a, float(beta), pairs, costs)
    return HCTree(pairs, costs)


def quantile_classes(x: np.ndarray, k: int) -> np.ndarray:
    """mclust's ``qclass``: k classes of one variable cut at its quantiles (labels
    0..k-1 from the smallest values up); where quantiles coincide, more levels are
    tried and the closest cut points dropped."""
    x = np.asarray(x, dtype=float).ravel()
    k = int(k)
    eps = x.std(ddof=1) * np.sqrt(np.finfo(float).eps) if x.size > 1 else 0.0
    m, q = k, np.array([np.nan])
    while q.size < k + 1:
        m += 1
        q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, m)))
        if m > x.size + k + 1:
            break
    if q.size > k + 1:
        drop = np.argsort(np.diff(q), kind="stable")[:q.size - k - 1]
        q = np.delete(q, drop)
    q[0] = x.min() - eps
    q[-1] = x.max() + eps
    return np.clip(np.searchsorted(q, x, side="right") - 1, 0, k - 1)


@dataclass(frozen=True)
class HCStart:
    """A tree grown on some rows of the data: ``rows`` (indices into the data, all of
    them when ``n <= SUBSET``) and the :class:`HCTree` over them (``None`` for one
    variable: quantile classes of ``x`` then)."""

    rows: np.ndarray
    tree: HCTree | None
    x: np.ndarray | None = None

    def partition(self, k: int) -> np.ndarray:
        """Labels 0..k-1 of ``rows`` for k clusters."""
        if self.tree is None:
            return quantile_classes(self.x, k)
        return self.tree.partition(k)


def hc_start(X: np.ndarray, rng: np.random.Generator | None = None, *,
             subset: int = SUBSET) -> HCStart:
    """mclust's default initialisation of a Gaussian mixture, for every k at once:
    the VVV agglomeration of the SVD-transformed rows (of ``subset`` rows drawn by
    ``rng`` when there are more), or quantile classes for one variable.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    rng : numpy.random.Generator, optional
        Draws the subsample (default: seed 0).
    subset : int
        Size of the subsample above which the tree is grown on a subsample.

    Returns
    -------
    HCStart
        ``partition(k)`` gives the labels of its ``rows``.
    """
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[1] == 1:
        return HCStart(np.arange(n), None, X[:, 0].copy())
    if n > subset:
        rng = np.random.default_rng(0) if rng is None else rng
        rows = np.sort(rng.choice(n, size=int(subset), replace=False))
    else:
        rows = np.arange(n)
    return HCStart(rows, agglomerate(svd_transform(X[rows])))


def hc_labels(X: np.ndarray, k: int, rng: np.random.Generator | None = None, *,
              subset: int = SUBSET) -> np.ndarray:
    """Labels 0..k-1 of every row from :func:`hc_start`: the rows outside the subsample
    (above ``subset`` rows) join the cluster with the nearest mean in the standardised
    variables.  The start of models that need a label for every row (mixtures of
    regressions, of factor analyzers)."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    st = hc_start(X, rng, subset=subset)
    lab_sub = st.partition(k)
    n = X.shape[0]
    if st.rows.size == n:
        return lab_sub
    sd = X.std(axis=0)
    Zs = X / np.where(sd > 0, sd, 1.0)
    cent = np.vstack([Zs[st.rows[lab_sub == g]].mean(axis=0) for g in range(int(k))])
    d2 = (Zs ** 2).sum(axis=1)[:, None] - 2.0 * Zs @ cent.T + (cent ** 2).sum(axis=1)[None]
    lab = np.argmin(d2, axis=1)
    lab[st.rows] = lab_sub
    return lab
