"""Mixtures of factor analyzers by EM (Ghahramani & Hinton 1996; McLachlan & Peel 2000,
chapter 8), with values missing at random.

Component k is a factor model x = mu_k + L_k f + e, f ~ N(0, I_q), e ~ N(0, Psi_k), so
x ~ sum_k pi_k N(mu_k, L_k L_k' + Psi_k): a Gaussian mixture whose covariances have
d q + d parameters rather than d (d + 1) / 2 -- the structure that keeps a mixture in
many dimensions cheap.  The uniquenesses are component-specific (``uniq="unique"``),
shared (``"common"``) or isotropic per component (``"isotropic"``: mixtures of
probabilistic PCA, Tipping & Bishop 1999).

EM's missing data are the labels, the factors and the missing coordinates.  Given the
label, the E-step of a component is that of :mod:`emstats.models.factor` with the rows
weighted by their responsibilities: for each missingness pattern the weighted sums
sum r_ik, sum r_ik x_io and sum r_ik x_io x_io' enter the conditional moments of the
augmented vector (x, f) (:func:`~emstats.components.gaussian_missing.pattern_moments`
accepts weighted sums).  The M-step is a weighted regression of x on (1, f) per
component, the loadings rotated to echelon form (as in factor analysis), and the
weights are the mean responsibilities.  Row densities use the observed coordinates of
each row only (the missing ones integrated out).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from .._blas import single_threaded_blas
from ..components.gaussian_missing import (
    LOG2PI,
    PatternMoments,
    component_moments,
    estep_pattern,
    louis_full,
    pattern_moments,
)
from ..components.hc import hc_labels
from ..components.init import kmeans
from ..components.mixture import responsibilities
from ..em.data import ArrayData
from ..em.params import Free, ParamSpec, Positive, Simplex, SpecMaps
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats
from ..exceptions import DataError
from ..inference.fit import FitMixin
from ..inference.results import EMResults
from .factor import canonical_loadings, echelon, factor_df
from .mvn import MVN

UNIQ = ("unique", "common", "isotropic")


def _row_logdens(X, rows_by_pattern, observed, mu, S):
    """log N(x_io | mu_o, S_oo) of every row, pattern by pattern (n,)."""
    out = np.empty(X.shape[0])
    for p, rows in rows_by_pattern:
        o = np.flatnonzero(observed[p])
        if rows.size == 0:
            continue
        try:
            C = np.linalg.cholesky(S[np.ix_(o, o)])
        except np.linalg.LinAlgError:
            out[rows] = -np.inf
            continue
        Z = solve_triangular(C, (X[np.ix_(rows, o)] - mu[o]).T, lower=True)
        out[rows] = -0.5 * (o.size * LOG2PI + (Z ** 2).sum(axis=0)) \
            - np.log(np.diag(C)).sum()
    return out


def _blas_for(chunk):
    """One BLAS thread for a chunk the engine gives one thread (small data): the E-step's
    many small triangular solves and products are ~10 times slower when a multithreaded
    BLAS wakes its pool for each of them on a loaded machine (measured on 2 shared cores:
    60 EM steps of n = 300, d = 6 in 13.5 s against 1.4 s on one BLAS thread)."""
    return single_threaded_blas() if getattr(chunk, "n_threads", 1) == 1 else nullcontext()


#: rows per block of the per-row scores in Louis' pieces (bounds the memory)
_ROW_BLOCK = 4096


def _local_jacobian(L: np.ndarray, free: np.ndarray, isotropic: bool) -> np.ndarray:
    """d (mu_y, vec Sigma_y) / d (mean, free loadings, uniquenesses) of one component,
    y = (x, f) the augmented vector (as :meth:`FactorAnalysis._jacobian`)."""
    d, q = L.shape
    D = d + q
    cols = []
    for j in range(d):
        c = np.zeros(D + D * D)
        c[j] = 1.0
        cols.append(c)
    for a in range(d):
        for k in range(q):
            if not free[a, k]:
                continue
            G = np.zeros((D, D))
            G[a, :d] += L[:, k]
            G[:d, a] += L[:, k]
            G[a, d + k] = G[d + k, a] = 1.0
            c = np.zeros(D + D * D)
            c[D:] = G.ravel()
            cols.append(c)
    if isotropic:
        c = np.zeros(D + D * D)
        c[D + np.arange(d) * (D + 1)] = 1.0
        cols.append(c)
    else:
        for j in range(d):
            c = np.zeros(D + D * D)
            c[D + j * D + j] = 1.0
            cols.append(c)
    return np.column_stack(cols)


def _local_curvature(g_full: np.ndarray, d: int, q: int, free: np.ndarray,
                     size: int) -> np.ndarray:
    """sum_ab g_ab d^2 Sigma_ab / d theta^2 in the local coordinates of one component:
    d^2 Sigma_ij / dL_ak dL_bl = delta_kl (delta_ia delta_jb + delta_ib delta_ja)."""
    D = d + q
    g = g_full[D:].reshape(D, D)[:d, :d]
    g = g + g.T
    idx = [(a, k) for a in range(d) for k in range(q) if free[a, k]]
    a_ = np.array([a for a, _ in idx], dtype=np.intp)
    k_ = np.array([k for _, k in idx], dtype=np.intp)
    H = np.zeros((size, size))
    blk = np.where(k_[:, None] == k_[None, :], g[np.ix_(a_, a_)], 0.0)
    H[d:d + len(idx), d:d + len(idx)] = blk
    return H


def _row_scores(resid, W, cond, L, free, isotropic):
    """Per-row conditional expectations of the complete-data score of one component in
    its local coordinates (mean, free loadings, uniquenesses), given the row's observed
    values and the component: J' (W z_hat, 1/2 vec(W (z_hat z_hat' + C) W - W))."""
    d, q = L.shape
    u = resid @ W                                    # (n, D), W symmetric
    ux, uf = u[:, :d], u[:, d:]
    UW = W @ cond @ W - W
    base_L = UW[:d, :d] @ L + UW[:d, d:]             # (d, q), the same for every row
    fa, fk = np.nonzero(free)
    sL = ux[:, fa] * (ux @ L + uf)[:, fk] + base_L[fa, fk][None, :]
    sp = 0.5 * (ux ** 2 + np.diag(UW)[:d][None, :])
    if isotropic:
        sp = sp.sum(axis=1, keepdims=True)
    return np.concatenate([ux, sL, sp], axis=1)


class MixtureFactorAnalyzers(SpecMaps, FitMixin, ChunkedModel):
    """Mixture of factor analyzers by EM, values missing at random.

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        NaN marks a missing value.
    k : int
        Number of components.
    n_factors : int
        Factors per component (the same for all).
    uniq : {"unique", "common", "isotropic"}
        Component-specific diagonal uniquenesses (default), one diagonal matrix shared
        by the components, or sigma_k^2 I per component (mixture of PPCA).
    missing : {"em", "drop", "raise"}
        As for :func:`emstats.mvn`.

    Notes
    -----
    Starts: k-means++ and Lloyd on the data with missing values filled by column means
    (``init="kmeans"``, the default; ``n_init`` of them run a short EM each through the
    engine and the best continues), or one start from mclust's hierarchical agglomeration
    of the filled data (``init="hc"``, :func:`emstats.components.hc.hc_labels`), each
    component started by a factor analysis of its cluster's covariance.  Components are
    reported in order of their first mean.
    Standard errors: Louis' observed information, the labels, the factors and the
    missing coordinates being the missing data (:meth:`_louis_pass`); the coordinates are
    the weights of components 2..k, the means, the free (echelon) loadings and the
    uniquenesses on their natural scale.  The fit's default scheme is Louis-Newton with
    a SQUAREM fall-back (see :meth:`fit`).
    """

    summary_title = "Mixture of Factor Analyzers Results (ML by EM)"
    #: the scheme of the multi-start phase and of ``fit(method=None)`` (see :meth:`fit`)
    preferred_method = "newton"

    def __init__(self, data, k: int, n_factors: int, *, uniq: str = "unique",
                 missing: str = "em"):
        if uniq not in UNIQ:
            raise ValueError(f"uniq must be one of {UNIQ}, got {uniq!r}")
        for name, v in (("k", k), ("n_factors", n_factors)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DataError(f"{name} must be a positive integer, got {v!r}")
        base = MVN(data, missing=missing)
        d, q, k = base.d, int(n_factors), int(k)
        if q >= d:
            raise DataError(f"n_factors={q} must be smaller than the {d} variables")
        if uniq != "isotropic" and factor_df(d, q) < 0:
            raise DataError(
                f"n_factors={q} is not identified for {d} variables: each component's "
                f"L L' + Psi has more parameters than a covariance "
                f"(((d - q)^2 - (d + q)) / 2 = {factor_df(d, q)} < 0)")
        self.base, self.d, self.k, self.n_factors = base, d, k, q
        self.uniq, self.missing = uniq, missing
        self.names, self.endog_name = list(base.names), base.endog_name
        self.factor_names = [f"F{j + 1}" for j in range(q)]
        pat = base.patterns
        order = pat.order
        self.X = np.ascontiguousarray(base.X[order])
        self.row_labels = base.row_labels[order]
        self.observed = pat.observed
        self.data = ArrayData({"X": self.X, "pattern": pat.row_pattern[order]})
        self.centre = base.centre
        names = [f"{c}" for c in range(1, k + 1)]
        fixed = np.zeros((k, d, q), dtype=bool)
        fixed[:, :q][:, np.triu_indices(q, 1)[0], np.triu_indices(q, 1)[1]] = True
        blocks = [Simplex("weights", (k,), reference="first"),
                  Free("mean", (k, d), axes=[names, self.names]),
                  Free("loadings", (k, d, q), fixed=fixed,
                       axes=[names, self.names, self.factor_names])]
        if uniq == "unique":
            blocks.append(Positive("uniq", (k, d), axes=[names, self.names]))
        elif uniq == "common":
            blocks.append(Positive("uniq", (d,), axes=[self.names]))
        else:
            blocks.append(Positive("noise_var", (k,), axes=[names]))
        self.spec = ParamSpec(blocks)
        self.nobs = float(base.nobs)
        self.df_model = float(self.spec.size)
        if self.nobs <= self.spec.size:
            raise DataError(f"{int(self.nobs)} rows for {self.spec.size} parameters")

    # -- parameters ---------------------------------------------------------------------------
    def psi(self, params) -> np.ndarray:
        """Uniquenesses as a (k, d) array."""
        if self.uniq == "unique":
            return np.asarray(params["uniq"], dtype=float)
        if self.uniq == "common":
            return np.broadcast_to(np.asarray(params["uniq"], dtype=float),
                                   (self.k, self.d)).copy()
        return np.repeat(np.asarray(params["noise_var"], dtype=float)[:, None], self.d, 1)

    def covariances(self, params) -> np.ndarray:
        """L_k L_k' + Psi_k, (k, d, d)."""
        L = np.asarray(params["loadings"], dtype=float)
        return np.einsum("kiq,kjq->kij", L, L) + np.einsum("kd,de->kde", self.psi(params),
                                                            np.eye(self.d))

    def _pack_params(self, w, mean, L, psi):
        L = np.stack([echelon(Lk) for Lk in L])
        p = {"weights": np.asarray(w, float), "mean": np.asarray(mean, float), "loadings": L}
        if self.uniq == "unique":
            p["uniq"] = psi
        elif self.uniq == "common":
            p["uniq"] = psi if psi.ndim == 1 else np.average(psi, axis=0, weights=w)
        else:
            p["noise_var"] = psi if psi.ndim == 1 else psi.mean(axis=1)
        return p

    def _fa_start(self, C):
        """Loadings and uniquenesses of a one-step factor analysis of covariance C."""
        d, q = self.d, self.n_factors
        w_, V_ = np.linalg.eigh(C)
        floor = 1e-3 * max(float(np.mean(np.diag(C))), 1e-300)
        C = (V_ * np.maximum(w_, floor)) @ V_.T
        psi = (1.0 - 0.5 * q / d) / np.diag(np.linalg.inv(C))
        if self.uniq == "isotropic":
            psi = np.full(d, psi.mean())
        r = np.sqrt(psi)
        w, V = np.linalg.eigh(C / np.outer(r, r))
        idx = np.argsort(w)[::-1][:q]
        return r[:, None] * V[:, idx] * np.sqrt(np.maximum(w[idx] - 1.0, 1e-2)), psi

    def _start_from_labels(self, lab):
        k, d = self.k, self.d
        Xf = self._filled()
        w = np.array([(lab == j).mean() for j in range(k)])
        mean, L, psi = np.zeros((k, d)), np.zeros((k, d, self.n_factors)), np.zeros((k, d))
        total = np.cov(Xf.T, bias=True)
        for j in range(k):
            rows = Xf[lab == j]
            C = np.cov(rows.T, bias=True) if rows.shape[0] > d else total
            mean[j] = rows.mean(axis=0) if rows.shape[0] else Xf.mean(axis=0)
            L[j], psi[j] = self._fa_start(0.5 * (C + C.T) + 1e-6 * np.diag(np.diag(total)))
        w = np.maximum(w, 1e-3)
        return self._pack_params(w / w.sum(), mean, L, psi)

    def _filled(self):
        if "_xf" not in self.__dict__:
            X = self.X.copy()
            m = np.nanmean(X, axis=0)
            idx = np.nonzero(np.isnan(X))
            X[idx] = m[idx[1]]
            self._xf = X
        return self._xf

    def start_params(self) -> dict:
        return self.initial_starts(None, 1, np.random.default_rng(0))[0][1]

    def initial_starts(self, init, n_init, rng):
        if init not in (None, "kmeans", "hc"):
            raise ValueError(f"init must be 'kmeans' or 'hc' (or start_params=), got {init!r}")
        Xf = self._filled()
        if init == "hc":
            # mclust's hierarchical agglomeration on the data (emstats.components.hc)
            return [("hc", self._start_from_labels(hc_labels(Xf, self.k, rng)))]
        out = []
        for s in range(int(n_init)):
            lab, _ = kmeans(Xf, self.k, rng, scale=Xf.std(axis=0))
            out.append((f"kmeans {s + 1}", self._start_from_labels(np.asarray(lab))))
        return out

    def canonical(self, params) -> dict:
        """Components ordered by the mean of the first variable."""
        order = np.argsort(np.asarray(params["mean"])[:, 0], kind="stable")
        out = dict(params)
        for key in ("weights", "mean", "loadings", "noise_var"):
            if key in out:
                out[key] = np.asarray(out[key])[order]
        if self.uniq == "unique":
            out["uniq"] = np.asarray(out["uniq"])[order]
        return out

    # -- EM ---------------------------------------------------------------------------------
    def _groups(self, chunk):
        pat = chunk["pattern"]
        cuts = np.flatnonzero(np.diff(pat)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [pat.size]])
        return [(int(pat[a]), np.arange(a, b)) for a, b in zip(starts, ends, strict=True)]

    def _valid(self, params) -> bool:
        """Positive finite weights and uniquenesses (a covariance L L' + Psi can stay
        positive definite with some psi_i < 0, outside the model)."""
        w = np.asarray(params["weights"], dtype=float)
        psi = self.psi(params)
        return bool(np.all(np.isfinite(w)) and np.all(w > 0) and np.all(np.isfinite(psi))
                    and np.all(psi > 0))

    def log_densities(self, params, X, groups):
        """(n, k) component log-densities of the rows (observed coordinates)."""
        mu = np.asarray(params["mean"], dtype=float)
        S = self.covariances(params)
        return np.column_stack([_row_logdens(X, groups, self.observed, mu[j], S[j])
                                for j in range(self.k)])

    def chunk_stats(self, params, chunk):
        with _blas_for(chunk):
            return self._chunk_stats(params, chunk)

    def _chunk_stats(self, params, chunk):
        X = chunk["X"]
        groups = self._groups(chunk)
        w = np.asarray(params["weights"], dtype=float)
        if not self._valid(params):
            return None, -np.inf
        with np.errstate(divide="ignore"):
            ld = self.log_densities(params, X, groups)
        r, ll = responsibilities(ld, np.log(w))
        if not np.all(np.isfinite(ll)):
            return None, -np.inf
        d, q, k = self.d, self.n_factors, self.k
        D = d + q
        L = np.asarray(params["loadings"], dtype=float)
        mu = np.asarray(params["mean"], dtype=float)
        psi = self.psi(params)
        nk, s1, s2 = np.zeros(k), np.zeros((k, D)), np.zeros((k, D, D))
        for j in range(k):
            Sy = np.empty((D, D))
            Sy[:d, :d] = L[j] @ L[j].T + np.diag(psi[j])
            Sy[:d, d:] = L[j]
            Sy[d:, :d] = L[j].T
            Sy[d:, d:] = np.eye(q)
            mu_y = np.zeros(D)
            mu_y[:d] = mu[j] - self.centre
            for p, rows in groups:
                o = self.observed[p]
                rw = r[rows, j]
                n = float(rw.sum())
                if n <= 0:
                    continue
                Xo = np.where(o, X[rows] - self.centre, 0.0)
                s = np.zeros(D)
                S = np.zeros((D, D))
                s[:d] = rw @ Xo
                S[:d, :d] = (Xo * rw[:, None]).T @ Xo
                obs = np.zeros(D, dtype=bool)
                obs[:d] = o
                pm = pattern_moments(obs, n, s, S, mu_y, Sy)
                if pm is None:
                    return None, -np.inf
                a, b = estep_pattern(pm, mu_y)
                nk[j] += n
                s1[j] += a
                s2[j] += b
        return Stats(n=nk, s=s1, ss=s2), float(ll.sum())

    def m_step(self, stats, params):
        d, q, k = self.d, self.n_factors, self.k
        nk = np.asarray(stats["n"], dtype=float)
        s, ss = np.asarray(stats["s"]), np.asarray(stats["ss"])
        mean, L = np.zeros((k, d)), np.zeros((k, d, q))
        rss_all = np.zeros((k, d))
        for j in range(k):
            Szz = np.empty((q + 1, q + 1))
            Szz[0, 0] = nk[j]
            Szz[0, 1:] = Szz[1:, 0] = s[j, d:]
            Szz[1:, 1:] = ss[j, d:, d:]
            Sxz = np.column_stack([s[j, :d], ss[j, :d, d:]])
            B = np.linalg.solve(Szz, Sxz.T).T
            rss_all[j] = np.diag(ss[j, :d, :d] - B @ Sxz.T)
            mean[j] = self.centre + B[:, 0]
            L[j] = B[:, 1:]
        return self._pack_params(nk / nk.sum(), mean, L, self._uniq_from_rss(rss_all, stats))

    def _uniq_from_rss(self, rss_all, stats):
        """Uniquenesses from the components' residual sums of squares (k, d), as the
        ``uniq`` structure pools them, floored at 1e-10 of the variables' scale."""
        d = self.d
        nk = np.asarray(stats["n"], dtype=float)
        if self.uniq == "common":
            psi = rss_all.sum(axis=0) / nk.sum()
        elif self.uniq == "isotropic":
            psi = rss_all.sum(axis=1) / (d * nk)
        else:
            psi = rss_all / nk[:, None]
        scale = np.maximum(np.asarray(stats["ss"])[:, np.arange(d), np.arange(d)].sum(0)
                           / nk.sum(), 1e-300)
        return np.maximum(psi, 1e-10 * (scale.min() if self.uniq == "isotropic" else scale))

    # -- AECM (emstats.em.variants.AlternatingECM) ------------------------------------------
    #: cycles of an AECM iteration: (weights, means), then (loadings, uniquenesses)
    n_cycles = 2

    def cycle_m_step(self, cycle, stats, params):
        """Conditional maximisation of AECM cycle ``cycle`` (McLachlan & Peel 2000, 8.5).

        Both cycles read the E-step's weighted moments of the augmented vector (x, f);
        the missing coordinates are part of the complete data in both.

        * Cycle 0, complete data the labels: the weights are the mean responsibilities
          and the means the responsibility-weighted means of the rows (their missing
          coordinates at the conditional means), the loadings and uniquenesses fixed.
        * Cycle 1, complete data the labels and the factors: the regression of x - mu_k
          on f without intercept, the means held at cycle 0's values; the uniquenesses
          are the residual variances, pooled as ``uniq`` says.
        """
        d, k = self.d, self.k
        nk = np.asarray(stats["n"], dtype=float)
        s, ss = np.asarray(stats["s"]), np.asarray(stats["ss"])
        if cycle == 0:
            out = dict(params)
            out["weights"] = nk / nk.sum()
            out["mean"] = self.centre + s[:, :d] / nk[:, None]
            return out
        m = np.asarray(params["mean"], dtype=float) - self.centre
        L = np.zeros((k, d, self.n_factors))
        rss_all = np.zeros((k, d))
        for j in range(k):
            sx, sf = s[j, :d], s[j, d:]
            # moments of (x - mu_j, f) from those about the centre
            Sxx = ss[j, :d, :d] - np.outer(sx, m[j]) - np.outer(m[j], sx) \
                + nk[j] * np.outer(m[j], m[j])
            Sxf = ss[j, :d, d:] - np.outer(m[j], sf)
            L[j] = np.linalg.solve(ss[j, d:, d:], Sxf.T).T
            rss_all[j] = np.diag(Sxx) - np.sum(L[j] * Sxf, axis=1)
        return self._pack_params(params["weights"], params["mean"], L,
                                 self._uniq_from_rss(rss_all, stats))

    # -- Louis' pieces -----------------------------------------------------------------------
    def _coords(self):
        """Inference coordinates of each component's local (mean, free loadings,
        uniquenesses) vector, and of the weights."""
        if "_coord_cache" not in self.__dict__:
            d, k = self.d, self.k
            sl = self.spec.slices
            nf = int(self.spec["loadings"].free[0].sum())
            out = []
            for j in range(k):
                m = sl["mean"].start + j * d + np.arange(d)
                lo = sl["loadings"].start + j * nf + np.arange(nf)
                if self.uniq == "unique":
                    u = sl["uniq"].start + j * d + np.arange(d)
                elif self.uniq == "common":
                    u = sl["uniq"].start + np.arange(d)
                else:
                    u = np.array([sl["noise_var"].start + j])
                out.append(np.concatenate([m, lo, u]).astype(np.intp))
            w = np.arange(sl["weights"].start, sl["weights"].stop, dtype=np.intp)
            self._coord_cache = (out, w)
        return self._coord_cache

    def _louis_pass(self, params, chunk, want_rows=False):
        """Louis' pieces of a chunk (:meth:`_louis_pass_blas`), BLAS as :func:`_blas_for`."""
        with _blas_for(chunk):
            return self._louis_pass_blas(params, chunk, want_rows)

    def _louis_pass_blas(self, params, chunk, want_rows):
        """One pass over a chunk: log-likelihood, score, complete information, missing
        information (and optionally the per-row scores), in inference coordinates.

        The complete data are the labels z, the factors and the missing coordinates.
        Given the label, a row's complete-data score is that of the augmented normal of
        its component (:func:`louis_full`, weighted by the responsibilities, mapped by the
        chain rule as in factor analysis); Var(score | x_o) adds to the responsibility-
        weighted within-component covariances the covariance over the labels of the
        conditional-mean scores, sum_j r_ij a_ij a_ij' - a_i a_i', a_ij the row's
        expected score given component j (weights included) and a_i = sum_j r_ij a_ij.
        """
        X = chunk["X"]
        groups = self._groups(chunk)
        w = np.asarray(params["weights"], dtype=float)
        if not self._valid(params):
            # outside the parameter space (a trial step of a line search)
            raise FloatingPointError("Louis' pieces need positive weights and uniquenesses")
        ld = self.log_densities(params, X, groups)
        r, ll = responsibilities(ld, np.log(w))
        d, q, k = self.d, self.n_factors, self.k
        D = d + q
        iso = self.uniq == "isotropic"
        L = np.asarray(params["loadings"], dtype=float)
        mu = np.asarray(params["mean"], dtype=float)
        psi = self.psi(params)
        free = self.spec["loadings"].free
        idx, widx = self._coords()
        P = self.spec.size
        Sy = np.zeros((k, D, D))
        mu_y = np.zeros((k, D))
        for j in range(k):
            Sy[j, :d, :d] = L[j] @ L[j].T + np.diag(psi[j])
            Sy[j, :d, d:] = L[j]
            Sy[j, d:, :d] = L[j].T
            Sy[j, d:, d:] = np.eye(q)
            mu_y[j, :d] = mu[j] - self.centre
        W = np.linalg.inv(Sy)
        W = 0.5 * (W + np.swapaxes(W, 1, 2))
        F = D + D * D
        sc = np.zeros((k, F))
        co = np.zeros((k, F, F))
        mi = np.zeros((k, F, F))
        miss = np.zeros((P, P))
        rows_out = np.zeros((X.shape[0], P)) if want_rows else None
        # the expected weight score given component j: e_j / pi_j - e_0 / pi_0 (reference 0)
        wsc = np.zeros((k, k - 1))
        for j in range(1, k):
            wsc[j, j - 1] = 1.0 / w[j]
        wsc[0, :] = -1.0 / w[0]
        for p, rows in groups:
            o = self.observed[p]
            obs = np.zeros(D, dtype=bool)
            obs[:d] = o
            for b0 in range(0, rows.size, _ROW_BLOCK):
                rb = rows[b0:b0 + _ROW_BLOCK]
                xo = X[np.ix_(rb, np.flatnonzero(o))] - self.centre[o]
                cmp = component_moments(xo, obs, mu_y, Sy)
                if cmp is None:
                    raise FloatingPointError("Louis' pieces need positive definite "
                                             "component covariances")
                _, resid, cond = cmp
                abar = np.zeros((rb.size, P))
                for j in range(k):
                    rj = r[rb, j]
                    nj = float(rj.sum())
                    pm = PatternMoments(nj, rj @ resid[j], (resid[j] * rj[:, None]).T
                                        @ resid[j], cond[j], 0.0, 0.0)
                    a, bb, c = louis_full(pm, W[j])
                    sc[j] += a
                    co[j] += bb
                    mi[j] += c
                    loc = np.concatenate(
                        [_row_scores(resid[j], W[j], cond[j], L[j], free[j], iso),
                         np.broadcast_to(wsc[j], (rb.size, k - 1))], axis=1)
                    cols = np.concatenate([idx[j], widx])
                    miss[np.ix_(cols, cols)] += (loc * rj[:, None]).T @ loc
                    abar[:, cols] += loc * rj[:, None]
                miss -= abar.T @ abar
                if want_rows:
                    rows_out[rb] = abar
        score = np.zeros(P)
        comp = np.zeros((P, P))
        for j in range(k):
            J = _local_jacobian(L[j], free[j], iso)
            ij = np.ix_(idx[j], idx[j])
            score[idx[j]] += J.T @ sc[j]
            comp[ij] += J.T @ co[j] @ J - _local_curvature(sc[j], d, q, free[j], J.shape[1])
            miss[ij] += J.T @ mi[j] @ J
        nk = r.sum(axis=0)
        score[widx] += nk[1:] / w[1:] - nk[0] / w[0]
        comp[np.ix_(widx, widx)] += np.diag(nk[1:] / w[1:] ** 2) + nk[0] / w[0] ** 2
        return float(ll.sum()), score, comp, miss, rows_out

    def chunk_louis(self, params, chunk):
        ll, score, comp, miss, _ = self._louis_pass(params, chunk)
        return Stats(loglik=ll, score=score, complete=comp, missing=miss)

    def chunk_scores(self, params, chunk) -> np.ndarray:
        """Per-row observed-data scores, sum_j r_ij a_ij (see :meth:`_louis_pass`)."""
        return self._louis_pass(params, chunk, want_rows=True)[4]

    def louis_from_stats(self, params, total):
        c, m = np.asarray(total["complete"]), np.asarray(total["missing"])
        return (float(total["loglik"]), np.asarray(total["score"]),
                LouisPieces(0.5 * (c + c.T), 0.5 * (m + m.T)))

    def information_bytes(self) -> int:
        F = (self.d + self.n_factors) * (self.d + self.n_factors + 1)
        return int(8 * (2 * self.k + 4) * F * F)

    def fit(self, *, method: str | None = None, cov_type: str | None = "louis", **kwargs):
        """Fit by EM (see :meth:`emstats.inference.fit.FitMixin.fit`; every argument of
        it applies).

        Parameters
        ----------
        method : str, optional
            Iteration scheme.  Default: Louis-Newton from the best start, and where that
            ends on the boundary (some uniqueness below 1e-3 of its variable's variance
            in the component: a Heywood case, where the information is nearly singular
            and Newton falls back to slow EM steps) or does not converge, the fit is
            redone by SQUAREM and the higher log-likelihood kept (``docs/factor.md``
            has the measurements).
        cov_type : str or None
            Standard errors: Louis' observed information by default (``"numerical"``,
            ``"bootstrap"``, ``"robust"`` ... as for every model).
        **kwargs
            The other arguments of :meth:`~emstats.inference.fit.FitMixin.fit`.

        Returns
        -------
        MFAResults
        """
        if method is not None:
            return super().fit(method=method, cov_type=cov_type, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = super().fit(method="newton", cov_type=cov_type, **kwargs)
        if self._on_boundary(res.raw_params):
            alt = super().fit(method="squarem", cov_type=cov_type, **kwargs)
            if alt.llf >= res.llf:
                return alt
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return res

    def _on_boundary(self, params, rel: float = 1e-3) -> bool:
        """Whether some uniqueness is below ``rel`` times its variable's variance."""
        psi = self.psi(params)
        var = np.diagonal(self.covariances(params), axis1=1, axis2=2)
        return bool(np.any(psi < rel * var))

    def select(self, k=(1, 2, 3), n_factors=(1, 2), **fit_kwargs) -> pd.DataFrame:
        """BIC over a grid of (k, n_factors) on the same data.

        Returns
        -------
        pandas.DataFrame
            Indexed by (k, n_factors): log-likelihood, parameters, AIC, BIC; the
            attribute ``best`` of the frame is the (k, n_factors) of smallest BIC.
        """
        fit_kwargs.setdefault("cov_type", None)
        rows = []
        for kk in k:
            for qq in n_factors:
                m = type(self)(self.base.X, kk, qq, uniq=self.uniq, missing=self.missing)
                r = m.fit(**fit_kwargs)
                rows.append({"k": kk, "n_factors": qq, "llf": r.llf, "n_params": r.k_params,
                             "aic": r.aic, "bic": r.bic})
        t = pd.DataFrame(rows).set_index(["k", "n_factors"])
        t.attrs["best"] = t["bic"].idxmin()
        return t


class MFAResults(EMResults):
    """Results of :class:`MixtureFactorAnalyzers`: weights, means, loadings,
    uniquenesses, clustering and density."""

    @property
    def weights(self) -> pd.Series:
        """Mixing proportions."""
        return pd.Series(self.raw_params["weights"], index=range(1, self.model.k + 1),
                         name="weights")

    @property
    def means(self) -> pd.DataFrame:
        """Component means, k x d."""
        return pd.DataFrame(self.raw_params["mean"], index=range(1, self.model.k + 1),
                            columns=self.model.names)

    @property
    def uniquenesses(self) -> pd.DataFrame:
        """Uniquenesses per component, k x d."""
        return pd.DataFrame(self.model.psi(self.raw_params), index=range(1, self.model.k + 1),
                            columns=self.model.names)

    def loadings(self, component: int) -> pd.DataFrame:
        """Unrotated loadings of a component (1-based), L' Psi^-1 L diagonal."""
        j = int(component) - 1
        L = canonical_loadings(self.raw_params["loadings"][j],
                               self.model.psi(self.raw_params)[j])
        return pd.DataFrame(L, index=self.model.names, columns=self.model.factor_names)

    @property
    def covariances(self) -> np.ndarray:
        """Component covariances L_k L_k' + Psi_k, (k, d, d)."""
        return self.model.covariances(self.raw_params)

    def _rows(self, data):
        if data is None:
            X = self.model.base.X
            return X, self.model.base.row_labels
        if isinstance(data, pd.DataFrame):
            miss = [c for c in self.model.names if c not in data.columns]
            if miss:
                raise DataError("data lacks the model's column(s): " + ", ".join(miss))
            return data[self.model.names].to_numpy(dtype=float), data.index
        X = np.atleast_2d(np.asarray(data, dtype=float))
        if X.shape[1] != self.model.d:
            raise DataError(f"data must have {self.model.d} columns, got shape {X.shape}")
        return X, pd.RangeIndex(X.shape[0])

    def _logjoint(self, data):
        X, index = self._rows(data)
        obs = ~np.isnan(X)
        if (~obs).all(axis=1).any():
            raise DataError(f"{int((~obs).all(axis=1).sum())} row(s) with no observed value")
        keys, inv = np.unique(obs, axis=0, return_inverse=True)
        inv = inv.ravel()
        groups = [(p, np.flatnonzero(inv == p)) for p in range(keys.shape[0])]
        model = self.model
        mu = self.raw_params["mean"]
        S = model.covariances(self.raw_params)
        ld = np.column_stack([_row_logdens(X, groups, keys, mu[j], S[j])
                              for j in range(model.k)])
        return ld + np.log(self.raw_params["weights"])[None, :], index

    def predict_proba(self, data=None) -> pd.DataFrame:
        """Posterior component probabilities (missing coordinates integrated out)."""
        lj, index = self._logjoint(data)
        r, _ = responsibilities(lj, np.zeros(lj.shape[1]))
        return pd.DataFrame(r, index=index, columns=range(1, self.model.k + 1))

    def predict(self, data=None) -> pd.Series:
        """The most probable component of each row (1-based)."""
        return self.predict_proba(data).idxmax(axis=1).rename("component")

    def density(self, data=None, log: bool = False) -> pd.Series:
        """The mixture density of each row's observed coordinates."""
        from scipy.special import logsumexp

        lj, index = self._logjoint(data)
        v = logsumexp(lj, axis=1)
        return pd.Series(v if log else np.exp(v), index=index,
                         name="log_density" if log else "density")

    def _summary_rows(self):
        return ([("Components:", [str(self.model.k)]),
                 ("Factors each:", [str(self.model.n_factors)])],
                [("Uniquenesses:", [self.model.uniq])])


MixtureFactorAnalyzers.results_class = MFAResults


def mfa(data, k: int, n_factors: int, *, uniq: str = "unique",
        missing: str = "em") -> MixtureFactorAnalyzers:
    """Mixture of factor analyzers by EM (see :class:`MixtureFactorAnalyzers`).

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        NaN marks a missing value.
    k : int
        Number of components.
    n_factors : int
        Factors per component.
    uniq : {"unique", "common", "isotropic"}
    missing : {"em", "drop", "raise"}

    Returns
    -------
    MixtureFactorAnalyzers
        Call ``.fit(n_init=...)`` for the results.
    """
    return MixtureFactorAnalyzers(data, k, n_factors, uniq=uniq, missing=missing)
