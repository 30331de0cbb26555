"""Tobit and interval regression with a log-linear model for the scale, fitted by ECM.

The latent response is y* = x'beta + offset + sigma_i e with log sigma_i = z_i'gamma
(``scale_formula="~ z1 + z2"``; an intercept in z gives the homoskedastic model
back).  The expected complete-data log-likelihood has no joint closed-form
maximiser, so the M-step is split into two conditional maximisations (Meng &
Rubin's ECM, 1993):

1. beta given gamma: weighted least squares of E[y*] on x with weights w / sigma_i^2;
2. gamma given the new beta: Newton steps on the concave
   Q(gamma) = sum w (-z'gamma - R_i exp(-2 z'gamma) / 2),
   R_i = E[(y* - x'beta - offset)^2 | data], halved until Q increases.

Each conditional step increases Q, so the observed log-likelihood never decreases.
The E-step uses the same truncated-normal kernel as :mod:`censored`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .._config import resolve_threads
from .._kernels import censnorm
from ..em.protocol import EMModel, LouisPieces
from ..exceptions import DataError
from ..formula import build_design, capture_env
from ..inference.fit import fit_model
from ..inference.results import EMResults
from .censored import CensoredRegression, Tobit, censoring_rows


class HeteroskedasticCensoredRegression(EMModel):
    """Censored normal regression with log sigma_i = z_i'gamma (ECM).

    Parameters
    ----------
    base : CensoredRegression
        The homoskedastic model carrying the validated response bounds, regressors,
        weights and offset (a :class:`~emstats.Tobit` or
        :class:`~emstats.IntervalRegression`).
    exog_scale : array_like, shape (n, q)
        Regressors of the log scale (include a constant column).
    exog_scale_names : list of str, optional
    """

    summary_title = "Heteroskedastic Censored Regression Results"

    def __init__(self, base: CensoredRegression, exog_scale, exog_scale_names=None):
        Z = np.ascontiguousarray(np.asarray(exog_scale, dtype=float))
        if Z.ndim == 1:
            Z = Z[:, None]
        n = base.X.shape[0]
        if Z.shape[0] != n:
            raise DataError(f"exog_scale has {Z.shape[0]} rows but the model has {n}")
        if not np.all(np.isfinite(Z)):
            raise DataError("exog_scale has non-finite values")
        names = list(exog_scale_names) if exog_scale_names is not None else [
            f"z{j}" for j in range(Z.shape[1])]
        if np.linalg.matrix_rank(Z * np.sqrt(base.w)[:, None]) < Z.shape[1]:
            raise DataError("the scale design matrix is singular: "
                            f"columns {names} are linearly dependent")
        self.base = base
        self.Z = Z
        self.k_exog = base.k_exog
        self.k_scale = Z.shape[1]
        self.endog_name = base.endog_name
        self.exog_names = base.exog_names
        self.scale_names = names
        self.param_names = list(base.exog_names) + [f"scale: {nm}" for nm in names]
        self.n_left, self.n_right = base.n_left, base.n_right
        self.n_interval, self.n_exact = base.n_interval, base.n_exact
        self.n_dropped = base.n_dropped
        self._n_threads = resolve_threads(None)

    # -- pieces -----------------------------------------------------------------------
    def _split(self, theta):
        theta = np.asarray(theta, dtype=float)
        return theta[: self.k_exog], theta[self.k_exog:]

    def _moments(self, theta):
        beta, gamma = self._split(theta)
        b = self.base
        mu = b.X @ beta + b.offset
        sig = np.exp(self.Z @ gamma)
        out = np.empty((len(mu), 5))
        censnorm.censreg_moments(b.lo, b.hi, mu, sig, out, self._n_threads)
        return mu, sig, out

    # -- EM protocol ------------------------------------------------------------------
    def start_params(self):
        t = self.base.start_params()
        gamma = np.zeros(self.k_scale)
        # regress the log scale on Z with only its constant part set: the least-squares
        # coefficients of a constant column reproduce log sigma
        const = np.linalg.lstsq(self.Z, np.full(self.Z.shape[0], t[-1]), rcond=None)[0]
        gamma[:] = const
        return np.concatenate([t[:-1], gamma])

    def e_step(self, params):
        mu, sig, out = self._moments(params)
        ll = float(self.base.w @ out[:, 0])
        if not np.isfinite(ll):
            return None, -np.inf
        ey = mu + sig * out[:, 1]
        vy = sig**2 * out[:, 2]
        return (ey, vy), ll

    def m_step(self, stats, params):
        ey, vy = stats
        b = self.base
        beta, gamma = self._split(params)
        # CM-step 1: weighted least squares for beta given gamma
        wt = b.w * np.exp(-2.0 * (self.Z @ gamma))
        G = b.X.T @ (b.X * wt[:, None])
        beta = sla.solve(G, b.X.T @ (wt * (ey - b.offset)), assume_a="pos")
        # CM-step 2: Newton steps for gamma given beta on the concave Q(gamma)
        R = (ey - b.X @ beta - b.offset) ** 2 + vy
        Zw = self.Z

        def q(g):
            eta = Zw @ g
            return float(b.w @ (-eta - 0.5 * R * np.exp(-2.0 * eta)))

        for _ in range(5):
            eta = Zw @ gamma
            u = R * np.exp(-2.0 * eta)
            grad = Zw.T @ (b.w * (u - 1.0))
            H = 2.0 * Zw.T @ (Zw * (b.w * u)[:, None])
            step = sla.solve(H, grad, assume_a="pos")
            q0, t = q(gamma), 1.0
            while q(gamma + t * step) < q0 and t > 1e-10:
                t *= 0.5
            gamma = gamma + t * step
            if np.max(np.abs(t * step)) < 1e-12:
                break
        return np.concatenate([beta, gamma])


    def score_and_louis(self, params):
        _, sig, out = self._moments(params)
        m, c2, c3, c4 = out[:, 1], out[:, 2], out[:, 3], out[:, 4]
        X, Z, w = self.base.X, self.Z, self.base.w
        ez2 = c2 + m * m
        p, q = self.k_exog, self.k_scale
        score = np.concatenate([X.T @ (w * m / sig), Z.T @ (w * (ez2 - 1.0))])
        comp = np.empty((p + q, p + q))
        miss = np.empty((p + q, p + q))
        comp[:p, :p] = X.T @ (X * (w / sig**2)[:, None])
        comp[:p, p:] = X.T @ (Z * (2.0 * w * m / sig)[:, None])
        comp[p:, p:] = Z.T @ (Z * (2.0 * w * ez2)[:, None])
        miss[:p, :p] = X.T @ (X * (w * c2 / sig**2)[:, None])
        miss[:p, p:] = X.T @ (Z * (w * (c3 + 2.0 * m * c2) / sig)[:, None])
        miss[p:, p:] = Z.T @ (Z * (w * (c4 - c2**2 + 4.0 * m * c3 + 4.0 * m**2 * c2))[:, None])
        for a in (comp, miss):
            a[p:, :p] = a[:p, p:].T
        return score, LouisPieces(comp, miss)

    def score(self, params):
        return self.score_and_louis(params)[0]

    def louis(self, params):
        return self.score_and_louis(params)[1]

    def fit(self, start_params=None, method: str | None = None, maxiter: int = 2000,
            tol: float = 1e-8, ptol: float | None = None, cov_type: str = "louis",
            n_boot: int = 200, seed: int | None = 0, n_threads: int | None = None,
            progress: bool = False, callback=None, method_options: dict | None = None):
        """Maximum-likelihood fit by ECM (see :meth:`emstats.Tobit.fit` for the arguments).

        The default method is ``"newton"``, which starts from the ECM map's
        fall-back; ``method="em"`` runs plain ECM, whose log-likelihood is
        monotone.
        """
        self._n_threads = resolve_threads(n_threads)
        if start_params is not None:
            start_params = np.asarray(start_params, dtype=float).ravel()
            if start_params.shape[0] != len(self.param_names):
                raise ValueError(f"start_params must hold {len(self.param_names)} values")
        b = self.base
        nobs = b._sum_w if b.has_weights else b.X.shape[0]
        return fit_model(self, HeteroskedasticResults, start_params=start_params,
                         method=method, maxiter=maxiter, tol=tol, ptol=ptol,
                         cov_type=cov_type, n_boot=n_boot, seed=seed, progress=progress,
                         callback=callback, method_options=method_options, nobs=nobs,
                         df_model=len(self.param_names) - 2)


class HeteroskedasticResults(EMResults):
    """Results of a heteroskedastic Tobit / interval regression."""

    def _summary_rows(self):
        m = self.model
        left = censoring_rows(m)
        right = [("Scale model:", ["log-linear"])]
        if m.n_dropped:
            right.append(("Rows dropped (NA):", [str(m.n_dropped)]))
        return left, right

    def predict(self, which: str = "linear") -> pd.Series:
        """Latent mean (``"linear"``) or scale (``"scale"``) for the estimation rows."""
        m = self.model
        beta, gamma = m._split(self.params.to_numpy())
        if which == "linear":
            out = m.base.X @ beta + m.base.offset
        elif which == "scale":
            out = np.exp(m.Z @ gamma)
        else:
            raise ValueError(f"which must be 'linear' or 'scale', got {which!r}")
        return pd.Series(out, index=m.base.row_labels, name=which)


def heteroskedastic_tobit(formula: str, data, scale_formula: str, *, censor_left=0.0,
                          censor_right=None, weights=None, offset=None,
                          beyond_limits: str = "censor", missing: str = "drop",
                          eval_env=None) -> HeteroskedasticCensoredRegression:
    """Build the heteroskedastic Tobit model (called by ``emstats.tobit(scale_formula=...)``).

    Rows with missing values in either formula are dropped together.
    """
    env = eval_env if eval_env is not None else capture_env(1)
    if not isinstance(scale_formula, str) or "~" not in scale_formula:
        raise DataError(f"scale_formula must be a one-sided formula like '~ z', "
                        f"got {scale_formula!r}")
    rhs = scale_formula.split("~", 1)[1]
    lhs = formula.split("~", 1)[0]
    # rows complete for both formulas: build the scale design on the same data first
    zdesign = build_design(f"{lhs} ~ {rhs}", data, missing=missing, eval_env=env)
    keep = zdesign.row_labels
    frame = data.loc[keep] if len(keep) < len(data) else data
    pos = data.index.get_indexer(keep)

    def rows(v):  # per-row arrays follow the rows kept
        return v if v is None or isinstance(v, str) or np.isscalar(v) else np.asarray(v)[pos]

    base = Tobit.from_formula(formula, frame, censor_left=rows(censor_left),
                              censor_right=rows(censor_right), weights=rows(weights),
                              offset=rows(offset),
                              beyond_limits=beyond_limits, missing=missing, eval_env=env)
    zrows = zdesign.row_labels.get_indexer(base.row_labels)
    base.n_dropped = len(data) - base.X.shape[0]
    return HeteroskedasticCensoredRegression(base, zdesign.exog[zrows], zdesign.exog_names)
