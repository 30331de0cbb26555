"""The multivariate normal with missing coordinates: the pieces every Gaussian model shares.

Rows are grouped by their pattern of missing values.  Within a pattern (observed
coordinates ``o``, missing ``m``) the rows enter the likelihood, the E-step and
Louis' pieces only through three sums of the observed values, computed once:

    n_p,   s_p = sum_i x_io,   S_p = sum_i x_io x_io'

(about a fixed centre ``c``, to avoid the cancellation of raw moments).  With
mu, Sigma the current parameters, B = Sigma_mo Sigma_oo^-1 and
C = Sigma_mm - B Sigma_om, the conditional mean of the residual z = x - mu is
E[z | x_o] = K (x_o - mu_o) with K = [I; B] (rows o; rows m) and its conditional
covariance is C in the (m, m) block.  Every per-iteration quantity of the pattern
follows from r = s_p - n_p mu_o and Q = sum (x_o - mu_o)(x_o - mu_o)':

* the observed-data log-likelihood
  ``-1/2 (n_p |o| log 2 pi + n_p log|Sigma_oo| + tr(Sigma_oo^-1 Q))``;
* the E-step statistics ``sum E[x - c]`` and ``sum E[(x - c)(x - c)']``;
* Louis' pieces of the complete-data score in the coordinates (mu, Sigma as a
  full matrix), with W = Sigma^-1, u = W z, u_hat = E[u | x_o] and
  V = W C~ W the conditional covariance of u (C~ is C in the (m, m) block):
  the score (sum u_hat, 1/2 (M - n W)) with M = sum E[u u'], the complete
  information and the conditional covariance of the score (Isserlis' theorem
  for the Gaussian fourth moments); :func:`full_to_elements` maps them to the
  elements of the lower triangle of Sigma.

So an EM iteration costs O(P d^3) for P patterns, independent of the number of
rows: the data are read once, at construction.  Gaussian mixtures reuse the same
conditional moments per component and per row (:func:`component_moments`: their
responsibilities depend on each row's observed values, so the rows cannot be reduced to
pattern sums), one Cholesky factor of Sigma_k,oo per component and block of rows.

Layering: imports numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

LOG2PI = float(np.log(2.0 * np.pi))
#: rows of a block of per-row temporaries
ROWS = 65536


@dataclass(frozen=True)
class Patterns:
    """Rows grouped by their missingness pattern.

    Attributes
    ----------
    observed : ndarray of bool, shape (P, d)
        Observed coordinates of each pattern (in order of first appearance).
    counts : ndarray of int64, shape (P,)
        Rows with each pattern.
    row_pattern : ndarray of int64, shape (n,)
        Pattern of each row.
    order : ndarray of int64, shape (n,)
        Rows sorted by pattern (stable): rows ``order[bounds[p]:bounds[p + 1]]`` have
        pattern ``p``.
    bounds : ndarray of int64, shape (P + 1,)
    """

    observed: np.ndarray
    counts: np.ndarray
    row_pattern: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    @property
    def n_patterns(self) -> int:
        """Number of distinct patterns."""
        return int(self.counts.size)

    def rows(self, p: int) -> np.ndarray:
        """Indices of the rows with pattern ``p``."""
        return self.order[self.bounds[p]:self.bounds[p + 1]]


def group_patterns(X: np.ndarray) -> Patterns:
    """Group the rows of ``X`` (NaN = missing) by pattern, most complete patterns first.

    Patterns are ordered by decreasing number of observed coordinates, then by
    first appearance, so the complete cases (if any) are pattern 0.
    """
    obs = ~np.isnan(X)
    n, d = obs.shape
    if d <= 16:
        # one code per row below 2^16, counted directly (no sort of the codes): bit j
        # set where column j is observed
        code = np.zeros(n, dtype=np.int32)
        for j in range(d):
            np.bitwise_or(code, np.int32(1 << j), out=code, where=obs[:, j])
        at = np.full(1 << d, n, dtype=np.int64)
        np.minimum.at(at, code, np.arange(n, dtype=np.int64))
        codes = np.flatnonzero(at < n)
        first = at[codes]
        del at
    else:
        # one integer code per row (bytes of the packed bits for wide data): sorting
        # codes is far faster than np.unique(axis=0) on the boolean rows
        packed = np.packbits(obs, axis=1)
        if packed.shape[1] <= 8:
            code = np.zeros(n, dtype=np.uint64)
            for j in range(packed.shape[1]):
                code = (code << np.uint64(8)) | packed[:, j].astype(np.uint64)
        else:
            code = np.ascontiguousarray(packed).view(
                np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, inv = np.unique(code, return_index=True, return_inverse=True)
        code = inv.ravel()
        codes = np.arange(first.size)
    keys = obs[first]
    del obs
    rank = np.lexsort((first, -keys.sum(axis=1)))
    relabel = np.empty_like(rank)
    relabel[rank] = np.arange(rank.size)
    lut = np.zeros(int(codes[-1]) + 1, dtype=np.int64)      # code -> pattern
    lut[codes] = relabel
    row_pattern = lut[code]
    del code
    order = np.argsort(row_pattern, kind="stable").astype(np.int64)
    counts = np.bincount(row_pattern, minlength=rank.size).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Patterns(keys[rank].copy(), counts, row_pattern, order, bounds)


def pattern_sums(X: np.ndarray, patterns: Patterns, centre: np.ndarray):
    """``(n, s, S)`` of each pattern: counts, sums and cross-products of the observed
    values about ``centre`` (zero in the missing coordinates).

    One pass over the data; each pattern's cross-products are one BLAS product of its
    rows' observed columns.
    """
    P, d = patterns.observed.shape
    n = patterns.counts.astype(float)
    s = np.zeros((P, d))
    S = np.zeros((P, d, d))
    for p in range(P):
        o = np.flatnonzero(patterns.observed[p])
        if o.size == 0:
            continue
        rows = patterns.rows(p)
        sp, Sp = np.zeros(o.size), np.zeros((o.size, o.size))
        for a in range(0, rows.size, ROWS):     # by blocks of rows: no copy of the data
            Xp = X[np.ix_(rows[a:a + ROWS], o)]
            Xp -= centre[o]
            sp += Xp.sum(axis=0)
            Sp += Xp.T @ Xp
        s[p, o] = sp
        S[p][np.ix_(o, o)] = Sp
    return n, s, S


def column_counts(observed: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows observing each pair of columns (d x d; the diagonal: each column)."""
    o = observed.astype(float)
    return (o * counts[:, None]).T @ o


@dataclass(frozen=True)
class PatternMoments:
    """The conditional moments of one pattern at (mu, Sigma), summed over its rows.

    ``sz`` = sum E[z | x_o], ``pz`` = sum E[z | x_o] E[z | x_o]', ``cm`` = the
    conditional covariance (d x d, nonzero in the missing block), with z = x - mu;
    ``loglik`` the pattern's observed-data log-likelihood and ``r``, ``sigma_oo_inv_r``
    the sum of observed residuals and Sigma_oo^-1 times it (for Little's test).
    """

    n: float
    sz: np.ndarray
    pz: np.ndarray
    cm: np.ndarray
    loglik: float
    little: float


def pattern_moments(obs: np.ndarray, n: float, s: np.ndarray, S: np.ndarray,
                    mu_c: np.ndarray, sigma: np.ndarray) -> PatternMoments | None:
    """Conditional moments of a pattern (see the module docstring).

    Parameters
    ----------
    obs : (d,) bool, the observed coordinates; n, s, S : the pattern's sums about the
        centre; mu_c : (d,) the mean minus the centre; sigma : (d, d).

    Returns
    -------
    PatternMoments, or None when Sigma_oo is not positive definite.
    """
    d = mu_c.size
    o = np.flatnonzero(obs)
    m = np.flatnonzero(~obs)
    if o.size == 0:
        z = np.zeros(d)
        cm = sigma.copy()
        return PatternMoments(n, z, np.zeros((d, d)), cm, 0.0, 0.0)
    so = s[o]
    mo = mu_c[o]
    r = so - n * mo
    Q = S[np.ix_(o, o)] - np.outer(so, mo) - np.outer(mo, so) + n * np.outer(mo, mo)
    soo = sigma[np.ix_(o, o)]
    try:
        L = np.linalg.cholesky(soo)
    except np.linalg.LinAlgError:
        return None
    diag = np.diag(L)
    if not np.all(np.isfinite(diag)) or not np.all(diag > 0):
        return None
    logdet = 2.0 * float(np.sum(np.log(diag)))
    smo = sigma[np.ix_(m, o)]
    k = o.size
    # Sigma_oo^-1 [Q, r, Sigma_om] by two triangular-shaped solves
    rhs = np.concatenate([Q, r[:, None], smo.T], axis=1)
    Z = np.linalg.solve(L.T, np.linalg.solve(L, rhs))
    ll = -0.5 * (n * k * LOG2PI + n * logdet + float(np.trace(Z[:, :k])))
    little = float(r @ Z[:, k]) / n if n > 0 else 0.0
    K = np.zeros((d, k))
    K[o, np.arange(k)] = 1.0
    cm = np.zeros((d, d))
    if m.size:
        B = Z[:, k + 1:].T                               # Sigma_mo Sigma_oo^-1
        K[m] = B
        cmm = sigma[np.ix_(m, m)] - B @ smo.T
        cm[np.ix_(m, m)] = 0.5 * (cmm + cmm.T)
    sz = K @ r
    pz = K @ Q @ K.T
    return PatternMoments(n, sz, 0.5 * (pz + pz.T), cm, ll, little)


def estep_pattern(pm: PatternMoments, mu_c: np.ndarray):
    """E-step sums of a pattern: ``(sum E[x - c], sum E[(x - c)(x - c)'])``."""
    s1 = pm.n * mu_c + pm.sz
    a = np.outer(mu_c, pm.sz)
    s2 = pm.n * np.outer(mu_c, mu_c) + a + a.T + pm.pz + pm.n * pm.cm
    return s1, s2


def estep_sums(pms, mu_c: np.ndarray):
    """E-step sums over patterns: ``(n, sum E[x - c], sum E[(x - c)(x - c)'], loglik)``."""
    d = mu_c.size
    s1, s2, ll, nn = np.zeros(d), np.zeros((d, d)), 0.0, 0.0
    for pm in pms:
        a, b = estep_pattern(pm, mu_c)
        s1 += a
        s2 += b
        ll += pm.loglik
        nn += pm.n
    return nn, s1, s2, ll


def louis_sums(pms, sigma: np.ndarray):
    """Louis' pieces summed over patterns in full coordinates (see :func:`louis_full`):
    ``(score, complete, missing, loglik)`` at the covariance ``sigma``."""
    W = np.linalg.inv(sigma)
    W = 0.5 * (W + W.T)
    d = sigma.shape[0]
    m = d + d * d
    sc, co, mi, ll = np.zeros(m), np.zeros((m, m)), np.zeros((m, m)), 0.0
    for pm in pms:
        a, b, c = louis_full(pm, W)
        sc += a
        co += b
        mi += c
        ll += pm.loglik
    return sc, co, mi, ll


def louis_full(pm: PatternMoments, W: np.ndarray):
    """Score, complete and missing information of a pattern in full coordinates.

    Coordinates: the d means, then the d^2 entries of Sigma as an unconstrained matrix
    (row-major).  Contract with :func:`full_to_elements` for symmetric Sigma.
    """
    d = W.shape[0]
    n = pm.n
    su = W @ pm.sz
    pu = W @ pm.pz @ W
    V = W @ pm.cm @ W
    M = pu + n * V
    score = np.concatenate([su, (0.5 * (M - n * W)).ravel()])
    q = d + d * d
    comp = np.zeros((q, q))
    miss = np.zeros((q, q))
    comp[:d, :d] = n * W
    # -d2 l / d mu_c d Sigma_ab = u_a W_bc
    cms = np.einsum("a,bc->cab", su, W).reshape(d, d * d)
    comp[:d, d:] = cms
    comp[d:, :d] = cms.T
    # -d2 l / d Sigma_ab d Sigma_cd = M_da W_bc - n/2 W_da W_bc
    H = np.einsum("da,bc->abcd", M, W) - 0.5 * n * np.einsum("da,bc->abcd", W, W)
    comp[d:, d:] = H.reshape(d * d, d * d)
    # conditional covariances of the score (u = u_hat + v, v ~ N(0, V))
    miss[:d, :d] = n * V
    cug = 0.5 * (np.einsum("a,cb->cab", su, V) + np.einsum("b,ca->cab", su, V))
    miss[:d, d:] = cug.reshape(d, d * d)
    miss[d:, :d] = miss[:d, d:].T
    G = (n * (np.einsum("ac,bd->abcd", V, V) + np.einsum("ad,bc->abcd", V, V))
         + np.einsum("ac,bd->abcd", pu, V) + np.einsum("ad,bc->abcd", pu, V)
         + np.einsum("bc,ad->abcd", pu, V) + np.einsum("bd,ac->abcd", pu, V))
    miss[d:, d:] = 0.25 * G.reshape(d * d, d * d)
    return score, comp, miss


def full_to_elements(d: int) -> np.ndarray:
    """d (mu, vec Sigma) / d (mu, lower-triangle elements of Sigma): (d + d^2) x (d + d(d+1)/2).

    The lower triangle in ``numpy.tril_indices`` order, as
    :class:`~emstats.em.params.Cholesky` with ``inference="elements"``.
    """
    a, b = np.tril_indices(d)
    ne = a.size
    J = np.zeros((d + d * d, d + ne))
    J[np.arange(d), np.arange(d)] = 1.0
    k = np.arange(ne)
    J[d + a * d + b, d + k] = 1.0
    J[d + b * d + a, d + k] = 1.0
    return J


def conditional_draw(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                     rng: np.random.Generator | None):
    """Fill the NaN of the rows ``x`` (all with one pattern) by their conditional mean
    given the observed values (``rng=None``) or a draw from the conditional normal."""
    obs = ~np.isnan(x[0])
    o = np.flatnonzero(obs)
    m = np.flatnonzero(~obs)
    out = x.copy()
    if m.size == 0:
        return out
    if o.size:
        cf = cho_factor(sigma[np.ix_(o, o)], lower=True)
        B = cho_solve(cf, sigma[np.ix_(o, m)]).T
        mean = mu[m] + (x[:, o] - mu[o]) @ B.T
        C = sigma[np.ix_(m, m)] - B @ sigma[np.ix_(o, m)]
    else:
        mean = np.broadcast_to(mu[m], (x.shape[0], m.size))
        C = sigma[np.ix_(m, m)]
    if rng is not None:
        w, v = np.linalg.eigh(0.5 * (C + C.T))
        F = v * np.sqrt(np.maximum(w, 0.0))
        mean = mean + rng.standard_normal((x.shape[0], m.size)) @ F.T
    out[:, m] = mean
    return out



def component_moments(xo: np.ndarray, obs: np.ndarray, means: np.ndarray, covs: np.ndarray):
    """Marginal log-densities and conditional moments of rows with one pattern, for each
    of K normal components.

    Parameters
    ----------
    xo : ndarray, shape (n, |o|)
        The rows' observed values (the coordinates ``obs``).
    obs : ndarray of bool, shape (d,)
    means : ndarray, shape (K, d)
    covs : ndarray, shape (K, d, d)

    Returns
    -------
    (logpdf, resid, cond) or None when some Sigma_k,oo is not positive definite:
    ``logpdf`` (n, K), log phi(x_o; mu_k,o, Sigma_k,oo); ``resid`` (K, n, d), the
    conditional mean residuals E[x - mu_k | x_o, k] (x_o - mu_k,o in the observed
    coordinates, B_k (x_o - mu_k,o) in the missing ones, B_k = Sigma_k,mo Sigma_k,oo^-1);
    ``cond`` (K, d, d), the conditional covariances Sigma_k,mm - B_k Sigma_k,om in the
    (m, m) block and zero elsewhere.

    Notes
    -----
    One LU factorisation of Sigma_k,oo per component solves for [e', Sigma_k,om] at once
    (e = x_o - mu_k,o): the Mahalanobis distances e Sigma_oo^-1 e', B_k e and the
    conditional covariance Sigma_k,mm - Sigma_k,mo Sigma_oo^-1 Sigma_k,om follow.  The
    blocks of a positive-definite Sigma_k are positive definite; a block that is not
    (a non-positive determinant or a negative distance) returns None.
    """
    K, d = means.shape
    n = xo.shape[0]
    o = np.flatnonzero(obs)
    m = np.flatnonzero(~obs)
    q = o.size
    resid = np.zeros((K, n, d))
    cond = np.zeros((K, d, d))
    if q == 0:
        return np.zeros((n, K)), resid, covs.copy()
    # every component at once: one batched LU solve of the K blocks Sigma_k,oo against the
    # residuals and Sigma_k,om (LAPACK's gesv; OpenBLAS's threaded potrf costs far more on
    # these small blocks when other threads are busy)
    soo = covs[:, o][:, :, o]
    sign, logdet = np.linalg.slogdet(soo)
    if not (np.all(sign > 0) and np.all(np.isfinite(logdet))):
        return None
    e = xo[None] - means[:, None, o]                                 # (K, n, q)
    rhs = np.concatenate([np.swapaxes(e, 1, 2), covs[:, o][:, :, m]], axis=2)
    sol = np.linalg.solve(soo, rhs)                                  # (K, q, n + |m|)
    maha = np.einsum("knq,kqn->nk", e, sol[:, :, :n])
    if not np.all(maha >= 0):
        return None                                                  # not positive definite
    logpdf = -0.5 * (q * LOG2PI + logdet[None] + maha)
    resid[:, :, o] = e
    if m.size:
        Wm = sol[:, :, n:]                                           # Sigma_oo^-1 Sigma_om
        resid[:, :, m] = e @ Wm
        cmm = covs[:, m][:, :, m] - covs[:, m][:, :, o] @ Wm
        cond[:, m[:, None], m[None, :]] = 0.5 * (cmm + np.swapaxes(cmm, 1, 2))
    return logpdf, resid, cond
