"""Zero-inflated Poisson and negative-binomial regressions by EM (pscl's ``zeroinfl``).

For row i, with a latent structural-zero indicator delta_i ~ Bernoulli(pi_i),

    P(y_i = 0) = pi_i + (1 - pi_i) f(0 | mu_i),    P(y_i = k) = (1 - pi_i) f(k | mu_i),
    log mu_i = x_i' beta + offset_i,               logit pi_i = z_i' gamma,

with f Poisson or NB2 (theta = exp(phi)) from :mod:`emstats.components.glm`.

Coordinates.  Packed and inference coordinates coincide: the count coefficients
``count_*``, the zero-inflation coefficients ``zero_*`` and, for the negative binomial,
``Log(theta)`` (pscl reports theta with its standard error on the log scale).

E-step.  tau_i = P(delta_i = 1 | y_i) = pi_i / (pi_i + (1 - pi_i) f(0 | mu_i)) for a zero,
0 otherwise.  The complete-data log-likelihood is linear in delta,

    l_c = sum_i w_i [delta_i log pi_i + (1 - delta_i) (log(1 - pi_i) + log f(y_i | mu_i))],

so Q replaces delta by tau.

M-step.  ``chunk_stats`` returns the gradient and the negative Hessian of Q at the
current parameters, which add over chunks: the count part (beta and, for NB, log theta
jointly) with weights w_i (1 - tau_i), and the logit part with responses tau_i.  The
M-step is one Newton (weighted IRLS) step on each part -- Lange's EM gradient step,
not an exact inner IRLS loop; the count and zero parts of Q separate, so the two steps
are independent.  The default Louis-Newton scheme uses these steps only as a fallback.

Louis' pieces.  The complete-data score of a row is b_i + delta_i a_i with
a_i = (-d1_i x_i, -dphi_i, z_i), so the missing information is
sum_i w_i tau_i (1 - tau_i) a_i a_i' and the complete information is Q's negative
Hessian; observed information = complete - missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from ..components.glm import get_family, weighted_irls
from ..em.data import ArrayData
from ..em.params import Free, ParamSpec, SpecMaps
from ..em.protocol import ChunkedModel
from ..em.stats import Stats
from ..exceptions import DataError
from ..formula import (
    build_design,
    check_frame,
    new_exog,
    resolve_column,
    rhs_matrix,
    split_two_part,
)
from ..inference.fit import FitMixin
from ..inference.results import EMResults
from .mixreg import MixtureRegression

_newton_step = MixtureRegression._newton_step


def _log_expit(x):
    """log(expit(x)) without overflow."""
    return -np.logaddexp(0.0, -x)


class ZeroInflatedRegression(SpecMaps, FitMixin, ChunkedModel):
    """Zero-inflated Poisson or NB2 regression (see the module docstring and
    :func:`zeroinfl`).

    Parameters
    ----------
    y : array_like, shape (n,)
        Non-negative integer counts.
    X : array_like, shape (n, p)
        Design of the count part (include a constant column yourself).
    Z : array_like, shape (n, q)
        Design of the zero part.
    dist : {"poisson", "negbin"}
        The count distribution (negbin: NB2 with a dispersion ``Log(theta)``).
    offset : array_like, optional
        Offset of the count part's log mean.
    weights : array_like, optional
        Frequency weights.
    exog_names, zero_names : list of str, optional
        Names of the columns of ``X`` and ``Z``.
    endog_name : str
        Name of the response.
    design_info, zero_info : patsy.DesignInfo, optional
        Designs of the two parts of a model built from a formula (for prediction).
    offset_spec : object, optional
        Internal: how the formula's offset is recomputed on new data.
    """

    summary_title = "Zero-Inflated Count Regression Results"

    def __init__(self, y, X, Z, *, dist="poisson", offset=None, weights=None,
                 exog_names=None, zero_names=None, endog_name="y", design_info=None,
                 zero_info=None, offset_spec=None):
        if dist not in ("poisson", "negbin"):
            raise ValueError(f"dist must be 'poisson' or 'negbin', got {dist!r}")
        self.dist = dist
        self.family = get_family(dist)
        y = self.family.check(np.asarray(y, dtype=float).ravel(), None, repr(endog_name))
        n = y.size
        X = np.asarray(X, dtype=float).reshape(n, -1)
        Z = np.asarray(Z, dtype=float).reshape(n, -1)
        off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float).ravel()
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
        if not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
            raise DataError("weights must be non-negative and finite, and not all zero")
        pos = w > 0
        if not np.any((y == 0) & pos):
            raise DataError(f"{endog_name} has no zeros: there is nothing to inflate "
                            "(fit a plain count regression)")
        if np.all(y[pos] == 0):
            raise DataError(f"{endog_name} is zero in every row: the count and zero parts "
                            "are not identified")
        self.p, self.q, self.d = X.shape[1], Z.shape[1], 1 if dist == "negbin" else 0
        if self.p + self.q + self.d >= n:
            raise DataError(f"{self.p + self.q + self.d} parameters need more than {n} rows")
        self.n_rows = n
        self.exog_names = list(exog_names or [f"x{j}" for j in range(self.p)])
        self.zero_names = list(zero_names or [f"z{j}" for j in range(self.q)])
        self.endog_name = str(endog_name)
        self.design_info, self.zero_info, self._offset_spec = design_info, zero_info, offset_spec
        self.data = ArrayData({"y": y, "X": X, "Z": Z, "off": off, "w": w,
                               "c": self.family.log_const(y)})
        cnt = self.exog_names + (["Log(theta)"] if self.d else [])
        self.spec = ParamSpec([
            Free("count", (self.p + self.d,), label=lambda ix: (
                "Log(theta)" if ix[0] == self.p else f"count_{cnt[ix[0]]}")),
            Free("zero", (self.q,), label=lambda ix: f"zero_{self.zero_names[ix[0]]}"),
        ])
        self.nobs = float(w.sum())
        self.df_model = float(self.spec.size)

    # -- parameters ---------------------------------------------------------------
    def check_start(self, start) -> dict:
        try:
            p = {k: np.asarray(v, dtype=float) for k, v in dict(start).items()}
            self.spec.pack(p)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"start_params must be a mapping with blocks 'count' of shape "
                             f"({self.p + self.d},) and 'zero' of shape ({self.q},): "
                             f"{err}") from None
        return p

    def start_params(self) -> dict:
        """pscl's start: a count GLM on all rows and a logit of the zero indicator."""
        dat = self.data
        y, X, Z, off, w = (dat[a] for a in ("y", "X", "Z", "off", "w"))
        beta = weighted_irls(get_family("poisson"), y, X, w, off)
        count = beta
        if self.d:
            mu = np.exp(X @ beta + off)
            count = np.append(beta, self.family.start_phi(y, mu, w))
        gamma = weighted_irls(get_family("binomial"), (y == 0).astype(float), Z, w)
        return {"count": count, "zero": gamma}

    def initial_starts(self, init, n_init: int, rng):
        """One start (pscl's); ``init`` takes no value."""
        if init is not None:
            raise ValueError("zeroinfl takes no init=; use start_params=")
        return [("glm", self.start_params())]

    # -- E-step --------------------------------------------------------------------
    def _split(self, params):
        c = np.asarray(params["count"], dtype=float)
        return c[: self.p], (c[self.p:] if self.d else None), np.asarray(params["zero"],
                                                                           dtype=float)

    def _predictors(self, params, ch):
        """Count linear predictor eta, dispersion phi, zero-part linear predictor and
        log f(y) of the count distribution, per row."""
        beta, phi, gamma = self._split(params)
        eta = ch["X"] @ beta + ch["off"]
        ez = ch["Z"] @ gamma
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lf = self.family.logpdf(ch["y"], eta[:, None], phi, None, ch["c"])[:, 0]
        return eta, phi, ez, lf

    def _rows(self, params, ch):
        """Per-row pieces: eta, phi, pi, tau, log-likelihood, log f(y)."""
        eta, phi, ez, lf = self._predictors(params, ch)
        lpi, l1pi = _log_expit(ez), _log_expit(-ez)
        zero = ch["y"] == 0
        ll = np.where(zero, np.logaddexp(lpi, l1pi + lf), l1pi + lf)
        with np.errstate(invalid="ignore"):
            tau = np.where(zero, np.exp(np.minimum(lpi - np.where(zero, ll, lpi), 0.0)), 0.0)
        return eta, phi, expit(ez), tau, ll

    def _pieces(self, params, ch):
        eta, phi, pi, tau, ll = self._rows(params, ch)
        w = ch["w"]
        der = self.family.derivs(ch["y"], eta[:, None], phi)
        X, Z = ch["X"], ch["Z"]
        c = w * (1.0 - tau)
        p, d = self.p, self.d
        gc = np.zeros(p + d)
        Hc = np.zeros((p + d, p + d))
        d1, d2 = der["d1"][:, 0], der["d2"][:, 0]
        gc[:p] = X.T @ (c * d1)
        Hc[:p, :p] = (X * (-c * d2)[:, None]).T @ X
        if d:
            gc[p] = c @ der["dp"][:, 0]
            cross = X.T @ (-c * der["dep"][:, 0])
            Hc[:p, p], Hc[p, :p] = cross, cross
            Hc[p, p] = -c @ der["dpp"][:, 0]
        gz = Z.T @ (w * (tau - pi))
        Hz = (Z * (w * pi * (1.0 - pi))[:, None]).T @ Z
        return gc, Hc, gz, Hz, der, tau, ll

    def chunk_stats(self, params, chunk):
        """Gradient and negative Hessian of Q's two parts at ``params`` (see the module
        docstring)."""
        gc, Hc, gz, Hz, _, _, ll = self._pieces(params, chunk)
        total = float(chunk["w"] @ ll)
        if not np.isfinite(total):
            return None, -np.inf
        return Stats(gc=gc, Hc=Hc, gz=gz, Hz=Hz), total

    def m_step(self, stats, params):
        """One Newton step on the count part and one on the logit part of Q."""
        count = np.asarray(params["count"], dtype=float) + _newton_step(stats["gc"],
                                                                        stats["Hc"])
        zero = np.asarray(params["zero"], dtype=float) + _newton_step(stats["gz"], stats["Hz"])
        return {"count": count, "zero": zero}

    # -- Louis -----------------------------------------------------------------------
    def chunk_louis(self, params, chunk):
        gc, Hc, gz, Hz, der, tau, ll = self._pieces(params, chunk)
        p, d, q = self.p, self.d, self.q
        k = p + d + q
        w = chunk["w"]
        comp = np.zeros((k, k))
        comp[: p + d, : p + d], comp[p + d:, p + d:] = Hc, Hz
        A = np.empty((chunk["y"].size, k))
        A[:, :p] = -der["d1"][:, :1] * chunk["X"]
        if d:
            A[:, p] = -der["dp"][:, 0]
        A[:, p + d:] = chunk["Z"]
        v = w * tau * (1.0 - tau)
        miss = (A * v[:, None]).T @ A
        return Stats(loglik=float(w @ ll), score=np.concatenate([gc, gz]), complete=comp,
                     missing=miss)

    def _count_pmf(self, eta, phi, k) -> np.ndarray:
        yk = np.full(eta.size, float(k))
        return np.exp(self.family.logpdf(yk, eta[:, None], phi, None)[:, 0])

    def predict_arrays(self, params, X, Z, off, which, ks):
        """Predictions from design matrices (see :meth:`ZeroInflatedResults.predict`)."""
        beta, phi, gamma = self._split(params)
        eta = X @ beta + off
        mu, pi = np.exp(eta), expit(Z @ gamma)
        if which == "mean":
            return pd.Series((1.0 - pi) * mu, name="mean")
        if which == "count":
            return pd.Series(mu, name="count")
        if which == "zero":
            return pd.Series(pi, name="zero")
        out = np.empty((mu.size, ks.size))
        for j, kk in enumerate(ks):
            out[:, j] = (1.0 - pi) * self._count_pmf(eta, phi, kk) + (pi if kk == 0 else 0.0)
        return pd.DataFrame(out, columns=[int(k) for k in ks])

    def mean_derivs(self, params, eta, ez):
        """The mean E[y] per row and its derivatives in the count and zero linear
        predictors: ``(E, dE/deta, dE/dez)``."""
        mu, pi = np.exp(eta), expit(ez)
        return (1.0 - pi) * mu, (1.0 - pi) * mu, -pi * (1.0 - pi) * mu

    def loglikeobs(self, params) -> np.ndarray:
        """Per-row log-likelihood at ``params`` (unweighted)."""
        return np.concatenate([self._rows(params, ch)[4] for ch in self.data.chunks(1)])

    def posterior_zero(self, params) -> np.ndarray:
        """P(structural zero | y) of every row at ``params``."""
        return np.concatenate([self._rows(params, ch)[3] for ch in self.data.chunks(1)])


class ZeroInflatedResults(EMResults):
    """Results of a zero-inflated count regression: coefficient blocks, theta, predictions."""

    def plot_residuals(self, ax=None):
        """Response residuals y - E[y] against the fitted mean E[y], zeros and positive
        counts marked apart.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).

        Returns
        -------
        matplotlib Axes
        """
        from ..inference.plots import residuals

        y = np.asarray(self.model.data["y"], dtype=float)
        mean = np.asarray(self.predict(which="mean"), dtype=float)
        kinds = np.where(y == 0, "zero", "positive count")
        return residuals(mean, y - mean, kinds=kinds, ax=ax, xlabel="fitted mean E[y]",
                         ylabel=f"{self.model.endog_name} minus E[y]",
                         title=f"{type(self.model).__name__} ({self.model.dist}): "
                               "residuals against fitted means")

    def _summary_rows(self):
        m = self.model
        right = []
        if m.d:
            right.append(("Theta:", [f"{self.theta:#.6g}"]))
        return [("Count model:", [m.dist]), ("Zero model:", ["binomial (logit)"])], right

    @property
    def count_params(self) -> pd.Series:
        """Coefficients of the count part (log link)."""
        m = self.model
        return pd.Series(self.params.to_numpy()[: m.p], index=m.exog_names, name="count")

    @property
    def zero_params(self) -> pd.Series:
        """Coefficients of the zero-inflation part (logit link)."""
        m = self.model
        return pd.Series(self.params.to_numpy()[m.p + m.d:], index=m.zero_names, name="zero")

    @property
    def theta(self) -> float | None:
        """NB2 dispersion theta (natural scale); None for the Poisson."""
        m = self.model
        return float(np.exp(self.params.iloc[m.p])) if m.d else None

    def loglikeobs(self) -> np.ndarray:
        """Per-row log-likelihood at the estimate (for :func:`vuong`)."""
        return self.model.loglikeobs(self.raw_params)

    @property
    def posterior_zero(self) -> np.ndarray:
        """Each row's posterior probability of being a structural zero."""
        return self.model.posterior_zero(self.raw_params)

    def margeff(self) -> pd.DataFrame:
        """Average marginal effects on the mean E[y] with delta-method standard errors.

        The effect of a design column is the row-weighted average of dE[y_i]/dx_ij,
        summed over the count and zero parts where the column appears in both (a factor
        dummy is differentiated as if continuous).  Standard errors: the delta method
        with the Jacobian of the averages in the parameters by central differences.

        Returns
        -------
        pandas.DataFrame
            Columns ``dy/dx``, ``std err``, ``z``, ``P>|z|``; one row per design column
            other than the intercept.
        """
        from scipy.stats import norm

        m = self.model
        dat = m.data
        X, Z, off, w = dat["X"], dat["Z"], dat["off"], dat["w"]
        names = [n for n in dict.fromkeys(m.exog_names + m.zero_names) if n != "Intercept"]
        ix = [m.exog_names.index(n) if n in m.exog_names else -1 for n in names]
        iz = [m.zero_names.index(n) if n in m.zero_names else -1 for n in names]

        def ame(theta):
            P = m.from_inference(theta)
            beta, _, gamma = m._split(P)
            _, de, dz = m.mean_derivs(P, X @ beta + off, Z @ gamma)
            a, b = (w @ de) / w.sum(), (w @ dz) / w.sum()
            return np.array([(a * beta[j] if j >= 0 else 0.0) + (b * gamma[k] if k >= 0
                                                                 else 0.0)
                             for j, k in zip(ix, iz, strict=True)])

        theta = self.params.to_numpy()
        est = ame(theta)
        J = np.empty((est.size, theta.size))
        for c in range(theta.size):
            h = 1e-6 * max(1.0, abs(theta[c]))
            tp, tm = theta.copy(), theta.copy()
            tp[c] += h
            tm[c] -= h
            J[:, c] = (ame(tp) - ame(tm)) / (2.0 * h)
        se = np.sqrt(np.diag(J @ self._cov @ J.T))
        z = est / se
        return pd.DataFrame({"dy/dx": est, "std err": se, "z": z,
                             "P>|z|": 2.0 * norm.sf(np.abs(z))}, index=names)

    def count_table(self, max_count: int | None = None) -> pd.DataFrame:
        """Observed and expected frequencies of the counts 0..``max_count`` (default the
        largest count), the expected ones the sums of the fitted P(y_i = k).

        Parameters
        ----------
        max_count : int, optional
            The largest count tabulated (default: the largest observed).

        Returns
        -------
        pandas.DataFrame
            Columns ``observed``, ``expected``, indexed by the count.
        """
        m = self.model
        y, w = m.data["y"], m.data["w"]
        top = int(y.max()) if max_count is None else int(max_count)
        ks = np.arange(top + 1)
        prob = self.predict(which="prob", at=ks).to_numpy()
        obs = np.array([w[y == k].sum() for k in ks])
        return pd.DataFrame({"observed": obs, "expected": w @ prob},
                            index=pd.Index(ks, name="count"))

    def _designs(self, newdata):
        m = self.model
        dat = m.data
        if newdata is None:
            return dat["X"], dat["Z"], dat["off"]
        if m.design_info is None:
            raise ValueError("predict(newdata) needs a model built from a formula")
        X = new_exog(m.design_info, newdata)
        Z = new_exog(m.zero_info, newdata)
        off = (resolve_column(m._offset_spec, newdata, "offset")
               if isinstance(m._offset_spec, str) else np.zeros(X.shape[0]))
        return X, Z, off

    def predict(self, newdata=None, which: str = "mean", at=None):
        """Predictions for the model's rows or ``newdata`` (pscl's ``predict.zeroinfl``).

        Parameters
        ----------
        newdata : DataFrame, optional
            New rows (through the formula for a model built from one); default the estimation rows.
        which : {"mean", "count", "zero", "prob"}
            ``"mean"``: (1 - pi) mu; ``"count"``: mu, the mean of the count part;
            ``"zero"``: pi, the zero-inflation probability; ``"prob"``: P(y = k) for
            k in ``at`` (default 0..max(y)), one column per k.
        at : array_like of int, optional
            Counts for ``which="prob"``.

        Returns
        -------
        pandas.Series or DataFrame
        """
        m = self.model
        X, Z, off = self._designs(newdata)
        ks = (np.arange(int(m.data["y"].max()) + 1) if at is None
              else np.asarray(at, dtype=int).ravel())
        if which in ("mean", "count", "zero", "prob"):
            return m.predict_arrays(self.raw_params, X, Z, off, which, ks)
        raise ValueError(f"which must be 'mean', 'count', 'zero' or 'prob', got {which!r}")


ZeroInflatedRegression.results_class = ZeroInflatedResults


def zeroinfl(formula: str, data, dist: str = "poisson", offset=None, weights=None,
             missing: str = "drop") -> ZeroInflatedRegression:
    """Zero-inflated Poisson or negative-binomial regression (pscl's ``zeroinfl``).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2 | z1 + z2"``: count regressors, then the regressors of the
        zero-inflation logit; ``"y ~ x1 + x2"`` uses the same regressors in both parts,
        ``"y ~ x | 1"`` a constant inflation probability.  ``.`` stands for every other
        column of ``data``.
    data : pandas.DataFrame
        The data (never modified).
    dist : {"poisson", "negbin"}
    offset : str or array_like, optional
        Offset of the count part's linear predictor (log scale).
    weights : str or array_like, optional
        Frequency weights.
    missing : {"drop", "raise"}

    Returns
    -------
    ZeroInflatedRegression
        Call ``.fit()`` for the results.

    Examples
    --------
    >>> import numpy as np, pandas as pd, emstats
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2000)
    >>> y = np.where(rng.random(2000) < 0.3, 0, rng.poisson(np.exp(0.5 + 0.5 * x)))
    >>> res = emstats.zeroinfl("y ~ x | 1", pd.DataFrame({"y": y, "x": x})).fit()
    >>> bool(abs(res.params["zero_Intercept"] - np.log(0.3 / 0.7)) < 0.2)
    True
    """
    data = check_frame(data)
    if dist not in ("poisson", "negbin"):
        raise ValueError(f"dist must be 'poisson' or 'negbin', got {dist!r}")
    count_f, zero_rhs = split_two_part(formula, data)
    Zfull, znames, zinfo, _ = rhs_matrix(zero_rhs, data)
    extras = {"__w": weights, "__off": offset,
              "__zero": np.where(np.isnan(Zfull).any(axis=1), np.nan, 0.0)}
    des = build_design(count_f, data, extras=extras, missing=missing)
    pos = data.index.get_indexer(des.row_labels)
    return ZeroInflatedRegression(
        des.endog[:, 0], des.exog, Zfull[pos], dist=dist, offset=des.extras.get("__off"),
        weights=des.extras.get("__w"), exog_names=des.exog_names, zero_names=znames,
        endog_name=des.endog_names[0], design_info=des.design_info, zero_info=zinfo,
        offset_spec=offset)


class HurdleRegression(ZeroInflatedRegression):
    """Hurdle count regression: a logit for y > 0 and a zero-truncated Poisson or NB2
    for the positive counts (pscl's ``hurdle`` with ``zero.dist = "binomial"``).

    P(y_i = 0) = 1 - p_i, P(y_i = k) = p_i f(k | mu_i) / (1 - f(0 | mu_i)) for k > 0, with
    logit p_i = z_i' gamma (the ``zero_*`` coefficients model P(y > 0), as pscl's).

    EM for the truncated part: a positive count is the first non-zero of a run of draws
    from f, the M_i zeros before it unobserved, M_i geometric with mean
    f0 / (1 - f0) and variance f0 / (1 - f0)^2.  The complete-data log-likelihood
    log f(y_i) + M_i log f(0) is linear in M_i, so the E-step gives E[M_i] and the M-step
    is one Newton step on the count part (with weights: w_i at y_i, w_i E[M_i] at 0) and
    one on the logit (which has no missing data).  Louis' missing information is
    sum_i w_i Var(M_i) s0_i s0_i', s0_i the count score at y = 0.

    Parameters
    ----------
    y, X, Z, dist, offset, weights :
        As in :class:`ZeroInflatedRegression` (``Z`` is the design of the hurdle logit).
    exog_names, zero_names, endog_name, design_info, zero_info, offset_spec :
        As in :class:`ZeroInflatedRegression`.
    """

    summary_title = "Hurdle Count Regression Results"

    def _rows(self, params, ch):
        eta, phi, ez, lf = self._predictors(params, ch)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lf0 = self.family.logpdf(np.zeros_like(eta), eta[:, None], phi, None)[:, 0]
            l1f0 = np.log(-np.expm1(lf0))
        pos = ch["y"] > 0
        ll = np.where(pos, _log_expit(ez) + lf - l1f0, _log_expit(-ez))
        f0 = np.exp(lf0)
        with np.errstate(divide="ignore", invalid="ignore"):
            em = np.where(pos, f0 / -np.expm1(lf0), 0.0)
            vm = np.where(pos, em / -np.expm1(lf0), 0.0)
        return eta, phi, expit(ez), (em, vm), ll

    def _pieces(self, params, ch):
        eta, phi, p, (em, vm), ll = self._rows(params, ch)
        w = ch["w"]
        pos = (ch["y"] > 0).astype(float)
        X, Z = ch["X"], ch["Z"]
        der = self.family.derivs(ch["y"], eta[:, None], phi)
        der0 = self.family.derivs(np.zeros_like(eta), eta[:, None], phi)
        a, b = w * pos, w * em          # weights of the observed y and of the latent zeros
        pp, d = self.p, self.d
        gc = np.zeros(pp + d)
        Hc = np.zeros((pp + d, pp + d))
        gc[:pp] = X.T @ (a * der["d1"][:, 0] + b * der0["d1"][:, 0])
        Hc[:pp, :pp] = (X * (-(a * der["d2"][:, 0] + b * der0["d2"][:, 0]))[:, None]).T @ X
        if d:
            gc[pp] = a @ der["dp"][:, 0] + b @ der0["dp"][:, 0]
            cross = X.T @ (-(a * der["dep"][:, 0] + b * der0["dep"][:, 0]))
            Hc[:pp, pp], Hc[pp, :pp] = cross, cross
            Hc[pp, pp] = -(a @ der["dpp"][:, 0] + b @ der0["dpp"][:, 0])
        gz = Z.T @ (w * (pos - p))
        Hz = (Z * (w * p * (1.0 - p))[:, None]).T @ Z
        return gc, Hc, gz, Hz, (der0, vm), None, ll

    def chunk_louis(self, params, chunk):
        gc, Hc, gz, Hz, (der0, vm), _, ll = self._pieces(params, chunk)
        p, d, q = self.p, self.d, self.q
        k = p + d + q
        w = chunk["w"]
        comp = np.zeros((k, k))
        comp[: p + d, : p + d], comp[p + d:, p + d:] = Hc, Hz
        A = np.zeros((chunk["y"].size, k))
        A[:, :p] = der0["d1"][:, :1] * chunk["X"]
        if d:
            A[:, p] = der0["dp"][:, 0]
        miss = (A * (w * vm)[:, None]).T @ A
        return Stats(loglik=float(w @ ll), score=np.concatenate([gc, gz]), complete=comp,
                     missing=miss)

    def start_params(self) -> dict:
        """A count GLM on the positive rows and a logit of 1{y > 0}."""
        dat = self.data
        y, X, Z, off, w = (dat[a] for a in ("y", "X", "Z", "off", "w"))
        pos = y > 0
        beta = weighted_irls(get_family("poisson"), y, X, w * pos, off)
        count = beta
        if self.d:
            mu = np.exp(X @ beta + off)
            count = np.append(beta, self.family.start_phi(y[pos], mu[pos], w[pos]))
        gamma = weighted_irls(get_family("binomial"), pos.astype(float), Z, w)
        return {"count": count, "zero": gamma}

    def predict_arrays(self, params, X, Z, off, which, ks):
        """Predictions from design matrices (see :meth:`ZeroInflatedResults.predict`):
        ``"zero"`` is pscl's ratio P(y > 0) / P_count(y > 0)."""
        beta, phi, gamma = self._split(params)
        eta = X @ beta + off
        mu, p = np.exp(eta), expit(Z @ gamma)
        ratio = p / (1.0 - self._count_pmf(eta, phi, 0))
        if which == "mean":
            return pd.Series(ratio * mu, name="mean")
        if which == "count":
            return pd.Series(mu, name="count")
        if which == "zero":
            return pd.Series(ratio, name="zero")
        out = np.empty((mu.size, ks.size))
        for j, kk in enumerate(ks):
            out[:, j] = 1.0 - p if kk == 0 else ratio * self._count_pmf(eta, phi, kk)
        return pd.DataFrame(out, columns=[int(k) for k in ks])

    def mean_derivs(self, params, eta, ez):
        _, phi, _ = self._split(params)

        def g(e):   # mu / (1 - f(0 | mu))
            return np.exp(e) / -np.expm1(np.log(self._count_pmf(e, phi, 0)))

        p, h = expit(ez), 1e-5
        gv = g(eta)
        dg = (g(eta + h) - g(eta - h)) / (2.0 * h)   # central difference: O(h^2) = 1e-10
        return p * gv, p * dg, p * (1.0 - p) * gv

    def posterior_zero(self, params) -> np.ndarray:
        raise AttributeError("a hurdle model has no latent structural zeros")


class HurdleResults(ZeroInflatedResults):
    """Results of a hurdle count regression (``zero_*`` model P(y > 0))."""

    def _summary_rows(self):
        left, right = super()._summary_rows()
        return [left[0], ("Zero hurdle:", ["binomial (logit)"])], right


HurdleRegression.results_class = HurdleResults


def hurdle(formula: str, data, dist: str = "poisson", offset=None, weights=None,
           missing: str = "drop") -> HurdleRegression:
    """Hurdle Poisson or negative-binomial regression with a binomial (logit) zero hurdle
    (pscl's ``hurdle(..., zero.dist = "binomial")``).

    Parameters
    ----------
    formula : str
        As :func:`zeroinfl`: ``"y ~ count regressors | hurdle regressors"``.
    data : pandas.DataFrame
        The data (never modified).
    dist : {"poisson", "negbin"}
        Distribution of the zero-truncated count part.
    offset, weights, missing :
        As :func:`zeroinfl`.

    Returns
    -------
    HurdleRegression
        Call ``.fit()`` for the results.
    """
    zi = zeroinfl(formula, data, dist=dist, offset=offset, weights=weights, missing=missing)
    dat = zi.data
    return HurdleRegression(
        dat["y"], dat["X"], dat["Z"], dist=dist, offset=dat["off"], weights=dat["w"],
        exog_names=zi.exog_names, zero_names=zi.zero_names, endog_name=zi.endog_name,
        design_info=zi.design_info, zero_info=zi.zero_info, offset_spec=offset)


def vuong(res1, res2) -> pd.DataFrame:
    """Vuong's (1989) non-nested test of two count models fitted to the same rows
    (pscl's ``vuong``).

    Parameters
    ----------
    res1, res2 :
        Results with a ``loglikeobs()`` method (emstats' zero-inflated and hurdle
        results) or statsmodels discrete-model results (``res.model.loglikeobs``).

    Returns
    -------
    pandas.DataFrame
        Rows ``Raw``, ``AIC-corrected``, ``BIC-corrected``; columns ``statistic``,
        ``H_A`` (which model the sign favours) and the one-sided ``p-value``.
    """
    from scipy.stats import norm

    def parts(r):
        if hasattr(r, "loglikeobs"):
            return np.asarray(r.loglikeobs(), dtype=float), len(r.params)
        par = np.asarray(r.params, dtype=float)
        return np.asarray(r.model.loglikeobs(par), dtype=float), par.size

    (l1, k1), (l2, k2) = parts(res1), parts(res2)
    if l1.shape != l2.shape:
        raise ValueError(f"the two models were fitted to different numbers of rows "
                         f"({l1.size} and {l2.size})")
    m = l1 - l2
    n = m.size
    sd = float(np.std(m, ddof=1))
    rows = {}
    for name, adj in (("Raw", 0.0), ("AIC-corrected", float(k1 - k2)),
                      ("BIC-corrected", (k1 - k2) * np.log(n) / 2.0)):
        v = np.sqrt(n) * ((m.sum() - adj) / n) / sd
        rows[name] = {"statistic": v, "H_A": "model1 > model2" if v > 0 else "model2 > model1",
                      "p-value": float(norm.sf(abs(v)))}
    return pd.DataFrame(rows).T.astype({"statistic": float, "p-value": float})
