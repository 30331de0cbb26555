"""Tobit and interval regression with a log-linear model for the scale, fitted by ECM.

The latent response is y* = x'beta + offset + sigma_i e with log sigma_i = z_i'gamma
(``scale_formula="~ z1 + z2"``; an intercept in z gives the homoskedastic model
back).  The expected complete-data log-likelihood has no joint closed-form
maximiser, so the M-step is split into two conditional steps (Meng & Rubin's ECM,
1993), both computed from statistics that add over chunks of rows:

1. beta given gamma: weighted least squares of E[y*] on x with weights
   w_i exp(-2 z_i'gamma);
2. gamma given the new beta: one damped Newton step on the concave
   Q(gamma) = sum w (-z'gamma - R_i exp(-2 z'gamma) / 2),
   R_i = E[(y* - x'beta - offset)^2 | data].

For the second step the E-step returns the sums that give the gradient and Hessian
of Q at the E-step's gamma for *any* new beta (R_i is quadratic in beta), so the
M-step needs no second pass over the data.  The Newton step delta is shortened to
t * delta with t * exp(2 t a) <= 1.5, where a bounds max_i |z_i'delta| (Cauchy-Schwarz
with the largest leverage of Z): with that bound the quadratic minoriser
Q(gamma + t delta) - Q(gamma) >= t (2 - t exp(2 t a)) delta' H delta / 2 holds, so
each step increases Q and the observed log-likelihood never decreases (a GEM
algorithm).  Near the maximum a -> 0 and the step is Newton's.

The statistics are taken at the current gamma (not about a fixed centre), so the
model offers no incremental or online EM; plain EM, SQUAREM and the Louis-Newton
finish (the default) use them.  The E-step uses the same truncated-normal kernel as
:mod:`censored`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .._kernels import censnorm
from ..em.data import ArrayData
from ..em.protocol import ChunkedModel
from ..em.stats import Stats
from ..exceptions import DataError
from ..formula import build_design, capture_env, new_exog, resolve_column
from ..inference.fit import FitMixin
from ..inference.results import EMResults
from .censored import CensoredRegression, Tobit, censored_prediction, censoring_rows

#: rows per block inside a chunk for the statistics that need (z kron x) outer products
_BLOCK = 32768


class HeteroskedasticCensoredRegression(FitMixin, ChunkedModel):
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
    scale_design_info : optional
        The scale formula's design information, for predictions on new data.
    """

    summary_title = "Heteroskedastic Censored Regression Results"
    #: the E-step statistics are taken at the current gamma (no incremental EM)
    stats_additive_in_params = False

    def __init__(self, base: CensoredRegression, exog_scale, exog_scale_names=None,
                 scale_design_info=None):
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
        ztz = Z.T @ Z
        if np.linalg.matrix_rank(Z.T @ (Z * base.w[:, None])) < Z.shape[1]:
            raise DataError("the scale design matrix is singular: "
                            f"columns {names} are linearly dependent")
        self.base = base
        self.k_exog = base.k_exog
        self.k_scale = Z.shape[1]
        self.endog_name = base.endog_name
        self.exog_names = base.exog_names
        self.scale_names = names
        self.scale_design_info = scale_design_info
        self.param_names = list(base.exog_names) + [f"scale: {nm}" for nm in names]
        self.n_left, self.n_right = base.n_left, base.n_right
        self.n_interval, self.n_exact = base.n_interval, base.n_exact
        self.n_dropped = base.n_dropped
        # data constants: Z'Z and the largest leverage bound max_i |z_i'd| by
        # sqrt(h_max d'Z'Zd) (the step length rule of the module docstring)
        self._ztz = ztz
        self._h_max = float(np.max(np.einsum("ij,ij->i", Z @ np.linalg.inv(ztz), Z)))
        self.data = ArrayData({"X": base.X, "Z": Z, "lo": base.lo, "hi": base.hi,
                               "offset": base.offset, "w": base.w})

    Z = property(lambda self: self.data["Z"])

    @property
    def nobs(self) -> float:
        """Observations: the sum of the frequency weights, or the number of rows."""
        return self.base.nobs

    @property
    def df_model(self) -> float:
        """Parameters other than the two intercepts."""
        return len(self.param_names) - 2

    # -- pieces -----------------------------------------------------------------------
    def _split(self, theta):
        theta = np.asarray(theta, dtype=float)
        return theta[: self.k_exog], theta[self.k_exog:]

    def _moments(self, theta, chunk):
        """Latent mean and scale of the chunk's rows and their censored-normal moments."""
        beta, gamma = self._split(theta)
        mu = chunk["X"] @ beta + chunk["offset"]
        sig = np.exp(chunk["Z"] @ gamma)
        out = np.empty((len(mu), 5))
        censnorm.censreg_moments(chunk["lo"], chunk["hi"], mu, sig, out, chunk.n_threads)
        return mu, sig, out

    def start_params(self):
        """The homoskedastic start with the log scale's constant part set."""
        t = self.base.start_params()
        # the least-squares coefficients of a constant column reproduce log sigma
        gamma = np.linalg.lstsq(self.Z, np.full(self.Z.shape[0], t[-1]), rcond=None)[0]
        return np.concatenate([t[:-1], gamma])

    def check_start(self, start) -> np.ndarray:
        """``start_params`` as a vector of ``(beta, gamma)``, or a clear error."""
        start = np.asarray(start, dtype=float).ravel()
        if start.shape[0] != len(self.param_names) or not np.all(np.isfinite(start)):
            raise ValueError(f"start_params must hold {len(self.param_names)} finite values "
                             f"({', '.join(self.param_names)})")
        return start

    def diagnose_failure(self, err: Exception) -> DataError | None:
        """The homoskedastic model's diagnosis of degenerate data."""
        return self.base.diagnose_failure(err)

    # -- the chunk contract -------------------------------------------------------------
    def chunk_stats(self, params, chunk):
        """E-step sums of a chunk at the current gamma (see the module docstring).

        With e_i = exp(-2 z_i'gamma), r_i = E[y*_i] - offset_i and v_i = Var[y*_i]:
        ``xx = sum w e x x'``, ``xr = sum w e r x`` (beta's step) and, for the gradient
        and Hessian of Q at gamma for any beta, ``z0 = sum w e (r^2 + v) z``,
        ``zx = sum w e r z x'``, ``zxx = sum w e z x x'``, ``zz0``, ``zzx``, ``zzxx`` (the
        same with z z'), and ``wz = sum w z``.
        """
        beta, gamma = self._split(params)
        if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(gamma))):
            return None, -np.inf
        p, q = self.k_exog, self.k_scale
        acc = {"xx": np.zeros((p, p)), "xr": np.zeros(p), "z0": np.zeros(q),
               "zx": np.zeros((q, p)), "zxx": np.zeros((q, p, p)), "zz0": np.zeros((q, q)),
               "zzx": np.zeros((q, q, p)), "zzxx": np.zeros((q, p, q, p)), "wz": np.zeros(q)}
        ll = 0.0
        for a in range(0, chunk.n_rows, _BLOCK):
            rows = slice(a, min(a + _BLOCK, chunk.n_rows))
            X, Z, w = chunk["X"][rows], chunk["Z"][rows], chunk["w"][rows]
            mu = X @ beta + chunk["offset"][rows]
            sig = np.exp(Z @ gamma)
            out = np.empty((len(mu), 5))
            censnorm.censreg_moments(np.ascontiguousarray(chunk["lo"][rows]),
                                     np.ascontiguousarray(chunk["hi"][rows]), mu, sig, out,
                                     chunk.n_threads)
            ll += float(w @ out[:, 0])
            r = mu + sig * out[:, 1] - chunk["offset"][rows]
            v = sig**2 * out[:, 2]
            we = w / sig**2
            a0, a1 = we * (r * r + v), we * r
            K = (Z[:, :, None] * X[:, None, :]).reshape(len(w), q * p)   # z kron x
            acc["xx"] += X.T @ (X * we[:, None])
            acc["xr"] += X.T @ a1
            acc["z0"] += Z.T @ a0
            acc["zx"] += (K.T @ a1).reshape(q, p)
            acc["zz0"] += Z.T @ (Z * a0[:, None])
            acc["zzx"] += np.einsum("ia,ib,i->ab", Z, K, a1).reshape(q, q, p)
            KK = K.T @ (K * we[:, None])                                  # (qp, qp)
            acc["zzxx"] += KK.reshape(q, p, q, p)
            acc["zxx"] += _zxx(Z, X, we)
            acc["wz"] += Z.T @ w
        if not np.isfinite(ll):
            return None, -np.inf
        return Stats(acc), ll

    def m_step(self, stats, params):
        """Weighted least squares for beta, then a damped Newton step for gamma."""
        beta0, gamma = self._split(params)
        beta = sla.solve(stats["xx"], stats["xr"], assume_a="pos")
        # gradient g = sum w z (u - 1) and H0 = sum w u z z' at gamma, u_i = e_i R_i(beta)
        zx, zzx = stats["zx"], stats["zzx"]
        g = (stats["z0"] - 2.0 * zx @ beta
             + np.einsum("apq,p,q->a", stats["zxx"], beta, beta) - stats["wz"])
        H0 = (stats["zz0"] - 2.0 * zzx @ beta
              + np.einsum("apbq,p,q->ab", stats["zzxx"], beta, beta))
        H0 = 0.5 * (H0 + H0.T)
        try:
            delta = 0.5 * sla.solve(H0, g, assume_a="pos")
        except (np.linalg.LinAlgError, ValueError) as err:
            raise FloatingPointError("singular Hessian in the scale step") from err
        a = float(np.sqrt(self._h_max * max(delta @ self._ztz @ delta, 0.0)))
        t = _step_length(a)
        return np.concatenate([beta, gamma + t * delta])

    def chunk_louis(self, params, chunk):
        """Log-likelihood, score and Louis' pieces of a chunk (additive over rows)."""
        _, sig, out = self._moments(params, chunk)
        m, c2, c3, c4 = out[:, 1], out[:, 2], out[:, 3], out[:, 4]
        X, Z, w = chunk["X"], chunk["Z"], chunk["w"]
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
        for arr in (comp, miss):
            arr[p:, :p] = arr[:p, p:].T
        return Stats(loglik=float(w @ out[:, 0]), score=score, complete=comp, missing=miss)

    def chunk_scores(self, params, chunk) -> np.ndarray:
        """Score of each row (the terms of :meth:`chunk_louis`' score), for robust
        standard errors."""
        _, sig, out = self._moments(params, chunk)
        m, ez2, w = out[:, 1], out[:, 2] + out[:, 1] ** 2, chunk["w"]
        return np.hstack([chunk["X"] * (w * m / sig)[:, None],
                          chunk["Z"] * (w * (ez2 - 1.0))[:, None]])

    def unit_weights(self) -> np.ndarray:
        return self.data["w"]

    # -- the bootstrap --------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of independent rows."""
        return self.data.n_rows

    def bootstrap_model(self, idx: np.ndarray) -> HeteroskedasticCensoredRegression:
        """The same model on rows ``idx`` (with repetition)."""
        return HeteroskedasticCensoredRegression(self.base.bootstrap_model(idx), self.Z[idx],
                                                 self.scale_names)


def _zxx(Z, X, we):
    """sum_i we_i z_i (x_i x_i'), shape (q, p, p)."""
    return np.einsum("ia,ip,iq->apq", Z * we[:, None], X, X, optimize=True)


def _step_length(a: float) -> float:
    """The largest t <= 1 with t exp(2 t a) <= 1.5: the step keeps the minoriser positive."""
    if np.exp(2.0 * a) <= 1.5:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid * np.exp(2.0 * mid * a) <= 1.5:
            lo = mid
        else:
            hi = mid
    return lo


class HeteroskedasticResults(EMResults):
    """Results of a heteroskedastic Tobit / interval regression."""

    def _summary_rows(self):
        m = self.model
        left = censoring_rows(m)
        right = [("Scale model:", ["log-linear"])]
        if m.n_dropped:
            right.append(("Rows dropped (NA):", [str(m.n_dropped)]))
        return left, right

    def _designs(self, newdata):
        m = self.model
        if newdata is None:
            return m.base.X, m.Z, m.base.offset
        if not isinstance(newdata, (pd.DataFrame, dict)) or m.base.design_info is None \
                or m.scale_design_info is None:
            raise DataError("predict on new data needs a DataFrame and a model built "
                            "from formulas")
        X = new_exog(m.base.design_info, newdata)
        Z = new_exog(m.scale_design_info, newdata)
        return X, Z, None

    def predict(self, newdata=None, which: str = "mean", *, offset=None, censor_left=None,
                censor_right=None) -> pd.Series:
        """Predictions for the estimation rows or new data.

        Parameters
        ----------
        newdata : DataFrame, optional
            New data, passed through both formulas' design information.
        which : {"mean", "linear", "scale", "prob_uncensored", "conditional_mean"}
            As for :meth:`emstats.Tobit` results (``"mean"`` is E[y] of the censored
            response), plus ``"scale"``, the per-row sigma_i = exp(z_i'gamma).
        offset, censor_left, censor_right : optional
            For new data, as in :meth:`CensoredResults.predict`.

        Returns
        -------
        pandas.Series
        """
        kinds = ("mean", "linear", "scale", "prob_uncensored", "conditional_mean")
        if which not in kinds:
            raise ValueError(f"which must be one of {kinds}, got {which!r}")
        m = self.model
        beta, gamma = m._split(self.params.to_numpy())
        X, Z, off = self._designs(newdata)
        n = X.shape[0]
        if off is None:
            if offset is None and m.base.has_offset:
                raise DataError("the model has an offset: pass offset= for the new data")
            off = (np.zeros(n) if offset is None else
                   resolve_column(offset, newdata if isinstance(newdata, pd.DataFrame)
                                  else None, "offset", n))
        sig = np.exp(Z @ gamma)
        mu = X @ beta + off
        if which == "scale":
            out = sig
        elif which == "linear":
            out = mu
        else:
            if newdata is None:
                lo, hi = m.base.lo, m.base.hi
                cens = m.base.censoring
                if "left" in cens:
                    lo, hi = cens["left"], cens["right"]
            else:
                frame = newdata if isinstance(newdata, pd.DataFrame) else None
                cl = m.base.censor_left if censor_left is None and isinstance(
                    m.base, Tobit) else censor_left
                cr = m.base.censor_right if censor_right is None and isinstance(
                    m.base, Tobit) else censor_right
                lo = resolve_column(-np.inf if cl is None else cl, frame, "censor_left", n)
                hi = resolve_column(np.inf if cr is None else cr, frame, "censor_right", n)
            out = censored_prediction(mu, sig, lo, hi, which)
        index = m.base.row_labels if newdata is None else getattr(newdata, "index", None)
        return pd.Series(out, index=index, name=which)


HeteroskedasticCensoredRegression.results_class = HeteroskedasticResults


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
    return HeteroskedasticCensoredRegression(base, zdesign.exog[zrows], zdesign.exog_names,
                                             scale_design_info=zdesign.design_info)
