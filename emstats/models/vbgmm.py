"""Variational Bayesian Gaussian mixture (Dirichlet weights, Normal-Wishart components).

Model (Bishop 2006, section 10.2).  x_i | z_i = k ~ N(mu_k, Lambda_k^-1);
z_i | pi ~ Categorical(pi); pi ~ Dirichlet(alpha_0); Lambda_k ~ Wishart(W_0, nu_0)
with W_0 = Psi_0^-1 (``covariance_prior`` = Psi_0, scikit-learn's convention);
mu_k | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^-1).

The variational family is q(z) q(pi) prod_k q(mu_k, Lambda_k).  Its global part
(``VBParams``: alpha_k, beta_k, m_k, nu_k and the matrix Sigma~_k = W_k^-1 / nu_k =
E[Lambda_k]^-1, scikit-learn's ``covariances_``) is what the engine iterates:

* the E-step of a chunk of rows (``chunk_stats``) computes the optimal q(z) given theta
  (responsibilities r_ik proportional to exp(rho_ik)) and returns their weighted sums
  (N_k and the first and second moments about a fixed centre c, the data's column
  means, plus the entropy of q(z): all additive over chunks) and the chunk's share
  sum_i log sum_k exp(rho_ik) of the ELBO *maximised over q(z)* at theta,
  L*(theta) = sum_i log sum_k exp(rho_ik) + (prior - entropy terms of theta), whose
  last part is ``loglike_constant``;
* ``m_step(stats, theta)`` returns the optimal global factors given those
  responsibilities (conjugate updates).

Monotonicity.  With r(theta) the optimal q(z) at theta, L*(theta) = L(r(theta),
theta), and the M-step theta' maximises L(r(theta), .) exactly, so
L*(theta') >= L(r(theta), theta') >= L(r(theta), theta) = L*(theta): the
sequence the engine records never decreases.  SQUAREM may be used on the packed
variational parameters; its monotone fall-back keeps the ELBO non-decreasing.

The E-step is the Gaussian-mixture kernel of :mod:`emstats._kernels.gmm_kernels`
(one pass, per-chunk partial sums, bitwise identical for any thread count): rho_ik
is a normal log-density with covariance Sigma~_k plus a per-component constant.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import digamma, gammaln

from .._config import resolve_threads
from .._kernels import gmm_kernels
from ..components.gaussian_data import GaussianRows, prepare_data, sym
from ..components.init import kmeans, random_responsibilities
from ..em.data import ROW_BLOCK, row_blocks
from ..em.engine import FitOptions
from ..em.monitor import ConvergenceInfo
from ..em.params import Cholesky
from ..em.protocol import ChunkedModel
from ..em.stats import Stats
from ..exceptions import DataError, describe_rows
from ..inference.fit import FitMixin, fit_model
from ..inference.results import METHOD_NAMES, EMResults, describe_iterations

LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


# ----------------------------------------------------------------------------------
# parameters and statistics
# ----------------------------------------------------------------------------------

@dataclass
class VBParams:
    """Variational parameters of the global factors (scikit-learn's names).

    Parameters
    ----------
    weight_concentration : ndarray (K,)
        alpha_k of q(pi) = Dirichlet(alpha).
    mean_precision : ndarray (K,)
        beta_k: q(mu_k | Lambda_k) = N(m_k, (beta_k Lambda_k)^-1).
    means : ndarray (K, d)
        m_k.
    degrees_of_freedom : ndarray (K,)
        nu_k of q(Lambda_k) = Wishart(W_k, nu_k).
    covariances : ndarray (K, d, d)
        W_k^-1 / nu_k = E[Lambda_k]^-1.
    """

    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray
    covariances: np.ndarray

    def copy(self) -> VBParams:
        return VBParams(self.weight_concentration.copy(), self.mean_precision.copy(),
                        self.means.copy(), self.degrees_of_freedom.copy(),
                        self.covariances.copy())


@dataclass
class _Derived:
    """Quantities of theta used by the E-step and the ELBO."""

    L: np.ndarray         # (K, d, d) Cholesky factors of Sigma~_k
    logdet: np.ndarray    # (K,) log |Sigma~_k|
    Elogpi: np.ndarray    # (K,) E log pi_k
    ElogLam: np.ndarray   # (K,) E log |Lambda_k|
    c: np.ndarray         # (K,) rho_ik = log N(x_i; m_k, Sigma~_k) + c_k


def _mvdigamma(nu: np.ndarray, d: int) -> np.ndarray:
    """sum_{i=1}^d psi((nu + 1 - i) / 2)."""
    return digamma(0.5 * (nu[:, None] - np.arange(d)[None, :])).sum(axis=1)


def _mvgammaln(nu: np.ndarray, d: int) -> np.ndarray:
    """sum_{i=1}^d log Gamma((nu + 1 - i) / 2) (the multivariate gamma without pi)."""
    return gammaln(0.5 * (np.asarray(nu, dtype=float)[..., None] - np.arange(d))).sum(axis=-1)


# ----------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------

class VariationalGaussianMixture(FitMixin, ChunkedModel):
    """Variational Bayesian Gaussian mixture with full covariances, fitted by the EM engine.

    Parameters
    ----------
    data : array_like or DataFrame, shape (n, d)
        The observations.  Use :func:`emstats.vbgmm` for formulas.
    k : int
        Number of components (an upper bound: superfluous components are emptied).
    covariance : {"full"}
        Only full covariances are implemented.
    weight_concentration_prior : float or array_like (K,), optional
        alpha_0 of the Dirichlet prior on the weights (default 1 / k).
    mean_precision_prior : float, optional
        beta_0 (default 1).
    mean_prior : array_like (d,), optional
        m_0 (default: the data mean).
    degrees_of_freedom_prior : float, optional
        nu_0 > d - 1 (default d).
    covariance_prior : array_like (d, d) or float, optional
        Psi_0 = W_0^-1, symmetric positive definite (default: the sample covariance,
        ddof = 1); a scalar for one variable.
    missing : {"raise", "drop"}
        Rows with NaN raise a :class:`DataError` (default) or are dropped.

    Other Parameters
    ----------------
    _prepared : object, optional
        Internal: the already validated data, passed by :func:`emstats.vbgmm`.

    Notes
    -----
    The defaults are those of scikit-learn's ``BayesianGaussianMixture``.  Memory:
    the data (n x d) plus per-chunk partial sums of size (n / 2048) x K (d^2 + d + 2);
    responsibilities (n x K) are formed only for the starts and ``predict_proba``.
    """

    has_exact_e_step = True

    def __init__(self, data, k, covariance: str = "full", *, weight_concentration_prior=None,
                 mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None,
                 covariance_prior=None, missing: str = "raise", _prepared=None):
        if _prepared is None:
            _prepared = prepare_data(data, None, missing)
        X, names, labels, n_drop, design_info = _prepared
        n, d = X.shape
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"k (the number of components) must be a positive integer, "
                             f"got {k!r}")
        K = int(k)
        if K < 1:
            raise ValueError(f"k (the number of components) must be at least 1, got {K}")
        if K > 256:
            raise ValueError(f"k = {K} components is more than the kernel supports (256)")
        if not isinstance(covariance, str) or covariance.lower() not in ("full", "vvv"):
            raise ValueError(f"covariance must be 'full' (the only structure implemented), "
                             f"got {covariance!r}")
        if n < 2:
            raise DataError(f"need at least 2 rows, got {n}")
        self.data = GaussianRows({"X": X})
        self.X = self.data["X"]
        self.XT = self.data.XT
        #: the fixed centre of the statistics (a data constant)
        self.centre = self.XT.mean(axis=1)
        self.n, self.d, self.K = n, d, K
        self.nobs = float(n)
        self.columns = names
        self.row_labels = labels
        self.n_dropped = n_drop
        self.design_info = design_info
        self.covariance = "full"
        self._chol = Cholesky("covariances", d, (K,))     # packed: log-Cholesky factors
        self._set_priors(weight_concentration_prior, mean_precision_prior, mean_prior,
                         degrees_of_freedom_prior, covariance_prior)
        self.param_names = self._make_names()
        self.df_model = float(len(self.param_names))

    # -- priors -------------------------------------------------------------------------
    def _set_priors(self, wcp, mpp, mp, dfp, cp):
        X, K, d = self.X, self.K, self.d

        def positive(val, name, default):
            if val is None:
                return default
            try:
                v = float(val)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a positive number, got {val!r}") from None
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be positive and finite, got {val!r}")
            return v

        if wcp is None:
            alpha0 = np.full(K, 1.0 / K)
        else:
            a = np.asarray(wcp, dtype=float)
            if a.ndim == 0:
                a = np.full(K, float(a))
            if a.shape != (K,):
                raise ValueError(f"weight_concentration_prior must be a number or have "
                                 f"length k = {K}, got shape {a.shape}")
            if not np.all(np.isfinite(a) & (a > 0)):
                raise ValueError(f"weight_concentration_prior must be positive and finite, "
                                 f"got {wcp!r}")
            alpha0 = a
        beta0 = positive(mpp, "mean_precision_prior", 1.0)
        if mp is None:
            m0 = X.mean(axis=0)
        else:
            m0 = np.asarray(mp, dtype=float).reshape(-1)
            if m0.shape != (d,):
                raise ValueError(f"mean_prior must have length d = {d}, got shape "
                                 f"{np.shape(mp)}")
            if not np.all(np.isfinite(m0)):
                raise ValueError(f"mean_prior must be finite, got {mp!r}")
        if dfp is None:
            nu0 = float(d)
        else:
            try:
                nu0 = float(dfp)
            except (TypeError, ValueError):
                raise ValueError(f"degrees_of_freedom_prior must be a number, got {dfp!r}") \
                    from None
            if not (np.isfinite(nu0) and nu0 > d - 1):
                raise ValueError(f"degrees_of_freedom_prior must be greater than d - 1 = "
                                 f"{d - 1}, got {dfp!r}")
        if cp is None:
            psi0 = np.atleast_2d(np.cov(X, rowvar=False))
            if not np.all(np.linalg.eigvalsh(psi0) > 0):
                raise DataError("the sample covariance is singular (a constant or collinear "
                                "column); give covariance_prior explicitly")
        else:
            psi0 = np.asarray(cp, dtype=float)
            if psi0.ndim == 0 and d == 1:
                psi0 = psi0.reshape(1, 1)
            if psi0.shape != (d, d):
                raise ValueError(f"covariance_prior must be a {d} x {d} matrix, got shape "
                                 f"{psi0.shape}")
            if not np.all(np.isfinite(psi0)) or not np.allclose(psi0, psi0.T, rtol=1e-12,
                                                                 atol=0.0):
                raise ValueError("covariance_prior must be a finite symmetric matrix")
            psi0 = sym(psi0)
            if not np.all(np.linalg.eigvalsh(psi0) > 0):
                raise ValueError("covariance_prior must be positive definite")
        self.alpha0, self.beta0, self.m0, self.nu0, self.psi0 = alpha0, beta0, m0, nu0, psi0
        self._psi0_logdet = float(np.linalg.slogdet(psi0)[1])

    @property
    def priors(self) -> dict:
        """The prior hyperparameters, scikit-learn's names (``*_prior``)."""
        return {"weight_concentration_prior": self.alpha0.copy(),
                "mean_precision_prior": self.beta0, "mean_prior": self.m0.copy(),
                "degrees_of_freedom_prior": self.nu0, "covariance_prior": self.psi0.copy()}

    def _make_names(self):
        K = self.K
        names = [f"weight[{k}]" for k in range(1, K + 1)]
        names += [f"mean[{k}]({c})" for k in range(1, K + 1) for c in self.columns]
        return names

    # -- derived quantities -------------------------------------------------------------
    def _derived(self, p: VBParams) -> _Derived | None:
        d = self.d
        a, b, nu = p.weight_concentration, p.mean_precision, p.degrees_of_freedom
        if not (np.all(np.isfinite(a) & (a > 0)) and np.all(np.isfinite(b) & (b > 0))
                and np.all(np.isfinite(nu) & (nu > d - 1)) and np.all(np.isfinite(p.means))):
            return None
        try:
            L = np.linalg.cholesky(p.covariances)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(L)):
            return None
        logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        Elogpi = digamma(a) - digamma(a.sum())
        psi = _mvdigamma(nu, d)
        # E log|Lambda| = sum psi + d log 2 + log|W|, log|W| = -log|Sigma~| - d log nu
        ElogLam = psi + d * LOG_2 - logdet - d * np.log(nu)
        c = Elogpi + 0.5 * (psi + d * LOG_2 - d * np.log(nu)) - 0.5 * d / b
        return _Derived(L, logdet, Elogpi, ElogLam, c)

    def _bayes_terms(self, p: VBParams, D: _Derived) -> float:
        """E log p(pi, mu, Lambda) - E log q(pi, mu, Lambda) (Bishop's 10.73, 10.74, 10.76,
        10.77), written with Sigma~_k = (nu_k W_k)^-1."""
        d, K = self.d, self.K
        a, b, nu, m = (p.weight_concentration, p.mean_precision, p.degrees_of_freedom,
                       p.means)
        a0, b0, nu0 = self.alpha0, self.beta0, self.nu0
        lnC = gammaln(a.sum()) - gammaln(a).sum()
        lnC0 = gammaln(a0.sum()) - gammaln(a0).sum()
        out = lnC0 - lnC + float(np.sum((a0 - a) * D.Elogpi))
        eye = np.broadcast_to(np.eye(d), (K, d, d))
        Linv = np.linalg.solve(D.L, eye)                          # L^-1
        e = np.einsum("kab,kb->ka", Linv, m - self.m0[None])      # L^-1 (m - m0)
        quad = (e * e).sum(axis=1)                                # (m-m0)' Sigma~^-1 (m-m0)
        tr = np.einsum("kab,bc,kac->k", Linv, self.psi0, Linv)    # tr(Psi0 Sigma~^-1)
        logW = -D.logdet - d * np.log(nu)
        lnB = -0.5 * nu * logW - 0.5 * nu * d * LOG_2 - _mvgammaln(nu, d)
        lnB0 = 0.5 * nu0 * self._psi0_logdet - 0.5 * nu0 * d * LOG_2 - _mvgammaln(nu0, d)
        # the pi^{d(d-1)/4} factors of B(W0, nu0) and B(W_k, nu_k) cancel
        per = (0.5 * d * np.log(b0 / b) - 0.5 * d * b0 / b + 0.5 * d - 0.5 * b0 * quad
               + lnB0 - lnB + 0.5 * (nu0 - nu) * D.ElogLam - 0.5 * tr + 0.5 * nu * d)
        return float(out + per.sum())

    def _expected_rho(self, st, p: VBParams, D: _Derived, ref=None) -> float:
        """sum_ik r_ik rho_ik(theta) for the responsibilities behind ``st`` (sums about
        ``ref``, default the centre c)."""
        d = self.d
        N, S1, S2 = (np.asarray(st[key]) for key in ("N", "S1", "S2"))
        delta = (self.centre[None] if ref is None else ref) - p.means
        scat = (S2 + np.einsum("ka,kb->kab", S1, delta)
                + np.einsum("ka,kb->kab", delta, S1)
                + N[:, None, None] * np.einsum("ka,kb->kab", delta, delta))
        eye = np.broadcast_to(np.eye(d), (self.K, d, d))
        Linv = np.linalg.solve(D.L, eye)
        tr = np.einsum("kab,kbc,kac->k", Linv, scat, Linv)        # tr(Sigma~^-1 scat)
        return float(np.sum(N * (D.c - 0.5 * d * LOG_2PI - 0.5 * D.logdet) - 0.5 * tr))

    # -- E-step kernel ------------------------------------------------------------------
    def _kernel(self, X, p: VBParams, D: _Derived, want_resp=False, n_threads=1, XT=None):
        K, d = self.K, self.d
        n = X.shape[0]
        eye = np.broadcast_to(np.eye(d), (K, d, d))
        U = np.swapaxes(np.linalg.solve(D.L, eye), 1, 2)         # Sigma~^-1 = U U'
        Wt = np.ascontiguousarray(np.swapaxes(U, 1, 2).reshape(K * d, d))
        b = np.ascontiguousarray(np.einsum("kab,ka->kb", U, p.means).ravel())
        logc = np.ascontiguousarray(D.c - 0.5 * d * LOG_2PI - 0.5 * D.logdet)
        nch = gmm_kernels.n_chunks(n)
        nt = max(1, min(int(n_threads), nch))
        part_n = np.zeros((nch, K))
        part_s = np.zeros((nch, K * d))
        part_t = np.zeros((nch, K, d * d))
        part_ll = np.zeros((nch, 2))
        scratch = np.empty((nt, gmm_kernels.scratch_size(K, d)))
        resp = np.empty((n, K)) if want_resp else np.empty((0, K))
        u = np.ascontiguousarray(np.diagonal(U, axis1=1, axis2=2).ravel())
        XT = np.ascontiguousarray(X.T) if XT is None else XT
        gmm_kernels.gmm_estep(XT, Wt, u, b, logc, 0, part_n, part_s, part_t, part_ll,
                              scratch, resp, np.empty(0), nt)
        N = part_n.sum(axis=0)
        s = part_s.sum(axis=0).reshape(K, d)
        T = part_t.sum(axis=0).reshape(K, d, d)
        ll = part_ll.sum(axis=0)
        S1 = np.einsum("kab,kb->ka", D.L, s)
        S2 = sym(D.L @ T @ np.swapaxes(D.L, 1, 2))
        return N, S1, S2, float(ll[0]), int(ll[1]), resp

    # -- EM protocol ----------------------------------------------------------------------
    def start_params(self) -> VBParams:
        """The M-step from k-means responsibilities (k-means++ seeding, seed 0)."""
        return self._params_from_labels(self._init_resp("kmeans", np.random.default_rng(0)))

    def chunk_stats(self, params: VBParams, chunk):
        """Responsibility-weighted sums of the chunk's rows about the centre c, the entropy
        of their q(z), and their share sum_i log sum_k exp(rho_ik) of the ELBO."""
        D = self._derived(params)
        if D is None:
            return None, -np.inf
        N, S1, S2, lse, bad, _ = self._kernel(chunk["X"], params, D,
                                              n_threads=chunk.n_threads, XT=chunk["XT"])
        if bad or not np.isfinite(lse):
            return None, -np.inf
        about = {"N": N, "S1": S1, "S2": S2}
        entropy = lse - self._expected_rho(about, params, D, ref=params.means)
        dmu = params.means - self.centre[None]
        cross = np.einsum("ka,kb->kab", S1, dmu)
        S2c = S2 + cross + np.swapaxes(cross, 1, 2) + N[:, None, None] * np.einsum(
            "ka,kb->kab", dmu, dmu)
        return Stats(N=N, S1=S1 + N[:, None] * dmu, S2=sym(S2c), entropy=entropy), lse

    def loglike_constant(self, params: VBParams) -> float:
        """The ELBO's terms of the global factors (prior minus entropy of q(pi, mu, Lambda))."""
        D = self._derived(params)
        return -np.inf if D is None else self._bayes_terms(params, D)

    def m_step(self, stats, params: VBParams | None = None) -> VBParams:
        """Conjugate updates of q(pi) and q(mu_k, Lambda_k) given the responsibilities.

        With sums about the centre c and e = c - m_0 (so N (xbar - m_0) = S1 + N e):
        alpha = alpha_0 + N, beta = beta_0 + N, nu = nu_0 + N,
        m = (beta_0 m_0 + N xbar) / beta, and W^-1 = Psi_0 + N S + beta_0 N / beta
        (xbar - m_0)(xbar - m_0)' = Psi_0 + S2 - S1 S1' / beta
        + beta_0 / beta (S1 e' + e S1' + N e e') (no division by N, so empty components
        are handled exactly).
        """
        N, S1, S2 = (np.asarray(stats[key], dtype=float) for key in ("N", "S1", "S2"))
        ref = self.centre[None]
        b0 = self.beta0
        beta = b0 + N
        alpha = self.alpha0 + N
        nu = self.nu0 + N
        e = ref - self.m0[None]
        means = (b0 * self.m0[None] + N[:, None] * ref + S1) / beta[:, None]
        outer = np.einsum("ka,kb->kab", S1, e)
        Winv = (self.psi0[None] + S2 - np.einsum("ka,kb->kab", S1, S1) / beta[:, None, None]
                + (b0 / beta)[:, None, None] * (outer + np.swapaxes(outer, 1, 2)
                                                + N[:, None, None]
                                                * np.einsum("ka,kb->kab", e, e)))
        covs = sym(Winv) / nu[:, None, None]
        return VBParams(alpha, beta, means, nu, covs)

    def elbo(self, stats, params: VBParams) -> float:
        """ELBO L(r, theta) for the responsibilities r behind ``stats`` (from :meth:`e_step`
        or :meth:`stats_from_resp`) and any global variational parameters ``params``."""
        D = self._derived(params)
        if D is None:
            return -np.inf
        return self._expected_rho(stats, params, D) + float(stats["entropy"]) + \
            self._bayes_terms(params, D)

    def sklearn_constant(self) -> float:
        """C with ELBO = scikit-learn's ``lower_bound_`` + C when the global factors are the
        M-step of the responsibilities (see docs/vbgmm.md):
        -n d/2 log(2 pi) + K d/2 log beta_0 + K [nu_0/2 log|Psi_0| - nu_0 d/2 log 2
        - sum_i log Gamma((nu_0 + 1 - i)/2)] + log C(alpha_0)."""
        d, K, n = self.d, self.K, self.n
        lnC0 = gammaln(self.alpha0.sum()) - gammaln(self.alpha0).sum()
        return float(-0.5 * n * d * LOG_2PI + 0.5 * K * d * math.log(self.beta0)
                     + K * (0.5 * self.nu0 * self._psi0_logdet - 0.5 * self.nu0 * d * LOG_2
                            - _mvgammaln(self.nu0, d)) + lnC0)

    # -- starts ---------------------------------------------------------------------------
    def stats_from_resp(self, resp) -> Stats:
        """Weighted sums of given responsibilities (n x K, rows summing to 1)."""
        r = np.asarray(resp, dtype=float)
        if r.shape != (self.n, self.K):
            raise ValueError(f"responsibilities must have shape ({self.n}, {self.K}), got "
                             f"{r.shape}")
        if not np.all(np.isfinite(r)) or np.any(r < 0) or \
                not np.allclose(r.sum(axis=1), 1.0, rtol=0, atol=1e-10):
            raise ValueError("responsibilities must be non-negative with rows summing to 1")
        ent = 0.0
        for b in row_blocks({"r": r}):
            with np.errstate(divide="ignore", invalid="ignore"):
                ent -= float(np.sum(np.where(b["r"] > 0, b["r"] * np.log(b["r"]), 0.0)))
        return self._resp_sums(lambda a, z: r[a:z], ent)

    def _resp_sums(self, resp_rows, entropy: float) -> Stats:
        """The weighted sums of responsibilities ``resp_rows(a, z)`` (rows a:z), by blocks of
        rows (no centred copy of the data)."""
        K, d = self.K, self.d
        N, S1, S2 = np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d))
        for a in range(0, self.n, ROW_BLOCK):
            z = min(a + ROW_BLOCK, self.n)
            Xc = self.X[a:z] - self.centre[None]
            rb = resp_rows(a, z)
            N += rb.sum(axis=0)
            S1 += rb.T @ Xc
            for k in range(K):
                S2[k] += (rb[:, k, None] * Xc).T @ Xc
        for k in range(K):
            S2[k] = sym(S2[k])
        return Stats(N=N, S1=S1, S2=S2, entropy=entropy)

    def params_from_resp(self, resp) -> VBParams:
        """The M-step from given responsibilities (how a start is made, as scikit-learn)."""
        return self.m_step(self.stats_from_resp(resp))

    def _params_from_labels(self, lab: np.ndarray) -> VBParams:
        """The M-step from hard labels 0..K-1 (one-hot responsibilities made per block of
        rows, not as an n x K matrix; their entropy is zero)."""
        def onehot(a, z):
            r = np.zeros((z - a, self.K))
            r[np.arange(z - a), lab[a:z]] = 1.0
            return r
        return self.m_step(self._resp_sums(onehot, 0.0))

    def _init_resp(self, init, rng) -> np.ndarray:
        """Initial labels (n,) for k-means or given labels, else responsibilities (n, K)."""
        n, K = self.n, self.K
        if isinstance(init, str):
            key = init.lower()
            if key in ("kmeans", "kmeans++", "k-means++"):
                lab = self._kmeans(rng)
            elif key == "random":
                return random_responsibilities(n, K, rng)
            else:
                raise ValueError(f"init must be 'kmeans', 'random', labels or "
                                 f"responsibilities, got {init!r}")
        else:
            arr = np.asarray(init)
            if arr.ndim == 2:
                return np.asarray(arr, dtype=float)
            if arr.shape != (n,):
                raise ValueError(f"init labels must have length n = {n}, got shape "
                                 f"{arr.shape}")
            lab = arr.astype(np.intp)
            if not np.array_equal(lab, arr) or lab.min() < 0 or lab.max() >= K:
                raise ValueError(f"init labels must be integers 0..{K - 1}")
        return lab

    def _kmeans(self, rng, iters: int = 10) -> np.ndarray:
        """k-means++ seeding on standardised data, then Lloyd iterations (labels 0..K-1)."""
        sd = self.X.std(axis=0)
        return kmeans(self.X, self.K, rng, iters=iters, scale=np.where(sd > 0, sd, 1.0))[0]

    # -- coordinates (SQUAREM) ------------------------------------------------------------
    def pack(self, params: VBParams) -> np.ndarray:
        d = self.d
        return np.concatenate([np.log(params.weight_concentration),
                               np.log(params.mean_precision), params.means.ravel(),
                               np.log(params.degrees_of_freedom - (d - 1)),
                               self._chol.pack(params.covariances)])

    def unpack(self, vec) -> VBParams:
        K, d = self.K, self.d
        vec = np.asarray(vec, dtype=float)
        alpha = np.exp(vec[:K])
        beta = np.exp(vec[K:2 * K])
        pos = 2 * K
        means = vec[pos:pos + K * d].reshape(K, d).copy()
        pos += K * d
        nu = np.exp(vec[pos:pos + K]) + (d - 1)
        pos += K
        return VBParams(alpha, beta, means, nu, self._chol.unpack(vec[pos:]))

    def to_inference(self, params: VBParams) -> np.ndarray:
        """Posterior means of the weights and of the component means."""
        a = params.weight_concentration
        return np.concatenate([a / a.sum(), params.means.ravel()])

    def posterior_covariance(self, params: VBParams) -> np.ndarray:
        """Covariance of :meth:`to_inference`'s coordinates under the variational posterior.

        The weights are Dirichlet(alpha); the mean of component k is Student t with
        nu_k - d + 1 degrees of freedom and covariance W_k^-1 / (beta_k (nu_k - d - 1))
        (NaN where nu_k <= d + 1); q factorises between the weights and the components.
        """
        K, d = self.K, self.d
        a = params.weight_concentration
        a0 = a.sum()
        out = np.zeros((K + K * d, K + K * d))
        out[:K, :K] = (np.diag(a) * a0 - np.outer(a, a)) / (a0 * a0 * (a0 + 1.0))
        nu, beta = params.degrees_of_freedom, params.mean_precision
        for k in range(K):
            s = slice(K + k * d, K + (k + 1) * d)
            winv = params.covariances[k] * nu[k]
            out[s, s] = (winv / (beta[k] * (nu[k] - d - 1.0)) if nu[k] > d + 1
                         else np.full((d, d), np.nan))
        return out

    def plugin_loglike(self, params: VBParams) -> float:
        """Log-likelihood of the data under the mixture at the posterior means of the
        weights, the means and the covariances (E[Lambda_k]^-1)."""
        a = params.weight_concentration
        logw = np.log(a / a.sum())
        comps = [sps.multivariate_normal(params.means[k], params.covariances[k],
                                         allow_singular=True) for k in range(self.K)]
        total = 0.0
        for b in row_blocks({"X": self.X}):     # per-row temporaries of a block of rows
            z = np.column_stack([c.logpdf(b["X"]).reshape(-1) for c in comps])
            z += logw
            top = z.max(axis=1, keepdims=True)
            z -= top
            np.exp(z, out=z)
            total += float(np.sum(top[:, 0] + np.log(z.sum(axis=1))))
        return total

    # -- fitting --------------------------------------------------------------------------
    def initial_starts(self, init, n_init: int, rng: np.random.Generator):
        """One M-step from initial responsibilities per start: ``n_init`` of them for
        ``"kmeans"``/``"random"`` (drawn in turn from ``rng``), one for given labels or
        responsibilities."""
        init = "kmeans" if init is None else init
        n_starts = int(n_init) if isinstance(init, str) else 1
        label = init if isinstance(init, str) else "given"
        def start():
            r = self._init_resp(init, rng)      # labels (n,) or responsibilities (n, K)
            return (self._params_from_labels(r) if r.ndim == 1
                    else self.params_from_resp(r))
        return [(label, start()) for _ in range(n_starts)]

    def check_start(self, start) -> VBParams:
        if not isinstance(start, VBParams):
            raise ValueError("start_params must be a VBParams")
        if self._derived(start) is None:
            raise ValueError("start_params are not valid variational parameters")
        return start.copy()

    def fit(self, *, init="kmeans", cov_type: str | None = None, **kwargs) -> VBGMMResults:
        """Coordinate ascent on the ELBO, run by the EM engine (the options of every model,
        :meth:`FitMixin.fit <emstats.inference.fit.FitMixin.fit>`).

        Parameters
        ----------
        init : {"kmeans", "random"} or array_like
            Initial responsibilities, from which one M-step gives the start:
            ``"kmeans"`` (k-means++ seeding and Lloyd iterations, hard labels),
            ``"random"`` (uniform draws normalised by row, as scikit-learn), an array of
            n labels in 0..k-1 or an n x k array of responsibilities.
        cov_type : None or "none"
            Standard errors are not defined for a variational posterior: the summary
            reports posterior standard deviations and credible intervals instead.
            Any other value is an error.
        **kwargs
            ``start_params`` (a :class:`VBParams`), ``n_init`` (starts for
            ``"kmeans"``/``"random"``: short runs from each, the best continued),
            ``seed``, ``method`` (default ``"em"``, the plain coordinate ascent;
            ``"squarem"``: SQUAREM on the packed variational parameters with its
            monotone fall-back),
            ``maxiter``, ``tol`` (relative change of the ELBO), ``n_threads``,
            ``progress``, ``callback``, ``method_options``.

        Returns
        -------
        VBGMMResults
        """
        if cov_type is not None and str(cov_type).lower() != "none":
            raise ValueError(
                f"cov_type={cov_type!r}: a variational posterior has no sampling standard "
                "errors; the results report posterior standard deviations and credible "
                "intervals (use cov_type=None)")
        label = init if isinstance(init, str) else "given"
        # the plain coordinate ascent by default: scikit-learn's trajectory, and the
        # fixed point reached from the start (SQUAREM may swap emptied components)
        kwargs.setdefault("method", "em")
        opts = FitOptions(cov_type=None, init=init, **kwargs)
        res = fit_model(self, VBGMMResults, nobs=self.n, df_model=self.df_model,
                        results_kwargs={"init": label}, options=opts)
        # a component that holds rows but whose mean's posterior has no finite variance
        # (the emptied ones, whose posterior is the prior's, are the method's pruning)
        nu = res.raw_params.degrees_of_freedom
        thin = np.flatnonzero(~(nu > self.d + 1) & (nu - self.nu0 >= 0.5))
        if thin.size:
            warnings.warn(
                f"the posterior of the mean of component(s) {[int(k) + 1 for k in thin]} has "
                f"no finite variance (degrees of freedom nu_k = "
                f"{', '.join(f'{nu[k]:.3g}' for k in thin)} <= d + 1 = {self.d + 1}: too few "
                "rows in the component for the prior); their posterior standard deviations "
                "are NaN.  Use fewer components or a larger degrees_of_freedom_prior.",
                UserWarning, stacklevel=2)
        return res


# ----------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------

class VBGMMResults(EMResults):
    """Results of a variational Bayesian Gaussian mixture fit.

    An :class:`~emstats.inference.results.EMResults` whose ``params`` are the posterior
    means of the weights and of the component means (``model.param_names``) and whose
    covariance is that of the variational posterior (``cov_type="posterior"``: ``bse``
    are posterior standard deviations, not sampling standard errors; :meth:`conf_int`
    gives exact equal-tailed credible intervals).  ``llf`` is the plug-in
    log-likelihood of the data at the posterior means of the weights, means and
    covariances, and AIC/BIC count the free parameters of that mixture; the
    variational objective itself is :attr:`elbo`.  Components keep the order of the
    starting responsibilities (no relabelling).

    Attributes
    ----------
    model : VariationalGaussianMixture
    params : pandas.Series
        Posterior means of the weights and component means.
    raw_params : VBParams
        The variational parameters at convergence.
    convergence : ConvergenceInfo
        Engine diagnostics; ``convergence.loglik`` is the ELBO trace.
    elbo : float
        Final ELBO (a lower bound on the log marginal likelihood, constants included).
    init_elbos : ndarray
        Final ELBO of every start.
    """

    def __init__(self, model: VariationalGaussianMixture, theta, cov, *, llf: float,
                 convergence: ConvergenceInfo, raw_params: VBParams, init: str = "kmeans",
                 extra: dict | None = None, **kwargs):
        K, d = model.K, model.d
        super().__init__(model, theta, model.posterior_covariance(raw_params),
                         llf=model.plugin_loglike(raw_params), nobs=model.n,
                         df_model=float((K - 1) + K * d + K * d * (d + 1) // 2),
                         cov_type="posterior", convergence=convergence,
                         raw_params=raw_params, extra=extra)
        self.elbo = float(llf)
        starts = self.extra.get("starts")
        if starts:
            # each start's ELBO after its short run; the continued one's final ELBO
            el = np.array([s.loglik for s in starts], dtype=float)
            el[int(np.argmax(np.where(np.isfinite(el), el, -np.inf)))] = self.elbo
            self.init_elbos = el
        else:
            self.init_elbos = np.array([self.elbo])
        self.init = init

    @property
    def n_free(self) -> int:
        """Free parameters of the plug-in mixture: (K - 1) + K d + K d (d + 1) / 2."""
        return int(self.df_model)

    @property
    def aic(self) -> float:
        """AIC of the plug-in mixture, -2 llf + 2 n_free."""
        return -2.0 * self.llf + 2.0 * self.n_free

    @property
    def bic(self) -> float:
        """BIC of the plug-in mixture, -2 llf + n_free log(nobs)."""
        return -2.0 * self.llf + np.log(self.nobs) * self.n_free

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Equal-tailed credible intervals of the variational posterior (Beta marginals
        for the weights, Student t for the means; :meth:`posterior_table`).

        Parameters
        ----------
        alpha : float
            One minus the credibility of the intervals.

        Returns
        -------
        pandas.DataFrame
        """
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        t = self.posterior_table(alpha)
        return pd.DataFrame({0: t.iloc[:, 2].to_numpy(), 1: t.iloc[:, 3].to_numpy()},
                            index=self.params.index)

    # -- variational parameters (scikit-learn's names) --------------------------------------
    @property
    def k(self) -> int:
        return self.model.K

    @property
    def elbo_trace(self) -> np.ndarray:
        """ELBO after every iteration (element 0: at the start); non-decreasing."""
        return np.asarray(self.convergence.loglik)

    @property
    def weight_concentration(self) -> np.ndarray:
        return self.raw_params.weight_concentration.copy()

    @property
    def mean_precision(self) -> np.ndarray:
        return self.raw_params.mean_precision.copy()

    @property
    def degrees_of_freedom(self) -> np.ndarray:
        return self.raw_params.degrees_of_freedom.copy()

    @property
    def covariances(self) -> np.ndarray:
        """E[Lambda_k]^-1 = W_k^-1 / nu_k (scikit-learn's ``covariances_``)."""
        return self.raw_params.covariances.copy()

    @property
    def _index(self):
        return pd.RangeIndex(1, self.k + 1, name="component")

    @property
    def weights(self) -> pd.Series:
        """Posterior means of the weights, alpha_k / sum alpha."""
        a = self.raw_params.weight_concentration
        return pd.Series(a / a.sum(), index=self._index, name="weight")

    @property
    def means(self) -> pd.DataFrame:
        """Posterior means of the component means, m_k."""
        return pd.DataFrame(self.raw_params.means, index=self._index, columns=self.model.columns)

    @property
    def posterior_mean_covariances(self) -> np.ndarray:
        """E[Sigma_k] = W_k^-1 / (nu_k - d - 1) (NaN where nu_k <= d + 1)."""
        d = self.model.d
        nu = self.raw_params.degrees_of_freedom
        Winv = self.raw_params.covariances * nu[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = Winv / np.where(nu > d + 1, nu - d - 1, np.nan)[:, None, None]
        return out

    @property
    def expected_counts(self) -> pd.Series:
        """N_k = sum_i r_ik at the final parameters (alpha_k - alpha_0k)."""
        return pd.Series(self.raw_params.weight_concentration - self.model.alpha0,
                         index=self._index, name="N")

    # -- prediction -------------------------------------------------------------------------
    def _new_data(self, data):
        m = self.model
        if data is None:
            return m.X, m.row_labels
        if m.design_info is not None and isinstance(data, (pd.DataFrame, dict)):
            frame = pd.DataFrame(data) if isinstance(data, dict) else data
            X, labels = m.design_info.matrix(frame), frame.index
        elif isinstance(data, pd.DataFrame):
            miss = [c for c in m.columns if c not in data.columns]
            if miss:
                raise DataError(f"new data lack column(s) {miss}")
            X, labels = data[m.columns].to_numpy(dtype=float), data.index
        else:
            X = np.asarray(data, dtype=float)
            if X.ndim == 1:
                X = X[None, :] if m.d > 1 else X[:, None]
            labels = pd.RangeIndex(X.shape[0])
        if X.ndim != 2 or X.shape[1] != m.d:
            raise DataError(f"new data must have {m.d} columns, got shape {X.shape}")
        bad = ~np.all(np.isfinite(X), axis=1)
        if bad.any():
            raise DataError(f"new data have missing or infinite values in rows "
                            f"{describe_rows(pd.Index(labels), bad)}")
        return np.ascontiguousarray(X), labels

    def predict_proba(self, data=None) -> pd.DataFrame:
        """Responsibilities under the variational posterior, r_ik proportional to
        exp(E log pi_k + E log N(x_i | mu_k, Lambda_k)) (scikit-learn's ``predict_proba``).

        Parameters
        ----------
        data : DataFrame or array_like, optional
            Rows to evaluate (through the formula for a model built from one); default the
            estimation rows."""
        X, labels = self._new_data(data)
        D = self.model._derived(self.raw_params)
        r = self.model._kernel(X, self.raw_params, D, want_resp=True,
                               n_threads=resolve_threads(None))[5]
        return pd.DataFrame(r, index=labels, columns=self._index)

    def predict(self, newdata=None, which: str = "mean"):
        """Predictions for the model's rows or ``newdata`` (``docs/predict.md``).

        Parameters
        ----------
        newdata : array_like or DataFrame, optional
            Rows to evaluate (through the formula for a model built from one); default the
            estimation rows.
        which : {"mean", "label", "proba"}
            ``"mean"`` (default): sum_k r_ik m_k, the posterior mean of the component
            mean (rows x variables); ``"label"``: the most probable component (1..K),
            scikit-learn's ``predict``; ``"proba"``: :meth:`predict_proba`.
        """
        if which not in ("mean", "label", "proba"):
            raise ValueError(f"which must be 'mean', 'label' or 'proba', got {which!r}")
        r = self.predict_proba(newdata)
        if which == "proba":
            return r
        if which == "mean":
            return pd.DataFrame(r.to_numpy() @ self.raw_params.means, index=r.index,
                                columns=self.model.columns)
        return pd.Series(np.argmax(r.to_numpy(), axis=1) + 1, index=r.index, name="component")

    # -- summary ----------------------------------------------------------------------------
    def posterior_table(self, alpha: float = 0.05) -> pd.DataFrame:
        """Posterior mean, standard deviation and equal-tailed credible interval of every
        weight (marginally Beta) and component mean (marginally Student t with
        nu_k - d + 1 degrees of freedom) under the variational posterior.

        Parameters
        ----------
        alpha : float
            One minus the credibility of the intervals (default 0.05)."""
        p, m = self.raw_params, self.model
        d = m.d
        a = p.weight_concentration
        a0 = a.sum()
        rows = {}
        q = (alpha / 2, 1 - alpha / 2)
        for k in range(self.k):
            bet = sps.beta(a[k], a0 - a[k])
            rows[f"weight[{k + 1}]"] = (bet.mean(), bet.std(), *bet.ppf(q))
        nu, beta = p.degrees_of_freedom, p.mean_precision
        for k in range(self.k):
            df = nu[k] - d + 1
            Winv = p.covariances[k] * nu[k]
            scale = np.sqrt(np.diag(Winv) / (beta[k] * df))
            sd = np.sqrt(np.diag(Winv) / (beta[k] * (nu[k] - d - 1))) if nu[k] > d + 1 else \
                np.full(d, np.nan)
            tq = sps.t.ppf(q[1], df)
            for j, c in enumerate(m.columns):
                mu = p.means[k, j]
                rows[f"mean[{k + 1}]({c})"] = (mu, sd[j], mu - tq * scale[j],
                                               mu + tq * scale[j])
        lo, hi = f"[{q[0]:g}", f"{q[1]:g}]"
        return pd.DataFrame.from_dict(rows, orient="index",
                                      columns=["post. mean", "post. sd", lo, hi])

    def summary(self, alpha: float = 0.05):
        """Summary: fit information, then posterior means, standard deviations and
        credible intervals of the weights and means, then the variational parameters.

        Parameters
        ----------
        alpha : float
            One minus the credibility of the intervals (default 0.05)."""
        from statsmodels.iolib.summary import Summary
        from statsmodels.iolib.table import SimpleTable

        m, cv = self.model, self.convergence
        s = Summary()
        left = [("Model:", "Variational Bayesian GMM"), ("Covariance:", m.covariance),
                ("Components k:", str(self.k)), ("No. Observations:", str(m.n)),
                ("Variables:", str(m.d))]
        right = [("ELBO:", f"{self.elbo:.6f}"), ("Log-lik. (plug-in):", f"{self.llf:.6f}"),
                 ("Method:", f"VB, {METHOD_NAMES.get(cv.method, cv.method)}"),
                 ("Iterations:", describe_iterations(cv, len(self.init_elbos))[1]),
                 ("Converged:", "yes" if cv.converged else "no")]
        rows = [[a[0], a[1], b[0], b[1]] for a, b in zip(left, right, strict=True)]
        s.tables.append(SimpleTable(rows, title="Variational Bayesian Gaussian mixture"))
        s.tables.append(_df_table(self.posterior_table(alpha)))
        p = self.raw_params
        comp = pd.DataFrame({"E[weight]": self.weights.to_numpy(),
                             "N_k": self.expected_counts.to_numpy(),
                             "alpha": p.weight_concentration, "beta": p.mean_precision,
                             "nu": p.degrees_of_freedom}, index=self._index)
        s.tables.append(_df_table(comp))
        pr = m.priors
        a0 = pr["weight_concentration_prior"]
        a0txt = f"{a0[0]:.6g}" if np.all(a0 == a0[0]) else str(np.round(a0, 6).tolist())
        s.add_extra_txt([
            f"Iterations: {describe_iterations(cv, len(self.init_elbos))[0]}; "
            f"{'converged' if cv.converged else 'not converged'} ({cv.reason}); the EM "
            "steps are coordinate ascent on the ELBO.",
            f"Priors: weight_concentration {a0txt}, mean_precision {pr['mean_precision_prior']:.6g}"
            f", degrees_of_freedom {pr['degrees_of_freedom_prior']:.6g}, mean_prior and "
            "covariance_prior in results.model.priors.",
            "No standard errors: the spread shown is that of the variational posterior "
            "(Beta marginals for the weights, Student t for the means; NaN where nu_k <= d "
            "+ 1, e.g. a component emptied by the prior, whose posterior is the prior's).",
            f"Components in the order of the start ({self.init}); final ELBO of the starts "
            f"{np.min(self.init_elbos):.6f} .. {np.max(self.init_elbos):.6f}.",
        ])
        return s

    def plot_elbo(self, ax=None):
        """The ELBO trace against the iteration (matplotlib required).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: a new figure).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        tr = self.elbo_trace
        ax.plot(np.arange(tr.size), tr, marker=".", ms=3)
        ax.set_xlabel("iteration")
        ax.set_ylabel("ELBO")
        return ax



def _df_table(df: pd.DataFrame):
    from statsmodels.iolib.table import SimpleTable

    data = [[f"{v:.6g}" if np.isfinite(v) else "nan" for v in row] for row in df.to_numpy()]
    return SimpleTable(data, headers=[str(c) for c in df.columns],
                       stubs=[str(i) for i in df.index])


def vbgmm(spec=None, k=None, *, data=None, covariance: str = "full",
          weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
          degrees_of_freedom_prior=None, covariance_prior=None,
          missing: str = "raise") -> VariationalGaussianMixture:
    """Variational Bayesian Gaussian mixture from an array, a DataFrame or a formula.

    Dirichlet prior on the weights, Normal-Wishart prior on each component's mean and
    precision; the defaults are scikit-learn's (``BayesianGaussianMixture`` with
    ``weight_concentration_prior_type="dirichlet_distribution"``).

    Parameters
    ----------
    spec : array_like, DataFrame or str
        The data (rows x variables) or a one-sided formula such as
        ``"~ eruptions + waiting"`` evaluated in ``data``.
    k : int
        Number of components (an upper bound).
    data : DataFrame, optional
        The data of a formula.
    covariance : {"full"}
        Only full covariances are implemented.
    weight_concentration_prior, mean_precision_prior, mean_prior :
        See :class:`VariationalGaussianMixture`.
    degrees_of_freedom_prior, covariance_prior :
        See :class:`VariationalGaussianMixture`.
    missing : {"raise", "drop"}
        Rows with NaN raise a :class:`DataError` (default) or are dropped.

    Returns
    -------
    VariationalGaussianMixture
        Call ``.fit()`` on it.

    Examples
    --------
    >>> import emstats
    >>> faithful = emstats.datasets.load("faithful")
    >>> res = emstats.vbgmm("~ eruptions + waiting", data=faithful, k=5).fit()
    >>> bool(res.weights.max() < 1 and res.elbo_trace.size > 1)
    True
    """
    if k is None:
        raise ValueError("k (the number of components) is required")
    if spec is None:
        if data is None:
            raise ValueError("no data: pass an array, a DataFrame or a formula with data=")
        spec, data = data, None
    prepared = prepare_data(spec, data, missing)
    return VariationalGaussianMixture(
        None, k, covariance, weight_concentration_prior=weight_concentration_prior,
        mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
        degrees_of_freedom_prior=degrees_of_freedom_prior, covariance_prior=covariance_prior,
        missing=missing, _prepared=prepared)


__all__ = ["VBGMMResults", "VBParams", "VariationalGaussianMixture", "vbgmm"]
